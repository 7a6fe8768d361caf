//! The image studio: prompt and negative prompt, model, size, steps, sampler, guidance, seed,
//! count, NSFW and censor flags, img2img from an uploaded image, the live price (a dry run) as
//! the settings change, and a gallery of results with download and rating.

use std::time::Duration;

use leptos::either::Either;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::alchemy::{alchemize, CaptionFile};
use crate::alchemy::{CAPTION, UPSCALE};
use crate::api::{self, GalleryImage, ImageProgress};
use crate::browser;
use crate::image_settings::{ImageSettings, SAMPLERS, SIZES};
use crate::story::{Story, Turn};
use crate::Session;

/// A request on its way.
#[derive(Debug, Clone, PartialEq)]
struct Waiting {
    id: String,
    progress: Option<ImageProgress>,
}

/// What a request's images keep of it.
#[derive(Debug, Clone, PartialEq)]
struct Origin {
    prompt: String,
    shared: bool,
}

/// A gallery entry: the image and the request it came from (ratings go to the request).
#[derive(Debug, Clone, PartialEq)]
struct Shot {
    request_id: String,
    /// The prompt, the caption of the image in a story.
    prompt: String,
    image: GalleryImage,
    shared: bool,
    /// What the last action on it said (a rating's reward, an insertion, an alchemy's progress).
    reward: Option<String>,
    /// An alchemist's caption of it.
    caption: Option<String>,
    /// Its four-times upscale: a short-lived link on this horde.
    upscaled: Option<String>,
}

#[component]
pub fn ImagesPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let settings = RwSignal::new(ImageSettings::default());
    let source = RwSignal::new(None::<String>);
    let waiting = RwSignal::new(None::<Waiting>);
    let error = RwSignal::new(None::<String>);
    let gallery = RwSignal::new(Vec::<Shot>::new());
    let (models, _) = super::load(api::image_choices);

    // Settings live in this browser.
    let loaded = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(s) = browser::load::<ImageSettings>(browser::IMAGES_KEY) {
            settings.set(s);
        }
        loaded.set(true);
    });
    Effect::new(move |_| {
        let s = settings.get();
        // Image settings are small; if even they do not fit, the write page says so.
        if loaded.get_untracked() {
            let _ = browser::save(browser::IMAGES_KEY, &s);
        }
    });

    // The price follows every change (a dry run: nothing is queued or charged).
    let (price, _) = super::load(move || {
        let (key, s, src) = (session.api_key.get(), settings.get(), source.get());
        async move {
            if s.prompt.trim().is_empty() {
                return Ok(None);
            }
            api::image_price(key, s.request(src)).await.map(Some)
        }
    });

    fn poll(id: String, waiting: RwSignal<Option<Waiting>>, gallery: RwSignal<Vec<Shot>>, error: RwSignal<Option<String>>, origin: Origin) {
        spawn_local(async move {
            if waiting.with_untracked(|w| w.as_ref().is_none_or(|w| w.id != id)) {
                return;
            }
            match api::image_status(id.clone()).await {
                Ok(p) if p.done || p.faulted => {
                    if p.faulted && p.images.is_empty() {
                        error.set(Some("No worker could finish this request.".into()));
                    }
                    add_to_gallery(gallery, &id, &origin, p.images);
                    waiting.set(None);
                }
                Ok(p) => {
                    waiting.set(Some(Waiting {
                        id: id.clone(),
                        progress: Some(p),
                    }));
                    set_timeout(move || poll(id, waiting, gallery, error, origin), Duration::from_secs(1));
                }
                Err(e) => {
                    waiting.set(None);
                    error.set(Some(api::message(&e)));
                }
            }
        });
    }

    let busy = Memo::new(move |_| waiting.with(Option::is_some));
    let generate = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if waiting.with_untracked(Option::is_some) {
            return;
        }
        error.set(None);
        let s = settings.get_untracked();
        if s.prompt.trim().is_empty() {
            error.set(Some("Describe the image first.".into()));
            return;
        }
        let request = s.request(source.get_untracked());
        let key = session.api_key.get_untracked();
        waiting.set(Some(Waiting {
            id: String::new(),
            progress: None,
        }));
        spawn_local(async move {
            match api::submit_image(key, request).await {
                Ok(sub) => {
                    if !sub.possible {
                        error.set(Some(
                            "No image worker online can serve this now; it waits up to 20 minutes for one.".into(),
                        ));
                    }
                    waiting.set(Some(Waiting {
                        id: sub.id.clone(),
                        progress: None,
                    }));
                    let origin = Origin {
                        prompt: s.prompt.trim().to_string(),
                        shared: s.shared,
                    };
                    poll(sub.id, waiting, gallery, error, origin);
                }
                Err(e) => {
                    waiting.set(None);
                    error.set(Some(api::message(&e)));
                }
            }
        });
    };
    let cancel = move |_| {
        let Some(id) = waiting
            .with_untracked(|w| w.as_ref().map(|w| w.id.clone()))
            .filter(|id| !id.is_empty())
        else {
            return;
        };
        let origin = settings.with_untracked(|s| Origin {
            prompt: s.prompt.trim().to_string(),
            shared: s.shared,
        });
        waiting.set(None);
        spawn_local(async move {
            match api::cancel_image(id.clone()).await {
                Ok(p) => add_to_gallery(gallery, &id, &origin, p.images),
                Err(e) => error.set(Some(api::message(&e))),
            }
        });
    };

    let num = |get: fn(&ImageSettings) -> f64, set: fn(&mut ImageSettings, f64)| {
        (
            move || settings.with(|s| get(s).to_string()),
            move |ev: leptos::ev::Event| {
                if let Some(v) = browser::number(&event_target_value(&ev)) {
                    settings.update(|s| set(s, v));
                }
            },
        )
    };
    let (steps_value, steps_change) = num(|s| s.steps as f64, |s, v| s.steps = v.clamp(1.0, 150.0) as i64);
    let (cfg_value, cfg_change) = num(|s| s.cfg_scale, |s, v| s.cfg_scale = v.clamp(0.0, 30.0));
    let (n_value, n_change) = num(|s| s.n as f64, |s, v| s.n = v.clamp(1.0, 20.0) as i64);
    let (denoise_value, denoise_change) = num(|s| s.denoising_strength, |s, v| s.denoising_strength = v.clamp(0.01, 1.0));
    let size_key = move || settings.with(|s| format!("{}x{}", s.width, s.height));

    view! {
        <section class="images">
            <h1>"Images"</h1>
            <form class="image-form card" on:submit=generate>
                <label class="field">
                    <span>"Prompt"</span>
                    <textarea name="image_prompt" rows="3" placeholder="A lighthouse on a cliff at dawn, oil painting" prop:value=move || settings.with(|s| s.prompt.clone()) on:input=move |ev| settings.update(|s| s.prompt = event_target_value(&ev))></textarea>
                </label>
                <label class="field">
                    <span>"Negative prompt"</span>
                    <input name="negative" placeholder="blurry, text" prop:value=move || settings.with(|s| s.negative.clone()) on:input=move |ev| settings.update(|s| s.negative = event_target_value(&ev))/>
                </label>
                <div class="grid">
                    <label class="field">
                        <span>"Model"</span>
                        <select name="image_model" on:change=move |ev| settings.update(|s| s.model = event_target_value(&ev)) prop:value=move || settings.with(|s| s.model.clone())>
                            <option value="">"Any model"</option>
                            {move || {
                                let offered = models.get().and_then(Result::ok).unwrap_or_default();
                                super::options(offered, &settings.with(|s| s.model.clone()))
                            }}
                        </select>
                    </label>
                    <label class="field">
                        <span>"Size"</span>
                        <select
                            name="size"
                            prop:value=size_key
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                if let Some((_, w, h)) = SIZES.iter().find(|(_, w, h)| format!("{w}x{h}") == v) {
                                    settings.update(|s| { s.width = *w; s.height = *h; });
                                }
                            }
                        >
                            {SIZES.map(|(label, w, h)| view! { <option value=format!("{w}x{h}")>{label}</option> })}
                        </select>
                    </label>
                    <label class="field">
                        <span>"Sampler"</span>
                        <select name="sampler" prop:value=move || settings.with(|s| s.sampler.clone()) on:change=move |ev| settings.update(|s| s.sampler = event_target_value(&ev))>
                            {SAMPLERS.map(|name| view! { <option value=name>{name}</option> })}
                        </select>
                    </label>
                    <label class="field"><span>"Steps"</span><input name="steps" type="number" min="1" max="150" prop:value=steps_value on:change=steps_change/></label>
                    <label class="field"><span>"Guidance (cfg)"</span><input name="cfg_scale" type="number" step="0.5" prop:value=cfg_value on:change=cfg_change/></label>
                    <label class="field"><span>"Images"</span><input name="n" type="number" min="1" max="20" prop:value=n_value on:change=n_change/></label>
                    <label class="field">
                        <span>"Seed (empty: random)"</span>
                        <input name="seed" prop:value=move || settings.with(|s| s.seed.clone()) on:input=move |ev| settings.update(|s| s.seed = event_target_value(&ev))/>
                    </label>
                </div>
                <div class="row checks">
                    <label class="check"><input type="checkbox" name="nsfw" prop:checked=move || settings.with(|s| s.nsfw) on:change=move |ev| settings.update(|s| s.nsfw = event_target_checked(&ev))/>"Allow NSFW"</label>
                    <label class="check"><input type="checkbox" name="censor_nsfw" prop:checked=move || settings.with(|s| s.censor_nsfw) on:change=move |ev| settings.update(|s| s.censor_nsfw = event_target_checked(&ev))/>"Censor NSFW"</label>
                    <label class="check"><input type="checkbox" name="shared" prop:checked=move || settings.with(|s| s.shared) on:change=move |ev| settings.update(|s| s.shared = event_target_checked(&ev))/>"Share for ratings"</label>
                </div>
                <details class="img2img">
                    <summary>"From an image (img2img)"</summary>
                    <input type="file" name="source_image" accept="image/png,image/jpeg,image/webp" on:change=move |ev| browser::read_chosen_file(&ev, move |data| source.set(data))/>
                    <label class="field"><span>"Change strength (0–1)"</span><input name="denoising_strength" type="number" step="0.05" prop:value=denoise_value on:change=denoise_change/></label>
                    {move || source.get().map(|_| view! {
                        <p class="muted source-set">"Source image set. " <button type="button" class="ghost small" on:click=move |_| source.set(None)>"Remove"</button></p>
                    })}
                </details>
                <p class="price muted">
                    {move || match price.get() {
                        Some(Ok(Some(k))) => format!("Costs about {} kudos", super::kudos(k)),
                        Some(Ok(None)) => "Describe the image to see its price.".to_string(),
                        Some(Err(e)) => e,
                        None => "Pricing…".to_string(),
                    }}
                </p>
                <div class="actions">
                    {move || if busy.get() {
                        Either::Left(view! { <button type="button" class="danger" on:click=cancel>"Cancel"</button> })
                    } else {
                        Either::Right(view! { <button type="submit" class="primary">"Generate"</button> })
                    }}
                </div>
                {move || waiting.get().map(|w| {
                    let text = match w.progress {
                        None => "Sending…".to_string(),
                        Some(p) if p.processing > 0 => format!("Generating… {} of {} done", p.finished, p.finished + p.processing + p.waiting),
                        Some(p) => format!("Queue position {} · about {}", p.queue_position, super::duration(p.wait_time)),
                    };
                    view! { <p class="status muted image-status">{text}</p> }
                })}
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            </form>
            <CaptionFile/>
            <Gallery gallery/>
        </section>
    }
}

fn add_to_gallery(gallery: RwSignal<Vec<Shot>>, request_id: &str, origin: &Origin, images: Vec<GalleryImage>) {
    gallery.update(|g| {
        for image in images.into_iter().rev() {
            g.insert(
                0,
                Shot {
                    request_id: request_id.to_string(),
                    prompt: origin.prompt.clone(),
                    image,
                    shared: origin.shared,
                    reward: None,
                    caption: None,
                    upscaled: None,
                },
            );
        }
    });
}

#[component]
fn Gallery(gallery: RwSignal<Vec<Shot>>) -> impl IntoView {
    let session = expect_context::<Session>();
    // An alchemy form on the gallery's image `i` (fetched from the horde and sent back as a
    // data URI): a caption, or an upscale shown under it.
    let alchemy = move |i: usize, url: String, form: &'static str| {
        let key = session.api_key.get_untracked();
        let note = move |n: String| {
            gallery.update(|g| {
                if let Some(s) = g.get_mut(i) {
                    s.reward = Some(n);
                }
            })
        };
        note("Sending…".into());
        spawn_local(async move {
            let Some(data) = browser::fetch_data_url(&url).await else {
                note("The image could not be fetched; it may have expired.".into());
                return;
            };
            match alchemize(key, data, form, &note).await {
                Ok(o) => gallery.update(|g| {
                    if let Some(s) = g.get_mut(i) {
                        s.reward = None;
                        if form == CAPTION {
                            s.caption = Some(o.caption);
                        } else {
                            s.upscaled = Some(o.image);
                        }
                    }
                }),
                Err(e) => note(e),
            }
        });
    };
    view! {
        <div class="gallery">
            {move || {
                let shots = gallery.get();
                if shots.is_empty() {
                    return Either::Left(view! { <p class="muted">"Your images appear here. They live on the horde for 20 minutes: download the ones you keep."</p> });
                }
                let shots = shots
                    .into_iter()
                    .enumerate()
                    .map(|(i, shot)| {
                        let rating = RwSignal::new(8i64);
                        let (request_id, image_id) = (shot.request_id.clone(), shot.image.id.clone());
                        let rate = move |_| {
                            let (request_id, image_id) = (request_id.clone(), image_id.clone());
                            let value = rating.get_untracked();
                            spawn_local(async move {
                                let reward = match api::rate_image(request_id, image_id, value).await {
                                    Ok(k) => format!("Rated: +{} kudos", super::kudos(k)),
                                    Err(e) => api::message(&e),
                                };
                                gallery.update(|g| if let Some(s) = g.get_mut(i) { s.reward = Some(reward); });
                            });
                        };
                        let caption = format!("{} · {} · seed {}", shot.image.model, shot.image.worker_name, shot.image.seed);
                        // Into the story kept in this browser, as a data URL (the horde's copy expires).
                        let (url, prompt) = (shot.image.url.clone(), shot.prompt.clone());
                        let insert = move |_| {
                            let (url, prompt) = (url.clone(), prompt.clone());
                            spawn_local(async move {
                                let note = match browser::fetch_data_url(&url).await {
                                    Some(data) => {
                                        let mut story = browser::load::<Story>(browser::STORY_KEY).unwrap_or_default();
                                        story.turns.push(Turn::image(data, prompt));
                                        if browser::save(browser::STORY_KEY, &story) {
                                            "Added to your story.".to_string()
                                        } else {
                                            "This browser's storage is full: the image was not added. Export or delete stories to make room.".to_string()
                                        }
                                    }
                                    None => "The image could not be fetched; it may have expired.".to_string(),
                                };
                                gallery.update(|g| if let Some(s) = g.get_mut(i) { s.reward = Some(note); });
                            });
                        };
                        view! {
                            <figure class="shot card">
                                <img src=shot.image.url.clone() alt=caption.clone() loading="lazy"/>
                                <figcaption class="muted">{caption}{shot.image.censored.then_some(" · censored")}</figcaption>
                                <div class="row">
                                    <a class="button ghost small" href=shot.image.url.clone() download=format!("horde-{}.webp", shot.image.seed)>"Download"</a>
                                    {shot.shared.then(|| view! {
                                        <select class="rating" aria-label="Rating" on:change=move |ev| rating.set(event_target_value(&ev).parse::<i64>().unwrap_or(8)) prop:value=move || rating.get().to_string()>
                                            {(1..=10).rev().map(|r| view! { <option value=r.to_string()>{format!("{r}/10")}</option> }).collect_view()}
                                        </select>
                                        <button type="button" class="ghost small" on:click=rate.clone()>"Rate"</button>
                                    })}
                                </div>
                                <div class="row">
                                    <button type="button" class="ghost small insert" on:click=insert.clone()>"Insert into story"</button>
                                    <button type="button" class="ghost small" on:click={ let url = shot.image.url.clone(); move |_| alchemy(i, url.clone(), CAPTION) }>"Caption"</button>
                                    <button type="button" class="ghost small" on:click={ let url = shot.image.url.clone(); move |_| alchemy(i, url.clone(), UPSCALE) }>"Upscale ×4"</button>
                                </div>
                                {shot.reward.map(|r| view! { <p class="muted reward">{r}</p> })}
                                {shot.caption.map(|c| view! { <p class="caption">{c}</p> })}
                                {shot.upscaled.map(|u| view! {
                                    <p class="upscaled">
                                        <img src=u.clone() alt="Upscaled four times" loading="lazy"/>
                                        <a class="button ghost small" href=u download="horde-upscaled.webp">"Download the upscale"</a>
                                    </p>
                                })}
                            </figure>
                        }
                    })
                    .collect_view();
                Either::Right(shots)
            }}
        </div>
    }
}

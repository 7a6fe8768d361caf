//! The image studio's alchemy: an image captioned (a generated one, or a file the user picks)
//! and a generated image upscaled four times (`RealESRGAN_x4plus`), through the horde's
//! alchemists ([`crate::alchemy`]).

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::alchemy::{alchemy_status, submit_alchemy, AlchemyProgress, CAPTION};
use crate::api;
use crate::browser;
use crate::Session;

/// Runs one alchemy `form` on `source` (base64 or a `data:` URI) and follows it to its end;
/// `say` hears where it stands (a `dyn`: one copy of this in the bundle for every caller).
/// Answers the form's outcome, or what went wrong.
pub async fn alchemize(api_key: String, source: String, form: &'static str, say: &dyn Fn(String)) -> Result<AlchemyProgress, String> {
    let sub = submit_alchemy(api_key, source, form.to_string())
        .await
        .map_err(|e| api::message(&e))?;
    say(if sub.possible {
        "Waiting for an alchemist…".to_string()
    } else {
        "No alchemist online can do this now; it waits up to 20 minutes for one.".to_string()
    });
    loop {
        browser::sleep(1000).await;
        let progress = alchemy_status(sub.id.clone()).await.map_err(|e| api::message(&e))?;
        if progress.done {
            return if progress.succeeded() {
                Ok(progress)
            } else {
                Err("No alchemist could finish this.".into())
            };
        }
        if progress.state == "processing" {
            say("An alchemist is working on it…".into());
        }
    }
}

/// "Caption an image": a file the user picks, described by an alchemist. One line says where
/// the request stands, then the caption.
#[component]
pub fn CaptionFile() -> impl IntoView {
    let session = expect_context::<Session>();
    let source = RwSignal::new(None::<String>);
    let said = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let run = move |_| {
        let Some(image) = source.get_untracked() else {
            said.set("Choose an image first.".into());
            return;
        };
        busy.set(true);
        let key = session.api_key.get_untracked();
        spawn_local(async move {
            let outcome = alchemize(key, image, CAPTION, &move |s| said.set(s)).await;
            said.set(outcome.map(|o| o.caption).unwrap_or_else(|e| e));
            busy.set(false);
        });
    };
    view! {
        <details class="caption-file card">
            <summary>"Caption an image"</summary>
            <input type="file" name="caption_image" accept="image/png,image/jpeg,image/webp" on:change=move |ev| browser::read_chosen_file(&ev, move |data| source.set(data))/>
            <button type="button" class="ghost" prop:disabled=busy on:click=run>"Caption"</button>
            <p class="caption" role="status">{said}</p>
        </details>
    }
}

//! The writing studio: story, adventure, chat and instruct modes; memory, author's note and world
//! info; settings; submit, live queue position and streamed text, cancel, retry, undo/redo and
//! editing of any turn. The story and settings live in this browser only.

use std::time::Duration;

use leptos::either::Either;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;

use super::options;
use crate::api::{self, TextOffer, TextProgress};
use crate::browser::{self, TextStream};
use crate::context::{self, clean_reply};
use crate::story::{GenSettings, History, InstructTemplate, Mode, Provenance, Role, Story, Turn, WorldEntry, PRESETS};
use crate::Session;

/// A request on its way: where it stands and the text streamed so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pending {
    pub id: String,
    pub text: String,
    pub queue_position: i64,
    pub wait_time: i64,
    pub writing: bool,
    pub kudos: f64,
}

/// The text of a `delta` or `reset` stream event (its other fields are not needed here).
#[derive(Deserialize)]
struct StreamText {
    text: String,
}

/// The `error` stream event.
#[derive(Deserialize)]
struct StreamError {
    message: String,
}

/// The studio's state, all `Copy` handles.
#[derive(Clone, Copy)]
struct Studio {
    session: Session,
    story: RwSignal<Story>,
    /// The user's other stories (the shelf); the current one is `story`.
    shelf: RwSignal<Vec<Story>>,
    settings: RwSignal<GenSettings>,
    pending: RwSignal<Option<Pending>>,
    error: RwSignal<Option<String>>,
    history: StoredValue<History>,
    /// Bumped when the history changes (it is not reactive itself).
    history_rev: RwSignal<u32>,
    stream: StoredValue<Option<TextStream>, LocalStorage>,
}

impl Studio {
    fn new(session: Session) -> Self {
        let studio = Studio {
            session,
            story: RwSignal::new(Story::default()),
            shelf: RwSignal::new(Vec::new()),
            settings: RwSignal::new(GenSettings::default()),
            pending: RwSignal::new(None),
            error: RwSignal::new(None),
            history: StoredValue::new(History::default()),
            history_rev: RwSignal::new(0),
            stream: StoredValue::new_local(None),
        };
        // The user's work comes from this browser once the page is live, and goes back on change.
        let loaded = RwSignal::new(false);
        Effect::new(move |_| {
            if let Some(s) = browser::load::<Story>(browser::STORY_KEY) {
                studio.story.set(s);
            }
            if let Some(s) = browser::load::<Vec<Story>>(browser::SHELF_KEY) {
                studio.shelf.set(s);
            }
            if let Some(s) = browser::load::<GenSettings>(browser::SETTINGS_KEY) {
                studio.settings.set(s);
            }
            loaded.set(true);
        });
        Effect::new(move |_| {
            let shelf = studio.shelf.get();
            if loaded.get_untracked() && !browser::save(browser::SHELF_KEY, &shelf) {
                studio.error.set(Some(browser::STORAGE_FULL.into()));
            }
        });
        Effect::new(move |_| {
            let story = studio.story.get();
            if loaded.get_untracked() && !browser::save(browser::STORY_KEY, &story) {
                studio.error.set(Some(browser::STORAGE_FULL.into()));
            }
        });
        Effect::new(move |_| {
            let settings = studio.settings.get();
            if loaded.get_untracked() && !browser::save(browser::SETTINGS_KEY, &settings) {
                studio.error.set(Some(browser::STORAGE_FULL.into()));
            }
        });
        studio
    }

    fn busy(self) -> bool {
        self.pending.with(Option::is_some)
    }

    /// Changes the turns, keeping the old ones for undo.
    fn change_turns(self, f: impl FnOnce(&mut Vec<Turn>)) {
        self.story.update(|s| {
            self.history.update_value(|h| h.record(&s.turns));
            f(&mut s.turns);
        });
        self.history_rev.update(|r| *r += 1);
    }

    /// Makes `next` the current story, with a fresh undo history.
    fn replace_story(self, next: Story) {
        self.story.set(next);
        self.history.set_value(History::default());
        self.history_rev.update(|r| *r += 1);
    }

    /// Puts the current story on the shelf (unless it is empty) and makes `next` current.
    fn switch_to(self, next: Story) {
        let current = self.story.get_untracked();
        if !current.is_blank() {
            self.shelf.update(|shelf| shelf.insert(0, current));
        }
        self.replace_story(next);
    }

    /// A new, empty story in the current mode; the current one goes on the shelf.
    fn new_story(self) {
        if self.busy() {
            return;
        }
        let mode = self.story.with_untracked(|s| s.mode);
        self.switch_to(Story { mode, ..Story::default() });
    }

    /// Opens the shelf's story `i`.
    fn open_story(self, i: usize) {
        if self.busy() {
            return;
        }
        if let Some(next) = self.shelf.try_update(|shelf| (i < shelf.len()).then(|| shelf.remove(i))).flatten() {
            self.switch_to(next);
        }
    }

    /// Deletes the current story; the most recent one on the shelf takes its place.
    fn delete_story(self) {
        if self.busy() {
            return;
        }
        let next = self
            .shelf
            .try_update(|shelf| (!shelf.is_empty()).then(|| shelf.remove(0)))
            .flatten();
        self.replace_story(next.unwrap_or_default());
    }

    /// One step back or forward in the turns' history.
    fn travel(self, step: fn(&mut History, &[Turn]) -> Option<Vec<Turn>>) {
        self.story.update(|s| {
            if let Some(turns) = self.history.try_update_value(|h| step(h, &s.turns)).flatten() {
                s.turns = turns;
            }
        });
        self.history_rev.update(|r| *r += 1);
    }

    /// Adds the writer's text (if any) and asks for the model's turn.
    fn submit(self, draft: String) {
        if self.busy() {
            return;
        }
        let mode = self.story.with_untracked(|s| s.mode);
        let draft = if matches!(mode, Mode::Story) {
            draft
        } else {
            draft.trim().to_string()
        };
        if !draft.is_empty() {
            self.change_turns(|t| t.push(Turn::writer(draft)));
        } else if mode != Mode::Story && self.story.with_untracked(|s| s.turns.last().is_none_or(|t| t.role == Role::Model)) {
            // Chat, instruct and adventure answer the writer: nothing to answer yet.
            self.error.set(Some("Write something first.".into()));
            return;
        }
        self.generate();
    }

    /// Drops the last model turn and asks again.
    fn retry(self) {
        if self.busy() {
            return;
        }
        if self.story.with_untracked(|s| s.turns.last().is_some_and(|t| t.role == Role::Model)) {
            self.change_turns(|t| {
                t.pop();
            });
        }
        self.generate();
    }

    fn generate(self) {
        self.error.set(None);
        let request = context::text_request(&self.story.get_untracked(), &self.settings.get_untracked());
        let key = self.session.api_key.get_untracked();
        self.pending.set(Some(Pending::default()));
        spawn_local(async move {
            match api::submit_text(key, request).await {
                Ok(sub) => {
                    self.pending.set(Some(Pending {
                        id: sub.id.clone(),
                        kudos: sub.kudos,
                        ..Pending::default()
                    }));
                    if !sub.possible {
                        self.error.set(Some(
                            "No worker online can serve this request now; it waits up to 20 minutes for one.".into(),
                        ));
                    }
                    self.follow(sub.id);
                }
                Err(e) => {
                    self.pending.set(None);
                    self.error.set(Some(api::message(&e)));
                }
            }
        });
    }

    /// Follows a request on its event stream, or by polling when streams are unavailable.
    fn follow(self, id: String) {
        let stream_id = id.clone();
        let stream = TextStream::open(&id, move |event, data| self.on_event(&stream_id, event, &data));
        if stream.is_some() {
            self.stream.set_value(stream);
        } else {
            self.poll(id);
        }
    }

    fn is_current(self, id: &str) -> bool {
        self.pending.with_untracked(|p| p.as_ref().is_some_and(|p| p.id == id))
    }

    fn on_event(self, id: &str, event: &str, data: &str) {
        if !self.is_current(id) {
            return;
        }
        let update = |f: &dyn Fn(&mut Pending)| {
            self.pending.update(|p| {
                if let Some(p) = p {
                    f(p)
                }
            })
        };
        match event {
            "status" => {
                if let Ok(s) = serde_json::from_str::<TextProgress>(data) {
                    update(&|p| {
                        p.queue_position = s.queue_position;
                        p.wait_time = s.wait_time;
                        p.writing = s.processing > 0;
                        p.kudos = s.kudos;
                    });
                }
            }
            "delta" => {
                if let Ok(d) = serde_json::from_str::<StreamText>(data) {
                    update(&|p| {
                        p.writing = true;
                        p.text.push_str(&d.text);
                    });
                }
            }
            "reset" => {
                if let Ok(d) = serde_json::from_str::<StreamText>(data) {
                    update(&|p| p.text = d.text.clone());
                }
            }
            "aborted" => update(&|p| p.text.clear()),
            "done" => {
                if let Ok(status) = serde_json::from_str::<TextProgress>(data) {
                    self.finish(status);
                }
            }
            "error" => {
                let message = serde_json::from_str::<StreamError>(data)
                    .map(|e| e.message)
                    .unwrap_or_else(|_| "The request failed.".into());
                self.stream.set_value(None);
                self.pending.set(None);
                self.error.set(Some(message));
            }
            "lost" => {
                // The stream broke off: finish by polling.
                self.stream.set_value(None);
                self.poll(id.to_string());
            }
            _ => {}
        }
    }

    fn poll(self, id: String) {
        spawn_local(async move {
            if !self.is_current(&id) {
                return;
            }
            match api::text_status(id.clone()).await {
                Ok(s) if s.done || s.faulted => self.finish(s),
                Ok(s) => {
                    self.pending.update(|p| {
                        if let Some(p) = p {
                            p.queue_position = s.queue_position;
                            p.wait_time = s.wait_time;
                            p.writing = s.processing > 0;
                        }
                    });
                    set_timeout(move || self.poll(id), Duration::from_secs(1));
                }
                Err(e) => {
                    self.pending.set(None);
                    self.error.set(Some(api::message(&e)));
                }
            }
        });
    }

    /// The request is over: its text becomes the model's turn.
    fn finish(self, status: TextProgress) {
        self.stream.set_value(None);
        self.pending.set(None);
        if let Some(g) = status.generations.into_iter().next() {
            let text = self
                .story
                .with_untracked(|s| clean_reply(s, &self.settings.get_untracked(), &g.text));
            let provenance = Provenance {
                worker_name: g.worker_name,
                worker_id: g.worker_id,
                model: g.model,
                kudos: status.kudos,
            };
            self.change_turns(|t| t.push(Turn::model(text, Some(provenance))));
        } else if status.faulted {
            self.error.set(Some("No worker could finish this request.".into()));
        }
    }

    /// Cancels the request; what was written so far is kept.
    fn cancel(self) {
        let Some(id) = self.pending.with_untracked(|p| p.as_ref().map(|p| p.id.clone())) else {
            return;
        };
        if id.is_empty() {
            return;
        }
        self.stream.set_value(None);
        let streamed = self
            .pending
            .with_untracked(|p| p.as_ref().map(|p| p.text.clone()).unwrap_or_default());
        spawn_local(async move {
            match api::cancel_text(id).await {
                // The worker may not have submitted yet: keep what was streamed.
                Ok(status) if status.generations.is_empty() && !streamed.is_empty() => {
                    self.pending.set(None);
                    let text = self
                        .story
                        .with_untracked(|s| clean_reply(s, &self.settings.get_untracked(), &streamed));
                    self.change_turns(|t| t.push(Turn::model(text, None)));
                }
                Ok(status) => self.finish(status),
                Err(e) => {
                    self.pending.set(None);
                    self.error.set(Some(api::message(&e)));
                }
            }
        });
    }
}

#[component]
pub fn WritePage() -> impl IntoView {
    let session = expect_context::<Session>();
    let studio = Studio::new(session);
    let offer = RwSignal::new(TextOffer::default());
    let draft = RwSignal::new(String::new());
    let send = move || {
        studio.submit(draft.get_untracked());
        draft.set(String::new());
    };
    let story = studio.story;
    let mode = move || story.with(|s| s.mode);
    let busy = Memo::new(move |_| studio.busy());
    let placeholder = move || match mode() {
        Mode::Story => "Write the story, or leave empty to let the model continue…",
        Mode::Adventure => "What do you do?",
        Mode::Chat | Mode::Instruct => "Your message…",
    };
    view! {
        <section class="studio" data-mode=move || mode().key()>
            <div class="toolbar">
                <select
                    name="mode"
                    aria-label="Mode"
                    on:change=move |ev| story.update(|s| s.mode = Mode::from_key(&event_target_value(&ev)))
                    prop:value=move || mode().key()
                >
                    {Mode::ALL.map(|m| view! { <option value=m.key()>{m.label()}</option> })}
                </select>
                <ModelPicker studio offer/>
                <button
                    class="ghost"
                    on:click=move |_| studio.travel(History::undo)
                    prop:disabled=move || { studio.history_rev.track(); !studio.history.with_value(History::can_undo) }
                >"Undo"</button>
                <button
                    class="ghost"
                    on:click=move |_| studio.travel(History::redo)
                    prop:disabled=move || { studio.history_rev.track(); !studio.history.with_value(History::can_redo) }
                >"Redo"</button>
                <button class="ghost" title="Start a new story; this one stays in the list" on:click=move |_| studio.new_story()>"New"</button>
                <select
                    name="story"
                    aria-label="Stories"
                    on:change=move |ev| {
                        if let Ok(i) = event_target_value(&ev).parse::<usize>() {
                            studio.open_story(i);
                        }
                    }
                >
                    {move || {
                        let current = story.with(|s| s.title.clone());
                        let others = studio.shelf.with(|shelf| shelf.iter().map(|s| s.title.clone()).collect::<Vec<_>>());
                        view! {
                            <option value="" selected=true>{current}</option>
                            {others.into_iter().enumerate().map(|(i, t)| view! { <option value=i.to_string()>{t}</option> }).collect_view()}
                        }
                    }}
                </select>
            </div>
            <div class="layout">
                <div class="page">
                    <Transcript studio/>
                    <PendingTurn studio/>
                    {move || studio.error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                    <form class="composer" on:submit=move |ev| { ev.prevent_default(); send(); }>
                        <textarea
                            name="prompt"
                            rows="3"
                            placeholder=placeholder
                            prop:value=move || draft.get()
                            on:input=move |ev| draft.set(event_target_value(&ev))
                            on:keydown=move |ev| {
                                if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                                    ev.prevent_default();
                                    send();
                                }
                            }
                        ></textarea>
                        <div class="actions">
                            {move || if busy.get() {
                                Either::Left(view! {
                                    <button type="button" class="danger" on:click=move |_| studio.cancel()>"Cancel"</button>
                                })
                            } else {
                                Either::Right(view! {
                                    <button type="submit" class="primary">"Send"</button>
                                    <button type="button" class="ghost" on:click=move |_| studio.retry()>"Retry"</button>
                                })
                            }}
                        </div>
                    </form>
                    <Footer studio/>
                </div>
                <aside class="panel">
                    <Background studio/>
                    <Settings studio/>
                    <ExportImport studio/>
                </aside>
            </div>
        </section>
    }
}

#[component]
fn ModelPicker(studio: Studio, offer: RwSignal<TextOffer>) -> impl IntoView {
    let settings = studio.settings;
    // Asked for once the page is live, and again on the refresh button; a failure keeps what
    // was there.
    let refresh = move || {
        spawn_local(async move {
            if let Ok(o) = api::text_choices().await {
                offer.set(o);
            }
        })
    };
    Effect::new(move |_| refresh());
    let models = move || offer.with(|o| o.models.clone());
    let workers = move || offer.with(|o| o.workers.clone());
    view! {
        <select
            name="model"
            aria-label="Model"
            on:change=move |ev| settings.update(|s| s.model = event_target_value(&ev))
            prop:value=move || settings.with(|s| s.model.clone())
        >
            <option value="">"Any model"</option>
            {move || options(models(), &settings.with(|s| s.model.clone()))}
        </select>
        <select
            name="worker"
            aria-label="Worker"
            on:change=move |ev| settings.update(|s| s.worker = event_target_value(&ev))
            prop:value=move || settings.with(|s| s.worker.clone())
        >
            <option value="">"Any worker"</option>
            {move || options(workers(), &settings.with(|s| s.worker.clone()))}
        </select>
        <button class="ghost" title="Refresh models and workers" on:click=move |_| refresh()>"↻"</button>
    }
}

#[component]
fn Transcript(studio: Studio) -> impl IntoView {
    let story = studio.story;
    let editing = RwSignal::new(None::<usize>);
    let edit_text = RwSignal::new(String::new());
    view! {
        <div class="transcript" aria-live="polite">
            {move || {
                let s = story.get();
                if s.turns.is_empty() {
                    return Either::Left(view! { <p class="muted empty">"Nothing written yet."</p> });
                }
                let turns = s.turns
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        let who = if t.image.is_some() { None } else { speaker(&s, t.role) };
                        let class = match t.role {
                            Role::Writer => "turn writer",
                            Role::Model => "turn model",
                        };
                        let text = t.text.clone();
                        let edit_value = t.text.clone();
                        let image = t.image.clone().map(|src| view! { <img class="inline-image" src=src alt=t.text.clone()/> });
                        view! {
                            <div class=class data-turn=i>
                                {who.map(|w| view! { <span class="speaker">{w}</span> })}
                                {image}
                                {move || if editing.get() != Some(i) {
                                    Either::Left(view! { <span class="text">{text.clone()}</span> })
                                } else { Either::Right(view! {
                                    <textarea
                                        class="edit"
                                        prop:value=move || edit_text.get()
                                        on:input=move |ev| edit_text.set(event_target_value(&ev))
                                    ></textarea>
                                    <button
                                        class="primary small"
                                        on:click=move |_| {
                                            let text = edit_text.get_untracked();
                                            studio.change_turns(|t| if let Some(turn) = t.get_mut(i) { turn.text = text; });
                                            editing.set(None);
                                        }
                                    >"Save"</button>
                                    <button class="ghost small" on:click=move |_| editing.set(None)>"Cancel"</button>
                                })}}
                                <span class="turn-tools">
                                    <button
                                        class="ghost small"
                                        title="Edit"
                                        on:click=move |_| { edit_text.set(edit_value.clone()); editing.set(Some(i)); }
                                    >"Edit"</button>
                                    <button
                                        class="ghost small"
                                        title="Delete"
                                        on:click=move |_| studio.change_turns(|t| { if i < t.len() { t.remove(i); } })
                                    >"Delete"</button>
                                </span>
                            </div>
                        }
                    })
                    .collect_view();
                Either::Right(turns)
            }}
        </div>
    }
}

/// The name shown on a bubble (chat and instruct) or none (prose).
fn speaker(s: &Story, role: Role) -> Option<String> {
    match (s.mode, role) {
        (Mode::Chat, Role::Writer) => Some(s.user_name.clone()),
        (Mode::Chat, Role::Model) => Some(s.bot_name.clone()),
        (Mode::Instruct, Role::Writer) => Some("You".into()),
        (Mode::Instruct, Role::Model) => Some("Assistant".into()),
        (Mode::Adventure, Role::Writer) => Some(">".into()),
        _ => None,
    }
}

#[component]
fn PendingTurn(studio: Studio) -> impl IntoView {
    move || {
        {
            studio.pending.get().map(|p| {
                let status = if p.id.is_empty() {
                    "Sending…".to_string()
                } else if p.writing {
                    "Writing…".to_string()
                } else {
                    format!("Queue position {} · about {}", p.queue_position, super::duration(p.wait_time))
                };
                view! {
                    <div class="turn model pending">
                        <span class="text streaming">{p.text}</span>
                        <span class="caret"></span>
                        <p class="status muted">{status}</p>
                    </div>
                }
            })
        }
    }
}

#[component]
fn Footer(studio: Studio) -> impl IntoView {
    let assembled = Memo::new(move |_| {
        let a = context::assemble(&studio.story.get(), &studio.settings.get());
        (a.used_tokens, a.budget_tokens, a.dropped_turns, a.world_info.len())
    });
    let served = move || {
        studio.story.with(|s| {
            s.turns
                .iter()
                .rev()
                .find_map(|t| t.provenance.clone())
                .map(|p| format!("Last turn: {} on {} for {} kudos", p.model, p.worker_name, super::kudos(p.kudos)))
        })
    };
    view! {
        <footer class="studio-footer muted">
            <span class="served">{served}</span>
            <span class="context-use">
                {move || {
                    let (used, budget, dropped, wi) = assembled.get();
                    let mut text = format!("Context: ~{used} / {budget} tokens");
                    if dropped > 0 {
                        text.push_str(&format!(" · {dropped} oldest turn{} left out", if dropped == 1 { "" } else { "s" }));
                    }
                    if wi > 0 {
                        text.push_str(&format!(" · {wi} world info"));
                    }
                    text
                }}
            </span>
        </footer>
    }
}

/// How a field reads and writes its value: boxed, so that each field's markup is compiled once
/// however many closures call it (the browser bundle is measured in bytes).
type Read<T> = Box<dyn Fn() -> T + Send + Sync + 'static>;
type Write<T> = Box<dyn Fn(T) + Send + Sync + 'static>;

/// A labelled number input bound to a setting.
fn number_field(
    label: &'static str,
    name: &'static str,
    step: &'static str,
    get: impl Fn() -> f64 + Send + Sync + 'static,
    set: impl Fn(f64) + Send + Sync + 'static,
) -> impl IntoView {
    number_input(label, name, step, Box::new(get), Box::new(set))
}

fn number_input(label: &'static str, name: &'static str, step: &'static str, get: Read<f64>, set: Write<f64>) -> impl IntoView {
    view! {
        <label class="field">
            <span>{label}</span>
            <input
                type="number"
                name=name
                step=step
                prop:value=move || get().to_string()
                on:change=move |ev| {
                    if let Some(v) = browser::number(&event_target_value(&ev)) {
                        set(v);
                    }
                }
            />
        </label>
    }
}

/// A labelled text area bound to a story field.
fn text_field(
    label: &'static str,
    name: &'static str,
    get: impl Fn() -> String + Send + Sync + 'static,
    set: impl Fn(String) + Send + Sync + 'static,
) -> impl IntoView {
    text_area(label, name, Box::new(get), Box::new(set))
}

fn text_area(label: &'static str, name: &'static str, get: Read<String>, set: Write<String>) -> impl IntoView {
    view! {
        <label class="field">
            <span>{label}</span>
            <textarea name=name rows="3" prop:value=get on:input=move |ev| set(event_target_value(&ev))></textarea>
        </label>
    }
}

#[component]
fn Background(studio: Studio) -> impl IntoView {
    let story = studio.story;
    let mode = Memo::new(move |_| story.with(|s| s.mode));
    let wi_message = RwSignal::new(None::<String>);
    let wi_link = NodeRef::<leptos::html::A>::new();
    let export_world_info = move |_| {
        let json = story.with_untracked(|s| serde_json::to_string(&s.world_info).unwrap_or_default());
        offer_download(wi_link, &json);
    };
    view! {
        <details open>
            <summary>"Memory & world"</summary>
            {move || (mode.get() == Mode::Instruct).then(|| view! {
                <label class="field">
                    <span>"Instruct template"</span>
                    <select
                        name="template"
                        on:change=move |ev| story.update(|s| s.template = InstructTemplate::from_label(&event_target_value(&ev)))
                        prop:value=move || story.with(|s| s.template.label())
                    >
                        {InstructTemplate::ALL.map(|t| view! { <option value=t.label()>{t.label()}</option> })}
                    </select>
                </label>
                {text_field("System prompt", "system_prompt", move || story.with(|s| s.system_prompt.clone()), move |v| story.update(|s| s.system_prompt = v))}
            })}
            {move || (mode.get() == Mode::Chat).then(|| view! {
                <div class="row">
                    <label class="field">
                        <span>"Your name"</span>
                        <input name="user_name" prop:value=move || story.with(|s| s.user_name.clone()) on:input=move |ev| story.update(|s| s.user_name = event_target_value(&ev))/>
                    </label>
                    <label class="field">
                        <span>"Bot's name"</span>
                        <input name="bot_name" prop:value=move || story.with(|s| s.bot_name.clone()) on:input=move |ev| story.update(|s| s.bot_name = event_target_value(&ev))/>
                    </label>
                </div>
            })}
            {text_field("Memory", "memory", move || story.with(|s| s.memory.clone()), move |v| story.update(|s| s.memory = v))}
            {text_field("Author's note", "authors_note", move || story.with(|s| s.authors_note.clone()), move |v| story.update(|s| s.authors_note = v))}
            {number_field("Author's note depth (turns from the end)", "authors_note_depth", "1", move || story.with(|s| s.authors_note_depth as f64), move |v| story.update(|s| s.authors_note_depth = v.clamp(0.0, 100.0) as usize))}
            <h4>"World info"</h4>
            {move || {
                let n = story.with(|s| s.world_info.len());
                (0..n)
                    .map(|i| {
                        let get = move |f: fn(&WorldEntry) -> String| move || story.with(|s| s.world_info.get(i).map(f).unwrap_or_default());
                        view! {
                            <div class="world-entry" data-entry=i>
                                <input
                                    name="wi_keys"
                                    placeholder="keys, comma separated"
                                    prop:value=get(|e| e.keys.clone())
                                    on:input=move |ev| story.update(|s| if let Some(e) = s.world_info.get_mut(i) { e.keys = event_target_value(&ev); })
                                />
                                <textarea
                                    name="wi_content"
                                    rows="2"
                                    placeholder="what the model should know"
                                    prop:value=get(|e| e.content.clone())
                                    on:input=move |ev| story.update(|s| if let Some(e) = s.world_info.get_mut(i) { e.content = event_target_value(&ev); })
                                ></textarea>
                                <label class="check">
                                    <input
                                        type="checkbox"
                                        prop:checked=move || story.with(|s| s.world_info.get(i).is_some_and(|e| e.constant))
                                        on:change=move |ev| story.update(|s| if let Some(e) = s.world_info.get_mut(i) { e.constant = event_target_checked(&ev); })
                                    />
                                    "always"
                                </label>
                                <button class="ghost small" on:click=move |_| story.update(|s| { if i < s.world_info.len() { s.world_info.remove(i); } })>"Remove"</button>
                            </div>
                        }
                    })
                    .collect_view()
            }}
            <button class="ghost" on:click=move |_| story.update(|s| s.world_info.push(WorldEntry::default()))>"Add world info"</button>
            <div class="wi-files">
                <a class="button ghost small" node_ref=wi_link href="#" download="world-info.json" on:click=export_world_info>"Export world info"</a>
                <label class="field">
                    <span>"Import world info (adds its entries)"</span>
                    <input
                        type="file"
                        name="import_world_info"
                        accept="application/json,.json"
                        on:change=move |ev| browser::read_chosen_text(&ev, move |text| match text.map(|t| serde_json::from_str::<Vec<WorldEntry>>(&t)) {
                            Some(Ok(entries)) => {
                                wi_message.set(Some(format!("{} world info entr{} added.", entries.len(), if entries.len() == 1 { "y" } else { "ies" })));
                                story.update(|s| s.world_info.extend(entries));
                            }
                            Some(Err(e)) => wi_message.set(Some(format!("That is not world info: {e}"))),
                            None => wi_message.set(Some("The file could not be read.".into())),
                        })
                    />
                </label>
            </div>
            {move || wi_message.get().map(|m| view! { <p class="muted">{m}</p> })}
        </details>
    }
}

#[component]
fn Settings(studio: Studio) -> impl IntoView {
    let s = studio.settings;
    view! {
        <details>
            <summary>"Settings"</summary>
            <div class="presets">
                {PRESETS
                    .map(|p| view! { <button class="ghost small" on:click=move |_| s.update(|st| st.apply(&p))>{p.name}</button> })}
            </div>
            <div class="grid">
                {number_field("Max length", "max_length", "1", move || s.with(|s| s.max_length as f64), move |v| s.update(|st| st.max_length = v.clamp(16.0, 4096.0) as i64))}
                {number_field("Context size", "max_context_length", "1", move || s.with(|s| s.max_context_length as f64), move |v| s.update(|st| st.max_context_length = v.clamp(80.0, 1_048_576.0) as i64))}
                {number_field("Temperature", "temperature", "0.05", move || s.with(|s| s.temperature), move |v| s.update(|st| st.temperature = v.clamp(0.0, 5.0)))}
                {number_field("Top p", "top_p", "0.01", move || s.with(|s| s.top_p), move |v| s.update(|st| st.top_p = v.clamp(0.001, 1.0)))}
                {number_field("Top k", "top_k", "1", move || s.with(|s| s.top_k as f64), move |v| s.update(|st| st.top_k = v.clamp(0.0, 100.0) as i64))}
                {number_field("Min p", "min_p", "0.01", move || s.with(|s| s.min_p), move |v| s.update(|st| st.min_p = v.clamp(0.0, 1.0)))}
                {number_field("Repetition penalty", "rep_pen", "0.01", move || s.with(|s| s.rep_pen), move |v| s.update(|st| st.rep_pen = v.clamp(1.0, 3.0)))}
                {number_field("Repetition range", "rep_pen_range", "1", move || s.with(|s| s.rep_pen_range as f64), move |v| s.update(|st| st.rep_pen_range = v.clamp(0.0, 4096.0) as i64))}
            </div>
            <label class="field">
                <span>"Stop sequences (one per line, \\n for a newline)"</span>
                <textarea
                    name="stop_sequences"
                    rows="2"
                    prop:value=move || s.with(|s| s.stop_sequences.clone())
                    on:input=move |ev| s.update(|st| st.stop_sequences = event_target_value(&ev))
                ></textarea>
            </label>
        </details>
    }
}

/// Points a download link at `json` (called as it is clicked, so large stories are not encoded
/// on every edit).
fn offer_download(link: NodeRef<leptos::html::A>, json: &str) {
    let href = format!("data:application/json;charset=utf-8,{}", horde_protocol::percent_encode(json));
    if let Some(a) = link.get_untracked() {
        let _ = a.set_attribute("href", &href);
    }
}

#[component]
fn ExportImport(studio: Studio) -> impl IntoView {
    let story = studio.story;
    let paste = RwSignal::new(String::new());
    let message = RwSignal::new(None::<String>);
    // The file is made when the link is clicked, not on every edit: a story with images in it is
    // large.
    let link = NodeRef::<leptos::html::A>::new();
    let export = move |_| {
        let json = story.with_untracked(|s| serde_json::to_string(s).unwrap_or_default());
        offer_download(link, &json);
    };
    let import = move |_| match serde_json::from_str::<Story>(&paste.get_untracked()) {
        Ok(s) => {
            studio.change_turns(|_| {});
            story.set(s);
            paste.set(String::new());
            message.set(Some("Story imported.".into()));
        }
        Err(e) => message.set(Some(format!("That is not a story: {e}"))),
    };
    view! {
        <details>
            <summary>"Export / import"</summary>
            <label class="field">
                <span>"Title"</span>
                <input name="title" prop:value=move || story.with(|s| s.title.clone()) on:input=move |ev| story.update(|s| s.title = event_target_value(&ev))/>
            </label>
            <a class="button ghost" node_ref=link href="#" on:click=export download=move || format!("{}.json", story.with(|s| s.title.clone()))>"Export JSON"</a>
            <button class="danger" on:click=move |_| studio.delete_story()>"Delete this story"</button>
            <label class="field">
                <span>"Import a story file"</span>
                <input
                    type="file"
                    name="import_file"
                    accept="application/json,.json"
                    on:change=move |ev| browser::read_chosen_text(&ev, move |text| match text.map(|t| serde_json::from_str::<Story>(&t)) {
                        Some(Ok(s)) => {
                            studio.change_turns(|_| {});
                            story.set(s);
                            message.set(Some("Story imported.".into()));
                        }
                        Some(Err(e)) => message.set(Some(format!("That is not a story: {e}"))),
                        None => message.set(Some("The file could not be read.".into())),
                    })
                />
            </label>
            <label class="field">
                <span>"Or paste a story's JSON"</span>
                <textarea name="import" rows="3" prop:value=move || paste.get() on:input=move |ev| paste.set(event_target_value(&ev))></textarea>
            </label>
            <button class="ghost" on:click=import>"Import"</button>
            {move || message.get().map(|m| view! { <p class="muted">{m}</p> })}
        </details>
    }
}

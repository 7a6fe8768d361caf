//! The writing studio's state: the story, the stories list, the settings and the request on its
//! way (submit, follow its stream or poll, cancel, retry), undo/redo. The views are the
//! [`super`] module's others.

use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Deserialize;

use crate::api::{self, TextProgress};
use crate::browser::{self, TextStream};
use crate::context::{self, clean_reply};
use crate::import::Imported;
use crate::story::{GenSettings, History, Mode, Provenance, Role, Story, Turn};
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
    /// The reply goes on with the model's last turn instead of being a new one.
    pub continuing: bool,
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
pub(super) struct Studio {
    pub(super) session: Session,
    pub(super) story: RwSignal<Story>,
    /// The user's other stories (the shelf); the current one is `story`.
    pub(super) shelf: RwSignal<Vec<Story>>,
    pub(super) settings: RwSignal<GenSettings>,
    pub(super) pending: RwSignal<Option<Pending>>,
    pub(super) error: RwSignal<Option<String>>,
    pub(super) history: StoredValue<History>,
    /// Bumped when the history changes (it is not reactive itself).
    pub(super) history_rev: RwSignal<u32>,
    pub(super) stream: StoredValue<Option<TextStream>, StreamStorage>,
}

/// Where the studio keeps its text stream: thread-local in the browser (it holds an
/// `EventSource`), shared on the server, where a render may end on another thread than it began
/// (dropping a thread-local value there panics; the server's stream is an empty value).
#[cfg(feature = "hydrate")]
type StreamStorage = LocalStorage;
#[cfg(not(feature = "hydrate"))]
type StreamStorage = leptos::prelude::SyncStorage;

impl Studio {
    pub(super) fn new(session: Session) -> Self {
        let studio = Studio {
            session,
            story: RwSignal::new(Story::default()),
            shelf: RwSignal::new(Vec::new()),
            settings: RwSignal::new(GenSettings::default()),
            pending: RwSignal::new(None),
            error: RwSignal::new(None),
            history: StoredValue::new(History::default()),
            history_rev: RwSignal::new(0),
            stream: StoredValue::new_with_storage(None),
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

    pub(super) fn busy(self) -> bool {
        self.pending.with(Option::is_some)
    }

    /// Changes the turns, keeping the old ones for undo.
    pub(super) fn change_turns(self, f: impl FnOnce(&mut Vec<Turn>)) {
        self.story.update(|s| {
            self.history.update_value(|h| h.record(&s.turns));
            f(&mut s.turns);
        });
        self.history_rev.update(|r| *r += 1);
    }

    /// Makes `next` the current story, with a fresh undo history.
    pub(super) fn replace_story(self, next: Story) {
        self.story.set(next);
        self.history.set_value(History::default());
        self.history_rev.update(|r| *r += 1);
    }

    /// Puts the current story on the shelf (unless it is empty) and makes `next` current.
    pub(super) fn switch_to(self, next: Story) {
        let current = self.story.get_untracked();
        if !current.is_blank() {
            self.shelf.update(|shelf| shelf.insert(0, current));
        }
        self.replace_story(next);
    }

    /// Opens what an import made: its first story becomes the current one (the current one goes
    /// on the stories list), its other stories join the list after it, its settings replace the
    /// settings. Returns what to tell the user.
    pub(super) fn take_import(self, imported: Imported) -> String {
        let summary = imported.summary();
        let mut stories = imported.stories.into_iter();
        if let Some(first) = stories.next() {
            self.switch_to(first);
        }
        let others: Vec<Story> = stories.collect();
        if !others.is_empty() {
            self.shelf.update(|shelf| {
                shelf.splice(0..0, others);
            });
        }
        if let Some(settings) = imported.settings {
            self.settings.set(settings);
        }
        summary
    }

    /// A new, empty story in the current mode; the current one goes on the shelf.
    pub(super) fn new_story(self) {
        if self.busy() {
            return;
        }
        let mode = self.story.with_untracked(|s| s.mode);
        self.switch_to(Story { mode, ..Story::default() });
    }

    /// Opens the shelf's story `i`.
    pub(super) fn open_story(self, i: usize) {
        if self.busy() {
            return;
        }
        if let Some(next) = self.shelf.try_update(|shelf| (i < shelf.len()).then(|| shelf.remove(i))).flatten() {
            self.switch_to(next);
        }
    }

    /// Deletes the current story; the most recent one on the shelf takes its place.
    pub(super) fn delete_story(self) {
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
    pub(super) fn travel(self, step: fn(&mut History, &[Turn]) -> Option<Vec<Turn>>) {
        self.story.update(|s| {
            if let Some(turns) = self.history.try_update_value(|h| step(h, &s.turns)).flatten() {
                s.turns = turns;
            }
        });
        self.history_rev.update(|r| *r += 1);
    }

    /// Adds the writer's text (if any) and asks for the model's turn.
    pub(super) fn submit(self, draft: String) {
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
        self.generate(false);
    }

    /// Asks the model to go on with its last turn (chat and instruct: the prompt ends inside
    /// that turn, without the cue for a new one); the reply is added to that turn.
    pub(super) fn continue_turn(self) {
        if self.busy() {
            return;
        }
        if !self.story.with_untracked(|s| s.turns.last().is_some_and(|t| t.role == Role::Model)) {
            self.error.set(Some("There is no reply of the model's to continue.".into()));
            return;
        }
        self.generate(true);
    }

    /// Drops the last model turn and asks again.
    pub(super) fn retry(self) {
        if self.busy() {
            return;
        }
        if self.story.with_untracked(|s| s.turns.last().is_some_and(|t| t.role == Role::Model)) {
            self.change_turns(|t| {
                t.pop();
            });
        }
        self.generate(false);
    }

    fn generate(self, continuing: bool) {
        self.error.set(None);
        let (story, settings) = (self.story.get_untracked(), self.settings.get_untracked());
        let request = if continuing {
            context::continue_request(&story, &settings)
        } else {
            context::text_request(&story, &settings)
        };
        let key = self.session.api_key.get_untracked();
        self.pending.set(Some(Pending {
            continuing,
            ..Pending::default()
        }));
        spawn_local(async move {
            match api::call(api::SubmitText { api_key: key, request }).await {
                Ok(sub) => {
                    self.pending.set(Some(Pending {
                        id: sub.id.clone(),
                        kudos: sub.kudos,
                        continuing,
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
                    self.error.set(Some(e));
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
            match api::call(api::TextStatus { id: id.clone() }).await {
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
                    self.error.set(Some(e));
                }
            }
        });
    }

    /// The request is over: its text becomes the model's turn.
    fn finish(self, status: TextProgress) {
        self.stream.set_value(None);
        let continuing = self.pending.with_untracked(|p| p.as_ref().is_some_and(|p| p.continuing));
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
            self.take_reply(continuing, &g.text, text, Some(provenance));
        } else if status.faulted {
            self.error.set(Some("No worker could finish this request.".into()));
        }
    }

    /// The model's reply (`raw` as written, `text` cleaned) becomes a new turn, or, continuing,
    /// goes on the end of the last one (after a space where the reply began with one).
    fn take_reply(self, continuing: bool, raw: &str, text: String, provenance: Option<Provenance>) {
        self.change_turns(|t| match t.last_mut() {
            Some(last) if continuing && last.role == Role::Model => {
                if raw.starts_with(char::is_whitespace) && !text.starts_with(char::is_whitespace) {
                    last.text.push(' ');
                }
                last.text.push_str(&text);
                if provenance.is_some() {
                    last.provenance = provenance;
                }
            }
            _ => t.push(Turn::model(text, provenance)),
        });
    }

    /// Cancels the request; what was written so far is kept.
    pub(super) fn cancel(self) {
        let Some(id) = self.pending.with_untracked(|p| p.as_ref().map(|p| p.id.clone())) else {
            return;
        };
        if id.is_empty() {
            return;
        }
        self.stream.set_value(None);
        let (streamed, continuing) = self
            .pending
            .with_untracked(|p| p.as_ref().map(|p| (p.text.clone(), p.continuing)).unwrap_or_default());
        spawn_local(async move {
            match api::call(api::CancelText { id }).await {
                // The worker may not have submitted yet: keep what was streamed.
                Ok(status) if status.generations.is_empty() && !streamed.is_empty() => {
                    self.pending.set(None);
                    let text = self
                        .story
                        .with_untracked(|s| clean_reply(s, &self.settings.get_untracked(), &streamed));
                    self.take_reply(continuing, &streamed, text, None);
                }
                Ok(status) => self.finish(status),
                Err(e) => {
                    self.pending.set(None);
                    self.error.set(Some(e));
                }
            }
        });
    }
}

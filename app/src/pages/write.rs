//! The writing studio's views: story, adventure, chat and instruct modes; memory, author's note
//! and world info; settings; the transcript with editing of any turn, the streamed reply, the
//! composer (Enter sends on desktop). The state is [`super::studio::Studio`]; files (import and
//! export) are in [`super::write_files`]. The story and settings live in this browser only.

use leptos::either::Either;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::options;
use super::studio::Studio;
use super::write_files::{ExportImport, WorldInfoFiles};
use crate::api::{self, TextOffer};
use crate::browser;
use crate::context;
use crate::story::{History, InstructTemplate, Mode, Role, Story, WorldEntry, PRESETS};
use crate::Session;

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
                                // Enter sends, Shift+Enter is a new line; Ctrl/Cmd+Enter sends too.
                                // On touch screens Enter is the keyboard's new line (the Send
                                // button sends); while an IME composes, Enter is the IME's.
                                if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() && (ev.ctrl_key() || ev.meta_key() || !browser::touch_screen()) {
                                    ev.prevent_default();
                                    send();
                                }
                            }
                        ></textarea>
                        <div class="actions">
                            <span class="shortcut muted">"Enter to send · Shift+Enter for a new line"</span>
                            {move || if busy.get() {
                                Either::Left(view! {
                                    <button type="button" class="danger" on:click=move |_| studio.cancel()>"Cancel"</button>
                                })
                            } else {
                                Either::Right(view! {
                                    <button type="submit" class="primary" title="Enter sends, Shift+Enter for a new line">"Send"</button>
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

/// A labelled one-line input bound to a story field (`\n` written as such stays a newline).
fn line_field(
    label: &'static str,
    name: &'static str,
    get: impl Fn() -> String + Send + Sync + 'static,
    set: impl Fn(String) + Send + Sync + 'static,
) -> impl IntoView {
    line_input(label, name, Box::new(get), Box::new(set))
}

fn line_input(label: &'static str, name: &'static str, get: Read<String>, set: Write<String>) -> impl IntoView {
    view! {
        <label class="field">
            <span>{label}</span>
            <input
                name=name
                prop:value=move || get().replace('\n', "\\n")
                on:input=move |ev| set(event_target_value(&ev).replace("\\n", "\n"))
            />
        </label>
    }
}

#[component]
fn Background(studio: Studio) -> impl IntoView {
    let story = studio.story;
    let mode = Memo::new(move |_| story.with(|s| s.mode));
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
                {move || (story.with(|s| s.template) == InstructTemplate::Custom).then(|| view! {
                    <div class="row custom-tags">
                        {line_field("System tag", "tag_system", move || story.with(|s| s.custom_tags.system.clone()), move |v| story.update(|s| s.custom_tags.system = v))}
                        {line_field("User tag", "tag_user", move || story.with(|s| s.custom_tags.user.clone()), move |v| story.update(|s| s.custom_tags.user = v))}
                        {line_field("Assistant tag", "tag_assistant", move || story.with(|s| s.custom_tags.assistant.clone()), move |v| story.update(|s| s.custom_tags.assistant = v))}
                        {line_field("End of turn", "tag_end", move || story.with(|s| s.custom_tags.end.clone()), move |v| story.update(|s| s.custom_tags.end = v))}
                    </div>
                })}
                {text_field("System prompt", "system_prompt", move || story.with(|s| s.system_prompt.clone()), move |v| story.update(|s| s.system_prompt = v))}
                <p class="muted hint">"{{user}} and {{char}} stand for the two names anywhere in the prompt."</p>
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
            {line_field("Author's note template (<|> is the note)", "authors_note_template", move || story.with(|s| s.authors_note_template.clone()), move |v| story.update(|s| s.authors_note_template = v))}
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
                                <input
                                    name="wi_secondary"
                                    placeholder="secondary keys (optional: one must appear too)"
                                    prop:value=get(|e| e.secondary_keys.clone())
                                    on:input=move |ev| story.update(|s| if let Some(e) = s.world_info.get_mut(i) { e.secondary_keys = event_target_value(&ev); })
                                />
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
            <WorldInfoFiles studio/>
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

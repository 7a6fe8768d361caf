//! The writing studio: story, adventure, chat and instruct modes. This module is the page (the
//! toolbar, the model picker, the composer: Enter sends on desktop); the state is [`state`], the
//! transcript [`transcript`], the side panels [`background`], [`settings`] and [`files`]. The
//! story and settings live in this browser only.

mod background;
mod fields;
mod files;
mod settings;
mod state;
mod transcript;

use leptos::either::Either;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::options;
use crate::api::{self, TextOffer};
use crate::browser;
use crate::story::{History, Mode};
use crate::Session;
use background::Background;
use files::{ExportImport, Pictures, QuickStart};
use settings::{Looks, Settings};
use state::Studio;
use transcript::{Footer, PendingTurn, Transcript};

#[component]
pub fn WritePage() -> impl IntoView {
    let session = expect_context::<Session>();
    let studio = Studio::new(session);
    files::answer_files_module(studio);
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
        <section
            class="studio"
            data-mode=move || mode().key()
        >
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
                                    <button type="submit" class="primary">"Send"</button>
                                    <button type="button" class="ghost" on:click=move |_| studio.retry()>"Retry"</button>
                                    <button type="button" class="ghost" title="The model goes on with its last reply" on:click=move |_| studio.continue_turn()>"Continue"</button>
                                })
                            }}
                        </div>
                    </form>
                    <Footer studio/>
                </div>
                <aside class="panel">
                    <QuickStart/>
                    <Background studio/>
                    <Pictures/>
                    <Settings/>
                    <Looks/>
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
            if let Ok(o) = api::call(api::TextChoices {}).await {
                offer.set(o);
            }
        })
    };
    Effect::new(move |_| refresh());
    let workers = move || offer.with(|o| o.workers.clone());
    view! {
        <ModelChoice studio/>
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

/// The models a request may go to, several at once (the request's `models` list). The summary
/// is the page's; the list (a checkbox per model on offer, labelled with its workers, queue and
/// wait) is drawn by the on-demand module `app/js/studio-choices.js` when it is opened.
#[component]
fn ModelChoice(studio: Studio) -> impl IntoView {
    let summary = move || {
        studio.settings.with(|s| match s.models.split('\n').count() {
            _ if s.models.is_empty() => "Any model".to_string(),
            1 => s.models.clone(),
            n => format!("{n} models"),
        })
    };
    view! {
        <details class="models" data-lazy="studio-choices" data-choices="models">
            <summary title="The models this story may be written by">{summary}</summary>
        </details>
    }
}

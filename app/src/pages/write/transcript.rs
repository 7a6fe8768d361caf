//! The transcript: every turn (editable, deletable), the reply being written, and the footer
//! (who served the last turn, how much of the context is used).

use leptos::either::Either;
use leptos::prelude::*;

use super::state::Studio;
use crate::context;
use crate::story::{Mode, Role, Story};

#[component]
pub(super) fn Transcript(studio: Studio) -> impl IntoView {
    let story = studio.story;
    let editing = RwSignal::new(None::<usize>);
    let edit_text = RwSignal::new(String::new());
    view! {
        // `data-avatar`: the bot's picture, which the Markdown module (app/js/studio-markdown.js)
        // shows beside the bot's name in chat.
        <div class="transcript" aria-live="polite" data-avatar=move || story.with(|s| s.bot_avatar.clone())>
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
pub(super) fn PendingTurn(studio: Studio) -> impl IntoView {
    move || {
        {
            studio.pending.get().map(|p| {
                let status = if p.id.is_empty() {
                    "Sending…".to_string()
                } else if p.writing {
                    "Writing…".to_string()
                } else {
                    format!(
                        "Queue position {} · about {}",
                        p.queue_position,
                        crate::pages::duration(p.wait_time)
                    )
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
pub(super) fn Footer(studio: Studio) -> impl IntoView {
    let assembled = Memo::new(move |_| {
        let a = context::assemble(&studio.story.get(), &studio.settings.get());
        (a.used_tokens, a.budget_tokens, a.dropped_turns, a.world_info.len())
    });
    let served = move || {
        studio.story.with(|s| {
            s.turns.iter().rev().find_map(|t| t.provenance.clone()).map(|p| {
                format!(
                    "Last turn: {} on {} for {} kudos",
                    p.model,
                    p.worker_name,
                    crate::pages::kudos(p.kudos)
                )
            })
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

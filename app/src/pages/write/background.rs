//! The "Memory & world" panel: instruct template and custom tags, names, memory, author's note,
//! world info (and its files).

use leptos::prelude::*;

use super::fields::{line_field, number_field, text_field};
use super::files::WorldInfoFiles;
use super::state::Studio;
use crate::story::{InstructTemplate, Mode, WorldEntry};

#[component]
pub(super) fn Background(studio: Studio) -> impl IntoView {
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
            <WorldInfoFiles/>
        </details>
    }
}

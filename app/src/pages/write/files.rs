//! The studio's files: story import (Lite and KoboldAI saves, character cards, lorebooks, text,
//! studio stories; read by the `import_file` server function, so the importers are not in the
//! browser bundle), export as the studio's JSON or as a Lite save, and world-info files.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::state::Studio;
use crate::api;
use crate::browser;
use crate::import::Imported;

/// Points a download link at `json` (called as it is clicked, so large stories are not encoded
/// on every edit).
fn offer_download(link: NodeRef<leptos::html::A>, json: &str) {
    let href = format!("data:application/json;charset=utf-8,{}", horde_protocol::percent_encode(json));
    if let Some(a) = link.get_untracked() {
        let _ = a.set_attribute("href", &href);
    }
}

/// Sends a chosen file (base64) or pasted text to the importer; the result opens as the current
/// story (the current one stays in the stories list) and `message` says what came in and what
/// did not.
fn import(studio: Studio, message: RwSignal<Option<String>>, name: String, data: String, base64: bool) {
    message.set(Some("Importing…".into()));
    spawn_local(async move {
        match api::import_file(name, data, base64)
            .await
            .map_err(|e| api::message(&e))
            .and_then(|j| Imported::from_json(&j))
        {
            Ok(imported) => message.set(Some(studio.take_import(imported))),
            Err(e) => message.set(Some(e)),
        }
    });
}

#[component]
pub fn ExportImport(studio: Studio) -> impl IntoView {
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
    // Lite's format is written by the server; the link is clicked once it is ready.
    let lite_link = NodeRef::<leptos::html::A>::new();
    let export_lite = move |_| {
        let (s, settings) = (story.get_untracked(), studio.settings.get_untracked());
        spawn_local(async move {
            match api::export_lite(s, settings).await {
                Ok(json) => {
                    offer_download(lite_link, &json);
                    if let Some(a) = lite_link.get_untracked() {
                        a.click();
                    }
                }
                Err(e) => message.set(Some(api::message(&e))),
            }
        });
    };
    view! {
        <details>
            <summary>"Export / import"</summary>
            <label class="field">
                <span>"Title"</span>
                <input name="title" prop:value=move || story.with(|s| s.title.clone()) on:input=move |ev| story.update(|s| s.title = event_target_value(&ev))/>
            </label>
            <a class="button ghost" node_ref=link href="#" on:click=export download=move || format!("{}.json", story.with(|s| s.title.clone()))>"Export JSON"</a>
            <button class="ghost" name="export_lite" on:click=export_lite>"Export for KoboldAI Lite"</button>
            <a class="hidden" node_ref=lite_link href="#" download=move || format!("{} (Lite).json", story.with(|s| s.title.clone()))></a>
            <button class="danger" on:click=move |_| studio.delete_story()>"Delete this story"</button>
            <label class="field">
                <span>"Import a file: a Lite or KoboldAI save, a character card (PNG or JSON), a lorebook, a text file or a story (this one stays in the stories list)"</span>
                <input
                    type="file"
                    name="import_file"
                    accept=".json,.png,.txt,application/json,image/png,text/plain"
                    on:change=move |ev| {
                        let name = browser::chosen_file_name(&ev);
                        browser::read_chosen_file(&ev, move |data| match data {
                            Some(data) => import(studio, message, name, data, true),
                            None => message.set(Some("The file could not be read.".into())),
                        })
                    }
                />
            </label>
            <label class="field">
                <span>"Or paste a story's JSON"</span>
                <textarea name="import" rows="3" prop:value=move || paste.get() on:input=move |ev| paste.set(event_target_value(&ev))></textarea>
            </label>
            <button class="ghost" on:click=move |_| import(studio, message, "pasted.json".into(), paste.get_untracked(), false)>"Import"</button>
            {move || message.get().map(|m| view! { <p class="muted import-report" role="status">{m}</p> })}
        </details>
    }
}

#[component]
pub fn WorldInfoFiles(studio: Studio) -> impl IntoView {
    let story = studio.story;
    let message = RwSignal::new(None::<String>);
    let link = NodeRef::<leptos::html::A>::new();
    let export = move |_| {
        let json = story.with_untracked(|s| serde_json::to_string(&s.world_info).unwrap_or_default());
        offer_download(link, &json);
    };
    let add = move |data: String| {
        spawn_local(async move {
            match api::import_world_info(data, true)
                .await
                .map_err(|e| api::message(&e))
                .and_then(|j| Imported::from_json(&j))
            {
                Ok(imported) => {
                    let summary = imported.summary();
                    let entries = imported.stories.into_iter().flat_map(|s| s.world_info);
                    story.update(|s| s.world_info.extend(entries));
                    message.set(Some(summary));
                }
                Err(e) => message.set(Some(e)),
            }
        })
    };
    view! {
        <div class="wi-files">
            <a class="button ghost small" node_ref=link href="#" download="world-info.json" on:click=export>"Export world info"</a>
            <label class="field">
                <span>"Import world info: Lite, SillyTavern, Agnai or a card's (adds its entries)"</span>
                <input
                    type="file"
                    name="import_world_info"
                    accept="application/json,.json"
                    on:change=move |ev| browser::read_chosen_file(&ev, move |data| match data {
                        Some(data) => add(data),
                        None => message.set(Some("The file could not be read.".into())),
                    })
                />
            </label>
        </div>
        {move || message.get().map(|m| view! { <p class="muted wi-report" role="status">{m}</p> })}
    }
}

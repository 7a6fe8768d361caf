//! The studio's files: story import (Lite and KoboldAI saves, character cards, lorebooks, text,
//! studio stories), export as the studio's JSON or as a Lite save, and world-info files.
//!
//! The controls are not in the page's WASM: they are a small JavaScript module,
//! `app/js/studio-files.js`, that the page loads when one of its panels (`details[data-lazy=studio-files]`)
//! is first opened, so the first load of the studio stays within its budget (BENCHMARKS.md). The
//! importers run on the server (the `import_file`, `import_world_info` and `export_lite` server
//! functions, which the module calls). The module reaches the studio through one window event,
//! `horde-studio`, dispatched synchronously: its `detail.op` says what it wants, `detail.json`
//! carries an importer's answer, and the studio writes its reply into `detail.answer`:
//!
//! - `story`, `settings`: the current story or the settings as the studio's JSON;
//! - `import`: opens what was imported (the current story stays in the stories list) and
//!   answers what came in and what did not (the quick starts open this way too);
//! - `turns`: replaces the current story's turns with the given ones (JSON), undoably: the
//!   pictures module (`app/js/studio-pictures.js`) adds pictures and captions this way;
//! - `world_info`: adds the imported entries to the current story's world info, likewise;
//! - `set_settings` (the settings as JSON, clamped here), `presets` (their names, one a line),
//!   `preset` (applies the one named): the choices module (`app/js/studio-choices.js`).

use leptos::prelude::*;

use super::state::Studio;
use crate::browser;
use crate::import::Imported;
use crate::story::{GenSettings, Turn, PRESETS};

/// Answers the files module's `horde-studio` events for as long as the page lives.
pub(super) fn answer_files_module(studio: Studio) {
    // The page never goes away while its document lives: the listener is never removed.
    let _ = window_event_listener_untyped("horde-studio", move |ev| {
        let Some(op) = browser::event_detail(&ev, "op") else { return };
        let json = browser::event_detail(&ev, "json").unwrap_or_default();
        let answer = match op.as_str() {
            "story" => studio.story.with_untracked(|s| serde_json::to_string(s).unwrap_or_default()),
            "settings" => studio.settings.with_untracked(|s| serde_json::to_string(s).unwrap_or_default()),
            "import" => match Imported::from_json(&json) {
                Ok(imported) => studio.take_import(imported),
                Err(e) => e,
            },
            "turns" => {
                if let Ok(turns) = serde_json::from_str::<Vec<Turn>>(&json) {
                    studio.change_turns(|t| *t = turns);
                }
                String::new()
            }
            // The choices module (app/js/studio-choices.js).
            "set_settings" => {
                if let Ok(settings) = serde_json::from_str::<GenSettings>(&json) {
                    studio.settings.set(settings.clamped());
                }
                String::new()
            }
            "presets" => PRESETS.map(|p| p.name).join("\n"),
            "preset" => {
                if let Some(p) = PRESETS.iter().find(|p| p.name == json) {
                    studio.settings.update(|s| s.apply(p));
                }
                String::new()
            }
            "world_info" => match Imported::from_json(&json) {
                Ok(imported) => {
                    let summary = imported.summary();
                    let entries = imported.stories.into_iter().flat_map(|s| s.world_info);
                    studio.story.update(|s| s.world_info.extend(entries));
                    summary
                }
                Err(e) => e,
            },
            _ => return,
        };
        browser::answer_event(&ev, &answer);
    });
}

/// The "Export / import" panel: the title and deletion here; the files module adds the rest
/// (`data-files="story"`) when the panel is first opened. The modules draw into the panels
/// themselves (no containers in the page: each element costs the first load).
#[component]
pub fn ExportImport(studio: Studio) -> impl IntoView {
    let story = studio.story;
    view! {
        <details data-lazy="studio-files" data-files="story">
            <summary>"Export / import"</summary>
            <label class="field">
                <span>"Title"</span>
                <input name="title" prop:value=move || story.with(|s| s.title.clone()) on:input=move |ev| story.update(|s| s.title = event_target_value(&ev))/>
            </label>
            <button class="danger" on:click=move |_| studio.delete_story()>"Delete this story"</button>
        </details>
    }
}

/// The "World info files" panel, filled in by the files module (`data-files="world_info"`).
#[component]
pub fn WorldInfoFiles() -> impl IntoView {
    view! {
        <details class="wi-files" data-lazy="studio-files" data-files="world_info">
            <summary>"World info files"</summary>
        </details>
    }
}

/// The "Quick start" panel, filled in by the files module (`data-files="start"`): a built-in
/// scenario per mode, or a character card; the current story stays in the stories list. (The
/// module fills the panel itself: no container, as every element costs the first load.)
#[component]
pub fn QuickStart() -> impl IntoView {
    view! {
        <details data-lazy="studio-files" data-files="start">
            <summary>"Quick start"</summary>
        </details>
    }
}

/// The "Pictures" panel, drawn by the on-demand module `app/js/studio-pictures.js`: an
/// illustration of the current scene made through the horde (the prompt editable before it is
/// sent), a picture from a file, and captions of the story's pictures by the horde's
/// alchemists, written into the story. Pictures are kept with the story in this browser.
#[component]
pub fn Pictures() -> impl IntoView {
    view! {
        <details class="pictures" data-lazy="studio-pictures">
            <summary>"Pictures"</summary>
        </details>
    }
}

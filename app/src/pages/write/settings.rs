//! The settings panels: generation (presets, lengths, samplers, stop sequences) and the
//! studio's looks (theme and text size). Both are drawn by the on-demand module
//! `app/js/studio-choices.js` when first opened (into the panel itself: each element of the
//! page costs its first load) (they are closed at first load, and their
//! controls would cost the studio's first load; BENCHMARKS.md); it reads and writes the settings
//! through the `horde-studio` event (`settings`, `set_settings`, `presets`, `preset`; see
//! [`super::files`]), and the studio clamps what is typed ([`crate::story::GenSettings::clamped`]).

use leptos::prelude::*;

/// The generation settings: presets, lengths, every sampler, the samplers' order, the
/// end-of-sequence ban, stop sequences.
#[component]
pub(super) fn Settings() -> impl IntoView {
    view! {
        <details data-lazy="studio-choices" data-choices="settings">
            <summary>"Settings"</summary>
        </details>
    }
}

/// The studio's theme and text size, on the document (`<html data-theme data-text-size>`, read
/// by the style sheet): every page's head applies the stored choice before the first paint, the
/// choices module a new one.
#[component]
pub(super) fn Looks() -> impl IntoView {
    view! {
        <details data-lazy="studio-choices" data-choices="looks">
            <summary>"Theme and text size"</summary>
        </details>
    }
}

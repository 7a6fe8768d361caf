//! The settings panels: generation (presets, lengths, samplers, stop sequences), and the
//! studio's looks (theme and text size, drawn by the on-demand `app/js/studio-choices.js`).

use leptos::prelude::*;

use super::fields::number_field;
use super::state::Studio;
use crate::story::PRESETS;

#[component]
pub(super) fn Settings(studio: Studio) -> impl IntoView {
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
                {number_field("Repetition slope", "rep_pen_slope", "0.05", move || s.with(|s| s.rep_pen_slope), move |v| s.update(|st| st.rep_pen_slope = v.clamp(0.0, 10.0)))}
                {number_field("Top a", "top_a", "0.01", move || s.with(|s| s.top_a), move |v| s.update(|st| st.top_a = v.clamp(0.0, 1.0)))}
                {number_field("Typical", "typical", "0.01", move || s.with(|s| s.typical), move |v| s.update(|st| st.typical = v.clamp(0.0, 1.0)))}
                {number_field("Tail-free", "tfs", "0.01", move || s.with(|s| s.tfs), move |v| s.update(|st| st.tfs = v.clamp(0.0, 1.0)))}
                {number_field("DynaTemp range", "dynatemp_range", "0.05", move || s.with(|s| s.dynatemp_range), move |v| s.update(|st| st.dynatemp_range = v.clamp(0.0, 5.0)))}
                {number_field("DynaTemp exponent", "dynatemp_exponent", "0.05", move || s.with(|s| s.dynatemp_exponent), move |v| s.update(|st| st.dynatemp_exponent = v.clamp(0.0, 5.0)))}
                {number_field("Smoothing", "smoothing_factor", "0.05", move || s.with(|s| s.smoothing_factor), move |v| s.update(|st| st.smoothing_factor = v.clamp(0.0, 10.0)))}
                {number_field("Seed (-1: random)", "seed", "1", move || s.with(|s| s.seed as f64), move |v| s.update(|st| st.seed = v.clamp(-1.0, i32::MAX as f64) as i64))}
            </div>
            <label class="field">
                <span>"Sampler order (0 top-k, 1 top-a, 2 top-p, 3 tail-free, 4 typical, 5 temperature, 6 repetition)"</span>
                <input name="sampler_order" prop:value=move || s.with(|s| s.sampler_order.clone()) on:change=move |ev| s.update(|st| st.sampler_order = event_target_value(&ev))/>
            </label>
            <label class="check">
                <input type="checkbox" name="ban_eos" prop:checked=move || s.with(|s| s.ban_eos) on:change=move |ev| s.update(|st| st.ban_eos = event_target_checked(&ev))/>
                "Ban the end-of-sequence token (write to the full length)"
            </label>
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

/// The studio's theme and text size: the controls come with the on-demand module
/// `app/js/studio-choices.js` when the panel is opened; the page applies the stored choice
/// (`data-theme`, `data-text-size`, read by the style sheet).
#[component]
pub(super) fn Looks() -> impl IntoView {
    view! {
        <details data-lazy="studio-choices">
            <summary>"Theme and text size"</summary>
            <div class="grid" data-choices="looks"></div>
        </details>
    }
}

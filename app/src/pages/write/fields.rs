//! Labelled inputs bound to a story field or a setting. Each reads and writes through boxed
//! closures, so that each field's markup is compiled once however many closures call it (the
//! browser bundle is measured in bytes).

use leptos::prelude::*;

use crate::browser;

pub(super) type Read<T> = Box<dyn Fn() -> T + Send + Sync + 'static>;
pub(super) type Write<T> = Box<dyn Fn(T) + Send + Sync + 'static>;

/// A labelled number input bound to a setting.
pub(super) fn number_field(
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
pub(super) fn text_field(
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
pub(super) fn line_field(
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

//! The pages.

use std::future::Future;

use leptos::prelude::*;
use leptos::server_fn::error::ServerFnError;
use leptos::task::spawn_local;

pub mod account;
pub mod alchemy;
pub mod images;
pub mod workers;
pub mod write;

/// What a page asked the horde for: nothing yet (loading), the answer, or the error's message.
pub type Loaded<T> = RwSignal<Option<Result<T, String>>>;

/// Asks `fetch()` once the page is live (in the browser; the server renders "loading"), again
/// whenever a signal read by `fetch` changes, and again on the returned `reload`. A signal and
/// a task rather than a Leptos resource: resources add about 10 KB to a page's bundle.
pub fn load<T, Fut>(fetch: impl Fn() -> Fut + 'static) -> (Loaded<T>, impl Fn() + Copy + 'static)
where
    T: Send + Sync + 'static,
    Fut: Future<Output = Result<T, ServerFnError>> + 'static,
{
    let loaded: Loaded<T> = RwSignal::new(None);
    let again = RwSignal::new(0u32);
    // Answers can arrive out of order: only the latest question's answer is kept.
    let asked = StoredValue::new(0u64);
    Effect::new(move |_| {
        again.track();
        let answer = fetch();
        let n = asked.get_value().wrapping_add(1);
        asked.set_value(n);
        spawn_local(async move {
            let answer = answer.await.map_err(|e| crate::api::message(&e));
            if asked.get_value() == n {
                loaded.set(Some(answer));
            }
        });
    });
    (loaded, move || again.update(|n| *n = n.wrapping_add(1)))
}

/// A picker's options, the chosen one selected.
pub fn options(choices: Vec<crate::api::Choice>, chosen: &str) -> impl IntoView {
    choices
        .into_iter()
        .map(|c| {
            let selected = c.value == chosen;
            view! { <option value=c.value selected=selected>{c.label}</option> }
        })
        .collect_view()
}

/// "2 min", "45 s".
pub fn duration(seconds: i64) -> String {
    match seconds {
        s if s >= 3600 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{} s", s.max(0)),
    }
}

/// Kudos with at most one decimal.
pub fn kudos(k: f64) -> String {
    let rounded = (k * 10.0).round() / 10.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_read_naturally() {
        assert_eq!(super::duration(45), "45 s");
        assert_eq!(super::duration(150), "2 min");
        assert_eq!(super::duration(7260), "2 h 1 min");
        assert_eq!(super::kudos(12.0), "12");
        assert_eq!(super::kudos(3.04), "3");
        assert_eq!(super::kudos(3.25), "3.3");
    }
}

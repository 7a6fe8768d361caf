//! What only the browser has: local storage for the user's work, the event stream a request's
//! text arrives on, and its Unicode lower-casing. On the server these do nothing (the page renders its defaults and
//! the browser fills in the user's own state after hydration).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Storage keys. The user's stories, settings and key stay in this browser.
pub const STORY_KEY: &str = "horde.story";
/// The other stories (the current one is under `STORY_KEY`).
pub const SHELF_KEY: &str = "horde.shelf";
pub const SETTINGS_KEY: &str = "horde.settings";
pub const API_KEY_KEY: &str = "horde.api_key";
pub const IMAGES_KEY: &str = "horde.images";

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// `text` in lower case (Unicode), for case-insensitive matching. The browser's own
/// `toLowerCase` does it there, so the bundle carries no copy of Unicode's case tables.
pub fn lowercase(text: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        String::from(js_sys::JsString::from(text).to_lower_case())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        text.to_lowercase()
    }
}

/// The number a number input holds (`None` when empty or not a finite number), read by the
/// browser's own `parseFloat`: the bundle then needs no copy of the standard library's decimal
/// parser and its tables.
pub fn number(text: &str) -> Option<f64> {
    #[cfg(feature = "hydrate")]
    let v = js_sys::Number::parse_float(text);
    #[cfg(not(feature = "hydrate"))]
    let v = text.trim().parse::<f64>().unwrap_or(f64::NAN);
    v.is_finite().then_some(v)
}

/// A value saved by [`save`], if there is one and it still parses.
pub fn load<T: DeserializeOwned>(key: &str) -> Option<T> {
    #[cfg(feature = "hydrate")]
    {
        let text = storage()?.get_item(key).ok().flatten()?;
        serde_json::from_str(&text).ok()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = key;
        None
    }
}

/// What to tell the user when the browser refuses to save their work.
pub const STORAGE_FULL: &str =
    "This browser's storage is full, so your latest changes are not saved here. Export the story (Export / import) to keep it, or delete stories you no longer need.";

/// Saves a value in the browser's local storage. False when the browser refused it (its
/// storage is full, or turned off), so that the page can say the work is not kept.
pub fn save<T: Serialize>(key: &str, value: &T) -> bool {
    #[cfg(feature = "hydrate")]
    {
        match (storage(), serde_json::to_string(value)) {
            (Some(s), Ok(text)) => s.set_item(key, &text).is_ok(),
            _ => false,
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = key;
        serde_json::to_string(value).is_ok()
    }
}

/// The events of `GET /api/v2/generate/text/stream/{id}` as they arrive: `(event, data)`. A lost
/// connection arrives as `("lost", "")`. Closes when dropped.
pub struct TextStream {
    #[cfg(feature = "hydrate")]
    source: web_sys::EventSource,
    #[cfg(feature = "hydrate")]
    _listeners: Vec<wasm_bindgen::closure::Closure<dyn FnMut(web_sys::Event)>>,
}

impl TextStream {
    pub const EVENTS: [&'static str; 7] = ["status", "delta", "reset", "generation", "aborted", "done", "error"];

    #[cfg(feature = "hydrate")]
    pub fn open(id: &str, on_event: impl Fn(&str, String) + 'static) -> Option<Self> {
        use std::rc::Rc;
        use wasm_bindgen::closure::Closure;
        use wasm_bindgen::JsCast;

        let source = web_sys::EventSource::new(&format!("/api/v2/generate/text/stream/{id}")).ok()?;
        let on_event = Rc::new(on_event);
        let mut listeners = Vec::new();
        for name in Self::EVENTS {
            let handler = on_event.clone();
            let closure = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| match e.dyn_ref::<web_sys::MessageEvent>() {
                Some(m) => handler(name, m.data().as_string().unwrap_or_default()),
                // The browser's own "error" event: the connection failed or closed.
                None => handler("lost", String::new()),
            });
            source
                .add_event_listener_with_callback(name, closure.as_ref().unchecked_ref())
                .ok()?;
            listeners.push(closure);
        }
        Some(Self {
            source,
            _listeners: listeners,
        })
    }

    #[cfg(not(feature = "hydrate"))]
    pub fn open(id: &str, on_event: impl Fn(&str, String) + 'static) -> Option<Self> {
        let _ = (id, on_event);
        None
    }
}

impl Drop for TextStream {
    fn drop(&mut self) {
        #[cfg(feature = "hydrate")]
        self.source.close();
    }
}

/// POSTs `body` (JSON) to the server function at `path` and decodes its JSON answer from text.
/// Errors are the horde's message (server functions answer `ServerError|the message`).
pub async fn post_json<T: DeserializeOwned>(path: &str, body: String) -> Result<T, String> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        use wasm_bindgen_futures::JsFuture;
        const UNREACHABLE: &str = "The horde could not be reached.";
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(&body.into());
        let headers = web_sys::Headers::new().map_err(|_| UNREACHABLE.to_string())?;
        let _ = headers.set("content-type", "application/json");
        let _ = headers.set("accept", "application/json");
        init.set_headers(&headers);
        let window = web_sys::window().ok_or(UNREACHABLE)?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_str_and_init(path, &init))
            .await
            .ok()
            .and_then(|r| r.dyn_into().ok())
            .ok_or(UNREACHABLE)?;
        let text = JsFuture::from(response.text().map_err(|_| UNREACHABLE.to_string())?)
            .await
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default();
        if !response.ok() {
            return Err(match text.split_once('|') {
                Some((kind, message)) if kind.bytes().all(|b| b.is_ascii_alphabetic()) => message.to_string(),
                _ => format!("The horde answered {}.", response.status()),
            });
        }
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (path, body);
        Err("Only the browser calls the horde this way.".into())
    }
}

/// Reads the file chosen in a file input (the `change` event) as base64, without its
/// `data:...;base64,` prefix. `done(None)` when nothing could be read.
pub fn read_chosen_file(ev: &leptos::ev::Event, done: impl FnOnce(Option<String>) + 'static) {
    read_chosen(ev, move |data| {
        done(data.and_then(|u| u.split_once("base64,").map(|(_, d)| d.to_string())))
    });
}

/// A field of a custom event's `detail` object, as text (the studio's files module asks the
/// page through such events; see `pages::write::files`).
pub fn event_detail(ev: &leptos::ev::Event, field: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        let detail = js_sys::Reflect::get(ev, &"detail".into()).ok()?;
        js_sys::Reflect::get(&detail, &field.into()).ok()?.as_string()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (ev, field);
        None
    }
}

/// Writes the page's answer into a custom event's `detail` object, as its `answer` field (the
/// event is dispatched synchronously, so its sender reads it once `dispatchEvent` returns).
pub fn answer_event(ev: &leptos::ev::Event, answer: &str) {
    #[cfg(feature = "hydrate")]
    {
        if let Ok(detail) = js_sys::Reflect::get(ev, &"detail".into()) {
            let _ = js_sys::Reflect::set(&detail, &"answer".into(), &answer.into());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (ev, answer);
    }
}

/// Whether the main pointer is a finger (a phone or tablet): there Enter is the keyboard's new
/// line and the Send button sends.
pub fn touch_screen() -> bool {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window()
            .and_then(|w| w.match_media("(pointer: coarse)").ok().flatten())
            .is_some_and(|m| m.matches())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        false
    }
}

/// An image fetched from this horde as a `data:` URL, which outlives the horde's copy.
pub async fn fetch_data_url(url: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        use base64::Engine;
        use wasm_bindgen::JsCast;
        use wasm_bindgen_futures::JsFuture;
        let window = web_sys::window()?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_str(url)).await.ok()?.dyn_into().ok()?;
        if !response.ok() {
            return None;
        }
        let mime = response
            .headers()
            .get("content-type")
            .ok()
            .flatten()
            .unwrap_or_else(|| "image/webp".into());
        let buffer = JsFuture::from(response.array_buffer().ok()?).await.ok()?;
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        Some(format!(
            "data:{mime};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = url;
        None
    }
}

/// Reads the chosen file as a data URL.
fn read_chosen(ev: &leptos::ev::Event, done: impl FnOnce(Option<String>) + 'static) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::closure::Closure;
        use wasm_bindgen::JsCast;
        let file = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .and_then(|input| input.files())
            .and_then(|files| files.get(0));
        let (Some(file), Ok(reader)) = (file, web_sys::FileReader::new()) else {
            done(None);
            return;
        };
        let result = reader.clone();
        let onload = Closure::once(move |_: web_sys::ProgressEvent| done(result.result().ok().and_then(|v| v.as_string())));
        reader.set_onload(Some(onload.as_ref().unchecked_ref()));
        // Called once by the browser; it frees itself then.
        onload.forget();
        let _ = reader.read_as_data_url(&file);
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = ev;
        done(None);
    }
}

/// Waits `ms` milliseconds (the browser's timer; at once on the server).
pub async fn sleep(ms: i32) {
    #[cfg(feature = "hydrate")]
    {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = ms;
}

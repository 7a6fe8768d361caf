//! Browser entry point of the web UI: hydrates the page the horde rendered. Only built for
//! wasm32 (`scripts/build-site.sh`); empty elsewhere.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::wasm_bindgen;

/// Called by the page's module script once the WASM is loaded.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(horde_app::App);
}

//! Browser entry point of the web UI: hydrates the page the horde rendered. Each page has its own
//! bundle, built with that page's feature (`write`, `images`, `account` or `workers`) so that it
//! carries only that page's code; `scripts/build-site.sh` builds all four. Only built for wasm32;
//! empty elsewhere.

#[cfg(all(
    target_arch = "wasm32",
    not(any(feature = "write", feature = "images", feature = "account", feature = "workers"))
))]
compile_error!("choose the page this bundle hydrates: --features write, images, account or workers");

/// Called by the page's module script once the WASM is loaded.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    use horde_app::{frame, pages, Page};
    use leptos::mount::hydrate_body;
    // Panic messages in the console during development; release bundles leave the formatting
    // code out.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    #[cfg(feature = "write")]
    hydrate_body(|| frame(Page::Write, pages::write::WritePage));
    #[cfg(feature = "images")]
    hydrate_body(|| frame(Page::Images, pages::images::ImagesPage));
    #[cfg(feature = "account")]
    hydrate_body(|| frame(Page::Account, pages::account::AccountPage));
    #[cfg(feature = "workers")]
    hydrate_body(|| frame(Page::Workers, pages::workers::WorkersPage));
}

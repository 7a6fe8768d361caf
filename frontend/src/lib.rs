//! Browser entry point of the web UI. The pages are server-rendered for now; this crate is where
//! the hydrated (WASM) interface attaches.

pub use horde_app::Overview;

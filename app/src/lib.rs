//! The horde's web UI: a writing studio (story, adventure, chat and instruct), the account page
//! and the workers & status page. Rendered on the server by the `horde` binary (feature `ssr`) and
//! hydrated in the browser (feature `hydrate`, built by the frontend crate). The pages reach the
//! horde through the server functions in [`api`].

pub mod api;
pub mod browser;
pub mod context;
pub mod image_settings;
pub mod pages;
pub mod story;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

/// Where the page finds its scripts and styles (content-hashed names chosen by the server).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteAssets {
    pub css: Option<String>,
    /// The wasm-bindgen module and its WASM; without them the page renders but does not hydrate.
    pub js: Option<String>,
    pub wasm: Option<String>,
}

/// The whole HTML document around [`App`].
pub fn shell(assets: SiteAssets) -> impl IntoView {
    let boot = match (&assets.js, &assets.wasm) {
        (Some(js), Some(wasm)) => Some(format!(
            "import init, {{ hydrate }} from '{js}'; init({{ module_or_path: '{wasm}' }}).then(() => hydrate());"
        )),
        _ => None,
    };
    let preloads = assets.js.clone().zip(assets.wasm.clone()).map(|(js, wasm)| {
        view! {
            <link rel="modulepreload" href=js/>
            <link rel="preload" href=wasm r#as="fetch" r#type="application/wasm" crossorigin=""/>
        }
    });
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="description" content="Horde: write stories, chat and make images on a crowdsourced cluster"/>
                <title>"Horde"</title>
                <link rel="icon" href="data:,"/>
                {assets.css.map(|href| view! { <link rel="stylesheet" href=href/> })}
                {preloads}
                {boot.map(|b| view! { <script type="module" inner_html=b></script> })}
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The signed-in key, shared by every page (empty: anonymous). Kept in the browser only.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub api_key: RwSignal<String>,
    /// Set once the browser state is loaded (after hydration); saving waits for it.
    pub loaded: RwSignal<bool>,
}

impl Session {
    fn provide() -> Self {
        let session = Session {
            api_key: RwSignal::new(String::new()),
            loaded: RwSignal::new(false),
        };
        Effect::new(move |_| {
            if let Some(key) = browser::load::<String>(browser::API_KEY_KEY) {
                session.api_key.set(key);
            }
            session.loaded.set(true);
        });
        Effect::new(move |_| {
            let key = session.api_key.get();
            if session.loaded.get_untracked() {
                browser::save(browser::API_KEY_KEY, &key);
            }
        });
        provide_context(session);
        session
    }
}

/// The application: navigation and pages.
#[component]
pub fn App() -> impl IntoView {
    let session = Session::provide();
    view! {
        <Router>
            <header class="top">
                <a class="brand" href="/">"Horde"</a>
                <nav>
                    <A href="/">"Write"</A>
                    <A href="/images">"Images"</A>
                    <A href="/account">"Account"</A>
                    <A href="/workers">"Workers"</A>
                </nav>
            </header>
            <main data-ready=move || session.loaded.get().to_string()>
                <Routes fallback=|| view! { <p class="muted">"Page not found."</p> }>
                    <Route path=path!("/") view=pages::write::WritePage/>
                    <Route path=path!("/images") view=pages::images::ImagesPage/>
                    <Route path=path!("/account") view=pages::account::AccountPage/>
                    <Route path=path!("/workers") view=pages::workers::WorkersPage/>
                </Routes>
            </main>
        </Router>
    }
}

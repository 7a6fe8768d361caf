//! The horde's web UI: a writing studio (story, adventure, chat and instruct), the image studio,
//! the account page and the workers & status page. Rendered on the server by the `horde` binary
//! (feature `ssr`) and hydrated in the browser (feature `hydrate`, built by the frontend crate, one
//! bundle per page). The pages reach the horde through the server functions in [`api`].

#![recursion_limit = "256"]

pub mod alchemy;
pub mod api;
pub mod browser;
pub mod context;
pub mod image_settings;
pub mod import;
pub mod instruct;
pub mod pages;
pub mod story;

use leptos::prelude::*;

/// The site's pages. Each is its own document with its own browser bundle (`pkg/horde-<key>.js`
/// and `.wasm`), so a first visit loads only the code of the page it opens; links between pages
/// are plain links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Page {
    Write,
    Images,
    Account,
    Workers,
}

impl Page {
    pub const ALL: [Page; 4] = [Page::Write, Page::Images, Page::Account, Page::Workers];

    pub fn path(self) -> &'static str {
        match self {
            Page::Write => "/",
            Page::Images => "/images",
            Page::Account => "/account",
            Page::Workers => "/workers",
        }
    }

    /// The name of its bundle, `horde-<key>`.
    pub fn key(self) -> &'static str {
        match self {
            Page::Write => "write",
            Page::Images => "images",
            Page::Account => "account",
            Page::Workers => "workers",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Page::Write => "Write",
            Page::Images => "Images",
            Page::Account => "Account",
            Page::Workers => "Workers",
        }
    }
}

/// Where a page finds its scripts and styles (content-hashed names chosen by the server).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteAssets {
    pub css: Option<String>,
    /// The page's wasm-bindgen module and its WASM; without them the page renders but does not
    /// hydrate.
    pub js: Option<String>,
    pub wasm: Option<String>,
    /// Modules the page loads on demand, by name (`studio-files`, `studio-markdown`: the file
    /// stem under `app/js/`) with their URLs.
    pub modules: Vec<(String, String)>,
}

impl SiteAssets {
    /// The page's boot script: the WASM, hydrated; on the writing studio also the loaders of its
    /// on-demand modules. A `details[data-lazy=NAME]` panel loads module NAME when first opened
    /// (and calls its `open(panel)` with the panel opened; `toggle` does not bubble, hence the capture); the Markdown
    /// module comes when a chat or instruct story is shown (`data-mode`) and its `start()`
    /// follows the transcript.
    #[cfg(feature = "ssr")]
    fn boot_script(&self, page: Page) -> Option<String> {
        let (js, wasm) = (self.js.as_ref()?, self.wasm.as_ref()?);
        if page != Page::Write || self.modules.is_empty() {
            return Some(format!(
                "import init, {{ hydrate }} from '{js}'; init({{ module_or_path: '{wasm}' }}).then(() => hydrate());"
            ));
        }
        let modules = self
            .modules
            .iter()
            .map(|(name, url)| format!("'{name}':'{url}'"))
            .collect::<Vec<_>>()
            .join(",");
        // Written small: it is part of every first load of the studio.
        Some(format!(
            "import init,{{hydrate}}from'{js}';const M={{{modules}}},L=n=>import(M[n]),\
             md=()=>document.querySelector('[data-mode=chat],[data-mode=instruct]')&&L('studio-markdown').then(m=>m.start());\
             document.addEventListener('toggle',e=>{{const n=e.target.open&&e.target.dataset.lazy;if(n&&M[n])L(n).then(m=>m.open(e.target))}},!0);\
             init({{module_or_path:'{wasm}'}}).then(()=>{{hydrate();md();new MutationObserver(md).observe(document.body,{{subtree:!0,attributes:!0,attributeFilter:['data-mode']}})}});"
        ))
    }
}

/// Applies the studio's stored theme and text size to `<html>` (`data-theme`, `data-text-size`,
/// which the style sheet reads), in every page's head, before the first paint; afterwards the
/// choices module (`app/js/studio-choices.js`) applies a changed one. An empty theme or a size
/// of 0 (the defaults) match no rule. Written small: it is part of every first load.
#[cfg(feature = "ssr")]
const LOOKS_SCRIPT: &str =
    "try{let s=JSON.parse(localStorage['horde.settings']),d=document.documentElement.dataset;d.theme=s.theme;d.textSize=s.font_size}catch{}";

/// The whole HTML document of `page` (rendered on the server).
#[cfg(feature = "ssr")]
pub fn document(page: Page, assets: SiteAssets) -> impl IntoView {
    let boot = assets.boot_script(page);
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
                <title>{format!("{} · Horde", page.label())}</title>
                <link rel="icon" href="data:,"/>
                // The stored theme and text size before the first paint (no flash of the default
                // theme while the page loads).
                <script inner_html=LOOKS_SCRIPT></script>
                {assets.css.map(|href| view! { <link rel="stylesheet" href=href/> })}
                {preloads}
                {boot.map(|b| view! { <script type="module" inner_html=b></script> })}
            </head>
            <body>
                {frame(page, move || match page {
                    Page::Write => view! { <pages::write::WritePage/> }.into_any(),
                    Page::Images => view! { <pages::images::ImagesPage/> }.into_any(),
                    Page::Account => view! { <pages::account::AccountPage/> }.into_any(),
                    Page::Workers => view! { <pages::workers::WorkersPage/> }.into_any(),
                })}
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
                let _ = browser::save(browser::API_KEY_KEY, &key);
            }
        });
        provide_context(session);
        session
    }
}

/// What `<body>` holds on every page: the navigation and the page itself. The server renders it
/// around any page; a page's bundle hydrates it with that page alone.
pub fn frame<V: IntoView>(page: Page, content: impl FnOnce() -> V) -> impl IntoView {
    let session = Session::provide();
    let links = Page::ALL.map(|p| {
        let current = (p == page).then_some("page");
        view! { <a href=p.path() aria-current=current>{p.label()}</a> }
    });
    view! {
        <header class="top">
            <a class="brand" href="/">"Horde"</a>
            <nav>{links}</nav>
        </header>
        <main data-ready=move || session.loaded.get().to_string()>{content()}</main>
    }
}

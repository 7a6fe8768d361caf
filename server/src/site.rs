//! The web UI: Leptos pages rendered here (their server functions call the core), and the
//! browser bundle (WASM, JS, CSS, icons) embedded in the binary. Release builds carry the files
//! inside; debug builds read them from `target/site` so a rebuilt bundle shows without relinking.
//! Bundle files are served under content-hashed names, compressed (the build's precompressed
//! brotli/gzip copies when there are some), with a one-year lifetime.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter};
use axum::Router;
use horde_app::{Page, SiteAssets};
use horde_core::Horde;
use leptos::prelude::provide_context;
use leptos::server_fn;
use leptos_axum::{handle_server_fns_with_context, render_app_to_stream_with_context};
use rust_embed::RustEmbed;
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::api::rate_limits::{limit_by_path, RateLimits};

/// The files `scripts/build-site.sh` writes.
#[derive(RustEmbed)]
#[folder = "$HORDE_SITE_FOLDER"]
struct SiteFiles;

/// Public names of the embedded files: `pkg/horde-write.1a2b3c4d5e6f.wasm` →
/// `pkg/horde-write.wasm`, and what each page links: its own bundle (`pkg/horde-<page>.js` and
/// `.wasm`) and the shared `pkg/horde.css`.
#[derive(Debug, Clone, Default)]
pub struct SiteIndex {
    hashed: HashMap<String, String>,
    assets: HashMap<Page, SiteAssets>,
}

impl SiteIndex {
    fn load() -> Self {
        let mut index = SiteIndex::default();
        for path in SiteFiles::iter() {
            // Precompressed copies are found through their originals.
            if path.ends_with(".br") || path.ends_with(".gz") {
                continue;
            }
            let Some(file) = SiteFiles::get(&path) else { continue };
            let hash = hex(&file.metadata.sha256_hash()[..6]);
            let public = match path.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
                None => format!("{path}.{hash}"),
            };
            let url = format!("/{public}");
            if path == "pkg/horde.css" {
                for page in Page::ALL {
                    index.assets.entry(page).or_default().css = Some(url.clone());
                }
            }
            // Modules loaded on demand (app/js/): every page may name them.
            if let Some(name) = path.strip_prefix("pkg/").and_then(|p| p.strip_suffix(".js")) {
                if !name.starts_with("horde-") {
                    for page in Page::ALL {
                        index.assets.entry(page).or_default().modules.push((name.to_string(), url.clone()));
                    }
                }
            }
            for page in Page::ALL {
                let assets = index.assets.entry(page).or_default();
                if path == format!("pkg/horde-{}.js", page.key()) {
                    assets.js = Some(url.clone());
                } else if path == format!("pkg/horde-{}.wasm", page.key()) {
                    assets.wasm = Some(url.clone());
                }
            }
            index.hashed.insert(public, path.to_string());
        }
        index
    }

    /// What `page` links.
    pub fn assets(&self, page: Page) -> SiteAssets {
        self.assets.get(&page).cloned().unwrap_or_default()
    }

    /// Whether every page's browser bundle is there (the pages can hydrate).
    pub fn hydrates(&self) -> bool {
        Page::ALL.iter().all(|&page| {
            let assets = self.assets(page);
            assets.js.is_some() && assets.wasm.is_some()
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rate-limit groups of the server functions (the API's groups for the same operations); the
/// others count in `default`.
pub const SERVER_FN_LIMITS: &[(&str, &str)] = &[
    ("/ui/api/submit_text", "generate"),
    ("/ui/api/submit_image", "generate"),
    ("/ui/api/image_price", "generate"),
    ("/ui/api/image_progress", "check"),
    ("/ui/api/submit_alchemy", "generate"),
    ("/ui/api/alchemy_progress", "check"),
    ("/ui/api/cancel_image", "image-status"),
    ("/ui/api/rate_image", "rate"),
    ("/ui/api/text_status", "text-status"),
    ("/ui/api/cancel_text", "text-status"),
    ("/ui/api/register", "register"),
    ("/ui/api/transfer", "transfer"),
    ("/ui/api/account", "user"),
    ("/ui/api/my_workers", "user"),
    ("/ui/api/set_maintenance", "worker-modify"),
    ("/ui/api/set_worker_info", "worker-modify"),
    ("/ui/api/delete_worker", "worker-modify"),
];

/// Pages, server functions (rate-limited like the API) and bundle files.
pub fn router<S: Clone + Send + Sync + 'static>(horde: Arc<Horde>, limits: &RateLimits) -> Router<S> {
    let index = Arc::new(SiteIndex::load());
    if !index.hydrates() {
        tracing::warn!("the web UI's browser bundle is not built (scripts/build-site.sh): pages render without interactivity");
    }
    // Rendering spawns tasks (Leptos's executor runs them on tokio); set up once per process.
    let _ = any_spawner::Executor::init_tokio();
    let context = move || provide_context(horde.clone());
    let mut pages = Router::new();
    for page in Page::ALL {
        let assets = index.assets(page);
        let render = render_app_to_stream_with_context(context.clone(), move || horde_app::document(page, assets.clone()));
        pages = pages.route(page.path(), get(move |request: Request<Body>| render(request)));
    }
    // The server functions the pages call.
    for (path, method) in server_fn::axum::server_fn_paths() {
        let context = context.clone();
        let handler = move |request: Request<Body>| handle_server_fns_with_context(context, request);
        match MethodFilter::try_from(method) {
            Ok(filter) => {
                let handler = on(filter, handler).layer(axum::middleware::from_fn(crate::api::json_rejections::server_fn_arguments_as_400));
                pages = pages.route(path, handler)
            }
            Err(e) => tracing::error!(path, "server function not served: {e}"),
        }
    }
    let files =
        Router::new()
            .route("/pkg/{*file}", get(bundle_file))
            .route(
                "/robots.txt",
                get(|State(index): State<Arc<SiteIndex>>, headers: HeaderMap| async move {
                    serve(index, "robots.txt".to_string(), &headers).await
                }),
            )
            .with_state(index);
    let limits = limits.by_path("/ui/api/", SERVER_FN_LIMITS);
    pages
        .merge(files)
        .layer(axum::middleware::from_fn_with_state(limits, limit_by_path))
        // Brotli 6 (and gzip 6) rather than the layer's default brotli 4: the server-rendered
        // pages come out about 125 B smaller (the writing studio's 5 KB page: 1,920 → 1,795 B),
        // for well under a millisecond more per page (BENCHMARKS.md).
        .layer(CompressionLayer::new().quality(CompressionLevel::Precise(6)))
}

async fn bundle_file(State(index): State<Arc<SiteIndex>>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(index, format!("pkg/{file}"), &headers).await
}

async fn serve(index: Arc<SiteIndex>, public: String, headers: &HeaderMap) -> Response {
    // A hashed name never changes content: cache it for a year. Plain names revalidate.
    let (path, cache) = match index.hashed.get(&public) {
        Some(path) => (path.clone(), "public, max-age=31536000, immutable"),
        None => (public, "no-cache"),
    };
    let Some(file) = SiteFiles::get(&path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let content_type = HeaderValue::from_str(file.metadata.mimetype()).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    // The build's precompressed copy when the client takes it; otherwise the compression layer
    // works per request.
    let accepts = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for (encoding, suffix) in [("br", ".br"), ("gzip", ".gz")] {
        if !accepts
            .split(',')
            .any(|e| e.split(';').next().is_some_and(|e| e.trim() == encoding))
        {
            continue;
        }
        if let Some(compressed) = SiteFiles::get(&format!("{path}{suffix}")) {
            let headers = [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
                (header::CONTENT_ENCODING, HeaderValue::from_static(encoding)),
                (header::VARY, HeaderValue::from_static("accept-encoding")),
            ];
            return (headers, compressed.data).into_response();
        }
    }
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        file.data,
    )
        .into_response()
}

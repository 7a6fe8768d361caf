//! The web UI: Leptos pages rendered here (their server functions call the core), and the
//! browser bundle (WASM, JS, CSS, icons) embedded in the binary. Release builds carry the files
//! inside; debug builds read them from `target/site` so a rebuilt bundle shows without relinking.
//! Bundle files are served under content-hashed names, compressed (the build's precompressed
//! brotli/gzip copies when there are some), with a one-year lifetime.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use horde_app::SiteAssets;
use horde_core::Horde;
use leptos::prelude::{provide_context, LeptosOptions};
use leptos_axum::{generate_route_list, LeptosRoutes};
use rust_embed::RustEmbed;
use tower_http::compression::CompressionLayer;

use crate::api::rate_limits::{limit_by_path, RateLimits};

/// The files `scripts/build-site.sh` writes.
#[derive(RustEmbed)]
#[folder = "$HORDE_SITE_FOLDER"]
struct SiteFiles;

/// The bundle's base name (`pkg/horde.js`, `pkg/horde.wasm`, `pkg/horde.css`).
const BUNDLE: &str = "horde";

/// Public names of the embedded files: `pkg/horde.1a2b3c4d5e6f.wasm` → `pkg/horde.wasm`.
#[derive(Debug, Clone, Default)]
pub struct SiteIndex {
    hashed: HashMap<String, String>,
    assets: SiteAssets,
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
            match path.as_ref() {
                p if p == format!("pkg/{BUNDLE}.js") => index.assets.js = Some(url),
                p if p == format!("pkg/{BUNDLE}.wasm") => index.assets.wasm = Some(url),
                p if p == format!("pkg/{BUNDLE}.css") => index.assets.css = Some(url),
                _ => {}
            }
            index.hashed.insert(public, path.to_string());
        }
        index
    }

    /// Whether the browser bundle is there (the page can hydrate).
    pub fn hydrates(&self) -> bool {
        self.assets.js.is_some() && self.assets.wasm.is_some()
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
    let options = LeptosOptions::builder().output_name(BUNDLE).build();
    let routes = generate_route_list(horde_app::App);
    let assets = index.assets.clone();
    let pages = Router::new()
        .leptos_routes_with_context(
            &options,
            routes,
            move || provide_context(horde.clone()),
            move || horde_app::shell(assets.clone()),
        )
        .with_state(options);
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
        .layer(CompressionLayer::new())
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

//! The HTTP adapter: routes, middleware, and the mapping of core results to wire answers.

pub mod connections;
pub mod error;
pub mod events;
pub mod extract;
pub mod json_rejections;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod rate_limits;
pub mod v2;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, Method};
use axum::routing::get;
use axum::Router;
use horde_core::Horde;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;

/// Options of the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// Serve `POST /api/v2/dev/test-user` to loopback callers.
    pub dev_test_users: bool,
    /// Rate limits per endpoint group.
    pub rate_limits: rate_limits::RateLimits,
    /// Address in image links (`--public-url`); default: each request's Host.
    pub public_url: Option<String>,
    /// Ends open event streams at shutdown.
    pub closing: events::Closing,
    /// The operator's documents and news.
    pub documents: Arc<v2::documents::Documents>,
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub horde: Arc<Horde>,
    /// Shared: the state is cloned for every request.
    pub options: Arc<ApiOptions>,
    pub metrics: Arc<metrics::Metrics>,
}

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Largest worker image upload (`PUT /api/v2/images/{token}`): a 4× upscale of a large image is
/// bigger than any JSON body. The horde keeps at most `max_result_image_bytes` of it.
pub const MAX_UPLOAD_BYTES: usize = 48 * 1024 * 1024;

/// The whole application: API, UI, CORS, limits, tracing.
pub fn router(horde: Arc<Horde>, options: ApiOptions) -> Router {
    let metrics = Arc::new(metrics::Metrics::new(horde.clone()));
    let state = AppState {
        horde,
        options: Arc::new(options.clone()),
        metrics: metrics.clone(),
    };
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::list([
            HeaderName::from_static("apikey"),
            HeaderName::from_static("client-agent"),
            HeaderName::from_static("client_agent"),
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-fields"),
            header::ACCEPT,
        ]))
        .max_age(Duration::from_secs(3600));
    let (api, doc) = utoipa_axum::router::OpenApiRouter::with_openapi(openapi::document())
        .nest("/api/v2", v2::router(&options))
        .split_for_parts();
    Router::new()
        .merge(crate::site::router(state.horde.clone(), &options.rate_limits))
        .route("/metrics", get(metrics::exposition))
        .merge(api)
        .merge(openapi::docs_ui(doc))
        .merge(openai::router(&options))
        .route(
            "/api/v2/{*rest}",
            axum::routing::any(|| async { error::ApiError::not_found_route() }),
        )
        // Every route's wrong method (axum adds the route's `Allow`): no middleware on every request.
        .method_not_allowed_fallback(json_rejections::method_not_allowed)
        .fallback(|| async { error::ApiError::not_found_route() })
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::count_http))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            // Method and path only: never bodies, queries or headers.
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .layer(cors)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests, under the default
/// [`connections::ConnectionLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    connections::serve(listener, app, connections::ConnectionLimits::default(), shutdown).await
}

//! `/api/v2`: the AI Horde API.

pub mod filters;
pub mod image;
pub mod status;
pub mod text;
pub mod users;
pub mod workers;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::GovernorLayer;

use super::error::{ApiError, ApiResult};
use super::{ApiOptions, AppState};

/// The API key's user: the anonymous user when no key is sent and `anonymous_ok`, else 401.
pub async fn user_of(state: &AppState, key: &Option<String>, anonymous_ok: bool) -> ApiResult<i64> {
    match key {
        Some(k) => Ok(state.horde.authenticate(k).await?),
        None if anonymous_ok => Ok(horde_core::accounts::ANONYMOUS_USER_ID),
        None => Err(ApiError::missing_key()),
    }
}

/// The viewer of a read endpoint: `None` without a key or with an unknown one.
pub async fn viewer_of(state: &AppState, key: &Option<String>) -> Option<i64> {
    match key {
        Some(k) => state.horde.authenticate(k).await.ok(),
        None => None,
    }
}

pub fn router(options: &ApiOptions) -> Router<AppState> {
    let period_ms = (options.register_period_secs.max(1) * 1000 / u64::from(options.register_burst.max(1))).max(1);
    let register_limit = GovernorConfigBuilder::default()
        .per_millisecond(period_ms)
        .burst_size(options.register_burst.max(1))
        .finish();
    let register = Router::new().route("/register", post(users::register));
    let register = match register_limit {
        Some(cfg) => register.layer(GovernorLayer::new(Arc::new(cfg)).error_handler(|_| {
            axum::response::IntoResponse::into_response(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "TooManyRegistrations",
                "Too many registrations from this address; try again later.",
            ))
        })),
        None => register,
    };
    Router::new()
        .route("/generate/text/async", post(text::generate))
        .route("/generate/text/status/{id}", get(text::status).delete(text::cancel))
        .route("/generate/text/pop", post(text::pop))
        .route("/generate/text/submit", post(text::submit))
        .route("/generate/async", post(image::generate))
        .route("/generate/check/{id}", get(image::check))
        .route("/generate/status/{id}", get(image::status).delete(image::cancel))
        .route("/generate/pop", post(image::pop))
        .route("/generate/submit", post(image::submit))
        .route("/generate/rate/{id}", post(image::rate))
        .route("/images/{token}", put(image::upload).get(image::download))
        .route("/filters", get(filters::list).put(filters::add).post(filters::check))
        .route("/filters/regex", get(filters::regex))
        .route(
            "/filters/{id}",
            get(filters::get_one).patch(filters::modify).delete(filters::delete),
        )
        .route("/operations/ipaddr", put(filters::timeout_ip))
        .route("/find_user", get(users::find_user))
        .route("/users", get(users::list))
        .route("/users/{id}", get(users::details).put(users::modify))
        .route("/kudos/transfer", post(users::transfer))
        .route("/dev/test-user", post(users::test_user))
        .route("/workers", get(workers::list))
        .route("/workers/name/{name}", get(workers::details_by_name))
        .route("/workers/{id}", get(workers::details).put(workers::modify).delete(workers::delete))
        .route("/status/heartbeat", get(status::heartbeat))
        .route("/status/models", get(status::models))
        .route("/status/models/{name}", get(status::model))
        .route("/status/performance", get(status::performance))
        .route("/status/modes", get(status::modes))
        .merge(register)
}

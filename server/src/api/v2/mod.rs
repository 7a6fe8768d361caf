//! `/api/v2`: the AI Horde API.

pub mod alchemy;
pub mod documents;
pub mod filters;
pub mod image;
pub mod ipaddr;
pub mod kudos_award;
pub mod shared_keys;
pub mod stats;
pub mod status;
pub mod styles;
pub mod teams;
pub mod text;
pub mod users;
pub mod worker_messages;
pub mod workers;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// The shared key a generation request's `apikey` is, if it is one.
pub async fn shared_key_of(state: &AppState, key: &Option<String>) -> ApiResult<Option<horde_core::shared_keys::SharedKey>> {
    match key {
        Some(k) => Ok(state.horde.shared_key_for_generation(k).await?),
        None => Ok(None),
    }
}

/// The viewer of a read endpoint: `None` without a key or with an unknown one.
pub async fn viewer_of(state: &AppState, key: &Option<String>) -> Option<i64> {
    match key {
        Some(k) => state.horde.authenticate(k).await.ok(),
        None => None,
    }
}

/// The API's routes with their OpenAPI operations, each endpoint in its rate-limit group.
pub fn router(options: &ApiOptions) -> OpenApiRouter<AppState> {
    let limits = &options.rate_limits;
    let group = |name: &str, routes: OpenApiRouter<AppState>| limits.apply(name, routes);
    let generate = OpenApiRouter::new()
        .routes(routes!(text::generate))
        .routes(routes!(image::generate))
        .routes(routes!(alchemy::interrogate));
    let worker = OpenApiRouter::new()
        .routes(routes!(text::pop))
        .routes(routes!(text::submit))
        .routes(routes!(text::progress))
        .routes(routes!(image::pop))
        .routes(routes!(image::submit))
        .routes(routes!(image::upload, image::download))
        .routes(routes!(alchemy::pop))
        .routes(routes!(alchemy::submit));
    let default = OpenApiRouter::new()
        .routes(routes!(filters::list, filters::add, filters::check))
        .routes(routes!(filters::regex))
        .routes(routes!(filters::get_one, filters::modify, filters::delete))
        .routes(routes!(filters::timeout_ip, ipaddr::list, ipaddr::add, ipaddr::remove))
        .routes(routes!(ipaddr::one))
        .routes(routes!(filters::block_worker_ip, filters::unblock_worker_ip))
        .routes(routes!(users::find_user))
        .routes(routes!(worker_messages::list, worker_messages::create))
        .routes(routes!(worker_messages::details, worker_messages::delete))
        .routes(routes!(workers::list))
        .routes(routes!(workers::details_by_name))
        .routes(routes!(workers::details, workers::delete))
        .routes(routes!(status::models))
        .routes(routes!(status::model))
        .routes(routes!(status::performance))
        .routes(routes!(stats::image_totals))
        .routes(routes!(stats::image_models))
        .routes(routes!(stats::text_totals))
        .routes(routes!(stats::text_models))
        .routes(routes!(status::modes, status::set_modes))
        .routes(routes!(documents::news))
        .routes(routes!(documents::document));
    let styles = OpenApiRouter::new()
        .routes(routes!(styles::image_list, styles::image_create))
        .routes(routes!(styles::image_get, styles::image_modify, styles::image_delete))
        .routes(routes!(styles::image_by_name))
        .routes(routes!(styles::example_add))
        .routes(routes!(styles::example_modify, styles::example_delete))
        .routes(routes!(styles::text_list, styles::text_create))
        .routes(routes!(styles::text_get, styles::text_modify, styles::text_delete))
        .routes(routes!(styles::text_by_name))
        .routes(routes!(styles::collection_list, styles::collection_create))
        .routes(routes!(
            styles::collection_get,
            styles::collection_modify,
            styles::collection_delete
        ))
        .routes(routes!(styles::collection_by_name))
        .routes(routes!(teams::list, teams::create))
        .routes(routes!(teams::details, teams::modify, teams::delete))
        .routes(routes!(shared_keys::create))
        .routes(routes!(shared_keys::details, shared_keys::modify, shared_keys::delete));
    OpenApiRouter::new()
        .merge(group("generate", generate))
        .merge(group(
            "text-status",
            OpenApiRouter::new()
                .routes(routes!(text::status, text::cancel))
                .routes(routes!(text::stream)),
        ))
        .merge(group(
            "check",
            OpenApiRouter::new()
                .routes(routes!(image::check))
                .routes(routes!(alchemy::status, alchemy::cancel)),
        ))
        .merge(group(
            "image-status",
            OpenApiRouter::new().routes(routes!(image::status, image::cancel)),
        ))
        .merge(group("rate", OpenApiRouter::new().routes(routes!(image::rate))))
        .merge(group("worker", worker))
        .merge(group(
            "transfer",
            OpenApiRouter::new()
                .routes(routes!(users::transfer))
                .routes(routes!(kudos_award::award)),
        ))
        .merge(group("users", OpenApiRouter::new().routes(routes!(users::list))))
        .merge(group(
            "user",
            OpenApiRouter::new().routes(routes!(users::details, users::modify, users::delete)),
        ))
        .merge(group("worker-modify", OpenApiRouter::new().routes(routes!(workers::modify))))
        .merge(group("register", OpenApiRouter::new().routes(routes!(users::register))))
        .merge(group("default", default.merge(styles)))
        // Exempt: load balancers poll the heartbeat, and test users exist only in test mode.
        .routes(routes!(status::heartbeat))
        .routes(routes!(users::test_user))
}

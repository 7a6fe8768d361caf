//! Horde status endpoints.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::status::{Heartbeat, Modes};
use horde_protocol::ErrorBody;
use serde::Deserialize;

use crate::api::error::ApiResult;
use crate::api::extract::QueryParams;
use crate::api::AppState;

#[utoipa::path(get, path = "/status/heartbeat", tag = "status", responses((status = 200, description = "Alive, and storage answers", body = Heartbeat), (status = 503, description = "Alive, but the database or the shared state's Redis does not answer: a load balancer should send traffic elsewhere", body = Heartbeat)))]
pub async fn heartbeat(State(state): State<AppState>) -> Response {
    let ok = state.horde.storage_ok().await;
    let body = Json(Heartbeat {
        message: if ok { "OK" } else { "DOWN" }.into(),
        version: horde_core::VERSION.into(),
    });
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    min_count: Option<i64>,
    max_count: Option<i64>,
}

#[utoipa::path(get, path = "/status/models", tag = "status", params(ModelsQuery), responses((status = 200, description = "Models with online workers", body = Vec<horde_protocol::status::ActiveModel>), (status = 400, description = "Invalid input", body = ErrorBody)))]
pub async fn models(State(state): State<AppState>, QueryParams(q): QueryParams<ModelsQuery>) -> ApiResult<Response> {
    // Image models unless text is asked for, like the public horde.
    let list = match q.kind.as_deref() {
        Some("text") => state.horde.text_models().await?,
        Some("image") | None => state.horde.image_models().await?,
        Some(other) => {
            return Err(crate::api::error::ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "ValidationError",
                format!("type must be image or text, not '{}'.", other.chars().take(20).collect::<String>()),
            ))
        }
    };
    let list: Vec<_> = list
        .into_iter()
        .filter(|m| q.min_count.is_none_or(|min| m.count >= min) && q.max_count.is_none_or(|max| m.count <= max))
        .collect();
    Ok(Json(list).into_response())
}

#[utoipa::path(get, path = "/status/models/{name}", tag = "status", params(("name" = String, Path, description = "Model name")), responses((status = 200, description = "The model, by kind", body = Vec<horde_protocol::status::ActiveModel>)))]
pub async fn model(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let list: Vec<_> = state
        .horde
        .image_models()
        .await?
        .into_iter()
        .chain(state.horde.text_models().await?)
        .filter(|m| m.name == name)
        .collect();
    Ok(Json(list).into_response())
}

#[utoipa::path(get, path = "/status/performance", tag = "status", responses((status = 200, description = "Queue and throughput figures", body = horde_protocol::status::Performance)))]
pub async fn performance(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.horde.performance().await?).into_response())
}

#[utoipa::path(get, path = "/status/modes", tag = "status", responses((status = 200, description = "Horde modes", body = Modes)))]
pub async fn modes(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.horde.modes().await?).into_response())
}

#[utoipa::path(put, path = "/status/modes", tag = "status", security(("apikey" = [])), request_body = horde_protocol::status::ModesInput, responses((status = 200, description = "The modes now", body = Modes), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not a moderator", body = ErrorBody)))]
pub async fn set_modes(
    State(state): State<AppState>,
    crate::api::extract::ApiKey(key): crate::api::extract::ApiKey,
    crate::api::extract::JsonBody(input): crate::api::extract::JsonBody<horde_protocol::status::ModesInput>,
) -> ApiResult<Response> {
    let viewer = super::user_of(&state, &key, false).await?;
    Ok(Json(state.horde.set_modes(viewer, input).await?).into_response())
}

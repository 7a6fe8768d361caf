//! Shared keys (`/sharedkeys`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::shared_keys::{SharedKeyDetails, SharedKeyInput};
use horde_protocol::styles::SimpleResponse;

use super::user_of;
use crate::api::error::ApiResult;
use crate::api::extract::{ApiKey, JsonBody};
use crate::api::AppState;
use horde_protocol::ErrorBody;

#[utoipa::path(put, path = "/sharedkeys", tag = "users", security(("apikey" = [])), request_body = SharedKeyInput, responses((status = 200, description = "The new key", body = SharedKeyDetails), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Anonymous, or too many keys", body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(input): JsonBody<SharedKeyInput>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.create_shared_key(viewer, input).await?).into_response())
}

#[utoipa::path(get, path = "/sharedkeys/{sharedkey_id}", tag = "users", params(("sharedkey_id" = String, Path, description = "Shared key id")), responses((status = 200, description = "The key", body = SharedKeyDetails), (status = 401, description = "No such shared key", body = ErrorBody)))]
pub async fn details(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.shared_key_details(&id).await?).into_response())
}

#[utoipa::path(patch, path = "/sharedkeys/{sharedkey_id}", tag = "users", security(("apikey" = [])), params(("sharedkey_id" = String, Path, description = "Shared key id")), request_body = SharedKeyInput, responses((status = 200, description = "The changed key", body = SharedKeyDetails), (status = 400, description = "Invalid input, or nothing to change", body = ErrorBody), (status = 401, description = "Missing or unknown API key or shared key", body = ErrorBody), (status = 403, description = "Not the owner", body = ErrorBody)))]
pub async fn modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<SharedKeyInput>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.modify_shared_key(viewer, &id, input).await?).into_response())
}

#[utoipa::path(delete, path = "/sharedkeys/{sharedkey_id}", tag = "users", security(("apikey" = [])), params(("sharedkey_id" = String, Path, description = "Shared key id")), responses((status = 200, description = "Deleted", body = SimpleResponse), (status = 401, description = "Missing or unknown API key or shared key", body = ErrorBody), (status = 403, description = "Not the owner", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    state.horde.delete_shared_key(viewer, &id).await?;
    Ok(Json(SimpleResponse { message: "OK".into() }).into_response())
}

//! Worker endpoints.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::workers::ModifyWorker;
use serde::Deserialize;

use super::{user_of, viewer_of};
use crate::api::error::ApiResult;
use crate::api::extract::{ApiKey, JsonBody, QueryParams};
use crate::api::AppState;
use horde_protocol::ErrorBody;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
}

#[utoipa::path(get, path = "/workers", tag = "workers", security((), ("apikey" = [])), params(ListQuery), responses((status = 200, description = "Online workers", body = Vec<horde_protocol::workers::WorkerDetails>)))]
pub async fn list(State(state): State<AppState>, ApiKey(key): ApiKey, QueryParams(q): QueryParams<ListQuery>) -> ApiResult<Response> {
    let viewer = viewer_of(&state, &key).await;
    let mut list = state.horde.list_workers(q.kind.as_deref(), q.name.as_deref(), viewer).await?;
    state.horde.fill_worker_teams(&mut list).await?;
    Ok(Json(list).into_response())
}

#[utoipa::path(get, path = "/workers/{id}", tag = "workers", security((), ("apikey" = [])), params(("id" = String, Path, description = "Worker id")), responses((status = 200, description = "The worker", body = horde_protocol::workers::WorkerDetails), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn details(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = viewer_of(&state, &key).await;
    let mut one = [state.horde.worker_details(&id, viewer).await?];
    state.horde.fill_worker_teams(&mut one).await?;
    let [one] = one;
    Ok(Json(one).into_response())
}

#[utoipa::path(get, path = "/workers/name/{name}", tag = "workers", security((), ("apikey" = [])), params(("name" = String, Path, description = "Worker name")), responses((status = 200, description = "The worker", body = horde_protocol::workers::WorkerDetails), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn details_by_name(State(state): State<AppState>, ApiKey(key): ApiKey, Path(name): Path<String>) -> ApiResult<Response> {
    let viewer = viewer_of(&state, &key).await;
    let mut one = [state.horde.worker_details_by_name(&name, viewer).await?];
    state.horde.fill_worker_teams(&mut one).await?;
    let [one] = one;
    Ok(Json(one).into_response())
}

#[utoipa::path(put, path = "/workers/{id}", tag = "workers", security(("apikey" = [])), params(("id" = String, Path, description = "Worker id")), request_body = ModifyWorker, responses((status = 200, description = "What changed", body = horde_protocol::workers::ModifyWorkerResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(m): JsonBody<ModifyWorker>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.modify_worker_and_team(viewer, &id, m).await?).into_response())
}

#[utoipa::path(delete, path = "/workers/{id}", tag = "workers", security(("apikey" = [])), params(("id" = String, Path, description = "Worker id")), responses((status = 200, description = "Deleted", body = horde_protocol::workers::DeletedWorker), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 423, description = "A job is in flight", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.delete_worker(viewer, &id).await?).into_response())
}

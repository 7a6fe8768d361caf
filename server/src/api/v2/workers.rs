//! Worker endpoints.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::workers::ModifyWorker;
use serde::Deserialize;

use super::{user_of, viewer_of};
use crate::api::error::ApiResult;
use crate::api::extract::{ApiKey, JsonBody};
use crate::api::AppState;

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
}

pub async fn list(State(state): State<AppState>, ApiKey(key): ApiKey, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let viewer = viewer_of(&state, &key).await;
    Ok(Json(state.horde.list_workers(q.kind.as_deref(), q.name.as_deref(), viewer)).into_response())
}

pub async fn details(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = viewer_of(&state, &key).await;
    Ok(Json(state.horde.worker_details(&id, viewer).await?).into_response())
}

pub async fn details_by_name(State(state): State<AppState>, ApiKey(key): ApiKey, Path(name): Path<String>) -> ApiResult<Response> {
    let viewer = viewer_of(&state, &key).await;
    Ok(Json(state.horde.worker_details_by_name(&name, viewer).await?).into_response())
}

pub async fn modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(m): JsonBody<ModifyWorker>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.modify_worker(viewer, &id, m).await?).into_response())
}

pub async fn delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.delete_worker(viewer, &id).await?).into_response())
}

//! Messages to workers (`/workers/messages`), and the pop answer that carries them.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::styles::SimpleResponse;
use horde_protocol::worker_messages::{PopMessage, WorkerMessage, WorkerMessageInput};
use serde::{Deserialize, Serialize};

use super::user_of;
use crate::api::error::ApiResult;
use crate::api::extract::{ApiKey, JsonBody, QueryParams};
use crate::api::AppState;
use horde_protocol::ErrorBody;

/// A pop answer with the worker's unexpired messages (`messages`, left out when there are none,
/// so strict clients that do not know the field read the answer as before).
#[derive(Serialize)]
pub struct WithMessages<T: Serialize> {
    #[serde(flatten)]
    pub popped: T,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<PopMessage>,
}

/// `popped` with the messages for the worker called `name`.
pub async fn with_messages<T: Serialize>(state: &AppState, name: Option<&str>, popped: T) -> ApiResult<Response> {
    let messages = match name {
        Some(n) => state.horde.pop_messages(n.trim()).await?,
        None => Vec::new(),
    };
    Ok(Json(WithMessages { popped, messages }).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Whose messages (moderators; others see their own).
    user_id: Option<i64>,
    worker_id: Option<String>,
    /// `active` (the default), `expired` or `all`.
    validity: Option<String>,
    /// Page of 50, from 1.
    page: Option<i64>,
}

#[utoipa::path(get, path = "/workers/messages", tag = "workers", security(("apikey" = [])), params(ListQuery), responses((status = 200, description = "Messages", body = Vec<WorkerMessage>), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Another user's messages", body = ErrorBody)))]
pub async fn list(State(state): State<AppState>, ApiKey(key): ApiKey, QueryParams(q): QueryParams<ListQuery>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let list = state
        .horde
        .list_worker_messages(viewer, q.user_id, q.worker_id.as_deref(), q.validity.as_deref(), q.page)
        .await?;
    Ok(Json(list).into_response())
}

#[utoipa::path(post, path = "/workers/messages", tag = "workers", security(("apikey" = [])), request_body = WorkerMessageInput, responses((status = 200, description = "The message", body = WorkerMessage), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not one's own worker, or anonymous", body = ErrorBody), (status = 404, description = "No such worker", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    JsonBody(input): JsonBody<WorkerMessageInput>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.create_worker_message(viewer, input).await?).into_response())
}

#[utoipa::path(get, path = "/workers/messages/{message_id}", tag = "workers", params(("message_id" = String, Path, description = "Message id")), responses((status = 200, description = "The message", body = WorkerMessage), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn details(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.worker_message(&id).await?).into_response())
}

#[utoipa::path(delete, path = "/workers/messages/{message_id}", tag = "workers", security(("apikey" = [])), params(("message_id" = String, Path, description = "Message id")), responses((status = 200, description = "Deleted", body = SimpleResponse), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Neither its writer nor a moderator", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    state.horde.delete_worker_message(viewer, &id).await?;
    Ok(Json(SimpleResponse { message: "OK".into() }).into_response())
}

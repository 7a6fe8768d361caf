//! Teams (`/teams`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::teams::{DeletedTeam, TeamDetails, TeamInput, TeamModified};

use super::user_of;
use crate::api::error::ApiResult;
use crate::api::extract::{ApiKey, JsonBody};
use crate::api::AppState;
use horde_protocol::ErrorBody;

#[utoipa::path(get, path = "/teams", tag = "workers", responses((status = 200, description = "Every team with its members' figures", body = Vec<TeamDetails>)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.horde.list_teams().await?).into_response())
}

#[utoipa::path(post, path = "/teams", tag = "workers", security(("apikey" = [])), request_body = TeamInput, responses((status = 200, description = "The new team", body = TeamModified), (status = 400, description = "Invalid input, or the name is taken", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not trusted, or anonymous", body = ErrorBody)))]
pub async fn create(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(input): JsonBody<TeamInput>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.create_team(viewer, input).await?).into_response())
}

#[utoipa::path(get, path = "/teams/{team_id}", tag = "workers", params(("team_id" = String, Path, description = "Team id")), responses((status = 200, description = "The team", body = TeamDetails), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn details(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.team_details(&id).await?).into_response())
}

#[utoipa::path(patch, path = "/teams/{team_id}", tag = "workers", security(("apikey" = [])), params(("team_id" = String, Path, description = "Team id")), request_body = TeamInput, responses((status = 200, description = "What changed", body = TeamModified), (status = 400, description = "Invalid input, or nothing to change", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Neither its owner nor a moderator", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn modify(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<TeamInput>,
) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.modify_team(viewer, &id, input).await?).into_response())
}

#[utoipa::path(delete, path = "/teams/{team_id}", tag = "workers", security(("apikey" = [])), params(("team_id" = String, Path, description = "Team id")), responses((status = 200, description = "Deleted", body = DeletedTeam), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Neither its owner nor a moderator", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn delete(State(state): State<AppState>, ApiKey(key): ApiKey, Path(id): Path<String>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.delete_team(viewer, &id).await?).into_response())
}

//! `POST /kudos/award`: moderators award kudos.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::users::{KudosAwardRequest, KudosAwarded};

use super::user_of;
use crate::api::error::ApiResult;
use crate::api::extract::{ApiKey, JsonBody};
use crate::api::AppState;
use horde_protocol::ErrorBody;

#[utoipa::path(post, path = "/kudos/award", tag = "users", security(("apikey" = [])), request_body = KudosAwardRequest, responses((status = 200, description = "Kudos awarded (from the mint)", body = KudosAwarded), (status = 400, description = "Invalid input or target", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not a moderator", body = ErrorBody)))]
pub async fn award(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(a): JsonBody<KudosAwardRequest>) -> ApiResult<Response> {
    let viewer = user_of(&state, &key, false).await?;
    let awarded = state
        .horde
        .award_kudos(viewer, a.username.as_deref().unwrap_or(""), a.amount)
        .await?;
    Ok(Json(KudosAwarded { awarded }).into_response())
}

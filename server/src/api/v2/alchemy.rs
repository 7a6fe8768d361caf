//! Alchemy endpoints: a requester's `/interrogate/async` and `/interrogate/status/{id}`, an
//! alchemist's `/interrogate/pop` and `/interrogate/submit`. Images travel through the image
//! links (`/images/{token}`), as generations do.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_core::Submission;
use horde_protocol::alchemy::{AlchemyAsyncRequest, AlchemyAsyncResponse, AlchemyPopRequest, AlchemySubmitRequest};
use horde_protocol::text::SubmitResponse;
use horde_protocol::ErrorBody;

use super::image::base_url;
use super::text::NO_WORKER_MESSAGE;
use super::user_of;
use crate::api::error::ApiResult;
use crate::api::extract::{ApiKey, JsonBody};
use crate::api::AppState;

#[utoipa::path(post, path = "/interrogate/async", tag = "alchemy", security((), ("apikey" = [])), request_body = AlchemyAsyncRequest, responses((status = 202, description = "Queued", body = AlchemyAsyncResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn interrogate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiKey(key): ApiKey,
    JsonBody(req): JsonBody<AlchemyAsyncRequest>,
) -> ApiResult<Response> {
    let user = user_of(&state, &key, true).await?;
    Ok(match state.horde.interrogate(user, req, Some(peer.ip())).await? {
        // The public API has no dry run for alchemy; a request never asks for one.
        Submission::DryRun(kudos) => (StatusCode::OK, Json(horde_protocol::text::DryRun { kudos })).into_response(),
        Submission::Queued(a) => {
            let body = AlchemyAsyncResponse {
                id: a.id.to_string(),
                message: (!a.possible).then(|| NO_WORKER_MESSAGE.to_string()),
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    })
}

#[utoipa::path(get, path = "/interrogate/status/{id}", tag = "alchemy", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "Each form's state and result", body = horde_protocol::alchemy::AlchemyStatusResponse), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn status(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let base = base_url(&state, &headers);
    Ok(Json(state.horde.alchemy_status(&id, &base).await?).into_response())
}

#[utoipa::path(delete, path = "/interrogate/status/{id}", tag = "alchemy", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "Cancelled; forms done so far", body = horde_protocol::alchemy::AlchemyStatusResponse), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn cancel(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult<Response> {
    let base = base_url(&state, &headers);
    Ok(Json(state.horde.cancel_alchemy(&id, &base).await?).into_response())
}

#[utoipa::path(post, path = "/interrogate/pop", tag = "alchemy", security(("apikey" = [])), request_body = AlchemyPopRequest, responses((status = 200, description = "Forms, or none with the reasons", body = horde_protocol::alchemy::AlchemyPopResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn pop(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiKey(key): ApiKey,
    JsonBody(req): JsonBody<AlchemyPopRequest>,
) -> ApiResult<Response> {
    let user = user_of(&state, &key, false).await?;
    let base = base_url(&state, &headers);
    let started = std::time::Instant::now();
    let popped = state.horde.pop_alchemy(user, req, &base, Some(peer.ip())).await;
    state.metrics.observe_pop("alchemy", started);
    Ok(Json(popped?).into_response())
}

#[utoipa::path(post, path = "/interrogate/submit", tag = "alchemy", security(("apikey" = [])), request_body = AlchemySubmitRequest, responses((status = 200, description = "Kudos earned", body = SubmitResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn submit(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    JsonBody(req): JsonBody<AlchemySubmitRequest>,
) -> ApiResult<Response> {
    let user = user_of(&state, &key, false).await?;
    let reward = state.horde.submit_alchemy(user, req).await?;
    Ok(Json(SubmitResponse { reward }).into_response())
}

//! Text generation endpoints.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_core::Submission;
use horde_protocol::text::{AsyncAccepted, DryRun, GenerateTextRequest, SubmitResponse, TextPopRequest, TextSubmitRequest};

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::StreamExt;
use horde_protocol::stream::{TextProgressRequest, TextProgressResponse};

use super::user_of;
use crate::api::error::{ApiError, ApiResult};
use crate::api::events::follow_text;
use crate::api::extract::{ApiKey, JsonBody};
use crate::api::AppState;
use horde_protocol::ErrorBody;

/// Message attached when no online worker can serve a request.
pub const NO_WORKER_MESSAGE: &str = "Warning: No available workers can fulfill this request. It will expire in 20 minutes unless a worker appears. Please consider reducing its size or choosing a different model.";

#[utoipa::path(post, path = "/generate/text/async", tag = "text", security((), ("apikey" = [])), request_body = horde_protocol::text::GenerateTextRequest, responses((status = 202, description = "Queued", body = AsyncAccepted), (status = 200, description = "Dry run: the price", body = DryRun), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn generate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiKey(key): ApiKey,
    JsonBody(req): JsonBody<GenerateTextRequest>,
) -> ApiResult<Response> {
    state.horde.check_not_in_maintenance().await?;
    let style_key = state.horde.style_shared_key_for(req.style.as_deref()).await?;
    let submitted = match (style_key, super::shared_key_of(&state, &key).await?) {
        (Some(styles), _) => state.horde.generate_text_shared(styles, req, Some(peer.ip()), true).await?,
        (None, Some(shared)) => state.horde.generate_text_shared(shared, req, Some(peer.ip()), false).await?,
        (None, None) => {
            let user = user_of(&state, &key, true).await?;
            state.horde.generate_text(user, req, Some(peer.ip())).await?
        }
    };
    Ok(match submitted {
        Submission::DryRun(kudos) => (StatusCode::OK, Json(DryRun { kudos })).into_response(),
        Submission::Queued(a) => {
            let message = (!a.possible).then(|| NO_WORKER_MESSAGE.to_string());
            let body = AsyncAccepted {
                id: a.id.to_string(),
                kudos: horde_core::kudos::to_kudos(a.kudos),
                message,
                warnings: None,
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
    })
}

#[utoipa::path(get, path = "/generate/text/status/{id}", tag = "text", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "Status and generations", body = horde_protocol::text::TextStatus), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn status(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.text_status(&id).await?).into_response())
}

#[utoipa::path(delete, path = "/generate/text/status/{id}", tag = "text", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "Cancelled; what was done so far", body = horde_protocol::text::TextStatus), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.horde.cancel_text(&id).await?).into_response())
}

#[utoipa::path(post, path = "/generate/text/pop", tag = "text", security(("apikey" = [])), request_body = TextPopRequest, responses((status = 200, description = "A job, or none with the reasons", body = horde_protocol::text::TextPopResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn pop(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiKey(key): ApiKey,
    JsonBody(req): JsonBody<TextPopRequest>,
) -> ApiResult<Response> {
    let user = user_of(&state, &key, false).await?;
    let started = std::time::Instant::now();
    let name = req.name.clone();
    state.horde.check_new_worker(user, name.as_deref().unwrap_or("")).await?;
    let popped = state.horde.pop_text(user, req, Some(peer.ip())).await;
    state.metrics.observe_pop("text", started);
    super::worker_messages::with_messages(&state, name.as_deref(), popped?).await
}

#[utoipa::path(post, path = "/generate/text/progress", tag = "text", security(("apikey" = [])), request_body = TextProgressRequest, responses((status = 200, description = "Recorded; `cancelled` tells the worker it may stop and submit what it has", body = TextProgressResponse), (status = 400, description = "Invalid input, or text that does not extend the last report", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not the job's worker", body = ErrorBody), (status = 404, description = "Unknown job", body = ErrorBody)))]
/// Progress protocol 1 (an extension of ours): the job's worker reports the text generated so
/// far, which streaming clients receive as it grows. Workers that never call it are unaffected.
pub async fn progress(
    State(state): State<AppState>,
    ApiKey(key): ApiKey,
    JsonBody(req): JsonBody<TextProgressRequest>,
) -> ApiResult<Response> {
    let user = user_of(&state, &key, false).await?;
    Ok(Json(state.horde.text_progress(user, req).await?).into_response())
}

#[utoipa::path(get, path = "/generate/text/stream/{id}", tag = "text", params(("id" = String, Path, description = "Request id")), responses((status = 200, description = "Server-Sent Events: `status` (standing, when it changes), `delta` {job, text} (text appended to a job), `reset` {job, text} (replace a job's text), `generation` {job, generation} (a job finished), `aborted` {job} (a job failed; its text is void), `error` {message, rc}, and last `done` (the same object as the status endpoint)", content_type = "text/event-stream", body = String), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Rate limited", body = ErrorBody)))]
/// Follows a text request as Server-Sent Events, from its beginning (a client that connects
/// late first gets everything it missed).
pub async fn stream(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let events = follow_text(state.horde.clone(), &id, &state.options.closing).await?;
    let sse = events.map(|e| {
        Ok::<_, Infallible>(match e {
            Ok(e) => Event::default().event(e.name()).json_data(e.data()).unwrap_or_default(),
            Err(e) => {
                let e = ApiError::from(e);
                Event::default()
                    .event("error")
                    .json_data(ErrorBody {
                        message: e.message,
                        rc: e.rc.to_string(),
                    })
                    .unwrap_or_default()
            }
        })
    });
    Ok(Sse::new(sse).keep_alive(KeepAlive::default()).into_response())
}

#[utoipa::path(post, path = "/generate/text/submit", tag = "text", security(("apikey" = [])), request_body = TextSubmitRequest, responses((status = 200, description = "Kudos earned", body = SubmitResponse), (status = 400, description = "Invalid input", body = ErrorBody), (status = 401, description = "Missing or unknown API key", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn submit(State(state): State<AppState>, ApiKey(key): ApiKey, JsonBody(req): JsonBody<TextSubmitRequest>) -> ApiResult<Response> {
    let user = user_of(&state, &key, false).await?;
    let reward = state.horde.submit_text(user, req).await?;
    Ok(Json(SubmitResponse { reward }).into_response())
}

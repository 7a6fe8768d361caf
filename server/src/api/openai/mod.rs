//! The OpenAI-compatible API under `/v1`, backed by the horde: `GET /v1/models` (text models
//! with online workers), `POST /v1/completions` and `POST /v1/chat/completions`, whole or
//! streamed (`stream: true`, SSE chunks ending in `data: [DONE]`). Requests become ordinary text
//! requests of the caller (`Authorization: Bearer <horde API key>`, or anonymous), so kudos are
//! charged exactly as for `/api/v2/generate/text/async`. Errors come in OpenAI's shape.

pub mod convert;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use horde_core::text::StreamEvent;
use horde_core::{Horde, HordeError, Submission};
use horde_protocol::openai::{ChatCompletionRequest, CompletionRequest, ErrorDetail, ErrorResponse, Model, ModelList};
use horde_protocol::text::TextStatus;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::ApiError;
use super::events::follow_text;
use super::extract::ApiKey;
use super::{ApiOptions, AppState};
use convert::Mapped;
use stream::{Answer, Flavor};

/// The `/v1` routes; completions count in the `generate` rate-limit group.
pub fn router(options: &ApiOptions) -> Router<AppState> {
    let generate = utoipa_axum::router::OpenApiRouter::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions));
    let (generate, _) = options.rate_limits.apply("generate", generate).split_for_parts();
    Router::new()
        .route("/v1/models", get(models))
        .merge(generate)
        .route("/v1/{*rest}", any(|| async { OpenAiError::not_found() }))
}

/// An error as OpenAI clients expect it.
#[derive(Debug)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub message: String,
    pub param: Option<&'static str>,
    pub code: Option<String>,
}

impl OpenAiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param,
            code: None,
        }
    }

    fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: "Unknown endpoint of the OpenAI-compatible API.".into(),
            param: None,
            code: Some("unknown_url".into()),
        }
    }

    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        }
    }

    /// The error object (also sent as a stream chunk when a stream fails).
    pub fn body(&self) -> ErrorResponse {
        ErrorResponse {
            error: ErrorDetail {
                message: self.message.clone(),
                kind: self.kind().to_string(),
                param: self.param.map(str::to_string),
                code: self.code.clone(),
            },
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        Self {
            status: e.status,
            message: e.message,
            param: None,
            code: Some(e.rc.to_string()),
        }
    }
}

impl From<HordeError> for OpenAiError {
    fn from(e: HordeError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// `GET /v1/models`: the text models some online worker serves.
async fn models(State(state): State<AppState>) -> Result<Json<ModelList>, OpenAiError> {
    let data = state
        .horde
        .text_models()
        .await?
        .into_iter()
        .map(|m| Model {
            id: m.name,
            object: "model".into(),
            created: 0,
            owned_by: "horde".into(),
        })
        .collect();
    Ok(Json(ModelList {
        object: "list".into(),
        data,
    }))
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, OpenAiError> {
    serde_json::from_slice(body).map_err(|e| OpenAiError::invalid(format!("Invalid JSON body: {e}"), None))
}

async fn completions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiKey(key): ApiKey,
    body: Bytes,
) -> Response {
    let answer = async {
        let mapped = convert::completion(parse::<CompletionRequest>(&body)?)?;
        run(&state, peer, key, mapped, Flavor::Completion).await
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

async fn chat_completions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiKey(key): ApiKey,
    body: Bytes,
) -> Response {
    let answer = async {
        let mapped = convert::chat(parse::<ChatCompletionRequest>(&body)?)?;
        run(&state, peer, key, mapped, Flavor::Chat).await
    };
    answer.await.unwrap_or_else(IntoResponse::into_response)
}

/// Cancels the request when dropped armed: the client went away before its answer was whole.
struct CancelOnDrop {
    horde: Arc<Horde>,
    id: Uuid,
    armed: bool,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            // Drop cannot wait: the cancel runs as its own task (through the shared log, maybe).
            let (horde, id) = (self.horde.clone(), self.id.to_string());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = horde.cancel_text(&id).await;
                });
            }
        }
    }
}

async fn run(state: &AppState, peer: SocketAddr, key: Option<String>, mapped: Mapped, flavor: Flavor) -> Result<Response, OpenAiError> {
    let user = match &key {
        Some(k) => state.horde.authenticate(k).await?,
        None => horde_core::accounts::ANONYMOUS_USER_ID,
    };
    state.horde.check_ip(Some(peer.ip()))?;
    if !state.horde.text_servable(user, &mapped.request).await? {
        let message = if mapped.model.is_empty() {
            "No online worker can serve this request now.".to_string()
        } else {
            format!("No online worker serves the model '{}' with these settings now.", mapped.model)
        };
        return Err(OpenAiError {
            status: if mapped.model.is_empty() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::NOT_FOUND
            },
            message,
            param: Some("model"),
            code: Some("model_not_found".into()),
        });
    }
    let prompt_tokens = convert::estimate_tokens(&mapped.request.prompt);
    let id = match state.horde.submit_text_request(user, mapped.request).await? {
        Submission::Queued(a) => a.id,
        Submission::DryRun(_) => return Err(OpenAiError::invalid("dry_run is not supported here.", None)),
    };
    let mut guard = CancelOnDrop {
        horde: state.horde.clone(),
        id,
        armed: true,
    };
    let events = follow_text(state.horde.clone(), &id.to_string(), &state.options.closing).await?;
    let mut answer = Answer::new(
        flavor,
        id,
        mapped.model.clone(),
        mapped.max_tokens,
        mapped.include_usage,
        prompt_tokens,
    );
    if mapped.stream {
        let first = answer.opening();
        let chunks = events.flat_map(move |event| {
            let out = answer.chunks(event);
            if answer.finished() {
                guard.disarm();
            }
            futures_util::stream::iter(out)
        });
        let sse = futures_util::stream::iter(first)
            .chain(chunks)
            .map(|data| Ok::<_, std::convert::Infallible>(Event::default().data(data)));
        return Ok(Sse::new(sse).keep_alive(KeepAlive::default()).into_response());
    }
    let status: TextStatus = {
        let mut events = std::pin::pin!(events);
        let mut done = None;
        while let Some(e) = events.next().await {
            if let StreamEvent::Done(status) = e? {
                done = Some(status);
            }
        }
        done.ok_or_else(|| OpenAiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "The horde is shutting down; the request was cancelled.".into(),
            param: None,
            code: Some("shutting_down".into()),
        })?
    };
    guard.disarm();
    answer
        .whole(&status)
        .map(|json| ([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response())
}

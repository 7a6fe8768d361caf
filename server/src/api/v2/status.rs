//! Horde status endpoints.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_protocol::status::{Heartbeat, Modes};
use serde::Deserialize;

use crate::api::error::ApiResult;
use crate::api::AppState;

pub async fn heartbeat(State(state): State<AppState>) -> Response {
    let message = if state.horde.storage_ok().await { "OK" } else { "DOWN" };
    Json(Heartbeat {
        message: message.into(),
        version: horde_core::VERSION.into(),
    })
    .into_response()
}

#[derive(Debug, Deserialize)]
pub struct ModelsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    min_count: Option<i64>,
    max_count: Option<i64>,
}

pub async fn models(State(state): State<AppState>, Query(q): Query<ModelsQuery>) -> ApiResult<Response> {
    // Image models unless text is asked for, like the public horde.
    let list = match q.kind.as_deref() {
        Some("text") => state.horde.text_models(),
        Some("image") | None => state.horde.image_models(),
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

pub async fn model(State(state): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let list: Vec<_> = state
        .horde
        .image_models()
        .into_iter()
        .chain(state.horde.text_models())
        .filter(|m| m.name == name)
        .collect();
    Ok(Json(list).into_response())
}

pub async fn performance(State(state): State<AppState>) -> Response {
    Json(state.horde.performance()).into_response()
}

pub async fn modes() -> Response {
    Json(Modes::default()).into_response()
}

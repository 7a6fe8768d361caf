//! Request extractors whose failures are JSON errors: bodies, API keys, client identity.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body. Malformed JSON or wrong types answer 400 `ValidationError`, never 500; an empty
/// body counts as `{}`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLarge",
                    format!("The body may be at most {} bytes.", super::MAX_BODY_BYTES),
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "ValidationError", format!("Could not read the body: {e}"))
            }
        })?;
        let slice: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        serde_json::from_slice(slice).map(JsonBody).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                format!("Input payload validation failed: {e}"),
            )
        })
    }
}

/// Query parameters. Wrong types answer 400 `ValidationError` as JSON.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ValidationError",
                    format!("Invalid query: {}", e.body_text()),
                )
            })
    }
}

/// The API key: the `apikey` header, else an `Authorization: Bearer` token (OpenAI clients).
pub struct ApiKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiKey(api_key(&parts.headers)))
    }
}

/// The key a request carries (see `ApiKey`).
pub fn api_key(headers: &axum::http::HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    header("apikey")
        .or_else(|| {
            header("authorization").and_then(|v| {
                v.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
            })
        })
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The client agent, from `Client-Agent` or `client_agent` (horde-sdk's spelling).
pub fn client_agent(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("client-agent")
        .or_else(|| headers.get("client_agent"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown:0:unknown")
        .chars()
        .take(200)
        .collect()
}

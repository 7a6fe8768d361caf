//! Answers the frameworks give on their own, rewritten as the horde's JSON errors
//! (`{"message", "rc"}`): axum's empty 405 for a wrong method (as the router's fallback for
//! it), and the 500 that Leptos's server functions answer when their arguments are malformed
//! JSON or of the wrong types (a 400: the client's mistake, not the server's).

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The header Leptos puts on a server function's error answer.
const SERVER_FN_ERROR_HEADER: &str = "serverfnerror";

/// Largest server-function error body read back to rewrite it (they are one line of text).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A wrong method's answer: 405 with a JSON body (the router adds the route's `Allow` header).
pub async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "The method is not allowed for the requested URL.",
    )
    .into_response()
}

/// Middleware for the server functions: arguments that do not decode (Leptos answers 500 with
/// `Deserialization|…` or `Args|…`) answer 400 `ValidationError` as JSON. Other answers, errors
/// of the horde's own included, pass unchanged (the pages decode those).
pub async fn server_fn_arguments_as_400(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR || !response.headers().contains_key(SERVER_FN_ERROR_HEADER) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ERROR_BODY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let text = String::from_utf8_lossy(&bytes);
    match text.split_once('|') {
        Some(("Deserialization" | "Args", detail)) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!("Input payload validation failed: {}", detail.chars().take(300).collect::<String>()),
        )
        .into_response(),
        _ => Response::from_parts(parts, Body::from(bytes)),
    }
}

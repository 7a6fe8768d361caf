//! One error type for every endpoint: `{"message", "rc"}` with the status the public horde uses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use horde_core::{ErrorClass, HordeError};
use horde_protocol::ErrorBody;

/// An error answered as JSON.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub rc: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, rc: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            rc,
            message: message.into(),
        }
    }
    pub fn not_found_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", "The requested URL was not found on this server.")
    }
    pub fn missing_key() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "InvalidAPIKey", "An apikey header is required.")
    }
}

impl From<HordeError> for ApiError {
    fn from(e: HordeError) -> Self {
        let class = e.class();
        if class == ErrorClass::Internal {
            tracing::error!(error = %e, "internal error");
        }
        let status = StatusCode::from_u16(class.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, e.rc(), e.public_message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                message: self.message,
                rc: self.rc.to_string(),
            }),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

//! The error body every failing endpoint answers with, and the classes of failure with the HTTP
//! status each is answered with.

use serde::{Deserialize, Serialize};

/// `{"message": "...", "rc": "..."}`, plus per-field details for validation failures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub message: String,
    pub rc: String,
}

/// Broad class of a failure, and so its HTTP status (the public horde's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Locked,
    TooMany,
    /// A capacity limit of this horde was reached; retrying later may work.
    Unavailable,
    Internal,
}

impl ErrorClass {
    /// The HTTP status code of the answer.
    pub fn status(self) -> u16 {
        match self {
            ErrorClass::BadRequest => 400,
            ErrorClass::Unauthorized => 401,
            ErrorClass::Forbidden => 403,
            ErrorClass::NotFound => 404,
            ErrorClass::Locked => 423,
            ErrorClass::TooMany => 429,
            ErrorClass::Unavailable => 503,
            ErrorClass::Internal => 500,
        }
    }
}

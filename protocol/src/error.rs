//! The error body every failing endpoint answers with.

use serde::{Deserialize, Serialize};

/// `{"message": "...", "rc": "..."}`, plus per-field details for validation failures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub message: String,
    pub rc: String,
}

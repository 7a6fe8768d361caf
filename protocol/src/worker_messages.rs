//! Messages to workers (`/workers/messages`): moderators write to any worker or to all of them,
//! owners to their own; a worker's pops carry its unexpired messages.

use serde::{Deserialize, Serialize};

/// `POST /workers/messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerMessageInput {
    /// The worker; none means every worker (moderators only).
    #[serde(default)]
    pub worker_id: Option<String>,
    /// Hours until it expires (default 12, at most 720).
    #[serde(default)]
    pub expiry: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
    /// Who it is from (moderators; others always send as their user id).
    #[serde(default)]
    pub origin: Option<String>,
}

/// A message as a pop carries it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PopMessage {
    pub id: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// RFC 822 date.
    pub expiry: String,
}

/// A message as `/workers/messages` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerMessage {
    pub id: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    pub expiry: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    pub user_id: String,
    pub created: String,
}

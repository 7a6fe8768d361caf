//! Horde status: heartbeat, models, performance, modes.

use serde::{Deserialize, Serialize};

/// `GET /api/v2/status/heartbeat`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    pub message: String,
    pub version: String,
}

/// One entry of `GET /api/v2/status/models`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveModel {
    pub name: String,
    pub count: i64,
    pub performance: f64,
    pub queued: f64,
    pub jobs: f64,
    pub eta: i64,
    #[serde(rename = "type")]
    pub kind: String,
}

/// `GET /api/v2/status/performance`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Performance {
    pub queued_requests: i64,
    pub queued_text_requests: i64,
    pub worker_count: i64,
    pub text_worker_count: i64,
    pub thread_count: i64,
    pub text_thread_count: i64,
    pub queued_megapixelsteps: f64,
    pub past_minute_megapixelsteps: f64,
    pub queued_tokens: f64,
    pub past_minute_tokens: f64,
    pub queued_forms: f64,
    pub interrogator_count: i64,
    pub interrogator_thread_count: i64,
}

/// `GET /api/v2/status/modes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Modes {
    pub maintenance_mode: bool,
    pub invite_only_mode: bool,
    pub raid_mode: bool,
}

/// `PUT /api/v2/status/modes`: the modes to change (moderators).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModesInput {
    /// New generation requests are refused (`MaintenanceMode`).
    #[serde(default)]
    pub maintenance_mode: Option<bool>,
    /// Accounts add workers only as far as their `worker_invited` allows (`WorkerInviteOnly`).
    #[serde(default)]
    pub invite_only_mode: Option<bool>,
    /// New accounts cannot register (`RaidMode`).
    #[serde(default)]
    pub raid_mode: Option<bool>,
}

//! Worker details and management.

use serde::{Deserialize, Serialize};

/// Kudos a worker earned, by kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerKudosDetails {
    pub generated: f64,
    pub uptime: i64,
}

/// A worker's team (both `None` when it has none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamLite {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// `GET /api/v2/workers`, `/workers/{id}`, `/workers/name/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerDetails {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub id: String,
    pub online: bool,
    pub requests_fulfilled: i64,
    pub kudos_rewards: f64,
    pub kudos_details: WorkerKudosDetails,
    pub performance: String,
    pub threads: i64,
    pub uptime: i64,
    pub maintenance_mode: bool,
    pub info: String,
    pub nsfw: bool,
    pub trusted: bool,
    pub flagged: bool,
    pub uncompleted_jobs: i64,
    pub models: Vec<String>,
    pub team: TeamLite,
    pub bridge_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_context_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_generated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pixels: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub megapixelsteps_generated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub img2img: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub painting: Option<bool>,
    #[serde(default, rename = "post-processing", skip_serializing_if = "Option::is_none")]
    pub post_processing: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlnet: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspicious: Option<i64>,
}

/// `PUT /api/v2/workers/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModifyWorker {
    #[serde(default)]
    pub maintenance: Option<bool>,
    #[serde(default)]
    pub maintenance_msg: Option<String>,
    #[serde(default)]
    pub paused: Option<bool>,
    #[serde(default)]
    pub info: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// A team's id to join, or `""` to leave the worker's team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// Answer of `PUT /api/v2/workers/{id}`: the fields that changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModifyWorkerResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The team's name, or `"None"` after leaving it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// Answer of `DELETE /api/v2/workers/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletedWorker {
    pub deleted_id: String,
    pub deleted_name: String,
}

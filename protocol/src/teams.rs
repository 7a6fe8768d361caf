//! Teams (`/teams`): named groups of workers, with their summed figures.

use serde::{Deserialize, Serialize};

/// `POST /teams`, `PATCH /teams/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub info: Option<String>,
}

/// What `POST|PATCH /teams…` stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamModified {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
}

/// `DELETE /teams/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletedTeam {
    pub deleted_id: String,
    pub deleted_name: String,
}

/// A team member, briefly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerLite {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub id: String,
    pub online: bool,
}

/// A model and how many of the team's workers serve it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelCount {
    pub name: String,
    pub count: i64,
}

/// A team with its members' summed figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamDetails {
    pub id: String,
    pub name: String,
    pub info: String,
    /// The owner, as `name#id`.
    pub creator: String,
    pub requests_fulfilled: i64,
    pub kudos: f64,
    /// Seconds its workers were online.
    pub uptime: i64,
    pub worker_count: i64,
    pub workers: Vec<WorkerLite>,
    pub models: Vec<ModelCount>,
}

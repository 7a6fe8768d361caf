//! Accounts and kudos.

use serde::{Deserialize, Serialize};

/// Kudos by kind of movement.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KudosDetails {
    pub accumulated: f64,
    pub gifted: f64,
    pub donated: f64,
    pub admin: f64,
    pub received: f64,
    pub recurring: f64,
    pub awarded: f64,
    pub styled: f64,
}

/// Counts of tokens / megapixelsteps.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ThingRecords {
    pub megapixelsteps: f64,
    pub tokens: i64,
}

/// Counts of requests per type.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AmountRecords {
    pub image: i64,
    pub text: i64,
    pub interrogation: i64,
}

/// What a user asked for and contributed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserRecords {
    pub usage: ThingRecords,
    pub contribution: ThingRecords,
    pub fulfillment: AmountRecords,
    pub request: AmountRecords,
}

/// Ids of a user's in-flight requests (only shown to the user and moderators).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveGenerations {
    pub text: Vec<String>,
    pub image: Vec<String>,
    pub alchemy: Vec<String>,
}

/// `GET /api/v2/find_user`, `/users`, `/users/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserDetails {
    pub username: String,
    pub id: i64,
    pub kudos: f64,
    pub kudos_details: KudosDetails,
    pub records: UserRecords,
    pub concurrency: i64,
    pub worker_invited: i64,
    pub moderator: bool,
    pub trusted: bool,
    pub flagged: bool,
    /// Marked deleted (see `DELETE /users/{id}`); sent only when true (horde-sdk's strict model
    /// of user details has no such field).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub pseudonymous: bool,
    pub worker_count: i64,
    pub account_age: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_generations: Option<ActiveGenerations>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_comment: Option<String>,
}

/// `PUT /api/v2/users/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModifyUser {
    #[serde(default)]
    pub kudos: Option<f64>,
    #[serde(default)]
    pub concurrency: Option<i64>,
    #[serde(default)]
    pub moderator: Option<bool>,
    #[serde(default)]
    pub trusted: Option<bool>,
    #[serde(default)]
    pub flagged: Option<bool>,
    #[serde(default)]
    pub worker_invited: Option<i64>,
    #[serde(default)]
    pub admin_comment: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub public_workers: Option<bool>,
    #[serde(default)]
    pub contact: Option<String>,
    /// Takes back the account's deletion (its own request, or a moderator's), before it is wiped.
    #[serde(default)]
    pub undelete: Option<bool>,
}

/// Answer of `PUT /api/v2/users/{id}`: the fields that changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModifyUserResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_kudos: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderator: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_invited: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_workers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undelete: Option<bool>,
}

/// `POST /api/v2/register`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    #[serde(default)]
    pub username: Option<String>,
}

/// A freshly issued API key; it is shown once and stored only as a keyed hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewApiKey {
    pub api_key: String,
    pub id: i64,
    pub username: String,
}

/// `POST /api/v2/dev/test-user` (only with `--dev-test-users`, loopback callers only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestUserRequest {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub oauth_id: Option<String>,
    #[serde(default)]
    pub moderator: Option<bool>,
    #[serde(default)]
    pub trusted: Option<bool>,
    #[serde(default)]
    pub kudos: Option<f64>,
}

/// Answer of the test-user route.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestUserResponse {
    pub api_key: String,
    pub user_id: String,
    pub username: String,
}

/// `POST /api/v2/kudos/transfer`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KudosTransferRequest {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub amount: Option<f64>,
}

/// Answer of a transfer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KudosTransferred {
    pub transferred: f64,
}

/// `POST /api/v2/kudos/award` (moderators).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KudosAwardRequest {
    /// `name#id`.
    #[serde(default)]
    pub username: Option<String>,
    /// Kudos (default 100).
    #[serde(default)]
    pub amount: Option<f64>,
}

/// Answer of an award.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KudosAwarded {
    pub awarded: f64,
}

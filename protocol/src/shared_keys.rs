//! Shared keys (`/sharedkeys`): keys an account hands out so others can generate on its kudos,
//! within a kudos limit and per-job limits.

use serde::{Deserialize, Serialize};

/// `PUT /sharedkeys` and `PATCH /sharedkeys/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedKeyInput {
    /// Kudos the key may spend; -1 for no limit (default 5000).
    #[serde(default)]
    pub kudos: Option<i64>,
    /// Days until the key expires; -1 for never (the default).
    #[serde(default)]
    pub expiry: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    /// Most pixels per image job; -1 for no limit.
    #[serde(default)]
    pub max_image_pixels: Option<i64>,
    /// Most steps per image job; -1 for no limit.
    #[serde(default)]
    pub max_image_steps: Option<i64>,
    /// Most tokens per text job; -1 for no limit.
    #[serde(default)]
    pub max_text_tokens: Option<i64>,
}

/// A shared key as `GET /sharedkeys/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedKeyDetails {
    pub id: String,
    /// The owner, as `name#id`.
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Kudos the key may still spend; -1 for no limit.
    pub kudos: i64,
    /// When the key expires (RFC 822), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// Kudos spent through the key so far.
    pub utilized: i64,
    pub max_image_pixels: i64,
    pub max_image_steps: i64,
    pub max_text_tokens: i64,
}

//! Styles and collections (`/styles/image`, `/styles/text`, `/collections`): wire types.
//!
//! A style is a stored prompt template (`{p}` for the user's prompt, `{np}` for an image
//! request's negative prompt), with the parameters and models a request using it gets.

use serde::{Deserialize, Serialize};

/// `POST /styles/image|text`: a new style.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StyleInput {
    /// Unique per user, 1 to 100 characters.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub info: Option<String>,
    /// The template; default `{p}{np}` (image) or `{p}` (text).
    #[serde(default)]
    pub prompt: Option<String>,
    /// The generation parameters a request using the style gets (its own `n` is kept).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub params: Option<serde_json::Value>,
    #[serde(default)]
    pub public: Option<bool>,
    #[serde(default)]
    pub nsfw: Option<bool>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// A shared key's id that pays for requests using this style.
    #[serde(default)]
    pub sharedkey: Option<String>,
}

/// `POST|PATCH /styles/…`, `POST /collections`: what was stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StyleModified {
    pub id: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<crate::text::Warning>,
}

/// An example image of an image style.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StyleExample {
    pub id: String,
    pub url: String,
    pub primary: bool,
}

/// `POST|PATCH /styles/image/{id}/example[/{example_id}]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StyleExampleInput {
    /// An `https://` address.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub primary: Option<bool>,
}

/// A style as `GET /styles/…` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StyleDetails {
    pub id: String,
    pub name: String,
    pub info: String,
    pub prompt: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: serde_json::Value,
    pub tags: Vec<String>,
    pub models: Vec<String>,
    /// Image styles only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<Vec<StyleExample>>,
    /// The author, as `name#id`.
    pub creator: String,
    pub use_count: i64,
    pub public: bool,
    pub nsfw: bool,
}

/// A style named in a collection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StyleReference {
    /// `author#id::style::name`.
    pub name: String,
    pub id: String,
}

/// `POST /collections`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectionInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub info: Option<String>,
    #[serde(default)]
    pub public: Option<bool>,
    /// Style ids or names, all of one type.
    #[serde(default)]
    pub styles: Option<Vec<String>>,
}

/// A collection as `GET /collections` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectionDetails {
    pub id: String,
    pub name: String,
    pub info: String,
    /// `image` or `text`.
    #[serde(rename = "type")]
    pub kind: String,
    pub creator: String,
    pub use_count: i64,
    pub public: bool,
    pub styles: Vec<StyleReference>,
}

/// An answer that is only a message (`{"message": "OK"}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimpleResponse {
    pub message: String,
}

//! Wire types of the AI Horde API v2, exactly as clients send and read them.
//!
//! Requests deserialize leniently (absent fields are `None`, unknown fields are ignored) so that the
//! core can apply the public horde's effective defaults and validate bounds in one place. Responses
//! serialize only the fields strict clients (horde-sdk with `TESTS_ONGOING=1`) know.

pub mod error;
pub mod image;
pub mod openai;
pub mod status;
pub mod stream;
pub mod text;
pub mod users;
pub mod workers;

pub use error::ErrorBody;

/// The anonymous API key.
pub const ANONYMOUS_API_KEY: &str = "0000000000";
/// API version this server speaks.
pub const API_VERSION: &str = "2.5";

/// Deserializes a field that clients send either as a boolean or as a list (horde-sdk types
/// `worker_blacklist` as a list): a non-empty list counts as `true`.
pub fn bool_or_list<'de, D>(deserializer: D) -> Result<Option<bool>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrList {
        Bool(bool),
        List(Vec<serde_json::Value>),
        Null(()),
    }
    Ok(match Option::<BoolOrList>::deserialize(deserializer)? {
        Some(BoolOrList::Bool(b)) => Some(b),
        Some(BoolOrList::List(l)) => Some(!l.is_empty()),
        Some(BoolOrList::Null(())) | None => None,
    })
}

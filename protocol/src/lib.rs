//! Wire types of the AI Horde API v2, exactly as clients send and read them.
//!
//! Requests deserialize leniently (absent fields are `None`, unknown fields are ignored) so that the
//! core can apply the public horde's effective defaults and validate bounds in one place. Responses
//! serialize only the fields strict clients (horde-sdk with `TESTS_ONGOING=1`) know.

pub mod alchemy;
pub mod error;
pub mod image;
pub mod openai;
pub mod shared_keys;
pub mod stats;
pub mod status;
pub mod stream;
pub mod styles;
pub mod teams;
pub mod text;
pub mod users;
pub mod worker_messages;
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

/// Percent-encodes text for a URL path segment (a worker's name) or a `data:` URL: everything but
/// the unreserved characters `A-Z a-z 0-9 - _ . ~`.
pub fn percent_encode(text: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encoding_keeps_only_unreserved_bytes() {
        assert_eq!(super::percent_encode("my worker#1"), "my%20worker%231");
        assert_eq!(super::percent_encode("a b\n{\"é\"}"), "a%20b%0A%7B%22%C3%A9%22%7D");
        assert_eq!(super::percent_encode("AZaz09-_.~"), "AZaz09-_.~");
    }
}

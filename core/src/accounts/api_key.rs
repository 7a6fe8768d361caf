//! API keys: 22 random URL-safe characters, shown once, stored only as a keyed hash.

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The keyed hash under which an API key is stored and looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = hex::decode(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

/// Hashes API keys with the horde's secret, so a copy of the database alone reveals no key.
#[derive(Clone)]
pub struct ApiKeyHasher {
    secret: Vec<u8>,
}

impl std::fmt::Debug for ApiKeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeyHasher(..)")
    }
}

impl ApiKeyHasher {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self { secret: secret.into() }
    }

    pub fn hash(&self, api_key: &str) -> ApiKeyHash {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(api_key.as_bytes());
        ApiKeyHash(mac.finalize().into_bytes().into())
    }
}

/// A fresh random API key: 16 random bytes, base64url without padding (22 characters).
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh random secret for the key hasher (64 hex characters).
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_22_url_safe_chars_and_unique() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_eq!(a.len(), 22);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, b);
    }

    #[test]
    fn hash_depends_on_secret_and_key() {
        let h1 = ApiKeyHasher::new("s1");
        let h2 = ApiKeyHasher::new("s2");
        assert_eq!(h1.hash("k"), h1.hash("k"));
        assert_ne!(h1.hash("k"), h2.hash("k"));
        assert_ne!(h1.hash("k"), h1.hash("j"));
        let hex = h1.hash("k").to_hex();
        assert_eq!(ApiKeyHash::from_hex(&hex), Some(h1.hash("k")));
    }
}

//! `Idempotency-Key` of kudos transfers: a client that repeats a transfer with the key of an
//! earlier one (its answer lost, say) gets the first answer, and no second transfer. Keys are
//! scoped per sender and remembered for a day, in memory (where the check is atomic with the
//! transfer) and in storage, written in the same transaction as the transfer's posting, so a key
//! outlives a restart exactly when its transfer does.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Centikudos;
use crate::{HordeError, Result};

/// Longest key accepted, in characters.
pub const MAX_KEY_CHARS: usize = 128;

/// How long a key is remembered, in milliseconds.
pub const KEEP_MS: u64 = 24 * 3600 * 1000;

/// A transfer made under a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferKey {
    pub from: i64,
    pub key: String,
    pub to: i64,
    /// What was transferred (and so what was asked), in centikudos.
    pub transferred: Centikudos,
    pub at_ms: u64,
}

impl TransferKey {
    /// The answer to a repeat of this key asking to send `amount` kudos to `to`: the first
    /// answer, or `IdempotencyKeyConflict` if the repeat asks for another transfer.
    pub fn replay(&self, to: i64, amount: f64) -> Result<Centikudos> {
        if to == self.to && amount * 100.0 == self.transferred as f64 {
            Ok(self.transferred)
        } else {
            Err(HordeError::IdempotencyKeyConflict)
        }
    }
}

/// Refuses keys that are empty, too long or not visible ASCII.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HordeError::Validation(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters."
        )));
    }
    Ok(())
}

/// The keys of the last day's transfers, by sender and key.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TransferKeys {
    by_key: HashMap<(i64, String), TransferKey>,
}

impl TransferKeys {
    pub fn get(&self, from: i64, key: &str) -> Option<&TransferKey> {
        self.by_key.get(&(from, key.to_string()))
    }

    pub fn insert(&mut self, record: TransferKey) {
        self.by_key.insert((record.from, record.key.clone()), record);
    }

    /// Forgets keys older than [`KEEP_MS`].
    pub fn prune(&mut self, now_ms: u64) {
        self.by_key.retain(|_, r| now_ms.saturating_sub(r.at_ms) < KEEP_MS);
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TransferKey {
        TransferKey {
            from: 1,
            key: "k-1".into(),
            to: 2,
            transferred: 500,
            at_ms: 1_000,
        }
    }

    #[test]
    fn a_repeat_gets_the_first_answer_and_another_transfer_a_conflict() {
        let r = record();
        assert_eq!(r.replay(2, 5.0).ok(), Some(500));
        assert_eq!(r.replay(3, 5.0).err().map(|e| e.rc()), Some("IdempotencyKeyConflict"));
        assert_eq!(r.replay(2, 6.0).err().map(|e| e.rc()), Some("IdempotencyKeyConflict"));
    }

    #[test]
    fn keys_are_per_sender_and_forgotten_after_a_day() {
        let mut keys = TransferKeys::default();
        keys.insert(record());
        assert!(keys.get(1, "k-1").is_some());
        assert!(keys.get(2, "k-1").is_none());
        keys.prune(1_000 + KEEP_MS - 1);
        assert_eq!(keys.len(), 1);
        keys.prune(1_000 + KEEP_MS);
        assert!(keys.is_empty());
    }

    #[test]
    fn keys_are_short_visible_ascii() {
        assert!(validate_key("retry-7f3a").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("a b").is_err());
        assert!(validate_key(&"x".repeat(MAX_KEY_CHARS + 1)).is_err());
        assert!(validate_key("clé").is_err());
    }
}

//! Messages to workers: a moderator writes to one worker or all of them, an owner to their own
//! workers; each pop carries the worker's unexpired messages.
//!
//! Messages live in the database. Pops read them from a copy in memory refreshed every few
//! seconds (and at once after a change made through this process), so a pop costs no query.

use std::time::{Duration, Instant};

use horde_protocol::worker_messages as wire;
use parking_lot::Mutex;

use crate::shared_keys::rfc822;
use crate::{HordeError, Result};

/// Longest life of a message: 30 days.
pub const MAX_HOURS: i64 = 30 * 24;
/// Life of a message when none is given.
pub const DEFAULT_HOURS: i64 = 12;
/// Longest message text.
pub const MAX_CHARS: usize = 10_000;
/// Messages a page of `GET /workers/messages` lists.
pub const PAGE_SIZE: i64 = 50;
/// How long pops use the copy in memory before reading the messages again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerMessage {
    pub id: String,
    /// `None`: for every worker.
    pub worker_id: Option<String>,
    pub user_id: i64,
    pub message: String,
    pub origin: Option<String>,
    pub expiry_ms: i64,
    pub created_ms: i64,
}

impl WorkerMessage {
    pub fn is_for(&self, worker_id: &str, now_ms: u64) -> bool {
        self.expiry_ms > now_ms as i64 && self.worker_id.as_deref().is_none_or(|w| w == worker_id)
    }

    pub fn pop_view(&self) -> wire::PopMessage {
        wire::PopMessage {
            id: self.id.clone(),
            message: self.message.clone(),
            origin: self.origin.clone(),
            expiry: rfc822(self.expiry_ms),
        }
    }

    pub fn details(&self) -> wire::WorkerMessage {
        wire::WorkerMessage {
            id: self.id.clone(),
            message: self.message.clone(),
            origin: self.origin.clone(),
            expiry: rfc822(self.expiry_ms),
            worker_id: self.worker_id.clone(),
            user_id: self.user_id.to_string(),
            created: rfc822(self.created_ms),
        }
    }
}

/// The text of a message: 1 to 10,000 characters.
pub fn clean_message(m: Option<&str>) -> Result<String> {
    let m = m.unwrap_or("").trim();
    let n = m.chars().count();
    if n == 0 || n > MAX_CHARS || m.contains('\0') {
        return Err(HordeError::Validation(format!("message must be 1 to {MAX_CHARS} characters.")));
    }
    Ok(m.to_string())
}

/// Hours a message lives: the given ones (1 to 720) or 12.
pub fn clean_hours(h: Option<i64>) -> Result<i64> {
    match h {
        None => Ok(DEFAULT_HOURS),
        Some(h) if h >= 1 => Ok(h.min(MAX_HOURS)),
        Some(_) => Err(HordeError::Validation("expiry must be at least 1 hour.".into())),
    }
}

/// `active`, `expired` or `all` (the default is `active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Active,
    Expired,
    All,
}

impl Validity {
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s.unwrap_or("active") {
            "active" => Ok(Validity::Active),
            "expired" => Ok(Validity::Expired),
            "all" => Ok(Validity::All),
            _ => Err(HordeError::rejected(
                "BadRequest",
                "validity can only be one of 'active, 'expired', or 'all'",
            )),
        }
    }
}

/// The unexpired messages as last read, for pops.
#[derive(Debug, Default)]
pub struct MessageCache {
    inner: Mutex<Option<(Instant, Vec<WorkerMessage>)>>,
}

impl MessageCache {
    /// The copy, if read within [`REFRESH`].
    pub fn fresh(&self) -> Option<Vec<WorkerMessage>> {
        let g = self.inner.lock();
        g.as_ref().filter(|(at, _)| at.elapsed() < REFRESH).map(|(_, m)| m.clone())
    }

    pub fn set(&self, messages: Vec<WorkerMessage>) {
        *self.inner.lock() = Some((Instant::now(), messages));
    }

    /// Forgets the copy (after a change), so the next pop reads the messages again.
    pub fn clear(&self) {
        *self.inner.lock() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reaches_its_worker_or_all_until_it_expires() {
        let m = WorkerMessage {
            id: "m".into(),
            worker_id: Some("w1".into()),
            user_id: 1,
            message: "hi".into(),
            origin: None,
            expiry_ms: 1000,
            created_ms: 0,
        };
        assert!(m.is_for("w1", 999));
        assert!(!m.is_for("w2", 999));
        assert!(!m.is_for("w1", 1000));
        let all = WorkerMessage { worker_id: None, ..m };
        assert!(all.is_for("w2", 0));
    }

    #[test]
    fn inputs_are_bounded() {
        assert!(clean_message(Some("  ")).is_err());
        assert_eq!(clean_hours(None).ok(), Some(12));
        assert_eq!(clean_hours(Some(10_000)).ok(), Some(720));
        assert!(clean_hours(Some(0)).is_err());
        assert!(Validity::parse(Some("soon")).is_err());
    }
}

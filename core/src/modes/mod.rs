//! The horde's modes (`/status/modes`): maintenance (new generation requests are refused),
//! invite-only (accounts add workers only as far as their `worker_invited` allows) and raid
//! (new accounts cannot register). Moderators set them; they are settings in the database, so
//! every process of a horde sees them, each through a copy read again every few seconds (at
//! once on the process that changed them).

use std::time::{Duration, Instant};

use horde_protocol::status::Modes;
use parking_lot::Mutex;

/// How long a process uses its copy of the modes before reading them again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// The settings the modes are stored under.
pub const MAINTENANCE: &str = "mode_maintenance";
pub const INVITE_ONLY: &str = "mode_invite_only";
pub const RAID: &str = "mode_raid";

/// The modes as last read.
#[derive(Debug, Default)]
pub struct ModesCache {
    inner: Mutex<Option<(Instant, Modes)>>,
}

impl ModesCache {
    pub fn fresh(&self) -> Option<Modes> {
        let g = self.inner.lock();
        g.as_ref().filter(|(at, _)| at.elapsed() < REFRESH).map(|(_, m)| m.clone())
    }

    pub fn set(&self, modes: Modes) {
        *self.inner.lock() = Some((Instant::now(), modes));
    }

    /// Forgets the copy (after a change).
    pub fn clear(&self) {
        *self.inner.lock() = None;
    }
}

/// A stored flag: `"1"` is on.
pub fn flag(value: Option<&str>) -> bool {
    value == Some("1")
}

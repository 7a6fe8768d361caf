//! Draining before a restart (see `crate::drain`): the horde stops taking work, lets the jobs in
//! flight come back and their requesters read them, refunds what it drops, and stores it all.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Horde;
use crate::drain::Outstanding;
use crate::horde_ops::op;
use crate::{HordeError, Result};

/// How often a draining horde looks whether it still owes anything.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// What a drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Requests dropped and refunded.
    pub refunded: usize,
    /// What was still owed at the deadline (nothing if the drain finished in time).
    pub left: Outstanding,
    /// The state is shared with other processes, which serve its work: nothing was dropped.
    pub handed_over: bool,
}

impl Horde {
    /// `MaintenanceMode` (503) once the horde drains: no new requests, no new jobs for workers.
    pub(super) fn check_taking_work(&self) -> Result<()> {
        if self.draining.load(Ordering::Relaxed) {
            Err(HordeError::Draining)
        } else {
            Ok(())
        }
    }

    /// Whether the horde is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// What the horde still owes before it can stop (this process's view).
    pub fn outstanding(&self) -> Outstanding {
        self.local().outstanding()
    }

    /// Drains before a restart, until `deadline` at the latest: new requests and pops are
    /// refused, requests no worker took are dropped and refunded, jobs in flight may still be
    /// submitted and their results read; at the deadline every unfinished request is refunded.
    /// The refunds are stored before this returns.
    ///
    /// With a shared state the other processes serve this one's work: it is handed over as it is,
    /// nothing is dropped or refunded.
    pub async fn drain(&self, deadline: tokio::time::Instant) -> Result<DrainReport> {
        if self.is_shared() {
            return Ok(DrainReport {
                handed_over: true,
                ..DrainReport::default()
            });
        }
        self.draining.store(true, Ordering::Relaxed);
        let mut refunded = self.drop_for_restart(false).await?;
        while !self.outstanding().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + DRAIN_POLL)).await;
        }
        let left = self.outstanding();
        refunded += self.drop_for_restart(true).await?;
        self.commit().await?;
        Ok(DrainReport {
            refunded,
            left,
            handed_over: false,
        })
    }

    async fn drop_for_restart(&self, unfinished: bool) -> Result<usize> {
        let now = self.now_ms();
        self.run(op::DropForRestart { unfinished, now }).await
    }
}

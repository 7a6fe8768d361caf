//! Moderators' rules over the state: timing out client addresses (or a worker's), and replacing
//! the prompt filter's rules.

use std::net::IpAddr;

use uuid::Uuid;

use super::filter::{FilterRule, PromptFilter};
use crate::state::State;
use crate::{HordeError, Result};

/// Days a worker's address may be blocked at most.
const MAX_WORKER_IP_BLOCK_DAYS: u64 = 30;

impl State {
    /// Times an address out for `minutes` (0 lifts it).
    pub fn timeout_ip(&mut self, ip: &IpAddr, minutes: u64, now_ms: u64) -> Result<()> {
        self.ip_timeouts.set(ip, minutes, now_ms);
        Ok(())
    }

    /// Times out the address a worker last checked in from, for `days` (at most 30; 0 lifts
    /// it). Returns the minutes set.
    pub fn block_worker_ip(&mut self, worker_id: &Uuid, days: u64, now_ms: u64) -> Result<u64> {
        let w = self
            .workers
            .get(worker_id)
            .ok_or_else(|| HordeError::WorkerNotFound(worker_id.to_string()))?;
        let ip = w.last_ip.ok_or(HordeError::WorkerIpUnknown)?;
        let minutes = days.min(MAX_WORKER_IP_BLOCK_DAYS) * 24 * 60;
        self.ip_timeouts.set(&ip, minutes, now_ms);
        Ok(minutes)
    }

    /// Replaces the prompt filter's rules.
    pub fn set_filter(&mut self, rules: Vec<FilterRule>) -> Result<()> {
        self.filter = PromptFilter::new(rules)?;
        Ok(())
    }
}

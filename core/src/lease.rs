//! Duty leases: which horde process runs a cluster-wide background duty (the reaper, the
//! persister, webhook delivery, the shared state's snapshot) right now.
//!
//! One process is on its own and holds every lease. Several processes sharing one Redis claim each
//! duty with a Redis key that expires: the holder renews it on every tick, and when the holder
//! dies (or stalls for longer than the lease) another process takes the duty over on its next
//! tick. No process is special.

use std::time::Duration;

use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::{HordeError, Result};

/// A background duty that must run on one process of the cluster at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Duty {
    /// Times out stale jobs, drops expired requests, prunes IP timeouts.
    Reaper,
    /// Cuts the queued durable writes into batches and stores them.
    Persister,
    /// Sends the webhooks of finished jobs.
    Webhooks,
    /// Stores the shared state's snapshot and trims its log.
    Snapshot,
}

impl Duty {
    pub const ALL: [Duty; 4] = [Duty::Reaper, Duty::Persister, Duty::Webhooks, Duty::Snapshot];

    pub fn name(self) -> &'static str {
        match self {
            Duty::Reaper => "reaper",
            Duty::Persister => "persister",
            Duty::Webhooks => "webhooks",
            Duty::Snapshot => "snapshot",
        }
    }
}

/// Takes the lease if it is free or already ours, and extends it. Returns 1 when we hold it.
const HOLD: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Drops the lease if it is ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Leases held in Redis under `{prefix}lease:{duty}`, valued with this process's token.
#[derive(Clone)]
pub struct RedisLeases {
    conn: ConnectionManager,
    prefix: String,
    token: String,
    ttl: Duration,
    hold: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for RedisLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLeases")
            .field("prefix", &self.prefix)
            .field("token", &self.token)
            .field("ttl", &self.ttl)
            .finish()
    }
}

fn redis_error(e: redis::RedisError) -> HordeError {
    HordeError::Internal(format!("redis: {e}"))
}

impl RedisLeases {
    /// Leases that expire `ttl` after their last renewal unless renewed.
    pub fn new(conn: ConnectionManager, prefix: &str, ttl: Duration) -> Self {
        Self {
            conn,
            prefix: prefix.to_string(),
            token: Uuid::new_v4().to_string(),
            ttl,
            hold: redis::Script::new(HOLD),
            release: redis::Script::new(RELEASE),
        }
    }

    fn key(&self, duty: Duty) -> String {
        format!("{}lease:{}", self.prefix, duty.name())
    }

    /// Takes or renews the lease. Returns whether this process holds it.
    pub async fn hold(&self, duty: Duty) -> Result<bool> {
        let mut conn = self.conn.clone();
        let held: i64 = self
            .hold
            .key(self.key(duty))
            .arg(&self.token)
            .arg(self.ttl.as_millis().max(1) as u64)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(held == 1)
    }

    /// Gives the lease up if this process holds it, so another takes over at once.
    pub async fn release(&self, duty: Duty) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .release
            .key(self.key(duty))
            .arg(&self.token)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_error)?;
        Ok(())
    }
}

/// Who may run a duty: this process alone, or the holder of a Redis lease.
#[derive(Debug, Clone)]
pub enum DutyLeases {
    /// A single process: it always holds every duty.
    Local,
    Redis(RedisLeases),
}

impl DutyLeases {
    /// Whether this process should run `duty` now. A Redis error counts as not holding it (the
    /// duty is skipped this tick, and the error logged).
    pub async fn hold(&self, duty: Duty) -> bool {
        match self {
            DutyLeases::Local => true,
            DutyLeases::Redis(r) => match r.hold(duty).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!(duty = duty.name(), error = %e, "could not renew a duty lease; skipping the duty");
                    false
                }
            },
        }
    }

    /// Releases every lease this process holds (at shutdown).
    pub async fn release_all(&self) {
        if let DutyLeases::Redis(r) = self {
            for duty in Duty::ALL {
                if let Err(e) = r.release(duty).await {
                    tracing::warn!(duty = duty.name(), error = %e, "could not release a duty lease");
                }
            }
        }
    }
}

//! Background duties: the reaper (stale jobs, expired requests) and the persister (batched
//! durable writes). Each runs where this process holds its duty lease (always, on its own); with a
//! shared state, the other processes also store batches whose cutter died (see `Horde::flush`).

use std::sync::Arc;
use std::time::Duration;

use horde_core::lease::{Duty, DutyLeases};
use horde_core::Horde;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Runs the reaper every `reap_every`, the persister every `flush_every` and, with a shared state,
/// the snapshot every `snapshot_every` (each while holding its lease) until `stop` turns true;
/// then flushes once more and gives the leases up.
pub fn spawn(
    horde: Arc<Horde>,
    leases: DutyLeases,
    reap_every: Duration,
    flush_every: Duration,
    snapshot_every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reap = tokio::time::interval(reap_every);
        let mut flush = tokio::time::interval(flush_every);
        let mut snapshot = tokio::time::interval(snapshot_every);
        snapshot.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = reap.tick() => {
                    if !leases.hold(Duty::Reaper).await {
                        continue;
                    }
                    let report = match horde.reap().await {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(error = %e, "reaper failed; will retry");
                            continue;
                        }
                    };
                    if report.jobs_aborted + report.requests_expired + report.requests_faulted > 0 {
                        tracing::info!(jobs_aborted = report.jobs_aborted, requests_faulted = report.requests_faulted, requests_expired = report.requests_expired, "reaper");
                    }
                }
                _ = flush.tick() => {
                    // One process cuts batches for all; every process stores those left unstored.
                    let stored = if leases.hold(Duty::Persister).await {
                        horde.flush().await
                    } else {
                        horde.store_unstored_batches().await
                    };
                    if let Err(e) = stored {
                        tracing::warn!(error = %e, "could not store kudos and counters; will retry");
                    }
                }
                _ = snapshot.tick(), if horde.is_shared() => {
                    if leases.hold(Duty::Snapshot).await {
                        if let Err(e) = horde.publish_snapshot().await {
                            tracing::warn!(error = %e, "could not store the shared state's snapshot; will retry");
                        }
                    }
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        for attempt in 0..5 {
            match horde.flush_all().await {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, attempt, "final flush failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        leases.release_all().await;
    })
}

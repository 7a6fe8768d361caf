//! The loop every bridge runs, whatever the kind of job: pop about every second when idle
//! (backing off on errors, waiting longer while the worker is in maintenance), run up to
//! `threads` popped jobs in parallel, and on shutdown put the worker in maintenance so the horde
//! stops sending work, finish the jobs it holds, then return.
//!
//! A kind of job (text, image, alchemy) supplies only its parts through [`JobKind`]: how it pops,
//! how it runs and submits what it popped, and its counters.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{ClientError, HordeClient};

/// Longest wait between pops after errors.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Submit attempts for network errors and server faults.
pub(crate) const SUBMIT_ATTEMPTS: u32 = 5;
/// How often a running loop logs its counters.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// The parts of a kind of job the shared loop runs.
pub trait JobKind: Send + Sync + 'static {
    /// What one successful pop hands out (one job, or a batch run together).
    type Popped: Send + 'static;
    /// The kind's name in logs ("text", "image", "alchemy").
    const NAME: &'static str;
    /// Asks the horde for work: `None` when it has none for this worker.
    fn pop(&self) -> impl Future<Output = Result<Option<Self::Popped>, ClientError>> + Send;
    /// Runs the popped work through to its submit. The loop holds one slot until it returns.
    fn run(&self, popped: Self::Popped) -> impl Future<Output = ()> + Send + 'static;
    /// Counts a failed pop.
    fn pop_failed(&self);
    /// Logs the kind's counters (`what`: "working" or "stopped").
    fn report(&self, what: &str);
}

/// Where and how often a loop pops.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Jobs run at the same time.
    pub threads: usize,
    /// Wait between pops when the horde has nothing.
    pub idle_interval: Duration,
    /// The worker's name (to enter maintenance on shutdown).
    pub name: String,
}

impl LoopSettings {
    /// A worker's loop settings, from its configuration.
    pub fn of(cfg: &crate::config::WorkerConfig) -> Self {
        Self {
            threads: cfg.threads,
            idle_interval: cfg.idle_interval,
            name: cfg.name.clone(),
        }
    }
}

/// A bridge's counters, locked (a panic while they were held leaves them as they were).
pub fn lock_stats<T>(stats: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `kind` until `shutdown` resolves; then enters maintenance, finishes running jobs and
/// returns.
pub async fn run<K: JobKind>(kind: &K, client: &HordeClient, settings: &LoopSettings, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(settings.threads.max(1)));
    let mut jobs: JoinSet<()> = JoinSet::new();
    let mut backoff = Duration::ZERO;
    let mut last_report = Instant::now();
    let mut told_maintenance = false;
    tokio::pin!(shutdown);
    loop {
        while jobs.try_join_next().is_some() {}
        if last_report.elapsed() >= REPORT_EVERY {
            kind.report("working");
            last_report = Instant::now();
        }
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let popped = tokio::select! {
            r = kind.pop() => r,
            _ = &mut shutdown => break,
        };
        let wait = match popped {
            Ok(Some(work)) => {
                backoff = Duration::ZERO;
                told_maintenance = false;
                let job = kind.run(work);
                jobs.spawn(async move {
                    job.await;
                    drop(permit);
                });
                continue;
            }
            Ok(None) => {
                backoff = Duration::ZERO;
                told_maintenance = false;
                settings.idle_interval
            }
            Err(e) => {
                kind.pop_failed();
                if e.rc() == Some("WorkerMaintenance") {
                    if !told_maintenance {
                        tracing::warn!(
                            kind = K::NAME,
                            "the worker is in maintenance mode: it only serves its owner until maintenance is turned off"
                        );
                        told_maintenance = true;
                    }
                    Duration::from_secs(5).max(settings.idle_interval)
                } else {
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                    tracing::warn!(kind = K::NAME, error = %e, retry_in_s = backoff.as_secs(), "pop failed");
                    backoff
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => break,
        }
    }
    tracing::info!(
        kind = K::NAME,
        running = jobs.len(),
        "stopping: entering maintenance and finishing running jobs"
    );
    enter_maintenance(client, &settings.name).await;
    while jobs.join_next().await.is_some() {}
    kind.report("stopped");
}

/// Puts the worker `name` in maintenance so the horde stops sending it work.
pub(crate) async fn enter_maintenance(client: &HordeClient, name: &str) {
    match client.worker_id(name).await {
        Ok(Some(id)) => {
            if let Err(e) = client.set_maintenance(&id, true).await {
                tracing::warn!(error = %e, "could not enter maintenance");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not look the worker up to enter maintenance"),
    }
}

/// How a submit ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Submitted {
    /// The horde took it and answered this reward.
    Rewarded(f64),
    /// The horde no longer wants this job (timed out, already submitted, unknown).
    Refused,
    /// Every attempt failed on the network or a server fault.
    GaveUp,
}

/// Sends a submit with retries on network errors and server faults (`SUBMIT_ATTEMPTS`, doubling
/// waits from half a second up to ten); a 4xx answer is final. `send` makes one attempt and
/// answers the reward.
pub(crate) async fn submit_with_retries<F, Fut>(job: &str, mut send: F) -> Submitted
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<f64, ClientError>>,
{
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=SUBMIT_ATTEMPTS {
        match send().await {
            Ok(reward) => return Submitted::Rewarded(reward),
            Err(e) if e.status().is_some_and(|st| (400..500).contains(&st)) => {
                tracing::warn!(job = %job, error = %e, "the horde refused the result; dropping the job");
                return Submitted::Refused;
            }
            Err(e) => {
                tracing::warn!(job = %job, error = %e, attempt, "submit failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    Submitted::GaveUp
}

//! The bridge loop: pop about every second when idle (backing off on errors), generate up to
//! `threads` jobs in parallel, submit (reporting failures as `faulted`). On shutdown it first
//! puts the worker in maintenance so the horde stops sending work, finishes the jobs it holds,
//! then returns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use horde_protocol::stream::TextProgressRequest;
use horde_protocol::text::{TextPopRequest, TextSubmitRequest};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::backend::{TextBackend, TextJob};
use crate::client::{ClientError, HordeClient};
use crate::config::WorkerConfig;

/// What the bridge has done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BridgeStats {
    pub jobs_done: u64,
    pub jobs_faulted: u64,
    pub tokens: u64,
    /// Seconds spent generating (summed over parallel jobs).
    pub generation_secs: f64,
    pub kudos: f64,
    pub pop_errors: u64,
}

impl BridgeStats {
    pub fn tokens_per_sec(&self) -> f64 {
        if self.generation_secs > 0.0 {
            self.tokens as f64 / self.generation_secs
        } else {
            0.0
        }
    }
}

/// Longest wait between pops after errors.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Submit attempts for network errors and server faults.
pub(crate) const SUBMIT_ATTEMPTS: u32 = 5;

/// A worker's connection to a horde.
pub struct Bridge {
    client: HordeClient,
    cfg: WorkerConfig,
    backend: Arc<dyn TextBackend>,
    stats: Arc<Mutex<BridgeStats>>,
    /// Cleared when the horde does not know the progress protocol (the public horde).
    progress: Arc<AtomicBool>,
}

fn lock(stats: &Mutex<BridgeStats>) -> std::sync::MutexGuard<'_, BridgeStats> {
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

impl Bridge {
    pub fn new(cfg: WorkerConfig, backend: Arc<dyn TextBackend>) -> Result<Self, ClientError> {
        let client = HordeClient::new(&cfg.url, &cfg.api_key)?;
        Ok(Self {
            client,
            cfg,
            backend,
            stats: Arc::new(Mutex::new(BridgeStats::default())),
            progress: Arc::new(AtomicBool::new(true)),
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BridgeStats {
        lock(&self.stats).clone()
    }

    fn pop_request(&self) -> TextPopRequest {
        let models = if self.cfg.models.is_empty() {
            self.backend.models()
        } else {
            self.cfg.models.clone()
        };
        TextPopRequest {
            name: Some(self.cfg.name.clone()),
            priority_usernames: Some(self.cfg.priority_usernames.clone()),
            nsfw: Some(self.cfg.nsfw),
            models: Some(models),
            bridge_agent: Some(crate::bridge_agent()),
            threads: Some(self.cfg.threads as i64),
            require_upfront_kudos: None,
            amount: Some(1),
            extra_slow_worker: None,
            max_length: Some(self.cfg.max_length),
            max_context_length: Some(self.cfg.max_context_length),
            softprompts: None,
            extensions: Some(vec![horde_protocol::text::EXTENSION_MESSAGES.to_string()]),
        }
    }

    /// Runs until `shutdown` resolves; then enters maintenance, finishes running jobs and returns
    /// the final counters.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> BridgeStats {
        let slots = Arc::new(Semaphore::new(self.cfg.threads.max(1)));
        let mut jobs: JoinSet<()> = JoinSet::new();
        let mut backoff = Duration::ZERO;
        let mut last_report = Instant::now();
        let mut told_maintenance = false;
        tokio::pin!(shutdown);
        loop {
            while jobs.try_join_next().is_some() {}
            if last_report.elapsed() >= Duration::from_secs(30) {
                self.report("working");
                last_report = Instant::now();
            }
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = &mut shutdown => break,
            };
            let request = self.pop_request();
            let popped = tokio::select! {
                r = self.client.pop(&request) => r,
                _ = &mut shutdown => break,
            };
            let wait = match popped {
                Ok(resp) => {
                    backoff = Duration::ZERO;
                    told_maintenance = false;
                    match (resp.id.clone(), resp.model.clone()) {
                        (Some(id), Some(model)) => {
                            let job = TextJob {
                                id,
                                model,
                                payload: resp.payload,
                            };
                            let ctx = JobContext {
                                client: self.client.clone(),
                                backend: self.backend.clone(),
                                stats: self.stats.clone(),
                                progress: self.progress.clone(),
                            };
                            jobs.spawn(run_job(ctx, job, permit));
                            continue;
                        }
                        _ => self.cfg.idle_interval,
                    }
                }
                Err(e) => {
                    lock(&self.stats).pop_errors += 1;
                    if e.rc() == Some("WorkerMaintenance") {
                        if !told_maintenance {
                            tracing::warn!("the worker is in maintenance mode: it only serves its owner until maintenance is turned off");
                            told_maintenance = true;
                        }
                        Duration::from_secs(5).max(self.cfg.idle_interval)
                    } else {
                        backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                        tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "pop failed");
                        backoff
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut shutdown => break,
            }
        }
        tracing::info!(running = jobs.len(), "stopping: entering maintenance and finishing running jobs");
        enter_maintenance(&self.client, &self.cfg.name).await;
        while jobs.join_next().await.is_some() {}
        self.report("stopped");
        self.stats()
    }

    fn report(&self, what: &str) {
        let s = self.stats();
        tracing::info!(
            jobs_done = s.jobs_done,
            jobs_faulted = s.jobs_faulted,
            tokens_per_sec = format!("{:.1}", s.tokens_per_sec()),
            kudos = format!("{:.2}", s.kudos),
            "{what}"
        );
    }
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

/// What one job's task needs.
struct JobContext {
    client: HordeClient,
    backend: Arc<dyn TextBackend>,
    stats: Arc<Mutex<BridgeStats>>,
    progress: Arc<AtomicBool>,
}

/// Sends a job's settled text to the horde as it grows: always the latest text, one report at a
/// time (reports coalesce while one is in flight, so a slow horde never slows generation). Sets
/// `cancelled` when the horde says the requester cancelled; clears `supported` when the horde
/// does not know the endpoint.
async fn report_progress(
    client: HordeClient,
    job: String,
    mut texts: watch::Receiver<String>,
    cancelled: Arc<AtomicBool>,
    supported: Arc<AtomicBool>,
) {
    while texts.changed().await.is_ok() {
        if !supported.load(Ordering::Relaxed) {
            return;
        }
        let text = texts.borrow_and_update().clone();
        let report = TextProgressRequest {
            id: job.clone(),
            text,
            version: Some(horde_protocol::stream::PROGRESS_VERSION),
        };
        match client.progress(&report).await {
            Ok(r) if r.cancelled => cancelled.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(e) if matches!(e.status(), Some(404 | 405)) && e.rc().is_none_or(|rc| rc == "NotFound") => {
                tracing::info!("this horde does not take progress reports; texts arrive whole");
                supported.store(false, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::debug!(job = %job, error = %e, "progress report failed"),
        }
    }
}

async fn run_job(ctx: JobContext, job: TextJob, _slot: tokio::sync::OwnedSemaphorePermit) {
    let JobContext {
        client,
        backend,
        stats,
        progress,
    } = ctx;
    let started = Instant::now();
    let job_for_backend = job.clone();
    let (texts, rx) = watch::channel(String::new());
    let cancelled = Arc::new(AtomicBool::new(false));
    let reporter = progress.load(Ordering::Relaxed).then(|| {
        tokio::spawn(report_progress(
            client.clone(),
            job.id.clone(),
            rx,
            cancelled.clone(),
            progress.clone(),
        ))
    });
    let stop = cancelled.clone();
    let generated = tokio::task::spawn_blocking(move || {
        backend.generate_streaming(&job_for_backend, &mut |text: &str| {
            texts.send_replace(text.to_string());
            !stop.load(Ordering::Relaxed)
        })
    })
    .await
    .unwrap_or_else(|e| Err(format!("generation crashed: {e}")));
    if let Some(r) = reporter {
        r.abort();
    }
    if cancelled.load(Ordering::Relaxed) {
        tracing::info!(job = %job.id, "the requester cancelled; submitting the text so far");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let submit = match &generated {
        Ok(g) => TextSubmitRequest {
            id: Some(job.id.clone()),
            generation: Some(g.text.clone()),
            state: Some("ok".into()),
            seed: Some(g.seed),
            gen_metadata: None,
        },
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "generation failed; reporting the job as faulted");
            TextSubmitRequest {
                id: Some(job.id.clone()),
                generation: Some(String::new()),
                state: Some("faulted".into()),
                seed: Some(0),
                gen_metadata: None,
            }
        }
    };
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=SUBMIT_ATTEMPTS {
        match client.submit(&submit).await {
            Ok(r) => {
                let mut s = lock(&stats);
                match &generated {
                    Ok(g) => {
                        s.jobs_done += 1;
                        s.tokens += g.tokens as u64;
                        s.generation_secs += elapsed;
                        s.kudos += r.reward;
                    }
                    Err(_) => s.jobs_faulted += 1,
                }
                return;
            }
            // The horde no longer wants this job (timed out, already submitted, unknown): drop it.
            Err(e) if e.status().is_some_and(|st| (400..500).contains(&st)) => {
                tracing::warn!(job = %job.id, error = %e, "the horde refused the result; dropping the job");
                lock(&stats).jobs_faulted += 1;
                return;
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, attempt, "submit failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    lock(&stats).jobs_faulted += 1;
}

//! The text bridge: text jobs on the shared loop (`job_loop`): pop one job, generate it with a
//! `TextBackend` while reporting its text as it grows, submit (failures as `faulted`).

use std::sync::Arc;
use std::time::Instant;

use horde_protocol::stream::TextProgressRequest;
use horde_protocol::text::{TextPopRequest, TextSubmitRequest};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::sync::watch;

use crate::backend::{TextBackend, TextJob};
use crate::client::{ClientError, HordeClient};
use crate::config::WorkerConfig;
use crate::job_loop::lock_stats as lock;
use crate::job_loop::{self, JobKind, LoopSettings, Submitted};

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

/// A worker's connection to a horde, serving text jobs.
pub struct Bridge {
    client: HordeClient,
    settings: LoopSettings,
    jobs: TextJobs,
}

impl Bridge {
    pub fn new(cfg: WorkerConfig, backend: Arc<dyn TextBackend>) -> Result<Self, ClientError> {
        let client = HordeClient::new(&cfg.url, &cfg.api_key)?;
        Ok(Self {
            settings: LoopSettings::of(&cfg),
            jobs: TextJobs {
                client: client.clone(),
                cfg,
                backend,
                stats: Arc::new(Mutex::new(BridgeStats::default())),
                progress: Arc::new(AtomicBool::new(true)),
            },
            client,
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BridgeStats {
        lock(&self.jobs.stats).clone()
    }

    /// Runs until `shutdown` resolves; then enters maintenance, finishes running jobs and returns
    /// the final counters.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> BridgeStats {
        job_loop::run(&self.jobs, &self.client, &self.settings, shutdown).await;
        self.stats()
    }
}

/// Text jobs as the shared loop runs them.
struct TextJobs {
    client: HordeClient,
    cfg: WorkerConfig,
    backend: Arc<dyn TextBackend>,
    stats: Arc<Mutex<BridgeStats>>,
    /// Cleared when the horde does not know the progress protocol (the public horde).
    progress: Arc<AtomicBool>,
}

impl TextJobs {
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
}

impl JobKind for TextJobs {
    type Popped = TextJob;
    const NAME: &'static str = "text";

    async fn pop(&self) -> Result<Option<TextJob>, ClientError> {
        let resp = self.client.pop(&self.pop_request()).await?;
        Ok(match (resp.id, resp.model) {
            (Some(id), Some(model)) => Some(TextJob {
                id,
                model,
                payload: resp.payload,
            }),
            _ => None,
        })
    }

    fn run(&self, job: TextJob) -> impl std::future::Future<Output = ()> + Send + 'static {
        let ctx = JobContext {
            client: self.client.clone(),
            backend: self.backend.clone(),
            stats: self.stats.clone(),
            progress: self.progress.clone(),
        };
        run_job(ctx, job)
    }

    fn pop_failed(&self) {
        lock(&self.stats).pop_errors += 1;
    }

    fn report(&self, what: &str) {
        let s = lock(&self.stats).clone();
        tracing::info!(
            jobs_done = s.jobs_done,
            jobs_faulted = s.jobs_faulted,
            tokens_per_sec = format!("{:.1}", s.tokens_per_sec()),
            kudos = format!("{:.2}", s.kudos),
            "{what}"
        );
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

async fn run_job(ctx: JobContext, job: TextJob) {
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
    let submitted = job_loop::submit_with_retries(&job.id, || async { client.submit(&submit).await.map(|r| r.reward) }).await;
    let mut s = lock(&stats);
    match (submitted, &generated) {
        (Submitted::Rewarded(reward), Ok(g)) => {
            s.jobs_done += 1;
            s.tokens += g.tokens as u64;
            s.generation_secs += elapsed;
            s.kudos += reward;
        }
        _ => s.jobs_faulted += 1,
    }
}

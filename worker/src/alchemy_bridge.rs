//! The alchemy bridge (`--alchemist`): alchemy forms on the shared loop (`job_loop`). It pops the
//! forms its `AlchemyBackend` can run, downloads each form's source image, runs the form, uploads
//! a post-processed image to the form's `r2_upload` link (or sends it inline as base64 when the
//! horde gives none) and submits `{id, result: {form: value}, state}`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use horde_protocol::alchemy::{AlchemyPopForm, AlchemyPopRequest, AlchemySubmitRequest, UPLOADED};
use serde_json::{json, Value};

use crate::backend::{AlchemyBackend, AlchemyJob, FormResult};
use crate::client::{ClientError, HordeClient};
use crate::config::WorkerConfig;
use crate::job_loop::lock_stats as lock;
use crate::job_loop::{self, JobKind, LoopSettings, Submitted};

/// Largest source image downloaded (the public horde takes sources up to 5 MB; links may serve
/// them re-encoded, so twice that).
pub const MAX_SOURCE_BYTES: usize = 10 << 20;

/// What the alchemy bridge has done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlchemyStats {
    pub forms_done: u64,
    pub forms_faulted: u64,
    /// Seconds spent running forms (summed over parallel jobs).
    pub run_secs: f64,
    pub kudos: f64,
    pub pop_errors: u64,
}

/// A worker's connection to a horde, serving alchemy forms.
pub struct AlchemyBridge {
    client: HordeClient,
    settings: LoopSettings,
    jobs: AlchemyJobs,
}

impl AlchemyBridge {
    pub fn new(cfg: WorkerConfig, backend: Arc<dyn AlchemyBackend>) -> Result<Self, ClientError> {
        let client = HordeClient::new(&cfg.url, &cfg.api_key)?;
        Ok(Self {
            settings: LoopSettings::of(&cfg),
            jobs: AlchemyJobs {
                client: client.clone(),
                cfg,
                backend,
                stats: Arc::default(),
            },
            client,
        })
    }

    pub fn stats(&self) -> AlchemyStats {
        lock(&self.jobs.stats).clone()
    }

    /// The pop this worker sends.
    pub fn pop_request(&self) -> AlchemyPopRequest {
        self.jobs.pop_request()
    }

    /// Runs until `shutdown` resolves; then enters maintenance, finishes running forms and returns
    /// the final counters.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> AlchemyStats {
        job_loop::run(&self.jobs, &self.client, &self.settings, shutdown).await;
        self.stats()
    }
}

/// Alchemy forms as the shared loop runs them.
struct AlchemyJobs {
    client: HordeClient,
    cfg: WorkerConfig,
    backend: Arc<dyn AlchemyBackend>,
    stats: Arc<Mutex<AlchemyStats>>,
}

impl AlchemyJobs {
    fn pop_request(&self) -> AlchemyPopRequest {
        AlchemyPopRequest {
            name: Some(self.cfg.name.clone()),
            priority_usernames: Some(self.cfg.priority_usernames.clone()),
            forms: Some(self.backend.forms()),
            amount: Some(1),
            bridge_agent: Some(crate::bridge_agent()),
            threads: Some(self.cfg.threads as i64),
            max_tiles: Some(self.backend.max_tiles()),
        }
    }
}

impl JobKind for AlchemyJobs {
    type Popped = Vec<AlchemyPopForm>;
    const NAME: &'static str = "alchemy";

    async fn pop(&self) -> Result<Option<Vec<AlchemyPopForm>>, ClientError> {
        let resp = self.client.pop_alchemy(&self.pop_request()).await?;
        Ok((!resp.forms.is_empty()).then_some(resp.forms))
    }

    fn run(&self, forms: Vec<AlchemyPopForm>) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (client, backend, stats) = (self.client.clone(), self.backend.clone(), self.stats.clone());
        async move {
            for form in forms {
                run_form(&client, &backend, &stats, form).await;
            }
        }
    }

    fn pop_failed(&self) {
        lock(&self.stats).pop_errors += 1;
    }

    fn report(&self, what: &str) {
        let s = lock(&self.stats).clone();
        tracing::info!(
            forms_done = s.forms_done,
            forms_faulted = s.forms_faulted,
            kudos = format!("{:.2}", s.kudos),
            "alchemy bridge {what}"
        );
    }
}

/// The source image of a popped form: downloaded from its link, or decoded when the horde sent
/// it inline (base64, bare or as a data URI).
async fn source_of(client: &HordeClient, form: &AlchemyPopForm) -> Result<Vec<u8>, String> {
    let source = form.source_image.as_deref().ok_or("the form has no source image")?;
    if source.starts_with("http://") || source.starts_with("https://") {
        return client
            .download(source, MAX_SOURCE_BYTES)
            .await
            .map_err(|e| format!("cannot download the source image: {e}"));
    }
    let data = source.split_once("base64,").map_or(source, |(_, d)| d).trim();
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "the source image is neither a link nor base64".to_string())
}

/// Runs one form and submits its result (a failure as `faulted`).
async fn run_form(client: &HordeClient, backend: &Arc<dyn AlchemyBackend>, stats: &Mutex<AlchemyStats>, form: AlchemyPopForm) {
    let started = Instant::now();
    let result = match source_of(client, &form).await {
        Ok(source) => {
            let job = AlchemyJob {
                id: form.id.clone(),
                form: form.form.clone(),
                payload: form.payload.clone().unwrap_or_default(),
                source,
            };
            let backend = backend.clone();
            tokio::task::spawn_blocking(move || backend.run(&job))
                .await
                .unwrap_or_else(|e| Err(format!("the form crashed: {e}")))
        }
        Err(e) => Err(e),
    };
    let elapsed = started.elapsed().as_secs_f64();
    let submit = match result {
        Ok(FormResult::Value(value)) => ok_submit(&form, value),
        Ok(FormResult::Image(webp)) => {
            let value = match &form.r2_upload {
                Some(url) => match client.upload(url, webp.clone()).await {
                    Ok(()) => Value::from(UPLOADED),
                    Err(e) => {
                        tracing::warn!(job = %form.id, error = %e, "upload failed; sending the image inline");
                        Value::from(base64::engine::general_purpose::STANDARD.encode(&webp))
                    }
                },
                None => Value::from(base64::engine::general_purpose::STANDARD.encode(&webp)),
            };
            ok_submit(&form, value)
        }
        Err(e) => {
            tracing::warn!(job = %form.id, form = %form.form, error = %e, "the form failed; reporting it as faulted");
            AlchemySubmitRequest {
                id: form.id.clone(),
                result: json!({}),
                state: Some("faulted".into()),
            }
        }
    };
    let faulted = submit.state.as_deref() == Some("faulted");
    let submitted = job_loop::submit_with_retries(&form.id, || async { client.submit_alchemy(&submit).await.map(|r| r.reward) }).await;
    let mut s = lock(stats);
    match submitted {
        Submitted::Rewarded(reward) if !faulted => {
            s.forms_done += 1;
            s.run_secs += elapsed;
            s.kudos += reward;
        }
        _ => s.forms_faulted += 1,
    }
}

fn ok_submit(form: &AlchemyPopForm, value: Value) -> AlchemySubmitRequest {
    let mut result = serde_json::Map::new();
    result.insert(form.form.clone(), value);
    AlchemySubmitRequest {
        id: form.id.clone(),
        result: Value::Object(result),
        state: Some("ok".into()),
    }
}

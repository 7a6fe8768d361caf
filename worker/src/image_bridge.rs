//! The image bridge: pops image jobs (a batch of ids per pop), generates them one job at a time
//! per slot, uploads each WebP to its job's upload link (or sends it inline as base64 when the
//! horde gives none) and submits. Same shutdown as the text bridge: maintenance, finish, return.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use horde_protocol::image::{ImagePopRequest, ImageSubmitRequest};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::bridge::{enter_maintenance, MAX_BACKOFF, SUBMIT_ATTEMPTS};
use crate::client::{ClientError, HordeClient};
use crate::config::WorkerConfig;
use crate::image_model::{FinishedImage, ImageBackend, ImageJob};

/// What the image bridge has done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageBridgeStats {
    pub images_done: u64,
    pub images_faulted: u64,
    pub images_censored: u64,
    pub generation_secs: f64,
    pub kudos: f64,
    pub pop_errors: u64,
}

pub struct ImageBridge {
    client: HordeClient,
    cfg: WorkerConfig,
    backend: Arc<dyn ImageBackend>,
    stats: Arc<Mutex<ImageBridgeStats>>,
}

fn lock(stats: &Mutex<ImageBridgeStats>) -> std::sync::MutexGuard<'_, ImageBridgeStats> {
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

impl ImageBridge {
    pub fn new(cfg: WorkerConfig, backend: Arc<dyn ImageBackend>) -> Result<Self, ClientError> {
        Ok(Self {
            client: HordeClient::new(&cfg.url, &cfg.api_key)?,
            cfg,
            backend,
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> ImageBridgeStats {
        lock(&self.stats).clone()
    }

    fn pop_request(&self) -> ImagePopRequest {
        ImagePopRequest {
            name: Some(self.cfg.name.clone()),
            priority_usernames: Some(self.cfg.priority_usernames.clone()),
            nsfw: Some(self.cfg.nsfw),
            models: Some(self.backend.models()),
            bridge_agent: Some(crate::bridge_agent()),
            threads: Some(self.cfg.threads as i64),
            amount: Some(1),
            max_pixels: Some(self.backend.max_pixels()),
            extra_slow_worker: Some(self.backend.extra_slow()),
            blacklist: Some(self.cfg.censorlist.clone()),
            allow_img2img: Some(true),
            allow_painting: Some(false),
            allow_unsafe_ipaddr: Some(true),
            allow_post_processing: Some(false),
            allow_controlnet: Some(false),
            allow_sdxl_controlnet: Some(false),
            allow_lora: Some(false),
            ..ImagePopRequest::default()
        }
    }

    /// Runs until `shutdown` resolves; then enters maintenance, finishes running jobs and returns
    /// the final counters.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> ImageBridgeStats {
        let slots = Arc::new(Semaphore::new(self.cfg.threads.max(1)));
        let mut jobs: JoinSet<()> = JoinSet::new();
        let mut backoff = Duration::ZERO;
        tokio::pin!(shutdown);
        loop {
            while jobs.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = &mut shutdown => break,
            };
            let request = self.pop_request();
            let popped = tokio::select! {
                r = self.client.pop_image(&request) => r,
                _ = &mut shutdown => break,
            };
            let wait = match popped {
                Ok(resp) => {
                    backoff = Duration::ZERO;
                    match (resp.payload, resp.model) {
                        (Some(payload), Some(model)) if !resp.ids.is_empty() => {
                            // One link per id; hordes that send only `r2_upload` mean the first id's.
                            let uploads = resp.r2_uploads.unwrap_or_else(|| resp.r2_upload.into_iter().collect());
                            let job = ImageJob {
                                ids: resp.ids,
                                model,
                                payload,
                                source_image: resp.source_image,
                                source_processing: resp.source_processing,
                            };
                            let (client, backend, stats) = (self.client.clone(), self.backend.clone(), self.stats.clone());
                            jobs.spawn(async move {
                                run_job(client, backend, stats, job, uploads).await;
                                drop(permit);
                            });
                            continue;
                        }
                        _ => self.cfg.idle_interval,
                    }
                }
                Err(e) => {
                    lock(&self.stats).pop_errors += 1;
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                    tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "image pop failed");
                    backoff
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut shutdown => break,
            }
        }
        tracing::info!(
            running = jobs.len(),
            "stopping the image bridge: entering maintenance and finishing running jobs"
        );
        enter_maintenance(&self.client, &self.cfg.name).await;
        while jobs.join_next().await.is_some() {}
        let s = self.stats();
        tracing::info!(
            images_done = s.images_done,
            images_faulted = s.images_faulted,
            kudos = format!("{:.2}", s.kudos),
            "image bridge stopped"
        );
        s
    }
}

async fn run_job(
    client: HordeClient,
    backend: Arc<dyn ImageBackend>,
    stats: Arc<Mutex<ImageBridgeStats>>,
    job: ImageJob,
    uploads: Vec<String>,
) {
    let started = Instant::now();
    let for_backend = job.clone();
    let generated = tokio::task::spawn_blocking(move || {
        let mut last_log = Instant::now();
        backend.generate(&for_backend, &mut |done, total| {
            if last_log.elapsed() >= Duration::from_secs(10) {
                tracing::info!(job = %for_backend.ids[0], done, total, "generating");
                last_log = Instant::now();
            }
        })
    })
    .await
    .unwrap_or_else(|e| Err(format!("generation crashed: {e}")));
    let elapsed = started.elapsed().as_secs_f64();
    match generated {
        Ok(images) => {
            let per_image = elapsed / images.len().max(1) as f64;
            for (i, image) in images.into_iter().enumerate() {
                let censored = image.censored;
                let ok = submit(&client, &stats, image_submit(&client, image, uploads.get(i)).await).await;
                let mut s = lock(&stats);
                if ok {
                    s.images_done += 1;
                    s.images_censored += u64::from(censored);
                    s.generation_secs += per_image;
                } else {
                    s.images_faulted += 1;
                }
            }
        }
        Err(e) => {
            tracing::warn!(job = %job.ids[0], error = %e, "image generation failed; reporting the jobs as faulted");
            for id in &job.ids {
                let faulted = ImageSubmitRequest {
                    id: Some(id.clone()),
                    generation: Some(String::new()),
                    state: Some("faulted".into()),
                    seed: Some(0),
                    ..Default::default()
                };
                submit(&client, &stats, faulted).await;
                lock(&stats).images_faulted += 1;
            }
        }
    }
}

/// The submit of one image: uploaded to its link (`generation: "R2"`) when the horde gave one
/// and the upload works, else inline base64.
async fn image_submit(client: &HordeClient, image: FinishedImage, upload: Option<&String>) -> ImageSubmitRequest {
    let generation = match upload {
        Some(url) => match client.upload(url, image.webp.clone()).await {
            Ok(()) => "R2".to_string(),
            Err(e) => {
                tracing::warn!(job = %image.id, error = %e, "upload failed; sending the image inline");
                base64::engine::general_purpose::STANDARD.encode(&image.webp)
            }
        },
        None => base64::engine::general_purpose::STANDARD.encode(&image.webp),
    };
    ImageSubmitRequest {
        id: Some(image.id),
        generation: Some(generation),
        state: Some("ok".into()),
        seed: Some(image.seed),
        censored: Some(image.censored),
        gen_metadata: (!image.metadata.is_empty()).then_some(image.metadata),
    }
}

/// Submits with retries on network errors and server faults; `false` when the horde refused it.
async fn submit(client: &HordeClient, stats: &Mutex<ImageBridgeStats>, request: ImageSubmitRequest) -> bool {
    let mut delay = Duration::from_millis(500);
    let id = request.id.clone().unwrap_or_default();
    for attempt in 1..=SUBMIT_ATTEMPTS {
        match client.submit_image(&request).await {
            Ok(r) => {
                lock(stats).kudos += r.reward;
                return request.state.as_deref() != Some("faulted");
            }
            Err(e) if e.status().is_some_and(|st| (400..500).contains(&st)) => {
                tracing::warn!(job = %id, error = %e, "the horde refused the image; dropping it");
                return false;
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %e, attempt, "image submit failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Slow;

    impl ImageBackend for Slow {
        fn models(&self) -> Vec<String> {
            vec!["sd".into()]
        }
        fn max_pixels(&self) -> i64 {
            65536
        }
        fn extra_slow(&self) -> bool {
            true
        }
        fn generate(&self, _job: &ImageJob, _progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<FinishedImage>, String> {
            Err("not here".into())
        }
    }

    #[test]
    fn pops_say_what_the_worker_can_do() {
        let args = crate::config::Args {
            url: Some("http://127.0.0.1:1".into()),
            api_key: Some("k".into()),
            name: Some("w".into()),
            censorlist: None,
            ..Default::default()
        };
        let cfg = WorkerConfig::resolve(args).expect("config");
        let pop = ImageBridge::new(cfg, Arc::new(Slow)).expect("bridge").pop_request();
        assert_eq!(
            (pop.models, pop.max_pixels, pop.extra_slow_worker),
            (Some(vec!["sd".to_string()]), Some(65536), Some(true))
        );
        assert_eq!(
            (
                pop.allow_img2img,
                pop.allow_painting,
                pop.allow_lora,
                pop.allow_controlnet,
                pop.allow_post_processing
            ),
            (Some(true), Some(false), Some(false), Some(false), Some(false))
        );
        assert_eq!(crate::image_model::default_max_pixels(&crate::device::Compute::Host), 256 * 256);
    }
}

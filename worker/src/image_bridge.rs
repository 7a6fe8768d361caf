//! The image bridge: pops image jobs (a batch of ids per pop), generates them one job at a time
//! per slot, uploads each WebP to its job's upload link (or sends it inline as base64 when the
//! horde gives none) and submits, on the shared loop (`job_loop`). Images whose request asks for
//! `post_processing` go through this worker's post-processors (`post_processing`) first.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{ClientError, HordeClient};
use crate::config::WorkerConfig;
use crate::image_model::{FinishedImage, ImageBackend, ImageJob};
use crate::job_loop::lock_stats as lock;
use crate::job_loop::{self, JobKind, LoopSettings, Submitted};
use crate::post_processing::PostProcessors;
use base64::Engine;
use horde_protocol::image::{ImagePopRequest, ImageSubmitRequest};

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

/// A worker's connection to a horde, serving image jobs.
pub struct ImageBridge {
    client: HordeClient,
    settings: LoopSettings,
    jobs: ImageJobs,
}

impl ImageBridge {
    pub fn new(cfg: WorkerConfig, backend: Arc<dyn ImageBackend>) -> Result<Self, ClientError> {
        let client = HordeClient::new(&cfg.url, &cfg.api_key)?;
        Ok(Self {
            settings: LoopSettings::of(&cfg),
            jobs: ImageJobs {
                client: client.clone(),
                cfg,
                backend,
                post: PostProcessors::default(),
                stats: Arc::default(),
            },
            client,
        })
    }

    /// Runs requests' `post_processing` with `post`'s models, and says so in pops
    /// (`allow_post_processing`) when there is any.
    pub fn with_post_processors(mut self, post: PostProcessors) -> Self {
        self.jobs.post = post;
        self
    }

    pub fn stats(&self) -> ImageBridgeStats {
        lock(&self.jobs.stats).clone()
    }

    /// Runs until `shutdown` resolves; then enters maintenance, finishes running jobs and returns
    /// the final counters.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) -> ImageBridgeStats {
        job_loop::run(&self.jobs, &self.client, &self.settings, shutdown).await;
        self.stats()
    }
}

/// Image jobs as the shared loop runs them.
struct ImageJobs {
    client: HordeClient,
    cfg: WorkerConfig,
    backend: Arc<dyn ImageBackend>,
    post: PostProcessors,
    stats: Arc<Mutex<ImageBridgeStats>>,
}

impl ImageJobs {
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
            allow_post_processing: Some(!self.post.is_empty()),
            allow_controlnet: Some(false),
            allow_sdxl_controlnet: Some(false),
            allow_lora: Some(false),
            ..ImagePopRequest::default()
        }
    }
}

/// A popped batch and the upload link of each of its ids.
struct PoppedImages {
    job: ImageJob,
    uploads: Vec<String>,
}

impl JobKind for ImageJobs {
    type Popped = PoppedImages;
    const NAME: &'static str = "image";

    async fn pop(&self) -> Result<Option<PoppedImages>, ClientError> {
        let resp = self.client.pop_image(&self.pop_request()).await?;
        Ok(match (resp.payload, resp.model) {
            (Some(payload), Some(model)) if !resp.ids.is_empty() => {
                // One link per id; hordes that send only `r2_upload` mean the first id's.
                let uploads = resp.r2_uploads.unwrap_or_else(|| resp.r2_upload.into_iter().collect());
                Some(PoppedImages {
                    job: ImageJob {
                        ids: resp.ids,
                        model,
                        payload,
                        source_image: resp.source_image,
                        source_processing: resp.source_processing,
                    },
                    uploads,
                })
            }
            _ => None,
        })
    }

    fn run(&self, popped: PoppedImages) -> impl std::future::Future<Output = ()> + Send + 'static {
        run_job(
            self.client.clone(),
            self.backend.clone(),
            self.post.clone(),
            self.stats.clone(),
            popped.job,
            popped.uploads,
        )
    }

    fn pop_failed(&self) {
        lock(&self.stats).pop_errors += 1;
    }

    fn report(&self, what: &str) {
        let s = lock(&self.stats).clone();
        tracing::info!(
            images_done = s.images_done,
            images_faulted = s.images_faulted,
            kudos = format!("{:.2}", s.kudos),
            "image bridge {what}"
        );
    }
}

async fn run_job(
    client: HordeClient,
    backend: Arc<dyn ImageBackend>,
    post: PostProcessors,
    stats: Arc<Mutex<ImageBridgeStats>>,
    job: ImageJob,
    uploads: Vec<String>,
) {
    let started = Instant::now();
    let for_backend = job.clone();
    let generated = tokio::task::spawn_blocking(move || {
        let mut last_log = Instant::now();
        let images = backend.generate(&for_backend, &mut |done, total| {
            if last_log.elapsed() >= Duration::from_secs(10) {
                tracing::info!(job = %for_backend.ids[0], done, total, "generating");
                last_log = Instant::now();
            }
        })?;
        let asked = &for_backend.payload.post_processing;
        Ok(images
            .into_iter()
            .map(|image| post_process(&post, asked, image))
            .collect::<Vec<_>>())
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

/// `image` through the post-processors `asked` names (none for a censored image). When
/// post-processing fails the generated image is kept, and its metadata says why.
fn post_process(post: &PostProcessors, asked: &[String], mut image: FinishedImage) -> FinishedImage {
    if asked.is_empty() || image.censored {
        return image;
    }
    let processed = crate::alchemy::decode(&image.webp).and_then(|rgb| post.apply(&rgb, asked));
    match processed {
        Ok(p) => {
            if let Some(webp) = p.webp {
                image.webp = webp;
            }
            image.metadata.extend(p.metadata);
        }
        Err(e) => {
            tracing::warn!(job = %image.id, error = %e, "post-processing failed; sending the generated image");
            image.metadata.push(horde_protocol::text::GenMetadata {
                kind: "information".into(),
                value: "see_ref".into(),
                reference: Some(format!("post-processing failed: {e}")),
            });
        }
    }
    image
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
    let id = request.id.clone().unwrap_or_default();
    match job_loop::submit_with_retries(&id, || async { client.submit_image(&request).await.map(|r| r.reward) }).await {
        Submitted::Rewarded(reward) => {
            lock(stats).kudos += reward;
            request.state.as_deref() != Some("faulted")
        }
        Submitted::Refused | Submitted::GaveUp => false,
    }
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
        let pop = ImageBridge::new(cfg, Arc::new(Slow)).expect("bridge").jobs.pop_request();
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

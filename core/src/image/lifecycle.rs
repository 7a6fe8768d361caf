//! What image requests bring to the lifecycle (`crate::lifecycle`): the prompt filter, their
//! price, the image store's room, batches bounded by a worker's pixels, the payload with seeds
//! and upload links, and what a finished image counts (pixelsteps, timings for the kudos model).

use std::net::IpAddr;

use base64::Engine;
use horde_protocol::image::{ImageCheck, ImageGeneration, ImagePopResponse, ImageSkipped, ImageStatus};
use horde_protocol::text::GenMetadata;
use uuid::Uuid;

use super::{batch_size, job_ttl_secs, ImageKind, ImageNeeds, ImageOutput, ImageRequest};
use crate::accounts::{UserRecords, Users, ANONYMOUS_USER_ID};
use crate::config::HordeConfig;
use crate::generation_stats::GenerationKind;
use crate::kudos::image_model::Timing;
use crate::kudos::image_price::{self, features_of};
use crate::kudos::Centikudos;
use crate::lifecycle::{upfront, JobLinks, JobReport, RequestKind, Settled, Work};
use crate::safety::filter::FilterOutcome;
use crate::safety::suspicion::{self, Suspicion};
use crate::scheduler::{FinishedJob, Job, Queue, WaitingRequest};
use crate::state::{add_records, State};
use crate::workers::{Worker, Workers};
use crate::{HordeError, Result};

/// What an image worker sends back for a job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageJobResult {
    pub job_id: String,
    /// Base64 WebP, or `"R2"` when it was uploaded to the job's link.
    pub generation: String,
    pub state: String,
    pub seed: i64,
    pub censored: bool,
    pub gen_metadata: Vec<GenMetadata>,
}

impl JobReport for ImageJobResult {
    fn job_id(&self) -> &str {
        &self.job_id
    }
    fn state(&self) -> &str {
        &self.state
    }
    fn censored(&self) -> bool {
        self.censored
    }
    fn seed(&self) -> i64 {
        self.seed
    }
    fn gen_metadata(&self) -> &[GenMetadata] {
        &self.gen_metadata
    }
}

/// Thousandths of megapixelsteps (kilopixelsteps) of one image of `r`.
fn image_kps(r: &ImageRequest) -> i64 {
    r.pixels() * r.accurate_steps / 1000
}

/// Seconds a job took per image of its batch (a batch is generated image after image).
fn seconds_per_image(job: &Job, now_ms: u64) -> f64 {
    (now_ms.saturating_sub(job.started_ms) as f64 / 1000.0 / job.batch.max(1) as f64).max(0.001)
}

impl RequestKind for ImageKind {
    type Pop = ImagePopResponse;
    type Report = ImageJobResult;
    type Status = ImageStatus;

    fn queue(s: &State) -> &Queue<Self> {
        &s.images
    }
    fn queue_mut(s: &mut State) -> &mut Queue<Self> {
        &mut s.images
    }
    fn queue_beside_workers(s: &mut State) -> (&mut Queue<Self>, &Workers, &Users) {
        (&mut s.images, &s.workers, &s.users)
    }

    /// The prompt filter: a prompt may be rewritten; a corrupt one is refused, its address
    /// timed out and its (named) sender noted as suspicious.
    fn screen(s: &mut State, user_id: i64, r: &mut ImageRequest, ip: Option<IpAddr>, now_ms: u64) -> Result<()> {
        match s.filter.check(&r.prompt, r.replacement_filter) {
            FilterOutcome::Pass => Ok(()),
            FilterOutcome::Replaced(p) => {
                r.prompt = p;
                Ok(())
            }
            FilterOutcome::Corrupt => {
                if let Some(ip) = ip {
                    s.ip_timeouts.offend(&ip, now_ms);
                }
                if user_id != ANONYMOUS_USER_ID {
                    if let Some(u) = s.users.get_mut(user_id) {
                        u.suspicions.add(Suspicion::CorruptPrompt);
                    }
                }
                Err(HordeError::CorruptPrompt)
            }
        }
    }
    fn job_estimate(s: &State, r: &ImageRequest) -> Centikudos {
        image_price::estimate_job(&s.kudos_model, r)
    }
    /// Pixelsteps: width × height × steps.
    fn figures(r: &ImageRequest, _work: &Work) -> Option<(GenerationKind, i64)> {
        Some((GenerationKind::Image, r.pixels().saturating_mul(r.steps)))
    }
    /// `slow_workers: false`, more sampler steps than served freely, or an image larger than
    /// the horde's free allowance now.
    fn upfront_reason(s: &State, r: &ImageRequest, now_ms: u64) -> Option<String> {
        if !r.slow_workers {
            return Some("slow_workers is false".into());
        }
        if r.accurate_steps > upfront::FREE_MAX_STEPS {
            return Some(format!(
                "{} sampler steps are over the {} served without them",
                r.accurate_steps,
                upfront::FREE_MAX_STEPS
            ));
        }
        if r.pixels() <= upfront::FREE_MIN_RESOLUTION.pow(2) {
            return None;
        }
        let side = s.free_max_resolution(now_ms);
        (r.pixels() > side * side).then(|| {
            format!(
                "{}×{} is larger than the {side}×{side} pixels served without them now",
                r.width, r.height
            )
        })
    }
    /// Any workers, the free allowance of pixels and at most 30 steps' worth of evaluations.
    fn downgrade(s: &State, r: &mut ImageRequest, now_ms: u64) -> bool {
        r.options.slow_workers = true;
        r.shrink(s.free_max_resolution(now_ms), upfront::DOWNGRADED_STEPS);
        true
    }
    /// Room in the image store for its source images and results.
    fn hold(s: &mut State, _user_id: i64, r: &ImageRequest) -> Result<usize> {
        s.image_store.reserve(r.held_bytes())?;
        Ok(0)
    }
    fn release(s: &mut State, r: &ImageRequest) {
        s.image_store.release(r.held_bytes());
    }
    fn count_request(records: &mut UserRecords, r: &ImageRequest) {
        records.requests_image += 1;
        records.usage_kps += image_kps(r) * r.n as i64;
    }
    fn needs(r: &ImageRequest) -> (ImageNeeds, u8) {
        super::needs(r)
    }

    fn batch(_cfg: &HordeConfig, w: &Worker, req: &WaitingRequest<Self>, amount: u32) -> (u32, u64) {
        let count = batch_size(&req.request, req.remaining, amount, w.image.max_pixels);
        (count, job_ttl_secs(&req.request, count, w.extra_slow))
    }
    fn seed(r: &ImageRequest, index: u32) -> i64 {
        r.seed_of(index)
    }
    /// The payload with the batch's first seed, the source images, and an upload link per job.
    /// The seed's rule: a prompt with a word of the worker's censorlist is generated with the
    /// NSFW censor on.
    fn handout(w: &Worker, req: &WaitingRequest<Self>, jobs: &[Job], model: String, links: JobLinks) -> ImagePopResponse {
        let r = &req.request;
        let lower = r.prompt.to_lowercase();
        let censorlisted = w.image.blacklist.iter().any(|word| lower.contains(word.as_str()));
        let mut payload = r.payload.clone();
        payload.prompt = Some(r.prompt.clone());
        payload.seed = jobs.first().map_or(0, |j| j.seed).to_string();
        payload.n_iter = jobs.len() as i64;
        payload.use_nsfw_censor = r.use_nsfw_censor() || censorlisted;
        let uploads: Vec<String> = jobs.iter().map(|j| links(&j.id)).collect();
        ImagePopResponse {
            payload: Some(payload),
            id: jobs.first().map(|j| j.id.to_string()),
            ids: jobs.iter().map(|j| j.id.to_string()).collect(),
            skipped: ImageSkipped::default(),
            model: Some(model),
            source_image: r.source_image.as_ref().map(|s| s.base64.clone()),
            source_processing: Some(r.source_processing.clone()),
            source_mask: r.source_mask.as_ref().map(|s| s.base64.clone()),
            r2_upload: uploads.first().cloned(),
            r2_uploads: Some(uploads),
            ttl: jobs.first().map(|j| j.ttl_secs as i64),
        }
    }
    fn idle(skipped: ImageSkipped) -> ImagePopResponse {
        ImagePopResponse {
            payload: None,
            id: None,
            ids: vec![],
            skipped,
            model: None,
            source_image: None,
            source_processing: None,
            source_mask: None,
            r2_upload: None,
            r2_uploads: None,
            ttl: None,
        }
    }

    /// The image: uploaded to the job's link, or sent inline as base64.
    fn check_result(s: &mut State, job: &Job, report: &ImageJobResult) -> Result<()> {
        let generation = report.generation.trim();
        if generation.eq_ignore_ascii_case("r2") {
            if !s.image_store.contains(&job.id) {
                return Err(HordeError::rejected(
                    "ImageNotUploaded",
                    "generation is \"R2\" but nothing was uploaded to this job's upload URL.",
                ));
            }
            return Ok(());
        }
        let data = generation.split_once("base64,").map_or(generation, |(_, d)| d);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| HordeError::rejected("InvalidImage", "generation must be base64 WebP or \"R2\"."))?;
        super::results::check_result_image(&bytes, s.cfg.max_result_image_bytes)?;
        s.image_store.put(job.id, bytes)
    }
    /// Priced by the kudos model at the job's model; the speed is megapixelsteps per second of
    /// each image of the batch.
    fn work(s: &State, req: &WaitingRequest<Self>, job: &Job, _report: &ImageJobResult, now_ms: u64) -> Work {
        let r = &req.request;
        let reward = image_price::job_reward(&s.kudos_model, r, &job.model);
        let kps = image_kps(r);
        Work {
            reward,
            charge: image_price::job_charge(reward, r.is_img2img(), r.slow_workers, r.worker_blacklist),
            things: kps,
            speed: kps as f64 / 1000.0 / seconds_per_image(job, now_ms),
            max_speed: suspicion::MAX_IMAGE_MPS_PER_SEC,
        }
    }
    /// Pixelsteps contributed; the image's time, normalized by how fast this worker usually is,
    /// for refitting the kudos model.
    fn count_work(s: &mut State, done: &Settled, _report: ImageJobResult) -> ImageOutput {
        let (job, kps) = (done.job, done.work.things);
        add_records(&mut s.pending, &mut s.users, done.owner, |r| {
            r.contribution_kps += kps;
            r.fulfilled_image += 1;
        });
        let features = s.images.get(&job.request_id).map(|r| features_of(&r.request));
        if let (Some(w), Some(features)) = (s.workers.get_mut(&job.worker_id), features) {
            w.kps_generated += kps;
            let per_image = seconds_per_image(job, done.now_ms);
            let predicted = s.kudos_model.predict_seconds(&features);
            w.record_time_ratio(per_image / predicted.max(1e-3));
            let normalized = per_image / w.time_ratio();
            s.pending.timings.push((
                done.now_ms,
                Timing {
                    payload: features,
                    seconds: normalized,
                },
            ));
        }
        s.recent_kps.push_back((done.now_ms, kps));
        ImageOutput {
            bytes: s.image_store.get(&job.id).map_or(0, |b| b.len()),
            censored: done.censored,
        }
    }
    fn announce(
        g: &FinishedJob<ImageOutput>,
        r: &ImageRequest,
        body: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Option<(Uuid, bool)> {
        body.insert("seed".into(), g.seed.to_string().into());
        body.insert("censored".into(), g.output.censored.into());
        Some((g.job_id, r.r2))
    }

    fn drop_result(s: &mut State, job_id: &Uuid) {
        s.image_store.remove(job_id);
    }
    fn forget(s: &mut State, r: &WaitingRequest<Self>) {
        for j in &r.job_ids {
            s.image_store.remove(j);
        }
        s.image_store.release(r.request.held_bytes());
    }

    /// Progress and the images so far, as base64 (`r2: false`) or as links.
    fn status(s: &State, check: ImageCheck, req: &WaitingRequest<Self>, links: JobLinks) -> ImageStatus {
        let generations = req
            .generations
            .iter()
            .map(|g| {
                let img = if req.request.r2 {
                    links(&g.job_id)
                } else {
                    s.image_store
                        .get(&g.job_id)
                        .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
                        .unwrap_or_default()
                };
                ImageGeneration {
                    img,
                    seed: g.seed.to_string(),
                    worker_id: g.worker_id.to_string(),
                    worker_name: g.worker_name.clone(),
                    model: g.model.clone(),
                    id: g.job_id.to_string(),
                    censored: g.output.censored,
                    state: g.state.clone(),
                    gen_metadata: g.gen_metadata.clone(),
                }
            })
            .collect();
        ImageStatus {
            check,
            generations,
            shared: req.request.shared,
        }
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;

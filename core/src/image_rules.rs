//! The image generation rules over the horde's state: accepting requests, handing batches of
//! jobs to image workers, taking results (base64 or uploaded), status, ratings and expiry. The
//! same queue and priority rules as text; image-specific matching, batching and pricing.

use std::collections::HashMap;

use base64::Engine;
use horde_protocol::image::{ImageCheck, ImageGeneration, ImagePopResponse, ImageSkipped, ImageStatus, RateRequest};
use horde_protocol::status as wire_status;
use horde_protocol::text::GenMetadata;
use uuid::Uuid;

use crate::image::request::image_dimensions;
use crate::image::{batch_size, job_ttl_secs, ImageKind, ImageOutput, ImageRequest};
use crate::kudos::image_model::Timing;
use crate::kudos::image_price::{self, features_of};
use crate::kudos::text_price::REQUEST_TAX;
use crate::kudos::{to_kudos, Centikudos, PostingKind};
use crate::safety::suspicion::{self, Suspicion};
use crate::scheduler::{choose_request, figures, FinishedJob, Job, JobState, QueueKey, WaitingRequest};
use crate::state::{add_records, Accepted, ReapReport, State};
use crate::workers::Worker;
use crate::{HordeError, Result};

/// A finished job to announce to its request's webhook. The server fills in `img` (a link or
/// base64, as the request asked) when it sends it.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub url: String,
    pub body: serde_json::Value,
    /// For image jobs: the job whose image goes in `img`, and whether as a link (`r2`).
    pub image: Option<(Uuid, bool)>,
}

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

/// Rating rewards (reference 5.6): 5 per rating, +5 with artifacts, 15 for a best pick.
const RATING_REWARD: Centikudos = 500;
const ARTIFACTS_REWARD: Centikudos = 500;
const BEST_REWARD: Centikudos = 1500;

/// Webhook announcements waiting at most; past it new ones are dropped (webhooks are best effort
/// and must never hold memory without bound).
pub const WEBHOOK_QUEUE: usize = 256;

impl State {
    /// Queues a webhook announcement unless the queue is full.
    pub fn queue_webhook(&mut self, event: WebhookEvent) {
        if self.webhooks.len() < WEBHOOK_QUEUE {
            self.webhooks.push(event);
        } else {
            tracing::warn!("webhook queue full; an announcement was dropped");
        }
    }

    /// Expected charge of one image of `r`.
    pub fn estimate_image_job(&self, r: &ImageRequest) -> Centikudos {
        image_price::estimate_job(&self.kudos_model, r)
    }

    /// What a whole image request is expected to cost, tax included (`dry_run`).
    pub fn estimate_image_request(&self, r: &ImageRequest) -> Centikudos {
        self.estimate_image_job(r) * r.n as Centikudos + REQUEST_TAX
    }

    fn waiting_image_jobs(&self, user_id: i64) -> i64 {
        self.images
            .user_in_order(user_id)
            .filter_map(|(_, id)| self.images.get(id))
            .map(|r| r.remaining as i64)
            .sum()
    }

    /// Accepts an image request: concurrency, room for its source image, the request tax.
    pub fn submit_image(&mut self, user_id: i64, req: ImageRequest, now_ms: u64) -> Result<Accepted> {
        let (kudos, concurrency, flagged) = match self.users.get(user_id) {
            Some(u) => (u.kudos, u.concurrency, u.flagged),
            None => return Err(HordeError::Internal(format!("account of user {user_id} is not loaded"))),
        };
        let waiting = self.waiting_image_jobs(user_id);
        if waiting + req.n as i64 > concurrency {
            return Err(HordeError::TooManyPrompts {
                waiting,
                limit: concurrency,
            });
        }
        self.image_store.reserve(req.held_bytes())?;
        let job_estimate = self.estimate_image_job(&req);
        let estimate = job_estimate * req.n as Centikudos + REQUEST_TAX;
        let charged = match self
            .ledger
            .charge(&mut self.users, user_id, REQUEST_TAX, PostingKind::RequestTax, now_ms)
        {
            Ok(c) => c,
            Err(e) => {
                self.image_store.release(req.held_bytes());
                return Err(e);
            }
        };
        let upfront = kudos - self.users.get(user_id).map_or(kudos, |u| u.kudos);
        let kps = req.pixels() * req.accurate_steps * req.n as i64 / 1000;
        add_records(&mut self.pending, &mut self.users, user_id, |r| {
            r.requests_image += 1;
            r.usage_kps += kps;
        });
        let id = crate::state::new_id(&mut self.ids);
        let model_ids = self.models.intern_all(&req.models);
        let priority = if flagged { -100.0 } else { to_kudos(kudos) };
        let seq = self.images.next_seq();
        let key = QueueKey::new(priority, now_ms as f64 / 1000.0, self.cfg.aging_per_sec, seq);
        let criteria = crate::image::criteria(id, user_id, &req, job_estimate);
        let n = req.n;
        let mut wr = WaitingRequest::new(id, user_id, req, model_ids, key, n, charged, criteria, now_ms);
        wr.upfront = upfront;
        let possible = !self.eligible_image_workers(&wr, now_ms).is_empty();
        self.images.insert(wr);
        Ok(Accepted {
            id,
            kudos: estimate,
            possible,
        })
    }

    fn eligible_image_workers(&self, req: &WaitingRequest<ImageKind>, now_ms: u64) -> Vec<&Worker> {
        figures::eligible_workers(&self.workers, &self.users, req, now_ms, self.cfg.worker_online_secs)
    }

    /// `GET /generate/check/{id}`.
    pub fn image_check(&mut self, id: &Uuid, now_ms: u64) -> Result<ImageCheck> {
        let online_secs = self.cfg.worker_online_secs;
        figures::standing(&mut self.images, &self.workers, &self.users, id, now_ms, online_secs)
            .ok_or_else(|| HordeError::RequestNotFound(id.to_string()))
    }

    /// `GET /generate/status/{id}`: progress and the images so far, as base64 (`r2: false`) or
    /// as links made by `link`.
    pub fn image_status(&mut self, id: &Uuid, now_ms: u64, link: &dyn Fn(&Uuid) -> String) -> Result<ImageStatus> {
        let check = self.image_check(id, now_ms)?;
        if let Some(r) = self.images.get_mut(id) {
            r.collected |= check.done;
        }
        let req = self.images.get(id).ok_or_else(|| HordeError::RequestNotFound(id.to_string()))?;
        let generations = req
            .generations
            .iter()
            .map(|g| {
                let img = if req.request.r2 {
                    link(&g.job_id)
                } else {
                    self.image_store
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
        Ok(ImageStatus {
            check,
            generations,
            shared: req.request.shared,
        })
    }

    /// `DELETE /generate/status/{id}`: hands out no more jobs; those in flight still finish.
    pub fn cancel_image(&mut self, id: &Uuid, now_ms: u64, link: &dyn Fn(&Uuid) -> String) -> Result<ImageStatus> {
        let status = self.image_status(id, now_ms, link)?;
        self.images.cancel(id);
        Ok(status)
    }

    /// Hands an image worker a batch of jobs of the first request it can serve (own user's
    /// first, then its priority users', then everyone's), with an upload link per job.
    pub fn pop_image(
        &mut self,
        worker_id: &Uuid,
        amount: u32,
        now_ms: u64,
        upload_link: &dyn Fn(&Uuid) -> String,
    ) -> Result<ImagePopResponse> {
        let w = self
            .workers
            .get(worker_id)
            .ok_or_else(|| HordeError::WorkerNotFound(worker_id.to_string()))?;
        let owner_trusted = self.users.is_trusted(w.owner_id);
        let mut skipped = ImageSkipped::default();
        let chosen = choose_request(&self.images, w, owner_trusted, &self.users, &mut skipped);
        let Some(request_id) = chosen else {
            if w.maintenance {
                return Err(HordeError::WorkerMaintenance);
            }
            return Ok(ImagePopResponse {
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
            });
        };
        self.start_image_jobs(worker_id, &request_id, amount, now_ms, upload_link)
    }

    fn start_image_jobs(
        &mut self,
        worker_id: &Uuid,
        request_id: &Uuid,
        amount: u32,
        now_ms: u64,
        upload_link: &dyn Fn(&Uuid) -> String,
    ) -> Result<ImagePopResponse> {
        let (worker_models, first_model, max_pixels, extra_slow, blacklist) = {
            let w = self
                .workers
                .get(worker_id)
                .ok_or_else(|| HordeError::WorkerNotFound(worker_id.to_string()))?;
            (
                w.model_ids.clone(),
                w.models.first().cloned().unwrap_or_default(),
                w.image.max_pixels,
                w.extra_slow,
                w.image.blacklist.clone(),
            )
        };
        let req = self
            .images
            .get_mut(request_id)
            .ok_or_else(|| HordeError::RequestNotFound(request_id.to_string()))?;
        if req.remaining == 0 {
            return Err(HordeError::Internal("chose a request with no jobs left".into()));
        }
        let model = req
            .model_ids
            .iter()
            .find(|m| worker_models.binary_search(m).is_ok())
            .map(|m| self.models.name(*m).to_string())
            .unwrap_or(first_model);
        let count = batch_size(&req.request, req.remaining, amount, max_pixels);
        let ttl = job_ttl_secs(&req.request, count, extra_slow);
        let first_index = req.job_ids.len() as u32;
        let jobs: Vec<Job> = (0..count)
            .map(|i| Job {
                id: crate::state::new_id(&mut self.ids),
                request_id: *request_id,
                worker_id: *worker_id,
                model: model.clone(),
                started_ms: now_ms,
                ttl_secs: ttl,
                state: JobState::InFlight,
                seed: req.request.seed_of(first_index + i),
                batch: count,
                progress: String::new(),
                progress_kept: 0,
            })
            .collect();
        req.remaining -= count;
        req.processing += count;
        req.last_activity_ms = now_ms;
        req.cached_position = None;
        // The seed's rule: a prompt with a word of the worker's censorlist is generated with the
        // NSFW censor on.
        let lower = req.request.prompt.to_lowercase();
        let censorlisted = blacklist.iter().any(|w| lower.contains(w.as_str()));
        let mut payload = req.request.payload.clone();
        payload.prompt = Some(req.request.prompt.clone());
        payload.seed = jobs.first().map_or(0, |j| j.seed).to_string();
        payload.n_iter = count as i64;
        payload.use_nsfw_censor = req.request.use_nsfw_censor() || censorlisted;
        let source_image = req.request.source_image.as_ref().map(|s| s.base64.clone());
        let source_mask = req.request.source_mask.as_ref().map(|s| s.base64.clone());
        let source_processing = Some(req.request.source_processing.clone());
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
        for job in jobs {
            self.images.add_job(job);
        }
        self.images.sync_order(request_id);
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.in_flight += count;
        }
        let uploads: Vec<String> = ids.iter().map(upload_link).collect();
        Ok(ImagePopResponse {
            payload: Some(payload),
            id: ids.first().map(Uuid::to_string),
            ids: ids.iter().map(Uuid::to_string).collect(),
            skipped: ImageSkipped::default(),
            model: Some(model),
            source_image,
            source_processing,
            source_mask,
            r2_upload: uploads.first().cloned(),
            r2_uploads: Some(uploads),
            ttl: Some(ttl as i64),
        })
    }

    /// Keeps the image a worker PUT to a job's upload link. Allowed while the job is in flight.
    pub fn upload_image(&mut self, job_id: &Uuid, bytes: Vec<u8>) -> Result<()> {
        let job = self.images.job(job_id).ok_or(HordeError::InvalidImageLink)?;
        if job.state != JobState::InFlight {
            return Err(HordeError::rejected(
                "JobNotInFlight",
                "This job is no longer waiting for its image.",
            ));
        }
        Self::check_result_image(&bytes, self.cfg.max_result_image_bytes)?;
        self.image_store.put(*job_id, bytes)
    }

    fn check_result_image(bytes: &[u8], max: usize) -> Result<()> {
        if bytes.len() > max {
            return Err(HordeError::rejected(
                "ImageTooLarge",
                format!("A result image may be at most {} KiB.", max / 1024),
            ));
        }
        if image_dimensions(bytes).is_none() {
            return Err(HordeError::rejected(
                "InvalidImage",
                "The generation is not a WebP, PNG or JPEG image.",
            ));
        }
        Ok(())
    }

    /// The image of a finished (or uploaded) job.
    pub fn image_bytes(&self, job_id: &Uuid) -> Option<std::sync::Arc<Vec<u8>>> {
        self.image_store.get(job_id)
    }

    /// Takes an image worker's result. Returns the job's reward (0 for a reported fault).
    pub fn submit_image_job(&mut self, user_id: i64, result: ImageJobResult, now_ms: u64) -> Result<f64> {
        let faulted_report = result.state == "faulted";
        let workers = &self.workers;
        let Some(job) = self
            .images
            .job_for_submit(&result.job_id, user_id, faulted_report, |w| workers.get(w).map(|w| w.owner_id))?
        else {
            return Ok(0.0);
        };
        let job_id = job.id;
        if faulted_report {
            self.fault_image_job(&job_id, JobState::Faulted, now_ms);
            return Ok(0.0);
        }
        if !matches!(result.state.as_str(), "ok" | "censored" | "csam" | "") {
            return Err(HordeError::Validation(format!(
                "Unknown generation state '{}'.",
                result.state.chars().take(20).collect::<String>()
            )));
        }
        if result.gen_metadata.len() > 50 {
            return Err(HordeError::Validation("At most 50 gen_metadata entries.".into()));
        }
        // The image: uploaded to the job's link, or sent inline as base64.
        let generation = result.generation.trim();
        if generation.eq_ignore_ascii_case("r2") {
            if !self.image_store.contains(&job_id) {
                return Err(HordeError::rejected(
                    "ImageNotUploaded",
                    "generation is \"R2\" but nothing was uploaded to this job's upload URL.",
                ));
            }
        } else {
            let data = generation.split_once("base64,").map_or(generation, |(_, d)| d);
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|_| HordeError::rejected("InvalidImage", "generation must be base64 WebP or \"R2\"."))?;
            Self::check_result_image(&bytes, self.cfg.max_result_image_bytes)?;
            self.image_store.put(job_id, bytes)?;
        }
        let req = self
            .images
            .get(&job.request_id)
            .ok_or_else(|| HordeError::InvalidJobId(job_id.to_string()))?;
        let requester = req.user_id;
        let mut gen_metadata = result.gen_metadata.clone();
        if result.state == "csam" && !gen_metadata.iter().any(|m| m.kind == "censorship" && m.value == "csam") {
            gen_metadata.push(GenMetadata {
                kind: "censorship".into(),
                value: "csam".into(),
                reference: None,
            });
        }
        let censored =
            gen_metadata.iter().any(|m| m.kind == "censorship") || result.censored || matches!(result.state.as_str(), "censored" | "csam");
        let state = if result.state == "csam" {
            "csam"
        } else if censored {
            "censored"
        } else {
            "ok"
        };
        let reward = image_price::job_reward(&self.kudos_model, &req.request, &job.model);
        let charge = if censored {
            0
        } else {
            image_price::job_charge(
                reward,
                req.request.is_img2img(),
                req.request.slow_workers,
                req.request.worker_blacklist,
            )
        };
        let features = features_of(&req.request);
        let predicted = self.kudos_model.predict_seconds(&features);
        let kps = req.request.pixels() * req.request.accurate_steps / 1000;
        let webhook = req.request.webhook.clone();
        let r2 = req.request.r2;
        // Pay the worker's owner, then charge the requester.
        self.ledger
            .reward(&mut self.users, user_id, reward, PostingKind::JobReward, now_ms)?;
        let charged = self
            .ledger
            .charge(&mut self.users, requester, charge, PostingKind::JobCharge, now_ms)?;
        add_records(&mut self.pending, &mut self.users, user_id, |r| {
            r.contribution_kps += kps;
            r.fulfilled_image += 1;
        });
        // Time per image of the batch, normalized by how fast this worker usually is.
        let per_image = (now_ms.saturating_sub(job.started_ms) as f64 / 1000.0 / job.batch.max(1) as f64).max(0.001);
        let worker_name = match self.workers.get_mut(&job.worker_id) {
            Some(w) => {
                w.in_flight = w.in_flight.saturating_sub(1);
                w.requests_fulfilled += 1;
                w.kps_generated += kps;
                w.kudos_generated += reward;
                let speed = kps as f64 / 1000.0 / per_image;
                w.record_performance(speed);
                if speed > suspicion::MAX_IMAGE_MPS_PER_SEC && !self.users.is_trusted(w.owner_id) {
                    w.suspect(Suspicion::UnreasonablyFast, false);
                }
                w.record_time_ratio(per_image / predicted.max(1e-3));
                let normalized = per_image / w.time_ratio();
                self.pending.timings.push((
                    now_ms,
                    Timing {
                        payload: features,
                        seconds: normalized,
                    },
                ));
                w.name.clone()
            }
            None => String::new(),
        };
        self.pending.workers.insert(job.worker_id);
        self.images.set_job_state(&job_id, JobState::Done);
        self.recent_kps.push_back((now_ms, kps));
        if let Some(r) = self.images.get_mut(&job.request_id) {
            r.processing = r.processing.saturating_sub(1);
            r.consumed += charged;
            r.last_activity_ms = now_ms;
            r.cached_position = None;
            r.generations.push(FinishedJob {
                job_id,
                output: ImageOutput {
                    bytes: self.image_store.get(&job_id).map_or(0, |b| b.len()),
                    censored,
                },
                seed: result.seed,
                worker_id: job.worker_id,
                worker_name: worker_name.clone(),
                model: job.model.clone(),
                state: state.into(),
                gen_metadata: gen_metadata.clone(),
                kudos: charged,
            });
        }
        if let Some(url) = webhook {
            self.queue_webhook(WebhookEvent {
                url,
                body: serde_json::json!({
                    "seed": result.seed.to_string(),
                    "worker_id": job.worker_id.to_string(),
                    "worker_name": worker_name,
                    "model": job.model,
                    "id": job_id.to_string(),
                    "censored": censored,
                    "state": state,
                    "gen_metadata": gen_metadata,
                    "request": job.request_id.to_string(),
                    "kudos": to_kudos(charged),
                }),
                image: Some((job_id, r2)),
            });
        }
        Ok(to_kudos(reward))
    }

    /// An image job failed: hand it out again (its upload, if any, is dropped), or fault the
    /// request after too many failures.
    fn fault_image_job(&mut self, job_id: &Uuid, as_state: JobState, now_ms: u64) -> bool {
        self.image_store.remove(job_id);
        match self.images.fail_job(job_id, as_state, self.cfg.max_job_faults, now_ms) {
            Some((worker_id, faulted_now)) => {
                self.job_abandoned(&worker_id, now_ms);
                faulted_now
            }
            None => false,
        }
    }

    /// Times out stale image jobs and drops image requests (and their images) 20 minutes after
    /// their last activity.
    pub(crate) fn reap_images(&mut self, now_ms: u64, report: &mut ReapReport) {
        for id in self.images.stale_jobs(now_ms) {
            report.jobs_aborted += 1;
            if self.fault_image_job(&id, JobState::Aborted, now_ms) {
                report.requests_faulted += 1;
            }
        }
        for (r, workers) in self.images.take_expired(now_ms, self.cfg.request_expiry_secs * 1000) {
            self.release_slots(&workers);
            for j in &r.job_ids {
                self.image_store.remove(j);
            }
            self.image_store.release(r.request.held_bytes());
            report.requests_expired += 1;
        }
        while self.recent_kps.front().is_some_and(|(t, _)| now_ms.saturating_sub(*t) > 60_000) {
            self.recent_kps.pop_front();
        }
    }

    /// Megapixelsteps generated in the last minute.
    pub fn recent_megapixelsteps(&self, now_ms: u64) -> f64 {
        let kps: i64 = self
            .recent_kps
            .iter()
            .filter(|(t, _)| now_ms.saturating_sub(*t) <= 60_000)
            .map(|(_, k)| k)
            .sum();
        kps as f64 / 1000.0
    }

    /// `POST /generate/rate/{id}`: kudos for rating the images of a finished shared request,
    /// paid once per request: 5 per rating (+5 with artifacts), 15 for a best pick (a lone
    /// rating of 7 or more counts as one), capped at what the request consumed minus 1.
    pub fn rate_images(&mut self, request_id: &Uuid, rate: RateRequest, now_ms: u64) -> Result<f64> {
        let req = self
            .images
            .get(request_id)
            .ok_or_else(|| HordeError::RequestNotFound(request_id.to_string()))?;
        if !req.is_done() || req.generations.is_empty() {
            return Err(HordeError::rejected(
                "AestheticsNotCompleted",
                "Only finished requests can be rated.",
            ));
        }
        if !req.request.shared {
            return Err(HordeError::rejected(
                "AestheticsNotPublic",
                "Only requests sent with shared: true can be rated.",
            ));
        }
        if req.rated {
            return Err(HordeError::rejected("AestheticsAlreadyExist", "This request was already rated."));
        }
        let ids: HashMap<String, usize> = req.generations.iter().enumerate().map(|(i, g)| (g.job_id.to_string(), i)).collect();
        let ratings = rate.ratings.unwrap_or_default();
        if ratings.is_empty() && rate.best.is_none() {
            return Err(HordeError::rejected("AestheticsMissing", "Send ratings, a best image, or both."));
        }
        let mut seen = std::collections::HashSet::new();
        let mut reward: Centikudos = 0;
        for r in &ratings {
            if !ids.contains_key(r.id.trim()) {
                return Err(HordeError::rejected(
                    "AestheticsMissing",
                    "A rated id is not an image of this request.",
                ));
            }
            if !seen.insert(r.id.trim().to_string()) {
                return Err(HordeError::rejected("AestheticsDuplicate", "An image was rated twice."));
            }
            if !(1..=10).contains(&r.rating) || r.artifacts.is_some_and(|a| !(0..=5).contains(&a)) {
                return Err(HordeError::Validation("rating must be 1 to 10 and artifacts 0 to 5.".into()));
            }
            reward += RATING_REWARD + if r.artifacts.is_some() { ARTIFACTS_REWARD } else { 0 };
        }
        if let Some(best) = &rate.best {
            if !ids.contains_key(best.trim()) {
                return Err(HordeError::rejected("AestheticsMissing", "best is not an image of this request."));
            }
            if req.generations.len() < 2 {
                return Err(HordeError::rejected("AestheticsSolo", "A best pick needs more than one image."));
            }
            if ratings.len() == 1 && ratings[0].id.trim() == best.trim() && ratings[0].rating < 7 {
                return Err(HordeError::rejected(
                    "AestheticsConfused",
                    "The best image cannot have a low rating.",
                ));
            }
            reward += BEST_REWARD;
        } else if ratings.len() == 1 && ratings[0].rating >= 7 && req.generations.len() > 1 {
            reward += BEST_REWARD;
        }
        let reward = reward.min((req.consumed - 100).max(0));
        let user_id = req.user_id;
        if let Some(r) = self.images.get_mut(request_id) {
            r.rated = true;
            r.last_activity_ms = now_ms;
        }
        if reward > 0 {
            self.ledger
                .reward(&mut self.users, user_id, reward, PostingKind::RatingReward, now_ms)?;
        }
        Ok(to_kudos(reward))
    }

    /// `/status/models?type=image`: one entry per model served by an online image worker.
    pub fn image_models(&self, now_ms: u64) -> Vec<wire_status::ActiveModel> {
        figures::active_models(&self.images, &self.workers, now_ms, self.cfg.worker_online_secs)
    }
}

#[cfg(test)]
#[path = "image_rules_tests.rs"]
mod tests;

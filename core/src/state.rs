//! The horde's in-memory state and every rule that changes it, as plain synchronous methods.
//!
//! One `State` is owned behind one short-held lock by `Horde`; nothing here waits on I/O, so each
//! method is atomic and can be tested without a runtime. Durable effects (kudos postings, counters,
//! worker stats) are queued in `PendingWrites` and stored in batches by the horde's persister.

use std::collections::{HashMap, HashSet, VecDeque};

use horde_protocol::status as wire_status;
use horde_protocol::stream::StreamStatus;
use horde_protocol::text::{GenMetadata, TextGeneration, TextPayload, TextPopResponse, TextSkipped, TextStatus};
use uuid::Uuid;

use crate::accounts::{UserRecords, Users};
use crate::config::HordeConfig;
use crate::image::ImageStore;
use crate::kudos::image_model::{KudosModel, Timing};
use crate::kudos::text_price::{self, REQUEST_TAX};
use crate::kudos::transfer_keys::{TransferKey, TransferKeys};
use crate::kudos::{to_kudos, Centikudos, KudosLedger, PostingKind};
use crate::safety::suspicion::{self, Suspicion};
use crate::scheduler::{
    choose_request, figures, intersects, FinishedJob, ImageQueue, Job, JobState, ModelNames, QueueKey, TextQueue, WaitingRequest,
};
use crate::text::{TextKind, TextRequest};
use crate::workers::{Worker, WorkerKind, WorkerPop, Workers};
use crate::{HordeError, Result};

/// A request accepted into the queue.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: Uuid,
    /// Estimated cost of the whole request.
    pub kudos: Centikudos,
    /// Whether an online worker can serve it now.
    pub possible: bool,
}

/// What a worker sends back for a job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobResult {
    pub job_id: String,
    pub generation: String,
    pub state: String,
    pub seed: i64,
    pub gen_metadata: Vec<GenMetadata>,
}

/// What a reaper pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReapReport {
    pub jobs_aborted: usize,
    pub requests_faulted: usize,
    pub requests_expired: usize,
}

/// Changes to counters not yet stored.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PendingWrites {
    pub records: HashMap<i64, UserRecords>,
    pub workers: HashSet<Uuid>,
    /// (when, timing) of finished images, for refitting the kudos model.
    pub timings: Vec<(u64, Timing)>,
    /// Keys of transfers made since the last cut, stored with their postings.
    #[serde(default)]
    pub transfer_keys: Vec<TransferKey>,
}

/// Every rule of the horde, over its in-memory state.
#[derive(Debug)]
pub struct State {
    pub cfg: HordeConfig,
    pub users: Users,
    pub ledger: KudosLedger,
    pub workers: Workers,
    pub queue: TextQueue,
    pub images: ImageQueue,
    pub image_store: ImageStore,
    pub kudos_model: KudosModel,
    /// Finished jobs whose request has a webhook, waiting to be sent.
    pub webhooks: Vec<crate::image_rules::WebhookEvent>,
    /// The two-context prompt filter (image prompts).
    pub filter: crate::safety::PromptFilter,
    /// Client addresses timed out after refused prompts.
    pub ip_timeouts: crate::safety::IpTimeouts,
    pub models: ModelNames,
    pub pending: PendingWrites,
    /// Keys of the last day's transfers (`Idempotency-Key`).
    pub transfer_keys: TransferKeys,
    /// (when, tokens) of jobs finished in the last minute.
    recent_tokens: VecDeque<(u64, i64)>,
    /// (when, thousands of pixelsteps) of images finished in the last minute.
    pub(crate) recent_kps: VecDeque<(u64, i64)>,
    /// Where new request and job ids come from: seeded from the system on one process, and per
    /// operation from the operation itself when replicas must agree (see `reseed_ids`).
    pub(crate) ids: rand::rngs::StdRng,
}

/// A fresh random (version 4) id from `rng`.
pub(crate) fn new_id(rng: &mut rand::rngs::StdRng) -> Uuid {
    use rand::Rng;
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// What a replica of the state carries besides its process's own settings: everything `State`
/// holds except the configuration, the kudos model, the webhook outbox and the id generator.
#[derive(serde::Serialize)]
struct SnapshotOf<'a> {
    users: &'a Users,
    ledger: &'a KudosLedger,
    workers: &'a Workers,
    queue: &'a TextQueue,
    images: &'a ImageQueue,
    image_store: &'a ImageStore,
    filter_rules: &'a [crate::safety::FilterRule],
    ip_timeouts: &'a crate::safety::IpTimeouts,
    models: &'a ModelNames,
    pending: &'a PendingWrites,
    transfer_keys: &'a TransferKeys,
    recent_tokens: &'a VecDeque<(u64, i64)>,
    recent_kps: &'a VecDeque<(u64, i64)>,
}

/// `SnapshotOf`, read back.
#[derive(serde::Deserialize)]
struct Snapshot {
    users: Users,
    ledger: KudosLedger,
    workers: Workers,
    queue: TextQueue,
    images: ImageQueue,
    image_store: ImageStore,
    filter_rules: Vec<crate::safety::FilterRule>,
    ip_timeouts: crate::safety::IpTimeouts,
    models: ModelNames,
    pending: PendingWrites,
    transfer_keys: TransferKeys,
    recent_tokens: VecDeque<(u64, i64)>,
    recent_kps: VecDeque<(u64, i64)>,
}

/// A finished text job as clients see it.
pub(crate) fn text_generation(g: &FinishedJob<String>) -> TextGeneration {
    TextGeneration {
        text: g.output.clone(),
        seed: g.seed,
        worker_id: g.worker_id.to_string(),
        worker_name: g.worker_name.clone(),
        model: g.model.clone(),
        state: g.state.clone(),
        gen_metadata: g.gen_metadata.clone(),
    }
}

pub(crate) fn add_records(pending: &mut PendingWrites, users: &mut Users, user_id: i64, f: impl Fn(&mut UserRecords)) {
    if let Some(u) = users.get_mut(user_id) {
        f(&mut u.records);
    }
    f(pending.records.entry(user_id).or_default());
}

impl State {
    pub fn new(cfg: HordeConfig, ledger: KudosLedger, kudos_model: KudosModel) -> Self {
        Self {
            image_store: ImageStore::new(cfg.image_memory_cap_bytes),
            cfg,
            users: Users::default(),
            ledger,
            workers: Workers::default(),
            queue: TextQueue::default(),
            images: ImageQueue::default(),
            kudos_model,
            webhooks: Vec::new(),
            filter: crate::safety::PromptFilter::default(),
            ip_timeouts: crate::safety::IpTimeouts::default(),
            models: ModelNames::default(),
            pending: PendingWrites::default(),
            transfer_keys: TransferKeys::default(),
            recent_tokens: VecDeque::new(),
            recent_kps: VecDeque::new(),
            ids: rand::SeedableRng::from_os_rng(),
        }
    }

    /// Draws the ids of the next operation from `seed`, so every replica applying it makes the
    /// same ones (the seed is random, so the ids stay unguessable).
    pub fn reseed_ids(&mut self, seed: [u8; 32]) {
        self.ids = rand::SeedableRng::from_seed(seed);
    }

    /// Whether durable writes are queued: any, or with `!stats` kudos movements only.
    pub fn has_pending_writes(&self, stats: bool) -> bool {
        self.ledger.pending_len() > 0
            || !self.pending.transfer_keys.is_empty()
            || (stats && (!self.pending.records.is_empty() || !self.pending.workers.is_empty() || !self.pending.timings.is_empty()))
    }

    /// Takes the durable writes queued so far, as one batch for the persister. Without `stats`,
    /// only the kudos movements (postings, transfer keys): what a caller waits for, in the fewest
    /// statements; the counters, worker stats and timings wait for the next periodic batch.
    pub fn take_pending_writes(&mut self, stats: bool) -> crate::store::FlushBatch {
        let mut batch = crate::store::FlushBatch {
            postings: self.ledger.take_pending(),
            transfer_keys: std::mem::take(&mut self.pending.transfer_keys),
            ..Default::default()
        };
        if stats {
            let ids: Vec<Uuid> = self.pending.workers.drain().collect();
            batch.workers = ids.into_iter().filter_map(|id| self.workers.get(&id).cloned()).collect();
            batch.records = std::mem::take(&mut self.pending.records);
            batch.timings = std::mem::take(&mut self.pending.timings);
        }
        batch
    }

    /// Queues a batch that could not be stored again, ahead of what came since.
    pub fn restore_pending_writes(&mut self, batch: crate::store::FlushBatch) {
        self.ledger.restore_pending(batch.postings);
        for (id, r) in batch.records {
            self.pending.records.entry(id).or_default().add(&r);
        }
        for w in batch.workers {
            self.pending.workers.insert(w.id);
        }
        let newer = std::mem::replace(&mut self.pending.timings, batch.timings);
        self.pending.timings.extend(newer);
        let newer = std::mem::replace(&mut self.pending.transfer_keys, batch.transfer_keys);
        self.pending.transfer_keys.extend(newer);
    }

    /// Writes the replicated part of the state (see `SnapshotOf`) as CBOR to `out`.
    pub fn write_snapshot(&self, out: &mut Vec<u8>) -> Result<()> {
        let snap = SnapshotOf {
            users: &self.users,
            ledger: &self.ledger,
            workers: &self.workers,
            queue: &self.queue,
            images: &self.images,
            image_store: &self.image_store,
            filter_rules: self.filter.rules(),
            ip_timeouts: &self.ip_timeouts,
            models: &self.models,
            pending: &self.pending,
            transfer_keys: &self.transfer_keys,
            recent_tokens: &self.recent_tokens,
            recent_kps: &self.recent_kps,
        };
        ciborium::into_writer(&snap, out).map_err(|e| HordeError::Internal(format!("writing a snapshot: {e}")))
    }

    /// Replaces the replicated part of the state with a snapshot's, read from the front of
    /// `bytes` (which is left at what follows it).
    pub fn restore_snapshot(&mut self, bytes: &mut &[u8]) -> Result<()> {
        // The decoder's message may quote the state (prompts): it is not passed on.
        let snap: Snapshot =
            ciborium::from_reader(bytes).map_err(|_| HordeError::Internal("a snapshot does not match this version of horde".into()))?;
        self.users = snap.users;
        self.ledger = snap.ledger;
        self.workers = snap.workers;
        self.queue = snap.queue;
        self.images = snap.images;
        self.image_store = snap.image_store;
        self.filter = crate::safety::PromptFilter::new(snap.filter_rules)?;
        self.ip_timeouts = snap.ip_timeouts;
        self.models = snap.models;
        self.pending = snap.pending;
        self.transfer_keys = snap.transfer_keys;
        self.recent_tokens = snap.recent_tokens;
        self.recent_kps = snap.recent_kps;
        Ok(())
    }

    // ----- pricing -------------------------------------------------------------------------

    /// Size (billions) a request is priced at: its largest requested model, or 13B for none.
    fn request_billions(req: &TextRequest) -> f64 {
        if req.models.is_empty() {
            text_price::DEFAULT_MODEL_BILLIONS
        } else {
            req.models.iter().map(|m| text_price::pricing_billions(m)).fold(0.0, f64::max)
        }
    }

    /// Expected charge of one job of `req` (the full `max_length` at full context).
    pub fn estimate_job(req: &TextRequest) -> Centikudos {
        let reward = text_price::job_reward(Self::request_billions(req), req.max_length, req.max_context_length);
        text_price::job_charge(reward, req.slow_workers, req.worker_blacklist)
    }

    /// What a whole request is expected to cost, tax included (`dry_run`).
    pub fn estimate_request(req: &TextRequest) -> Centikudos {
        Self::estimate_job(req) * req.n as Centikudos + REQUEST_TAX
    }

    // ----- requests ------------------------------------------------------------------------

    /// Jobs of `user_id` still waiting, counted as the concurrency limit sees them. The anonymous
    /// user is shared by everyone, so only its requests for overlapping models count.
    fn waiting_jobs(&self, user_id: i64, model_ids: &[u32]) -> i64 {
        self.queue
            .user_in_order(user_id)
            .filter_map(|(_, id)| self.queue.get(id))
            .filter(|r| {
                user_id != crate::accounts::ANONYMOUS_USER_ID
                    || model_ids.is_empty()
                    || r.model_ids.is_empty()
                    || intersects(&r.model_ids, model_ids)
            })
            .map(|r| r.remaining as i64)
            .sum()
    }

    /// Accepts a text request: checks concurrency, charges the request tax, queues it.
    pub fn submit_text(&mut self, user_id: i64, req: TextRequest, now_ms: u64) -> Result<Accepted> {
        let (kudos, concurrency, flagged) = match self.users.get(user_id) {
            Some(u) => (u.kudos, u.concurrency, u.flagged),
            None => return Err(HordeError::Internal(format!("account of user {user_id} is not loaded"))),
        };
        crate::text::memory::check_request(self, user_id, &req)?;
        let held = crate::text::memory::held_bytes(&req);
        let model_ids = self.models.intern_all(&req.models);
        let waiting = self.waiting_jobs(user_id, &model_ids);
        if waiting + req.n as i64 > concurrency {
            return Err(HordeError::TooManyPrompts {
                waiting,
                limit: concurrency,
            });
        }
        let estimate = Self::estimate_request(&req);
        let job_estimate = Self::estimate_job(&req);
        let id = new_id(&mut self.ids);
        let charged = self
            .ledger
            .charge(&mut self.users, user_id, REQUEST_TAX, PostingKind::RequestTax, now_ms)?;
        let upfront = kudos - self.users.get(user_id).map_or(kudos, |u| u.kudos);
        add_records(&mut self.pending, &mut self.users, user_id, |r| r.requests_text += 1);
        let priority = if flagged { -100.0 } else { to_kudos(kudos) };
        let seq = self.queue.next_seq();
        let key = QueueKey::new(priority, now_ms as f64 / 1000.0, self.cfg.aging_per_sec, seq);
        let n = req.n;
        let criteria = crate::text::criteria(id, user_id, &req, job_estimate);
        let mut wr = WaitingRequest::new(id, user_id, req, model_ids, key, n, charged, criteria, now_ms);
        wr.held_bytes = held;
        wr.upfront = upfront;
        let possible = !self.eligible_workers(&wr, now_ms).is_empty();
        self.queue.insert(wr);
        Ok(Accepted {
            id,
            kudos: estimate,
            possible,
        })
    }

    /// Whether an online worker could serve `req` for `user_id` now; nothing is charged or queued.
    pub fn text_servable(&mut self, user_id: i64, req: &TextRequest, now_ms: u64) -> bool {
        let model_ids = self.models.known(&req.models);
        if model_ids.is_empty() && !req.models.is_empty() {
            // No worker has ever named any of its models.
            return false;
        }
        let criteria = crate::text::criteria(Uuid::nil(), user_id, req, Self::estimate_job(req));
        let probe = WaitingRequest::new(
            Uuid::nil(),
            user_id,
            req.clone(),
            model_ids,
            QueueKey::new(0.0, 0.0, 0.0, 0),
            req.n,
            0,
            criteria,
            now_ms,
        );
        !self.eligible_workers(&probe, now_ms).is_empty()
    }

    /// Online text workers that could serve `req` (maintenance workers only for their owner).
    fn eligible_workers(&self, req: &WaitingRequest<TextKind>, now_ms: u64) -> Vec<&Worker> {
        figures::eligible_workers(&self.workers, &self.users, req, now_ms, self.cfg.worker_online_secs)
    }

    /// Status of a request. Queue position and wait time count only requests ahead that a worker
    /// able to serve this one could also serve.
    pub fn text_status(&mut self, id: &Uuid, now_ms: u64) -> Result<TextStatus> {
        let s = self.text_standing(id, now_ms)?;
        let req = self.queue.get_mut(id).ok_or_else(|| HordeError::RequestNotFound(id.to_string()))?;
        req.collected |= s.done;
        Ok(TextStatus {
            finished: s.finished,
            processing: s.processing,
            restarted: s.restarted,
            waiting: s.waiting,
            done: s.done,
            faulted: s.faulted,
            wait_time: s.wait_time,
            queue_position: s.queue_position,
            kudos: s.kudos,
            is_possible: s.is_possible,
            generations: req.generations.iter().map(text_generation).collect(),
        })
    }

    /// A request's status without its generations.
    pub fn text_standing(&mut self, id: &Uuid, now_ms: u64) -> Result<StreamStatus> {
        let online_secs = self.cfg.worker_online_secs;
        figures::standing(&mut self.queue, &self.workers, &self.users, id, now_ms, online_secs)
            .ok_or_else(|| HordeError::RequestNotFound(id.to_string()))
    }

    /// Cancels what has not started; jobs in flight still finish and are paid for.
    pub fn cancel_text(&mut self, id: &Uuid, now_ms: u64) -> Result<TextStatus> {
        let status = self.text_status(id, now_ms)?;
        self.queue.cancel(id);
        Ok(status)
    }

    /// Ids of a user's requests still in memory.
    pub fn active_requests_of(&self, user_id: i64) -> Vec<String> {
        self.queue
            .requests()
            .filter(|r| r.user_id == user_id && !r.is_done())
            .map(|r| r.id.to_string())
            .collect()
    }

    // ----- workers -------------------------------------------------------------------------

    /// Records a worker's check-in: its declared capabilities, uptime, and uptime kudos.
    pub fn check_in(&mut self, worker_id: &Uuid, pop: &WorkerPop, now_ms: u64) -> Result<()> {
        let online_ms = self.cfg.worker_online_secs * 1000;
        let interval = self.cfg.uptime_reward_interval_secs as f64;
        let model_ids = self.models.intern_all(&pop.models);
        let w = self
            .workers
            .get_mut(worker_id)
            .ok_or_else(|| HordeError::WorkerNotFound(worker_id.to_string()))?;
        let mut rewards = 0u32;
        if w.last_check_in_ms > 0 && now_ms.saturating_sub(w.last_check_in_ms) <= online_ms {
            let delta = now_ms.saturating_sub(w.last_check_in_ms);
            w.uptime_ms += delta;
            if !w.maintenance && !w.paused {
                w.uptime_unpaid_secs += delta as f64 / 1000.0;
                while w.uptime_unpaid_secs >= interval && interval > 0.0 {
                    w.uptime_unpaid_secs -= interval;
                    rewards += 1;
                }
            }
        } else {
            w.uptime_unpaid_secs = 0.0;
        }
        w.last_check_in_ms = now_ms;
        w.models = pop.models.clone();
        w.model_ids = model_ids;
        w.max_length = pop.max_length;
        w.max_context_length = pop.max_context_length;
        w.nsfw = pop.nsfw;
        w.bridge_agent = pop.bridge_agent.clone();
        w.threads = pop.threads;
        w.extra_slow = pop.extra_slow_worker;
        w.require_upfront_kudos = pop.require_upfront_kudos;
        w.priority_user_ids = pop.priority_user_ids.clone();
        w.softprompts = pop.softprompts.clone();
        w.wants_messages = pop.wants_messages;
        if let Some(image) = &pop.image {
            w.image = image.clone();
        }
        let owner = w.owner_id;
        let owner_trusted = self.users.is_trusted(owner);
        if w.name.chars().count() > suspicion::LONG_WORKER_NAME {
            w.suspect(Suspicion::WorkerNameLong, owner_trusted);
        }
        if w.kind == WorkerKind::Image && w.image.max_pixels > suspicion::EXTREME_MAX_PIXELS {
            w.suspect(Suspicion::ExtremeMaxPixels, owner_trusted);
        }
        let per_reward = match w.kind {
            WorkerKind::Text => text_price::uptime_reward(w.models.first().map(String::as_str), w.max_context_length),
            WorkerKind::Image => crate::kudos::image_price::uptime_reward(w.models.len(), w.image.allow_lora),
        };
        if rewards > 0 {
            let total = per_reward * rewards as Centikudos;
            w.kudos_uptime += total;
            self.ledger
                .reward(&mut self.users, owner, total, PostingKind::UptimeReward, now_ms)?;
        }
        self.pending.workers.insert(*worker_id);
        Ok(())
    }

    /// Hands a worker the first request it can serve: its owner's first, then its priority
    /// users', then everyone's in priority order. Returns the idle answer with skip counts when
    /// nothing fits, or `WorkerMaintenance` for an idle worker in maintenance.
    pub fn pop_text(&mut self, worker_id: &Uuid, amount: u32, now_ms: u64) -> Result<TextPopResponse> {
        let w = self
            .workers
            .get(worker_id)
            .ok_or_else(|| HordeError::WorkerNotFound(worker_id.to_string()))?;
        let owner_trusted = self.users.is_trusted(w.owner_id);
        let mut skipped = TextSkipped::default();
        let chosen = choose_request(&self.queue, w, owner_trusted, &self.users, &mut skipped);
        let Some(request_id) = chosen else {
            if w.maintenance {
                return Err(HordeError::WorkerMaintenance);
            }
            return Ok(TextPopResponse {
                payload: TextPayload::default(),
                id: None,
                ids: vec![],
                skipped,
                softprompt: None,
                model: None,
                ttl: None,
            });
        };
        self.start_jobs(worker_id, &request_id, amount, now_ms)
    }

    fn start_jobs(&mut self, worker_id: &Uuid, request_id: &Uuid, amount: u32, now_ms: u64) -> Result<TextPopResponse> {
        let min_ttl = self.cfg.min_text_job_ttl_secs;
        let max_ttl = self.cfg.request_expiry_secs.saturating_sub(60).max(min_ttl);
        let (model, worker_name_models) = {
            let w = self
                .workers
                .get(worker_id)
                .ok_or_else(|| HordeError::WorkerNotFound(worker_id.to_string()))?;
            (w.model_ids.clone(), w.models.first().cloned().unwrap_or_default())
        };
        let req = self
            .queue
            .get_mut(request_id)
            .ok_or_else(|| HordeError::RequestNotFound(request_id.to_string()))?;
        let model_name = req
            .model_ids
            .iter()
            .find(|m| model.binary_search(m).is_ok())
            .map(|m| self.models.name(*m).to_string())
            .unwrap_or(worker_name_models);
        if req.remaining == 0 {
            return Err(HordeError::Internal("chose a request with no jobs left".into()));
        }
        let mut count = amount.min(req.remaining).max(1);
        if req.request.disable_batching {
            count = 1;
        }
        let ttl = (30 + (req.request.max_length as u64).div_ceil(4)).clamp(min_ttl, max_ttl);
        let jobs: Vec<Job> = (0..count)
            .map(|_| Job {
                id: new_id(&mut self.ids),
                request_id: *request_id,
                worker_id: *worker_id,
                model: model_name.clone(),
                started_ms: now_ms,
                ttl_secs: ttl,
                state: JobState::InFlight,
                seed: 0,
                batch: count,
                progress: String::new(),
                progress_kept: 0,
            })
            .collect();
        req.remaining -= count;
        req.processing += count;
        req.last_activity_ms = now_ms;
        req.cached_position = None;
        let wants_messages = self.workers.get(worker_id).is_some_and(|w| w.wants_messages);
        let payload = TextPayload {
            params: req.request.params.clone(),
            prompt: Some(req.request.prompt.clone()),
            messages: req.request.messages.clone().filter(|_| wants_messages),
        };
        let softprompt = Some(req.request.softprompt.clone().unwrap_or_default());
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
        for job in jobs {
            self.queue.add_job(job);
        }
        self.queue.sync_order(request_id);
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.in_flight += count;
        }
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        Ok(TextPopResponse {
            payload,
            id: ids.first().cloned(),
            ids,
            skipped: TextSkipped::default(),
            softprompt,
            model: Some(model_name),
            ttl: Some(ttl as i64),
        })
    }

    /// Takes a worker's result for a job. Returns the job's reward (0 for a reported fault).
    pub fn submit_job(&mut self, user_id: i64, result: JobResult, now_ms: u64) -> Result<f64> {
        let faulted_report = result.state == "faulted";
        let workers = &self.workers;
        let Some(job) = self
            .queue
            .job_for_submit(&result.job_id, user_id, faulted_report, |w| workers.get(w).map(|w| w.owner_id))?
        else {
            return Ok(0.0);
        };
        let job_id = job.id;
        if faulted_report {
            self.fault_job(&job_id, JobState::Faulted, now_ms);
            return Ok(0.0);
        }
        if !matches!(result.state.as_str(), "ok" | "censored" | "csam" | "") {
            return Err(HordeError::Validation(format!("Unknown generation state '{}'.", result.state)));
        }
        if result.generation.contains('\0') {
            return Err(HordeError::NulByteInPayload);
        }
        let req = self
            .queue
            .get(&job.request_id)
            .ok_or_else(|| HordeError::InvalidJobId(job_id.to_string()))?;
        let requester = req.user_id;
        let max_length = req.request.max_length;
        let context_tokens = ((req.request.prompt.chars().count() as i64 + 3) / 4).min(req.request.max_context_length);
        let (slow, blacklist) = (req.request.slow_workers, req.request.worker_blacklist);
        let webhook = req.request.webhook.clone();
        let tokens = text_price::billed_tokens(&result.generation, max_length);
        let reward = text_price::job_reward(text_price::pricing_billions(&job.model), tokens, context_tokens);
        let mut state = if result.state.is_empty() {
            "ok".to_string()
        } else {
            result.state.clone()
        };
        let mut gen_metadata = result.gen_metadata.clone();
        let censored_by_metadata = gen_metadata.iter().any(|m| m.kind == "censorship");
        if state == "csam" && !gen_metadata.iter().any(|m| m.kind == "censorship" && m.value == "csam") {
            gen_metadata.push(GenMetadata {
                kind: "censorship".into(),
                value: "csam".into(),
                reference: None,
            });
        }
        if state == "ok" && censored_by_metadata {
            state = "censored".into();
        }
        let censored = state != "ok";
        // Pay the worker's owner, then charge the requester.
        self.ledger
            .reward(&mut self.users, user_id, reward, PostingKind::JobReward, now_ms)?;
        let charge = if censored {
            0
        } else {
            text_price::job_charge(reward, slow, blacklist)
        };
        let charged = self
            .ledger
            .charge(&mut self.users, requester, charge, PostingKind::JobCharge, now_ms)?;
        add_records(&mut self.pending, &mut self.users, requester, |r| r.usage_tokens += tokens);
        add_records(&mut self.pending, &mut self.users, user_id, |r| {
            r.contribution_tokens += tokens;
            r.fulfilled_text += 1;
        });
        let elapsed = (now_ms.saturating_sub(job.started_ms) as f64 / 1000.0).max(0.001);
        let worker_name = match self.workers.get_mut(&job.worker_id) {
            Some(w) => {
                w.in_flight = w.in_flight.saturating_sub(1);
                w.requests_fulfilled += 1;
                w.tokens_generated += tokens;
                w.kudos_generated += reward;
                let speed = tokens as f64 / elapsed;
                w.record_performance(speed);
                if speed > suspicion::max_text_tokens_per_sec(&job.model) && !self.users.is_trusted(w.owner_id) {
                    w.suspect(Suspicion::UnreasonablyFast, false);
                }
                w.name.clone()
            }
            None => String::new(),
        };
        self.pending.workers.insert(job.worker_id);
        self.queue.keep_progress(&job_id, &result.generation);
        // A result longer than the room reserved for it counts too.
        let room = self
            .queue
            .get(&job.request_id)
            .map_or(0, |r| crate::text::memory::result_room(&r.request));
        self.queue.hold_more(&job.request_id, result.generation.len().saturating_sub(room));
        self.queue.set_job_state(&job_id, JobState::Done);
        if let Some(r) = self.queue.get_mut(&job.request_id) {
            r.processing = r.processing.saturating_sub(1);
            r.consumed += charged;
            r.last_activity_ms = now_ms;
            r.cached_position = None;
            r.generations.push(FinishedJob {
                job_id,
                output: result.generation,
                kudos: charged,
                seed: result.seed,
                worker_id: job.worker_id,
                worker_name,
                model: job.model.clone(),
                state,
                gen_metadata,
            });
        }
        self.recent_tokens.push_back((now_ms, tokens));
        if let (Some(url), Some(g)) = (webhook, self.queue.get(&job.request_id).and_then(|r| r.generations.last())) {
            self.queue_webhook(crate::image_rules::WebhookEvent {
                url,
                body: serde_json::json!({
                    "text": g.output,
                    "seed": g.seed,
                    "worker_id": g.worker_id.to_string(),
                    "worker_name": g.worker_name,
                    "model": g.model,
                    "id": job_id.to_string(),
                    "state": g.state,
                    "gen_metadata": g.gen_metadata,
                    "request": job.request_id.to_string(),
                    "kudos": to_kudos(g.kudos),
                }),
                image: None,
            });
        }
        Ok(to_kudos(reward))
    }

    /// A text job failed (timed out or reported faulted): hand it out again, or fault the
    /// request after more than `max_job_faults` failures. Returns whether the request faulted now.
    fn fault_job(&mut self, job_id: &Uuid, as_state: JobState, now_ms: u64) -> bool {
        match self.queue.fail_job(job_id, as_state, self.cfg.max_job_faults, now_ms) {
            Some((worker_id, faulted_now)) => {
                self.job_abandoned(&worker_id, now_ms);
                faulted_now
            }
            None => false,
        }
    }

    /// A worker's job was abandoned: its slot frees up, and too many abandons within an hour put
    /// it in maintenance.
    pub(crate) fn job_abandoned(&mut self, worker_id: &Uuid, now_ms: u64) {
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.in_flight = w.in_flight.saturating_sub(1);
            if w.record_abort(now_ms) {
                tracing::warn!(worker = %worker_id, "worker put in maintenance: too many abandoned jobs within an hour");
                let owner_trusted = self.users.is_trusted(w.owner_id);
                if w.suspect(Suspicion::TooManyJobsAborted, owner_trusted) {
                    tracing::warn!(worker = %worker_id, "suspicious worker paused");
                }
            }
        }
        self.pending.workers.insert(*worker_id);
    }

    /// Frees the slots of jobs that left with their expired request.
    pub(crate) fn release_slots(&mut self, worker_ids: &[Uuid]) {
        for id in worker_ids {
            if let Some(w) = self.workers.get_mut(id) {
                w.in_flight = w.in_flight.saturating_sub(1);
            }
        }
    }

    /// Times out stale jobs and drops requests 20 minutes after their last activity.
    pub fn reap(&mut self, now_ms: u64) -> ReapReport {
        let mut report = ReapReport::default();
        for id in self.queue.stale_jobs(now_ms) {
            report.jobs_aborted += 1;
            if self.fault_job(&id, JobState::Aborted, now_ms) {
                report.requests_faulted += 1;
            }
        }
        for (_, workers) in self.queue.take_expired(now_ms, self.cfg.request_expiry_secs * 1000) {
            self.release_slots(&workers);
            report.requests_expired += 1;
        }
        while self.recent_tokens.front().is_some_and(|(t, _)| now_ms.saturating_sub(*t) > 60_000) {
            self.recent_tokens.pop_front();
        }
        self.reap_images(now_ms, &mut report);
        self.ip_timeouts.prune(now_ms);
        self.transfer_keys.prune(now_ms);
        report
    }

    // ----- horde status --------------------------------------------------------------------

    /// `/status/models?type=text`: one entry per model served by an online worker.
    pub fn text_models(&self, now_ms: u64) -> Vec<wire_status::ActiveModel> {
        figures::active_models(&self.queue, &self.workers, now_ms, self.cfg.worker_online_secs)
    }

    /// `/status/performance`.
    pub fn performance(&self, now_ms: u64) -> wire_status::Performance {
        let online: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.kind == WorkerKind::Text && w.is_online(now_ms, self.cfg.worker_online_secs))
            .collect();
        let online_image: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.kind == WorkerKind::Image && w.is_online(now_ms, self.cfg.worker_online_secs))
            .collect();
        let queued_kps: f64 = self
            .images
            .in_order()
            .map(|r| (r.request.pixels() * r.request.accurate_steps) as f64 * r.remaining as f64)
            .sum();
        let queued_tokens: i64 = self.queue.in_order().map(|r| r.request.max_length * r.remaining as i64).sum();
        let past_minute: i64 = self
            .recent_tokens
            .iter()
            .filter(|(t, _)| now_ms.saturating_sub(*t) <= 60_000)
            .map(|(_, n)| n)
            .sum();
        wire_status::Performance {
            queued_requests: self.images.queued_len() as i64,
            queued_text_requests: self.queue.queued_len() as i64,
            worker_count: online_image.len() as i64,
            text_worker_count: online.len() as i64,
            thread_count: online_image.iter().map(|w| w.threads).sum(),
            queued_megapixelsteps: (queued_kps / 1e6 * 100.0).round() / 100.0,
            past_minute_megapixelsteps: self.recent_megapixelsteps(now_ms),
            text_thread_count: online.iter().map(|w| w.threads).sum(),
            queued_tokens: queued_tokens as f64,
            past_minute_tokens: past_minute as f64,
            ..Default::default()
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

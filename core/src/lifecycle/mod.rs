//! The life of a request, of any kind, top to bottom: it is screened and priced (a dry run stops
//! there), accepted (concurrency, memory, the request tax) and queued; workers pop it, each pop
//! starting a batch of its jobs; each job is settled (the worker's owner paid, the requester
//! charged, counters and webhooks) or faults and is handed out again; stale jobs are taken back,
//! requests idle too long expire, and a client may cancel what has not started.
//!
//! What differs between kinds (validation, price, the worker's payload, the result's checks and
//! storage, records) is the kind's `RequestKind` (`text::lifecycle`, `image::lifecycle`); the
//! rules here are written once for all.

pub mod kind;
pub mod upfront;

use std::net::IpAddr;

use horde_protocol::image::ImageCheck;
use horde_protocol::text::GenMetadata;
use uuid::Uuid;

pub use kind::{JobLinks, JobReport, RequestKind, Settled, Work};

use crate::accounts::ANONYMOUS_USER_ID;
use crate::kudos::text_price::REQUEST_TAX;
use crate::kudos::{to_kudos, Centikudos, PostingKind};
use crate::safety::suspicion::Suspicion;
use crate::scheduler::{
    choose_request, figures, flags, intersects, Criteria, FinishedJob, Job, JobState, ModelId, QueueKey, WaitingRequest,
};
use crate::state::{add_records, new_id, ReapReport, State};
use crate::workers::Worker;
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

/// What a request's submission came to.
#[derive(Debug, Clone)]
pub enum Submission {
    Queued(Accepted),
    /// A dry run: what it would cost, in kudos.
    DryRun(f64),
}

/// `JobLinks` for kinds whose answers carry no links.
pub fn no_links(_job: &Uuid) -> String {
    String::new()
}

/// Generation states a worker may report for a finished job (empty is `ok`).
const RESULT_STATES: [&str; 4] = ["ok", "censored", "csam", ""];

/// Metadata entries a worker may report for one job.
pub const MAX_GEN_METADATA: usize = 50;

impl State {
    // ----- screen, price, accept ---------------------------------------------------------------

    /// A request as submitted: screened, then priced (a dry run) or accepted.
    pub fn submit<K: RequestKind>(&mut self, user_id: i64, mut req: K::Request, ip: Option<IpAddr>, now_ms: u64) -> Result<Submission> {
        K::screen(self, user_id, &mut req, ip, now_ms)?;
        if req.dry_run {
            return Ok(Submission::DryRun(to_kudos(self.price::<K>(&req))));
        }
        Ok(Submission::Queued(self.accept::<K>(user_id, req, now_ms)?))
    }

    /// What a whole request is expected to cost, tax included (`dry_run`).
    pub fn price<K: RequestKind>(&self, req: &K::Request) -> Centikudos {
        K::jobs_estimate(self, req) + REQUEST_TAX
    }

    /// Jobs of `user_id` still waiting, counted as the concurrency limit sees them. The
    /// anonymous user is shared by everyone, so only its requests for overlapping models count
    /// (for every kind).
    fn waiting_jobs<K: RequestKind>(&self, user_id: i64, model_ids: &[ModelId]) -> i64 {
        let queue = K::queue(self);
        queue
            .user_in_order(user_id)
            .filter_map(|(_, id)| queue.get(id))
            .filter(|r| {
                user_id != ANONYMOUS_USER_ID || model_ids.is_empty() || r.model_ids.is_empty() || intersects(&r.model_ids, model_ids)
            })
            .map(|r| r.remaining as i64)
            .sum()
    }

    /// Accepts a request: concurrency, room in memory, the request tax; queues it.
    pub fn accept<K: RequestKind>(&mut self, user_id: i64, mut req: K::Request, now_ms: u64) -> Result<Accepted> {
        let (kudos, concurrency, flagged) = match self.users.get(user_id) {
            Some(u) => (u.kudos, u.concurrency, u.flagged),
            None => return Err(HordeError::Internal(format!("account of user {user_id} is not loaded"))),
        };
        self.users.check_not_deleted(user_id)?;
        self.admit_upfront::<K>(user_id, &mut req, now_ms)?;
        let n = req.n;
        let model_ids = self.models.intern_all(&req.models);
        let waiting = self.waiting_jobs::<K>(user_id, &model_ids);
        if waiting + n as i64 > concurrency {
            return Err(HordeError::TooManyPrompts {
                waiting,
                limit: concurrency,
            });
        }
        let held = K::hold(self, user_id, &req)?;
        let job_estimate = K::job_estimate(self, &req);
        let jobs_estimate = K::jobs_estimate(self, &req);
        let charged = match self
            .ledger
            .charge(&mut self.users, user_id, REQUEST_TAX, PostingKind::RequestTax, now_ms)
        {
            Ok(c) => c,
            Err(e) => {
                K::release(self, &req);
                return Err(e);
            }
        };
        let upfront = kudos - self.users.get(user_id).map_or(kudos, |u| u.kudos);
        add_records(&mut self.pending, &mut self.users, user_id, |r| K::count_request(r, &req));
        let id = new_id(&mut self.ids);
        let priority = if flagged { -100.0 } else { to_kudos(kudos) };
        let seq = K::queue_mut(self).next_seq();
        let key = QueueKey::new(priority, now_ms as f64 / 1000.0, self.cfg.aging_per_sec, seq);
        let criteria = criteria::<K>(id, user_id, &req, job_estimate);
        let mut wr = WaitingRequest::new(id, user_id, req, model_ids, key, n, charged, criteria, now_ms);
        wr.held_bytes = held;
        wr.upfront = upfront;
        let possible = !self.eligible_workers(&wr, now_ms).is_empty();
        K::queue_mut(self).insert(wr);
        Ok(Accepted {
            id,
            kudos: jobs_estimate + REQUEST_TAX,
            possible,
        })
    }

    /// Online workers that could serve `req` (maintenance workers only for their owner).
    fn eligible_workers<K: RequestKind>(&self, req: &WaitingRequest<K>, now_ms: u64) -> Vec<&Worker> {
        figures::eligible_workers(&self.workers, &self.users, req, now_ms, self.cfg.worker_online_secs)
    }

    /// Whether an online worker could serve `req` for `user_id` now; nothing is charged or queued.
    pub fn servable<K: RequestKind>(&self, user_id: i64, req: &K::Request, now_ms: u64) -> bool {
        let models = &req.models;
        let model_ids = self.models.known(models);
        if model_ids.is_empty() && !models.is_empty() {
            // No worker has ever named any of its models.
            return false;
        }
        let criteria = criteria::<K>(Uuid::nil(), user_id, req, K::job_estimate(self, req));
        let probe = WaitingRequest::<K>::new(
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

    // ----- status and cancel -------------------------------------------------------------------

    /// How a request stands, without its results. Queue position and wait time count only
    /// requests ahead that a worker able to serve this one could also serve.
    pub fn check<K: RequestKind>(&mut self, id: &Uuid, now_ms: u64) -> Result<ImageCheck> {
        let online_secs = self.cfg.worker_online_secs;
        let (queue, workers, users) = K::queue_beside_workers(self);
        figures::standing(queue, workers, users, id, now_ms, online_secs).ok_or_else(|| HordeError::RequestNotFound(id.to_string()))
    }

    /// What a client reads of a request (a done request counts as collected).
    pub fn status<K: RequestKind>(&mut self, id: &Uuid, now_ms: u64, links: JobLinks) -> Result<K::Status> {
        let check = self.check::<K>(id, now_ms)?;
        let req = K::queue_mut(self)
            .get_mut(id)
            .ok_or_else(|| HordeError::RequestNotFound(id.to_string()))?;
        req.collected |= check.done;
        let req = K::queue(self).get(id).ok_or_else(|| HordeError::RequestNotFound(id.to_string()))?;
        Ok(K::status(self, check, req, links))
    }

    /// Cancels what has not started (`DELETE` status); jobs in flight still finish and are paid
    /// for. Answers the status before the cancel.
    pub fn cancel<K: RequestKind>(&mut self, id: &Uuid, now_ms: u64, links: JobLinks) -> Result<K::Status> {
        let status = self.status::<K>(id, now_ms, links)?;
        K::queue_mut(self).cancel(id);
        Ok(status)
    }

    // ----- hand out ----------------------------------------------------------------------------

    /// Hands a worker the first request it can serve: its owner's first, then its priority
    /// users', then everyone's in priority order. Returns the idle answer with skip counts when
    /// nothing fits, or `WorkerMaintenance` for an idle worker in maintenance.
    pub fn pop<K: RequestKind>(&mut self, worker_id: &Uuid, amount: u32, now_ms: u64, links: JobLinks) -> Result<K::Pop> {
        let w = self
            .workers
            .get(worker_id)
            .ok_or_else(|| HordeError::WorkerNotFound(worker_id.to_string()))?;
        let owner_trusted = self.users.is_trusted(w.owner_id);
        let mut skipped = K::Skipped::default();
        let Some(request_id) = choose_request(K::queue(self), w, owner_trusted, &self.users, &mut skipped) else {
            if w.maintenance {
                return Err(HordeError::WorkerMaintenance);
            }
            return Ok(K::idle(skipped));
        };
        self.start_jobs::<K>(worker_id, &request_id, amount, now_ms, links)
    }

    /// Starts a batch of a request's jobs on a worker.
    fn start_jobs<K: RequestKind>(
        &mut self,
        worker_id: &Uuid,
        request_id: &Uuid,
        amount: u32,
        now_ms: u64,
        links: JobLinks,
    ) -> Result<K::Pop> {
        let w = self
            .workers
            .get(worker_id)
            .ok_or_else(|| HordeError::WorkerNotFound(worker_id.to_string()))?;
        let req = K::queue(self)
            .get(request_id)
            .ok_or_else(|| HordeError::RequestNotFound(request_id.to_string()))?;
        if req.remaining == 0 {
            return Err(HordeError::Internal("chose a request with no jobs left".into()));
        }
        // The first of its models the worker serves (or the worker's first).
        let model = req
            .model_ids
            .iter()
            .find(|m| w.model_ids.binary_search(m).is_ok())
            .map(|m| self.models.name(*m).to_string())
            .unwrap_or_else(|| w.models.first().cloned().unwrap_or_default());
        let (count, ttl) = K::batch(&self.cfg, w, req, amount);
        let first_index = req.job_ids.len() as u32;
        let seeds: Vec<i64> = (0..count).map(|i| K::seed(&req.request, first_index + i)).collect();
        let models: Vec<String> = (0..count).map(|i| K::job_model(w, req, i, &model)).collect();
        let jobs: Vec<Job> = seeds
            .into_iter()
            .zip(models)
            .map(|(seed, job_model)| Job {
                id: new_id(&mut self.ids),
                request_id: *request_id,
                worker_id: *worker_id,
                model: job_model,
                started_ms: now_ms,
                ttl_secs: ttl,
                state: JobState::InFlight,
                seed,
                batch: count,
                progress: String::new(),
                progress_kept: 0,
            })
            .collect();
        // What the worker is handed, read before the request changes.
        let handout = match (self.workers.get(worker_id), K::queue(self).get(request_id)) {
            (Some(w), Some(req)) => K::handout(w, req, &jobs, model, links),
            _ => return Err(HordeError::RequestNotFound(request_id.to_string())),
        };
        let queue = K::queue_mut(self);
        let req = queue
            .get_mut(request_id)
            .ok_or_else(|| HordeError::RequestNotFound(request_id.to_string()))?;
        req.remaining -= count;
        req.processing += count;
        req.last_activity_ms = now_ms;
        req.cached_position = None;
        for job in jobs.iter().cloned() {
            queue.add_job(job);
        }
        queue.sync_order(request_id);
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.in_flight += count;
        }
        K::started(self, request_id, &jobs);
        Ok(handout)
    }

    // ----- settle ------------------------------------------------------------------------------

    /// Takes a worker's result for a job: pays the worker's owner, charges the requester (nothing
    /// for a censored result), counts the work, keeps the result and announces it. Returns the
    /// job's reward (0 for a reported fault).
    pub fn settle<K: RequestKind>(&mut self, user_id: i64, report: K::Report, now_ms: u64) -> Result<f64> {
        let faulted_report = report.state() == "faulted";
        let workers = &self.workers;
        let Some(job) = K::queue(self).job_for_submit(report.job_id(), user_id, faulted_report, |w| workers.get(w).map(|w| w.owner_id))?
        else {
            return Ok(0.0);
        };
        if faulted_report {
            self.fault::<K>(&job.id, JobState::Faulted, now_ms);
            return Ok(0.0);
        }
        check_report(&report)?;
        K::check_result(self, &job, &report)?;
        let req = K::queue(self)
            .get(&job.request_id)
            .ok_or_else(|| HordeError::InvalidJobId(job.id.to_string()))?;
        let requester = req.user_id;
        let webhook = req.request.webhook.clone();
        let work = K::work(self, req, &job, &report, now_ms);
        let figures = K::figures(&req.request, &work);
        let (state, censored, gen_metadata) = censorship(&report);
        // Pay the worker's owner, then charge the requester.
        self.ledger
            .reward(&mut self.users, user_id, work.reward, PostingKind::JobReward, now_ms)?;
        let charge = if censored { 0 } else { work.charge };
        let charged = self
            .ledger
            .charge(&mut self.users, requester, charge, PostingKind::JobCharge, now_ms)?;
        let worker_name = self.worker_finished(&job, &work);
        let seed = report.seed();
        let done = Settled {
            job: &job,
            requester,
            owner: user_id,
            work,
            censored,
            now_ms,
        };
        let output = K::count_work(self, &done, report);
        if let Some((kind, things)) = figures {
            let counted = self.recent_generations.count(kind, &job.model, things, now_ms);
            self.pending.generations.push(counted);
        }
        let queue = K::queue_mut(self);
        queue.set_job_state(&job.id, JobState::Done);
        if let Some(r) = queue.get_mut(&job.request_id) {
            r.processing = r.processing.saturating_sub(1);
            r.consumed += charged;
            r.last_activity_ms = now_ms;
            r.cached_position = None;
            r.generations.push(FinishedJob {
                job_id: job.id,
                output,
                seed,
                worker_id: job.worker_id,
                worker_name,
                model: job.model.clone(),
                state,
                gen_metadata,
                kudos: charged,
            });
        }
        if let Some(url) = webhook {
            self.announce::<K>(url, &job);
        }
        Ok(to_kudos(work.reward))
    }

    /// A job's worker finished it: its slot frees up and its figures grow; a speed beyond belief
    /// from a worker of an untrusted owner is suspicious. Returns the worker's name.
    fn worker_finished(&mut self, job: &Job, work: &Work) -> String {
        self.pending.workers.insert(job.worker_id);
        let Some(w) = self.workers.get_mut(&job.worker_id) else {
            return String::new();
        };
        w.in_flight = w.in_flight.saturating_sub(1);
        w.requests_fulfilled += 1;
        w.kudos_generated += work.reward;
        w.record_performance(work.speed);
        if work.speed > work.max_speed && !self.users.is_trusted(w.owner_id) {
            w.suspect(Suspicion::UnreasonablyFast, false);
        }
        w.name.clone()
    }

    /// Queues the announcement of a finished job to its request's webhook.
    fn announce<K: RequestKind>(&mut self, url: String, job: &Job) {
        let Some(req) = K::queue(self).get(&job.request_id) else {
            return;
        };
        let Some(g) = req.generations.last() else {
            return;
        };
        let mut body = serde_json::Map::new();
        body.insert("worker_id".into(), g.worker_id.to_string().into());
        body.insert("worker_name".into(), g.worker_name.clone().into());
        body.insert("model".into(), g.model.clone().into());
        body.insert("id".into(), job.id.to_string().into());
        body.insert("state".into(), g.state.clone().into());
        body.insert("gen_metadata".into(), serde_json::to_value(&g.gen_metadata).unwrap_or_default());
        body.insert("request".into(), job.request_id.to_string().into());
        body.insert("kudos".into(), to_kudos(g.kudos).into());
        let image = K::announce(g, &req.request, &mut body);
        self.queue_webhook(crate::webhooks::WebhookEvent {
            url,
            body: serde_json::Value::Object(body),
            image,
        });
    }

    // ----- faults, stale jobs, expiry ----------------------------------------------------------

    /// A job failed (timed out or reported faulted): hand it out again, or fault the request
    /// after more than `max_job_faults` failures. Returns whether the request faulted now.
    fn fault<K: RequestKind>(&mut self, job_id: &Uuid, as_state: JobState, now_ms: u64) -> bool {
        K::drop_result(self, job_id);
        let max_faults = self.cfg.max_job_faults;
        match K::queue_mut(self).fail_job(job_id, as_state, max_faults, now_ms) {
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

    /// Times out a kind's stale jobs (handing them out again) and drops its requests (with what
    /// they keep) `request_expiry_secs` after their last activity.
    pub(crate) fn expire<K: RequestKind>(&mut self, now_ms: u64, report: &mut ReapReport) {
        for id in K::queue(self).stale_jobs(now_ms) {
            report.jobs_aborted += 1;
            if self.fault::<K>(&id, JobState::Aborted, now_ms) {
                report.requests_faulted += 1;
            }
        }
        let expiry_ms = self.cfg.request_expiry_secs * 1000;
        for (r, workers) in K::queue_mut(self).take_expired(now_ms, expiry_ms) {
            for id in &workers {
                if let Some(w) = self.workers.get_mut(id) {
                    w.in_flight = w.in_flight.saturating_sub(1);
                }
            }
            K::forget(self, &r);
            report.requests_expired += 1;
        }
    }
}

/// The queue's matching data of a request: the kind's needs and flags, and the flags of the
/// options every kind shares.
fn criteria<K: RequestKind>(id: Uuid, user_id: i64, req: &K::Request, job_estimate: Centikudos) -> Criteria<K::Needs> {
    let (needs, own) = K::needs(req);
    Criteria {
        id,
        user_id,
        needs,
        flags: flags::common(req) | own,
        job_estimate,
    }
}

/// The checks of a worker's report every kind shares: a known state, bounded metadata.
fn check_report(report: &impl JobReport) -> Result<()> {
    if !RESULT_STATES.contains(&report.state()) {
        return Err(HordeError::Validation(format!(
            "Unknown generation state '{}'.",
            report.state().chars().take(20).collect::<String>()
        )));
    }
    if report.gen_metadata().len() > MAX_GEN_METADATA {
        return Err(HordeError::Validation(format!("At most {MAX_GEN_METADATA} gen_metadata entries.")));
    }
    Ok(())
}

/// The censorship rule, the same for every kind: a result is censored when the worker says so
/// (its state, its flag, or censorship metadata); `csam` stays `csam` and is noted in the
/// metadata. Returns (state, censored, metadata).
fn censorship(report: &impl JobReport) -> (String, bool, Vec<GenMetadata>) {
    let mut gen_metadata = report.gen_metadata().to_vec();
    let csam = report.state() == "csam";
    if csam && !gen_metadata.iter().any(|m| m.kind == "censorship" && m.value == "csam") {
        gen_metadata.push(GenMetadata {
            kind: "censorship".into(),
            value: "csam".into(),
            reference: None,
        });
    }
    let censored = report.censored() || report.state() == "censored" || gen_metadata.iter().any(|m| m.kind == "censorship");
    let state = if csam {
        "csam"
    } else if censored {
        "censored"
    } else {
        "ok"
    };
    (state.into(), censored || csam, gen_metadata)
}

#[cfg(test)]
pub(crate) mod tests;

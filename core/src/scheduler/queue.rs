//! Waiting requests in priority order, and their jobs.
//!
//! Order is priority descending, then arrival. Priority is the requester's kudos at submission
//! plus aging: every request gains `aging_per_sec` points per second it waits. Since all waiting
//! requests age at the same rate, comparing `kudos + rate × (now − created)` between two requests
//! is the same as comparing `kudos − rate × created`, a key that never changes: the queue is a
//! plain ordered map and aging costs nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::watch;

use horde_protocol::text::GenMetadata;
use uuid::Uuid;

use super::ModelId;
use crate::kudos::Centikudos;
use crate::{HordeError, Result};

/// Position in the queue: smaller is served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct QueueKey {
    /// Negated static priority, in thousandths of a point.
    neg_priority: i64,
    seq: u64,
}

impl QueueKey {
    /// `kudos` at submission, `created_secs` since the epoch, `aging_per_sec` points per second.
    pub fn new(kudos: f64, created_secs: f64, aging_per_sec: f64, seq: u64) -> Self {
        let static_priority = kudos - aging_per_sec * created_secs;
        Self {
            neg_priority: -(static_priority * 1000.0).round() as i64,
            seq,
        }
    }
}

/// A request's change channel (subscribers are this process's own streaming clients).
fn new_changes() -> Arc<watch::Sender<()>> {
    Arc::new(watch::Sender::new(()))
}

/// What one kind of request brings to the queue: the types it keeps (the rules of its lifecycle
/// are `lifecycle::RequestKind`).
pub trait QueueKind: std::fmt::Debug + Clone {
    /// The validated request, with the options every kind shares.
    type Request: std::fmt::Debug
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::ops::Deref<Target = crate::request_checks::RequestOptions>;
    /// The kind's own matching data, small and inline (see `Criteria`).
    type Needs: std::fmt::Debug + Clone + Copy + PartialEq + serde::Serialize + serde::de::DeserializeOwned;
    /// A finished job's result.
    type Output: std::fmt::Debug + Clone + serde::Serialize + serde::de::DeserializeOwned;
}

/// What matching needs of a request, small and inline so a pop can walk many without touching the
/// full requests. Kept in every index the request is in.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Criteria<N> {
    pub id: Uuid,
    pub user_id: i64,
    pub needs: N,
    pub flags: u8,
    /// Expected charge of one job, for workers that want upfront kudos.
    pub job_estimate: Centikudos,
}

/// Flags of `Criteria`, shared by all kinds.
pub mod flags {
    pub const TRUSTED_WORKERS: u8 = 1;
    /// `slow_workers: false`.
    pub const FAST_ONLY: u8 = 2;
    pub const EXTRA_SLOW_OK: u8 = 4;
    pub const VALIDATED_BACKENDS: u8 = 8;
    /// Needs a look at the full request: a worker allow/block list, a softprompt, a prompt to
    /// check against the worker's censorlist.
    pub const NEEDS_DETAIL: u8 = 16;
    /// Only NSFW workers may take it.
    pub const NSFW: u8 = 32;

    /// The flags every kind derives alike from its request's options.
    pub fn common(o: &crate::request_checks::RequestOptions) -> u8 {
        let mut f = 0;
        if o.trusted_workers {
            f |= TRUSTED_WORKERS;
        }
        if !o.slow_workers {
            f |= FAST_ONLY;
        }
        if o.extra_slow_workers {
            f |= EXTRA_SLOW_OK;
        }
        if !o.workers.is_empty() {
            f |= NEEDS_DETAIL;
        }
        f
    }
}

impl<N> Criteria<N> {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// A finished job's result, kept in memory until the request expires.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FinishedJob<O> {
    pub job_id: Uuid,
    pub output: O,
    pub seed: i64,
    pub worker_id: Uuid,
    pub worker_name: String,
    pub model: String,
    pub state: String,
    pub gen_metadata: Vec<GenMetadata>,
    /// What the requester was charged for it.
    pub kudos: Centikudos,
}

/// A request as the queue holds it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct WaitingRequest<K: QueueKind> {
    pub id: Uuid,
    pub user_id: i64,
    pub request: K::Request,
    pub model_ids: Vec<ModelId>,
    pub key: QueueKey,
    /// Jobs not yet handed out.
    pub remaining: u32,
    /// Jobs handed out and not yet back.
    pub processing: u32,
    /// Jobs that timed out or were reported faulted.
    pub faults: u32,
    pub generations: Vec<FinishedJob<K::Output>>,
    pub consumed: Centikudos,
    pub criteria: Criteria<K::Needs>,
    /// Every job handed out for this request.
    pub job_ids: Vec<Uuid>,
    pub created_ms: u64,
    pub last_activity_ms: u64,
    pub faulted: bool,
    pub cancelled: bool,
    /// Its images were rated (paid once).
    pub rated: bool,
    /// What it paid when accepted (its tax, net of any floor adjustment), refunded if a
    /// restarting horde drops it unserved; zero once refunded.
    #[serde(default)]
    pub upfront: Centikudos,
    /// Its requester has read it finished (this process's own view, for draining at shutdown).
    #[serde(skip)]
    pub collected: bool,
    /// (when, queue position, wait time) of the last status computed, reused for a second.
    #[serde(skip)]
    pub cached_position: Option<(u64, i64, i64)>,
    /// Bytes of client text counted against the memory caps while the request is held (its
    /// prompt and the room reserved for its results; see `text::memory`). Zero for images,
    /// whose bytes the image store counts.
    #[serde(default)]
    pub held_bytes: usize,
    /// Told of every change to the request or its jobs, for streaming clients. Dropped (closing
    /// their subscriptions) when the request leaves memory.
    #[serde(skip, default = "new_changes")]
    pub changes: Arc<watch::Sender<()>>,
}

impl<K: QueueKind> WaitingRequest<K> {
    /// A request just accepted: `n` jobs to hand out, `charged` already consumed (its tax).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: Uuid,
        user_id: i64,
        request: K::Request,
        model_ids: Vec<ModelId>,
        key: QueueKey,
        n: u32,
        charged: Centikudos,
        criteria: Criteria<K::Needs>,
        now_ms: u64,
    ) -> Self {
        Self {
            id,
            user_id,
            request,
            model_ids,
            key,
            remaining: n,
            processing: 0,
            faults: 0,
            generations: vec![],
            consumed: charged,
            criteria,
            job_ids: vec![],
            created_ms: now_ms,
            last_activity_ms: now_ms,
            faulted: false,
            cancelled: false,
            rated: false,
            held_bytes: 0,
            upfront: 0,
            collected: false,
            cached_position: None,
            changes: Arc::new(watch::Sender::new(())),
        }
    }

    /// Wakes the request's subscribers.
    pub fn changed(&self) {
        self.changes.send_replace(());
    }

    pub fn is_queued(&self) -> bool {
        self.remaining > 0 && !self.faulted && !self.cancelled
    }
    pub fn is_done(&self) -> bool {
        self.faulted || (!self.is_queued() && self.processing == 0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JobState {
    InFlight,
    Done,
    /// Timed out before the worker submitted.
    Aborted,
    /// The worker reported it could not do it.
    Faulted,
}

/// One unit of work handed to a worker.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Job {
    pub id: Uuid,
    pub request_id: Uuid,
    pub worker_id: Uuid,
    pub model: String,
    pub started_ms: u64,
    pub ttl_secs: u64,
    pub state: JobState,
    /// Seed the job was handed out with (images; 0 for text).
    pub seed: i64,
    /// Jobs handed out together in one pop (images may be batched).
    pub batch: u32,
    /// Text generated so far, as the worker reported it (progress protocol); cleared when the
    /// job ends.
    pub progress: String,
    /// Once done: how many leading bytes of the reported progress the final text kept.
    pub progress_kept: usize,
}

/// Requests, their order, and their jobs. Queued requests are indexed three ways, all in serving
/// order: overall, per user (for the owner/priority pass) and per requested model (requests that
/// name no model are in `any_model`), so a pop only walks requests naming one of its models.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct Queue<K: QueueKind> {
    requests: HashMap<Uuid, WaitingRequest<K>>,
    order: BTreeMap<QueueKey, Uuid>,
    by_user: HashMap<i64, BTreeMap<QueueKey, Uuid>>,
    by_model: HashMap<ModelId, BTreeMap<QueueKey, Criteria<K::Needs>>>,
    any_model: BTreeMap<QueueKey, Criteria<K::Needs>>,
    jobs: HashMap<Uuid, Job>,
    in_flight: std::collections::HashSet<Uuid>,
    seq: u64,
    counts: JobCounts,
    /// The requests' `held_bytes`, in all and by user.
    #[serde(default)]
    held: HeldBytes,
}

/// Bytes the held requests count against the memory caps, in all and by user.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldBytes {
    pub total: usize,
    pub by_user: HashMap<i64, usize>,
}

impl HeldBytes {
    fn add(&mut self, user_id: i64, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.total = self.total.saturating_add(bytes);
        *self.by_user.entry(user_id).or_default() += bytes;
    }

    fn sub(&mut self, user_id: i64, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.total = self.total.saturating_sub(bytes);
        if let Some(b) = self.by_user.get_mut(&user_id) {
            *b = b.saturating_sub(bytes);
            if *b == 0 {
                self.by_user.remove(&user_id);
            }
        }
    }

    /// Bytes `user_id`'s requests hold.
    pub fn of(&self, user_id: i64) -> usize {
        self.by_user.get(&user_id).copied().unwrap_or(0)
    }
}

/// Jobs of one kind since the horde started, by how they went (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobCounts {
    pub popped: u64,
    pub submitted: u64,
    /// Reported faulted by their worker.
    pub faulted: u64,
    /// Timed out before their worker submitted.
    pub aborted: u64,
}

impl<K: QueueKind> Default for Queue<K> {
    fn default() -> Self {
        Self {
            requests: HashMap::new(),
            order: BTreeMap::new(),
            by_user: HashMap::new(),
            by_model: HashMap::new(),
            any_model: BTreeMap::new(),
            jobs: HashMap::new(),
            in_flight: std::collections::HashSet::new(),
            seq: 0,
            counts: JobCounts::default(),
            held: HeldBytes::default(),
        }
    }
}

impl<K: QueueKind> Queue<K> {
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn insert(&mut self, req: WaitingRequest<K>) {
        let id = req.id;
        self.held.add(req.user_id, req.held_bytes);
        if let Some(old) = self.requests.insert(id, req) {
            self.held.sub(old.user_id, old.held_bytes);
        }
        self.sync_order(&id);
    }

    /// What the held requests count against the memory caps.
    pub fn held(&self) -> &HeldBytes {
        &self.held
    }

    /// Counts `bytes` more against request `id` (a result longer than the room reserved for it).
    pub fn hold_more(&mut self, id: &Uuid, bytes: usize) {
        if let Some(r) = self.requests.get_mut(id) {
            r.held_bytes = r.held_bytes.saturating_add(bytes);
            self.held.add(r.user_id, bytes);
        }
    }

    /// Puts a request in (or out of) the order to match whether it still has jobs to hand out.
    pub fn sync_order(&mut self, id: &Uuid) {
        let Some(req) = self.requests.get(id) else {
            return;
        };
        let (key, user, queued, criteria) = (req.key, req.user_id, req.is_queued(), req.criteria);
        if queued {
            self.order.insert(key, *id);
            self.by_user.entry(user).or_default().insert(key, *id);
            if req.model_ids.is_empty() {
                self.any_model.insert(key, criteria);
            }
            for m in &req.model_ids {
                self.by_model.entry(*m).or_default().insert(key, criteria);
            }
        } else {
            self.order.remove(&key);
            if let Some(m) = self.by_user.get_mut(&user) {
                m.remove(&key);
                if m.is_empty() {
                    self.by_user.remove(&user);
                }
            }
            self.any_model.remove(&key);
            for m in &req.model_ids {
                if let Some(idx) = self.by_model.get_mut(m) {
                    idx.remove(&key);
                    if idx.is_empty() {
                        self.by_model.remove(m);
                    }
                }
            }
        }
    }

    pub fn get(&self, id: &Uuid) -> Option<&WaitingRequest<K>> {
        self.requests.get(id)
    }
    pub fn get_mut(&mut self, id: &Uuid) -> Option<&mut WaitingRequest<K>> {
        self.requests.get_mut(id)
    }

    /// Removes a request and its jobs.
    pub fn remove(&mut self, id: &Uuid) -> Option<WaitingRequest<K>> {
        if let Some(r) = self.requests.get_mut(id) {
            r.cancelled = true;
        }
        self.sync_order(id);
        let req = self.requests.remove(id)?;
        self.held.sub(req.user_id, req.held_bytes);
        for j in &req.job_ids {
            self.jobs.remove(j);
            self.in_flight.remove(j);
        }
        Some(req)
    }

    /// Records a job handed out for its request.
    pub fn add_job(&mut self, job: Job) {
        if let Some(r) = self.requests.get_mut(&job.request_id) {
            r.job_ids.push(job.id);
            r.changed();
        }
        if job.state == JobState::InFlight {
            self.in_flight.insert(job.id);
        }
        self.counts.popped += 1;
        self.jobs.insert(job.id, job);
    }

    pub fn job(&self, id: &Uuid) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// Moves a job to `state` (a job leaving flight forgets its progress); returns the job as
    /// it now is.
    pub fn set_job_state(&mut self, id: &Uuid, state: JobState) -> Option<&Job> {
        let job = self.jobs.get_mut(id)?;
        job.state = state;
        match state {
            JobState::InFlight => {}
            JobState::Done => self.counts.submitted += 1,
            JobState::Faulted => self.counts.faulted += 1,
            JobState::Aborted => self.counts.aborted += 1,
        }
        if state == JobState::InFlight {
            self.in_flight.insert(*id);
        } else {
            self.in_flight.remove(id);
            job.progress = String::new();
        }
        if let Some(r) = self.requests.get(&job.request_id) {
            r.changed();
        }
        Some(job)
    }

    /// Records the text a job's worker has generated so far: it must extend what was reported
    /// before. Returns whether the request was cancelled (the worker may stop).
    pub fn record_progress(&mut self, id: &Uuid, text: String, now_ms: u64) -> Result<bool> {
        let job = self.jobs.get_mut(id).ok_or_else(|| HordeError::InvalidJobId(id.to_string()))?;
        if !text.starts_with(job.progress.as_str()) {
            return Err(HordeError::Validation(
                "Progress must extend the text reported before for this job.".into(),
            ));
        }
        let grew = text.len() > job.progress.len();
        if grew {
            job.progress = text;
        }
        let request_id = job.request_id;
        let r = self
            .requests
            .get_mut(&request_id)
            .ok_or_else(|| HordeError::InvalidJobId(id.to_string()))?;
        r.last_activity_ms = now_ms;
        if grew {
            r.changed();
        }
        Ok(r.cancelled)
    }

    /// Sets a finishing job's `progress_kept`: the length of the longest common prefix (in
    /// whole characters) of its reported progress and `final_text`.
    pub fn keep_progress(&mut self, id: &Uuid, final_text: &str) {
        if let Some(job) = self.jobs.get_mut(id) {
            job.progress_kept = common_prefix_len(&job.progress, final_text);
        }
    }

    /// Hands out no more jobs of a request (`DELETE` status); those in flight still finish.
    pub fn cancel(&mut self, id: &Uuid) {
        if let Some(r) = self.requests.get_mut(id) {
            r.cancelled = true;
            r.remaining = 0;
            r.cached_position = None;
            r.changed();
        }
        self.sync_order(id);
    }

    /// The in-flight job `job_id` names, checked for a submit by `user_id` (who must own its
    /// worker, per `owner_of`). `Ok(None)`: the job had already timed out and the worker reports
    /// it faulted (nothing to do, no reward).
    pub fn job_for_submit(
        &self,
        job_id: &str,
        user_id: i64,
        faulted_report: bool,
        owner_of: impl Fn(&Uuid) -> Option<i64>,
    ) -> Result<Option<Job>> {
        let id = Uuid::parse_str(job_id.trim()).map_err(|_| HordeError::InvalidJobId(job_id.chars().take(60).collect()))?;
        let job = self
            .jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| HordeError::InvalidJobId(id.to_string()))?;
        let owner = owner_of(&job.worker_id).ok_or_else(|| HordeError::InvalidJobId(id.to_string()))?;
        if owner != user_id {
            return Err(HordeError::WrongCredentials);
        }
        match job.state {
            JobState::Done | JobState::Faulted => Err(HordeError::DuplicateGen(id.to_string())),
            JobState::Aborted if faulted_report => Ok(None),
            JobState::Aborted => Err(HordeError::AbortedGen(id.to_string())),
            JobState::InFlight => Ok(Some(job)),
        }
    }

    /// A job failed (timed out or reported faulted): marks it `as_state` and hands its request's
    /// job out again, or faults the request after more than `max_faults` failures. Returns the
    /// job's worker and whether the request faulted now.
    pub fn fail_job(&mut self, job_id: &Uuid, as_state: JobState, max_faults: u32, now_ms: u64) -> Option<(Uuid, bool)> {
        let job = self.set_job_state(job_id, as_state)?;
        let (request_id, worker_id) = (job.request_id, job.worker_id);
        let mut faulted_now = false;
        if let Some(r) = self.requests.get_mut(&request_id) {
            r.processing = r.processing.saturating_sub(1);
            r.faults += 1;
            r.last_activity_ms = now_ms;
            r.cached_position = None;
            if r.faults > max_faults {
                r.faulted = true;
                faulted_now = true;
            } else if !r.cancelled {
                r.remaining += 1;
            }
            r.changed();
        }
        self.sync_order(&request_id);
        Some((worker_id, faulted_now))
    }

    /// Jobs in flight longer than their TTL at `now_ms`.
    /// In id order, so replicas that fault them one by one do so alike.
    pub fn stale_jobs(&self, now_ms: u64) -> Vec<Uuid> {
        let mut stale: Vec<Uuid> = self
            .in_flight_jobs()
            .filter(|j| now_ms.saturating_sub(j.started_ms) > j.ttl_secs * 1000)
            .map(|j| j.id)
            .collect();
        stale.sort_unstable();
        stale
    }

    /// Removes the requests idle for more than `expiry_ms`, each with the workers of its jobs
    /// still in flight.
    pub fn take_expired(&mut self, now_ms: u64, expiry_ms: u64) -> Vec<(WaitingRequest<K>, Vec<Uuid>)> {
        let mut expired: Vec<Uuid> = self
            .requests
            .values()
            .filter(|r| now_ms.saturating_sub(r.last_activity_ms) > expiry_ms)
            .map(|r| r.id)
            .collect();
        expired.sort_unstable();
        let mut out = Vec::with_capacity(expired.len());
        for id in expired {
            let workers: Vec<Uuid> = match self.requests.get(&id) {
                Some(r) => self
                    .jobs_of(r)
                    .filter(|j| j.state == JobState::InFlight)
                    .map(|j| j.worker_id)
                    .collect(),
                None => vec![],
            };
            if let Some(r) = self.remove(&id) {
                out.push((r, workers));
            }
        }
        out
    }

    /// Jobs of one request.
    pub fn jobs_of<'a>(&'a self, req: &'a WaitingRequest<K>) -> impl Iterator<Item = &'a Job> {
        req.job_ids.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Jobs handed out and not yet back.
    pub fn in_flight_jobs(&self) -> impl Iterator<Item = &Job> {
        self.in_flight.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Queued requests in serving order.
    pub fn in_order(&self) -> impl Iterator<Item = &WaitingRequest<K>> {
        self.order.values().filter_map(|id| self.requests.get(id))
    }

    /// Queued requests of one user in serving order.
    pub fn user_in_order(&self, user_id: i64) -> impl Iterator<Item = (&QueueKey, &Uuid)> {
        self.by_user.get(&user_id).into_iter().flat_map(|m| m.iter())
    }

    /// Queued requests a worker serving `models` (sorted) could take, in serving order, each once:
    /// those naming one of the models, and those naming none.
    pub fn for_models(&self, models: &[ModelId]) -> impl Iterator<Item = &Criteria<K::Needs>> {
        let mut sources: Vec<std::collections::btree_map::Iter<'_, QueueKey, Criteria<K::Needs>>> =
            models.iter().filter_map(|m| self.by_model.get(m)).map(|m| m.iter()).collect();
        sources.push(self.any_model.iter());
        let mut heads: std::collections::BinaryHeap<std::cmp::Reverse<(QueueKey, usize)>> = std::collections::BinaryHeap::new();
        let mut current: Vec<Option<&Criteria<K::Needs>>> = vec![None; sources.len()];
        for (i, src) in sources.iter_mut().enumerate() {
            if let Some((k, c)) = src.next() {
                current[i] = Some(c);
                heads.push(std::cmp::Reverse((*k, i)));
            }
        }
        let mut last: Option<QueueKey> = None;
        std::iter::from_fn(move || loop {
            let std::cmp::Reverse((key, i)) = heads.pop()?;
            let item = current[i];
            match sources[i].next() {
                Some((k, c)) => {
                    current[i] = Some(c);
                    heads.push(std::cmp::Reverse((*k, i)));
                }
                None => current[i] = None,
            }
            if last == Some(key) {
                continue;
            }
            last = Some(key);
            return item;
        })
    }

    pub fn requests(&self) -> impl Iterator<Item = &WaitingRequest<K>> {
        self.requests.values()
    }

    pub fn request_ids(&self) -> Vec<Uuid> {
        self.requests.keys().copied().collect()
    }

    /// How this queue's jobs went since the horde started.
    pub fn job_counts(&self) -> JobCounts {
        self.counts
    }

    pub fn queued_len(&self) -> usize {
        self.order.len()
    }

    pub fn len(&self) -> usize {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }
}

/// Bytes `a` and `b` share at their start, ending on a character boundary of both.
pub fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| a.len().min(b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes_end_on_characters() {
        assert_eq!(common_prefix_len("hello", "help"), 3);
        assert_eq!(common_prefix_len("hé", "hè"), 1);
        assert_eq!(common_prefix_len("abc", "abcdef"), 3);
        assert_eq!(common_prefix_len("", "x"), 0);
    }

    #[test]
    fn higher_kudos_first_then_arrival() {
        let a = QueueKey::new(100.0, 1000.0, 5.0, 1);
        let b = QueueKey::new(100.0, 1000.0, 5.0, 2);
        let rich = QueueKey::new(1000.0, 1001.0, 5.0, 3);
        assert!(a < b);
        assert!(rich < a);
    }

    #[test]
    fn aging_lets_old_requests_overtake() {
        // A poor request submitted 100 s before a richer one (by 400 points) ages 500 points.
        let old_poor = QueueKey::new(0.0, 1000.0, 5.0, 1);
        let new_rich = QueueKey::new(400.0, 1100.0, 5.0, 2);
        assert!(old_poor < new_rich);
        let newer_rich = QueueKey::new(600.0, 1100.0, 5.0, 3);
        assert!(newer_rich < old_poor);
    }
}

//! The horde's in-memory state. The rules that change it are plain synchronous methods on it,
//! each in the module of its use case (`lifecycle` for requests of every kind, `workers`,
//! `accounts`, `image::rating`, ...); here are what holds it together: replication snapshots,
//! the durable writes it queues, and the reaper's pass.
//!
//! One `State` is owned behind one short-held lock by `Horde`; nothing here waits on I/O, so each
//! method is atomic and can be tested without a runtime. Durable effects (kudos postings, counters,
//! worker stats) are queued in `PendingWrites` and stored in batches by the horde's persister.

use std::collections::{HashMap, HashSet, VecDeque};

use uuid::Uuid;

use crate::accounts::{UserRecords, Users};
use crate::config::HordeConfig;
use crate::generation_stats::{merge_counts, GenerationCount, RecentGenerations};
use crate::image::{ImageKind, ImageStore};
use crate::kudos::image_model::{KudosModel, Timing};
use crate::kudos::transfer_keys::{TransferKey, TransferKeys};
use crate::kudos::KudosLedger;
use crate::scheduler::{ModelNames, Queue};
use crate::text::TextKind;
use crate::workers::Workers;
use crate::{HordeError, Result};

pub use crate::lifecycle::{Accepted, Submission};

/// The text queue.
pub type TextQueue = Queue<TextKind>;
/// The image queue.
pub type ImageQueue = Queue<ImageKind>;

/// The alchemy queue.
pub type AlchemyQueue = Queue<crate::alchemy::AlchemyKind>;

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
    /// Finished generations to add to the stored figures (`generation_stats`).
    #[serde(default)]
    pub generations: Vec<GenerationCount>,
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
    pub alchemy: AlchemyQueue,
    pub image_store: ImageStore,
    pub kudos_model: KudosModel,
    /// Finished jobs whose request has a webhook, waiting to be sent.
    pub webhooks: Vec<crate::webhooks::WebhookEvent>,
    /// The two-context prompt filter (image prompts).
    pub filter: crate::safety::PromptFilter,
    /// Client addresses timed out after refused prompts.
    pub ip_timeouts: crate::safety::IpTimeouts,
    pub models: ModelNames,
    pub pending: PendingWrites,
    /// Keys of the last day's transfers (`Idempotency-Key`).
    pub transfer_keys: TransferKeys,
    /// (when, tokens) of jobs finished in the last minute.
    pub(crate) recent_tokens: VecDeque<(u64, i64)>,
    /// (when, thousands of pixelsteps) of images finished in the last minute.
    pub(crate) recent_kps: VecDeque<(u64, i64)>,
    /// Finished generations of the last hour, for `/stats` (`generation_stats`).
    pub recent_generations: RecentGenerations,
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
    alchemy: &'a AlchemyQueue,
    image_store: &'a ImageStore,
    filter_rules: &'a [crate::safety::FilterRule],
    ip_timeouts: &'a crate::safety::IpTimeouts,
    models: &'a ModelNames,
    pending: &'a PendingWrites,
    transfer_keys: &'a TransferKeys,
    recent_tokens: &'a VecDeque<(u64, i64)>,
    recent_kps: &'a VecDeque<(u64, i64)>,
    recent_generations: &'a RecentGenerations,
}

/// `SnapshotOf`, read back.
#[derive(serde::Deserialize)]
struct Snapshot {
    users: Users,
    ledger: KudosLedger,
    workers: Workers,
    queue: TextQueue,
    images: ImageQueue,
    alchemy: AlchemyQueue,
    image_store: ImageStore,
    filter_rules: Vec<crate::safety::FilterRule>,
    ip_timeouts: crate::safety::IpTimeouts,
    models: ModelNames,
    pending: PendingWrites,
    transfer_keys: TransferKeys,
    recent_tokens: VecDeque<(u64, i64)>,
    recent_kps: VecDeque<(u64, i64)>,
    #[serde(default)]
    recent_generations: RecentGenerations,
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
            alchemy: AlchemyQueue::default(),
            kudos_model,
            webhooks: Vec::new(),
            filter: crate::safety::PromptFilter::default(),
            ip_timeouts: crate::safety::IpTimeouts::default(),
            models: ModelNames::default(),
            pending: PendingWrites::default(),
            transfer_keys: TransferKeys::default(),
            recent_tokens: VecDeque::new(),
            recent_kps: VecDeque::new(),
            recent_generations: RecentGenerations::default(),
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
            || (stats
                && (!self.pending.records.is_empty()
                    || !self.pending.workers.is_empty()
                    || !self.pending.timings.is_empty()
                    || !self.pending.generations.is_empty()))
    }

    /// Takes the durable writes queued so far, as one batch for the persister. Without `stats`,
    /// only the kudos movements (postings, transfer keys): what a caller waits for, in the fewest
    /// statements; the counters, worker stats and timings wait for the next periodic batch.
    pub fn take_pending_writes(&mut self, stats: bool) -> crate::store::FlushBatch {
        let mut batch = if stats { self.take_pending_stats() } else { Default::default() };
        batch.postings = self.ledger.take_pending();
        batch.transfer_keys = std::mem::take(&mut self.pending.transfer_keys);
        batch
    }

    /// Takes the queued counters, worker stats, timings and generation counts (no kudos
    /// movements), as one batch for the persister.
    pub fn take_pending_stats(&mut self) -> crate::store::FlushBatch {
        let ids: Vec<Uuid> = self.pending.workers.drain().collect();
        crate::store::FlushBatch {
            workers: ids.into_iter().filter_map(|id| self.workers.get(&id).cloned()).collect(),
            records: std::mem::take(&mut self.pending.records),
            timings: std::mem::take(&mut self.pending.timings),
            generations: merge_counts(std::mem::take(&mut self.pending.generations)),
            ..Default::default()
        }
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
        let newer = std::mem::replace(&mut self.pending.generations, batch.generations);
        self.pending.generations.extend(newer);
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
            alchemy: &self.alchemy,
            image_store: &self.image_store,
            filter_rules: self.filter.rules(),
            ip_timeouts: &self.ip_timeouts,
            models: &self.models,
            pending: &self.pending,
            transfer_keys: &self.transfer_keys,
            recent_tokens: &self.recent_tokens,
            recent_kps: &self.recent_kps,
            recent_generations: &self.recent_generations,
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
        self.alchemy = snap.alchemy;
        self.image_store = snap.image_store;
        self.filter = crate::safety::PromptFilter::new(snap.filter_rules)?;
        self.ip_timeouts = snap.ip_timeouts;
        self.models = snap.models;
        self.pending = snap.pending;
        self.transfer_keys = snap.transfer_keys;
        self.recent_tokens = snap.recent_tokens;
        self.recent_kps = snap.recent_kps;
        self.recent_generations = snap.recent_generations;
        Ok(())
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

    /// Times out stale jobs and drops requests 20 minutes after their last activity.
    pub fn reap(&mut self, now_ms: u64) -> ReapReport {
        let mut report = ReapReport::default();
        self.expire::<TextKind>(now_ms, &mut report);
        self.expire::<ImageKind>(now_ms, &mut report);
        self.expire::<crate::alchemy::AlchemyKind>(now_ms, &mut report);
        for recent in [&mut self.recent_tokens, &mut self.recent_kps] {
            while recent.front().is_some_and(|(t, _)| now_ms.saturating_sub(*t) > 60_000) {
                recent.pop_front();
            }
        }
        self.ip_timeouts.prune(now_ms);
        self.transfer_keys.prune(now_ms);
        report
    }
}

//! What the horde reports about itself for monitoring: queue depth, job outcomes, workers
//! online, kudos burnt. Counts and model names only; nothing about who asked or what.

use std::collections::BTreeMap;

use crate::kudos::to_kudos;
use crate::scheduler::{JobCounts, Queue, QueueKind};
use crate::state::State;
use crate::workers::WorkerKind;

/// A snapshot of the horde's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Telemetry {
    /// Jobs waiting to be handed out, by (type, model); a request naming no model counts under
    /// `any`, one naming several under each.
    pub queued_jobs: BTreeMap<(&'static str, String), u64>,
    /// Requests held in memory (queued, running, or finished and not yet expired), by type.
    pub requests_in_memory: BTreeMap<&'static str, u64>,
    /// Job outcomes since start, by type.
    pub jobs: BTreeMap<&'static str, JobCounts>,
    /// Workers online, by type.
    pub workers_online: BTreeMap<&'static str, u64>,
    /// Kudos burnt (taxes and charges) since the ledger began.
    pub kudos_burnt: f64,
    /// Bytes counted against the memory caps now, by type (text: prompts and room for results;
    /// image: result and source images).
    pub memory_held: BTreeMap<&'static str, u64>,
    /// The memory caps, by type.
    pub memory_cap: BTreeMap<&'static str, u64>,
    /// The cap on the text one untrusted account may hold.
    pub account_text_memory_cap: u64,
    /// Accounts holding text now.
    pub accounts_holding_text: u64,
}

fn queued_by_model<K: QueueKind>(state: &State, queue: &Queue<K>, kind: &'static str, out: &mut BTreeMap<(&'static str, String), u64>) {
    for r in queue.in_order() {
        if r.model_ids.is_empty() {
            *out.entry((kind, "any".to_string())).or_default() += u64::from(r.remaining);
        }
        for m in &r.model_ids {
            *out.entry((kind, state.models.name(*m).to_string())).or_default() += u64::from(r.remaining);
        }
    }
}

impl State {
    /// The horde's figures at `now_ms`.
    pub fn telemetry(&self, now_ms: u64) -> Telemetry {
        let mut t = Telemetry::default();
        queued_by_model(self, &self.queue, "text", &mut t.queued_jobs);
        queued_by_model(self, &self.images, "image", &mut t.queued_jobs);
        t.requests_in_memory.insert("text", self.queue.len() as u64);
        t.requests_in_memory.insert("image", self.images.len() as u64);
        t.jobs.insert("text", self.queue.job_counts());
        t.jobs.insert("image", self.images.job_counts());
        queued_by_model(self, &self.alchemy, "alchemy", &mut t.queued_jobs);
        t.requests_in_memory.insert("alchemy", self.alchemy.len() as u64);
        t.jobs.insert("alchemy", self.alchemy.job_counts());
        for kind in ["text", "image", "alchemy"] {
            t.workers_online.insert(kind, 0);
        }
        for w in self.workers.iter().filter(|w| w.is_online(now_ms, self.cfg.worker_online_secs)) {
            let kind = match w.kind {
                WorkerKind::Text => "text",
                WorkerKind::Image => "image",
                WorkerKind::Alchemist => "alchemy",
            };
            *t.workers_online.entry(kind).or_default() += 1;
        }
        t.kudos_burnt = to_kudos(self.ledger.system_balances().1);
        let held = self.queue.held();
        t.memory_held.insert("text", held.total as u64);
        t.memory_held.insert("image", self.image_store.used() as u64);
        t.memory_cap.insert("text", self.cfg.text_memory_cap_bytes as u64);
        t.memory_cap.insert("image", self.cfg.image_memory_cap_bytes as u64);
        t.account_text_memory_cap = self.cfg.account_text_memory_cap_bytes as u64;
        t.accounts_holding_text = held.by_user.len() as u64;
        t
    }
}

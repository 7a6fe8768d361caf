//! The horde's public figures: `/status/models` and `/status/performance`.

use horde_protocol::status as wire_status;

use crate::lifecycle::RequestKind;
use crate::scheduler::figures;
use crate::state::State;
use crate::workers::{Worker, WorkerKind};

impl State {
    /// `/status/models?type=…`: one entry per model of kind `K` served by an online worker.
    pub fn active_models<K: RequestKind>(&self, now_ms: u64) -> Vec<wire_status::ActiveModel> {
        figures::active_models(K::queue(self), &self.workers, now_ms, self.cfg.worker_online_secs)
    }

    /// `/status/performance`.
    pub fn performance(&self, now_ms: u64) -> wire_status::Performance {
        let online: Vec<&Worker> = self.workers.online(WorkerKind::Text, now_ms, self.cfg.worker_online_secs).collect();
        let online_image: Vec<&Worker> = self
            .workers
            .online(WorkerKind::Image, now_ms, self.cfg.worker_online_secs)
            .collect();
        let online_alchemists: Vec<&Worker> = self
            .workers
            .online(WorkerKind::Alchemist, now_ms, self.cfg.worker_online_secs)
            .collect();
        let queued_forms: u32 = self.alchemy.in_order().map(|r| r.remaining).sum();
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
            queued_forms: queued_forms as f64,
            interrogator_count: online_alchemists.len() as i64,
            interrogator_thread_count: online_alchemists.iter().map(|w| w.threads).sum(),
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
}

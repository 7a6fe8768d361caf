//! A worker's check-in (every pop): its declared capabilities, its uptime and the uptime kudos
//! they earn, and what looks suspicious in them.

use std::net::IpAddr;

use uuid::Uuid;

use super::{WorkerKind, WorkerPop};
use crate::kudos::{text_price, Centikudos, PostingKind};
use crate::safety::suspicion::{self, Suspicion};
use crate::state::State;
use crate::{HordeError, Result};

impl State {
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
            WorkerKind::Alchemist => crate::alchemy::UPTIME_REWARD,
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

    /// A worker's pop: its check-in, from the address it popped from.
    pub fn worker_popped(&mut self, worker_id: &Uuid, pop: &WorkerPop, ip: Option<IpAddr>, now_ms: u64) -> Result<()> {
        self.check_in(worker_id, pop, now_ms)?;
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.last_ip = ip;
        }
        Ok(())
    }
}

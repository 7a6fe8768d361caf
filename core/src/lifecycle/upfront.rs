//! Upfront kudos (the public horde's `KudosUpfront` rule): a request bigger or more urgent than a
//! busy horde serves freely (`slow_workers: false`, more tokens than the horde's current free
//! allowance, a larger image or more steps) is accepted only from a requester whose kudos, less
//! what their waiting requests are expected to cost, cover its price. Otherwise it is shrunk to
//! what needs nothing up front when it says `allow_downgrade`, or refused with 403
//! `KudosUpfront`. The free allowances shrink as the queue grows and widen with more worker
//! threads, as the public horde's do.

use super::RequestKind;
use crate::kudos::{to_kudos, Centikudos};
use crate::scheduler::Queue;
use crate::state::State;
use crate::workers::WorkerKind;
use crate::{HordeError, Result};

/// Largest `max_length` served without upfront kudos on a horde at rest (the most it allows).
pub const FREE_MAX_TOKENS: i64 = 512;
/// Smallest free `max_length` allowance, however busy the horde.
pub const FREE_MIN_TOKENS: i64 = 256;
/// Largest image side (as a square's area) served without upfront kudos on a horde at rest.
pub const FREE_MAX_RESOLUTION: i64 = 1024;
/// Smallest free image allowance, however busy the horde.
pub const FREE_MIN_RESOLUTION: i64 = 576;
/// Most sampler evaluations (`accurate_steps`) of an image served without upfront kudos.
pub const FREE_MAX_STEPS: i64 = 40;
/// Steps a downgraded image keeps at most.
pub const DOWNGRADED_STEPS: i64 = 30;

impl State {
    /// Admits `req` under the upfront rule (see the module); may shrink it when it allows.
    pub(crate) fn admit_upfront<K: RequestKind>(&self, user_id: i64, req: &mut K::Request, now_ms: u64) -> Result<()> {
        let Some(reason) = K::upfront_reason(self, req, now_ms) else {
            return Ok(());
        };
        let available = self.users.get(user_id).map_or(0, |u| u.kudos) - self.expected_charges(user_id);
        let price = self.price::<K>(req);
        if available >= price {
            return Ok(());
        }
        if req.allow_downgrade && K::downgrade(self, req, now_ms) && K::upfront_reason(self, req, now_ms).is_none() {
            return Ok(());
        }
        Err(HordeError::forbidden(
            "KudosUpfront",
            format!(
                "This request needs its {} kudos up front ({reason}), and your kudos less what your waiting \
                 requests are expected to cost come to {}. Ask for less, or send allow_downgrade: true to have it \
                 shrunk to what needs no upfront kudos.",
                to_kudos(price),
                to_kudos(available)
            ),
        ))
    }

    /// What `user_id`'s waiting requests of every kind are still expected to cost.
    fn expected_charges(&self, user_id: i64) -> Centikudos {
        fn of<K: RequestKind>(q: &Queue<K>, user_id: i64) -> Centikudos {
            q.user_in_order(user_id)
                .filter_map(|(_, id)| q.get(id))
                .map(|r| r.criteria.job_estimate * r.remaining as Centikudos)
                .sum()
        }
        of(&self.queue, user_id) + of(&self.images, user_id) + of(&self.alchemy, user_id)
    }

    /// Threads of the online workers of `kind`.
    fn online_threads(&self, kind: WorkerKind, now_ms: u64) -> i64 {
        self.workers
            .online(kind, now_ms, self.cfg.worker_online_secs)
            .map(|w| w.threads)
            .sum()
    }

    /// The largest `max_length` served without upfront kudos now: 512 plus 5 per online text
    /// thread less 0.9 per waiting text job, within 256..=512.
    pub fn free_max_tokens(&self, now_ms: u64) -> i64 {
        let queued: i64 = self.queue.in_order().map(|r| r.remaining as i64).sum();
        let threads = self.online_threads(WorkerKind::Text, now_ms);
        (FREE_MAX_TOKENS + 5 * threads - (0.9 * queued as f64).round() as i64).clamp(FREE_MIN_TOKENS, FREE_MAX_TOKENS)
    }

    /// The side of the largest square image served without upfront kudos now: 1024 plus 10 per
    /// online image thread less 0.9 per waiting image job, within 576..=1024.
    pub fn free_max_resolution(&self, now_ms: u64) -> i64 {
        let queued: i64 = self.images.in_order().map(|r| r.remaining as i64).sum();
        let threads = self.online_threads(WorkerKind::Image, now_ms);
        (FREE_MAX_RESOLUTION + 10 * threads - (0.9 * queued as f64).round() as i64).clamp(FREE_MIN_RESOLUTION, FREE_MAX_RESOLUTION)
    }
}

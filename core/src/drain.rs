//! Draining before a restart: what a horde that stops taking work still owes its clients, and
//! the refunds of the requests it drops.
//!
//! When it starts draining, a horde cancels the jobs of its requests that no worker took yet: a
//! request left with nothing to wait for is dropped and refunded what it paid upfront (its tax).
//! It then waits for the jobs in flight to come back and for their requesters to read the
//! results; at its deadline, it refunds every request still unfinished, since they leave with the
//! process.

use crate::kudos::{Account, PostingKind};
use crate::scheduler::{Queue, QueueKind};
use crate::state::State;

/// What keeps a draining horde from stopping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outstanding {
    /// Jobs handed to workers and not yet back.
    pub jobs_in_flight: usize,
    /// Finished requests with results their requester has not read yet.
    pub uncollected: usize,
}

impl Outstanding {
    pub fn is_empty(&self) -> bool {
        self.jobs_in_flight == 0 && self.uncollected == 0
    }
}

impl State {
    /// Cancels every job no worker took yet; requests left with nothing (no result, no job in
    /// flight) are refunded. With `unfinished`, every request not finished is refunded as well
    /// (the horde stops now). Returns the number of requests refunded.
    pub fn drop_for_restart(&mut self, unfinished: bool, now_ms: u64) -> usize {
        let users = &mut self.users;
        let ledger = &mut self.ledger;
        let mut refund = |user_id: i64, amount| {
            if let Err(e) = ledger.post(users, Account::Burn, Account::User(user_id), amount, PostingKind::Refund, now_ms) {
                tracing::error!(error = %e, "could not refund a dropped request");
            }
        };
        drop_in(&mut self.queue, unfinished, &mut refund)
            + drop_in(&mut self.images, unfinished, &mut refund)
            + drop_in(&mut self.alchemy, unfinished, &mut refund)
    }

    /// What the horde still owes before it can stop.
    pub fn outstanding(&self) -> Outstanding {
        Outstanding {
            jobs_in_flight: self.queue.in_flight_jobs().count()
                + self.images.in_flight_jobs().count()
                + self.alchemy.in_flight_jobs().count(),
            uncollected: uncollected(&self.queue) + uncollected(&self.images) + uncollected(&self.alchemy),
        }
    }
}

fn uncollected<K: QueueKind>(q: &Queue<K>) -> usize {
    q.requests()
        .filter(|r| r.is_done() && !r.collected && !r.generations.is_empty())
        .count()
}

/// `State::drop_for_restart` on one queue; `refund` pays a user back.
fn drop_in<K: QueueKind>(q: &mut Queue<K>, unfinished: bool, refund: &mut impl FnMut(i64, i64)) -> usize {
    let mut refunded = 0;
    for id in q.request_ids() {
        let waiting = q.get(&id).is_some_and(|r| r.remaining > 0);
        if waiting {
            q.cancel(&id);
        }
        let Some(r) = q.get_mut(&id) else { continue };
        let unserved = r.generations.is_empty() && r.processing == 0;
        let dropped = (unserved && r.cancelled) || (unfinished && !r.is_done());
        if dropped && r.upfront > 0 {
            refund(r.user_id, r.upfront);
            r.consumed -= r.upfront;
            r.upfront = 0;
            r.changed();
            refunded += 1;
        }
    }
    refunded
}

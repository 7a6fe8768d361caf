//! Whether a worker may serve a request, and if not, why (the `skipped` counters of a pop).

use horde_protocol::text::TextSkipped;

use super::{intersects, Criteria, WaitingRequest};
use crate::accounts::Users;
use crate::workers::Worker;

/// Why a request was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Allow-list without this worker, or block-list with it.
    WorkerId,
    /// Needs faster workers, or the worker is extra slow.
    Performance,
    /// Needs workers of trusted users.
    Untrusted,
    /// Names models the worker does not serve.
    Models,
    /// Needs a validated backend.
    BridgeVersion,
    /// The worker wants upfront kudos the requester lacks.
    Kudos,
    MaxContextLength,
    MaxLength,
    MatchingSoftprompt,
}

impl Skip {
    pub fn count(self, skipped: &mut TextSkipped) {
        let c = match self {
            Skip::WorkerId => &mut skipped.worker_id,
            Skip::Performance => &mut skipped.performance,
            Skip::Untrusted => &mut skipped.untrusted,
            Skip::Models => &mut skipped.models,
            Skip::BridgeVersion => &mut skipped.bridge_version,
            Skip::Kudos => &mut skipped.kudos,
            Skip::MaxContextLength => &mut skipped.max_context_length,
            Skip::MaxLength => &mut skipped.max_length,
            Skip::MatchingSoftprompt => &mut skipped.matching_softprompt,
        };
        *c += 1;
    }
}

/// Whether `worker` (owned by a user with `owner_trusted`) may serve `req`.
pub fn can_serve(worker: &Worker, owner_trusted: bool, req: &WaitingRequest, users: &Users) -> Result<(), Skip> {
    if !req.model_ids.is_empty() && !intersects(&req.model_ids, &worker.model_ids) {
        return Err(Skip::Models);
    }
    can_serve_model_matched(worker, owner_trusted, &req.criteria, || Some(req), users)
}

/// The same checks for a request known to name one of the worker's models (or none), from its
/// inline criteria; `detail` gives the full request, consulted only for allow/block lists and
/// softprompts. Cheap checks first: a pop may run this over a long queue.
pub fn can_serve_model_matched<'a>(
    worker: &Worker,
    owner_trusted: bool,
    c: &Criteria,
    detail: impl FnOnce() -> Option<&'a WaitingRequest>,
    users: &Users,
) -> Result<(), Skip> {
    if c.max_context_length > worker.max_context_length {
        return Err(Skip::MaxContextLength);
    }
    if c.max_length > worker.max_length {
        return Err(Skip::MaxLength);
    }
    if c.has(Criteria::TRUSTED_WORKERS) && !owner_trusted {
        return Err(Skip::Untrusted);
    }
    if worker.extra_slow && !c.has(Criteria::EXTRA_SLOW_OK) {
        return Err(Skip::Performance);
    }
    if c.has(Criteria::FAST_ONLY) && worker.speed() < worker.slow_threshold() {
        return Err(Skip::Performance);
    }
    if c.has(Criteria::VALIDATED_BACKENDS) && !worker.is_validated_backend() {
        return Err(Skip::BridgeVersion);
    }
    if c.has(Criteria::NEEDS_DETAIL) {
        let Some(req) = detail() else { return Err(Skip::WorkerId) };
        let r = &req.request;
        if !r.workers.is_empty() && r.workers.contains(&worker.id) == r.worker_blacklist {
            return Err(Skip::WorkerId);
        }
        if let Some(sp) = &r.softprompt {
            if !worker.softprompts.iter().any(|s| s == sp) {
                return Err(Skip::MatchingSoftprompt);
            }
        }
    }
    if worker.require_upfront_kudos && c.user_id != worker.owner_id && !worker.priority_user_ids.contains(&c.user_id) {
        let ok = users
            .get(c.user_id)
            .is_some_and(|u| u.trusted || u.available_kudos() >= c.job_estimate);
        if !ok {
            return Err(Skip::Kudos);
        }
    }
    Ok(())
}

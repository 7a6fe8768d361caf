//! Whether a worker may serve a request, and if not, why (the `skipped` counters of a pop).

use horde_protocol::text::TextSkipped;

use super::{intersects, WaitingRequest};
use crate::accounts::Users;
use crate::kudos::Centikudos;
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

/// Whether `worker` (owned by a user with `owner_trusted`) may serve `req`. `estimate` is what one
/// job of the request is expected to cost, for workers that want upfront kudos.
pub fn can_serve(worker: &Worker, owner_trusted: bool, req: &WaitingRequest, users: &Users, estimate: Centikudos) -> Result<(), Skip> {
    let r = &req.request;
    if !r.workers.is_empty() && r.workers.contains(&worker.id) == r.worker_blacklist {
        return Err(Skip::WorkerId);
    }
    if !req.model_ids.is_empty() && !intersects(&req.model_ids, &worker.model_ids) {
        return Err(Skip::Models);
    }
    if r.max_context_length > worker.max_context_length {
        return Err(Skip::MaxContextLength);
    }
    if r.max_length > worker.max_length {
        return Err(Skip::MaxLength);
    }
    if r.trusted_workers && !owner_trusted {
        return Err(Skip::Untrusted);
    }
    if worker.extra_slow && !r.extra_slow_workers {
        return Err(Skip::Performance);
    }
    if !r.slow_workers && worker.speed() < worker.slow_threshold() {
        return Err(Skip::Performance);
    }
    if r.validated_backends && !worker.is_validated_backend() {
        return Err(Skip::BridgeVersion);
    }
    if let Some(sp) = &r.softprompt {
        if !worker.softprompts.iter().any(|s| s == sp) {
            return Err(Skip::MatchingSoftprompt);
        }
    }
    if worker.require_upfront_kudos && req.user_id != worker.owner_id && !worker.priority_user_ids.contains(&req.user_id) {
        let ok = users.get(req.user_id).is_some_and(|u| u.trusted || u.available_kudos() >= estimate);
        if !ok {
            return Err(Skip::Kudos);
        }
    }
    Ok(())
}

//! Whether a worker may serve a request, and if not, why (the `skipped` counters of a pop).

use uuid::Uuid;

use super::queue::{flags, Job, Queue, QueueKey, QueueKind};
use super::{intersects, Criteria, WaitingRequest};
use crate::accounts::Users;
use crate::workers::{Worker, WorkerKind};

/// How a kind of request is matched to workers and measured: what the shared scheduler and the
/// queue figures need to treat every kind alike. Each kind implements it beside its request
/// (`text::matching`, `image::matching`); the scheduler names none.
pub trait Matching: QueueKind + Sized {
    /// Workers that serve this kind.
    const WORKER: WorkerKind;
    /// Name in `/status/models` (`type`).
    const NAME: &'static str;
    /// Smallest worker speed assumed when dividing by one.
    const MIN_SPEED: f64;
    /// `/status/models` counts queued work in things (tokens; pixelsteps); this many make one
    /// unit of worker speed (1 token; a megapixelstep).
    const THINGS_PER_UNIT: f64;
    /// Why-not counters of an idle pop.
    type Skipped: Default;
    /// Why a worker may not take a request, in the kind's own checks.
    type Reason: std::fmt::Debug + Clone + Copy + PartialEq;

    /// Things one job of `r` takes.
    fn job_things(r: &Self::Request) -> f64;
    /// Work left on a job in flight, in speed units.
    fn in_flight_work(r: &Self::Request, job: &Job) -> f64;
    /// Counts `n` requests passed over for `skip` in the kind's why-not counters.
    fn count(skip: Skip<Self::Reason>, skipped: &mut Self::Skipped, n: i64);
    /// Whether `worker` may serve `req`: it names one of the worker's models (or none), and the
    /// kind's checks pass.
    fn can_serve(worker: &Worker, owner_trusted: bool, req: &WaitingRequest<Self>, users: &Users) -> Result<(), Skip<Self::Reason>> {
        if !req.model_ids.is_empty() && !intersects(&req.model_ids, &worker.model_ids) {
            return Err(Skip::Models);
        }
        Self::can_serve_matched(worker, owner_trusted, &req.criteria, || Some(req), users)
    }
    /// The same for a request known to name one of the worker's models (or none), from its inline
    /// criteria; `detail` gives the full request when needed.
    fn can_serve_matched<'a>(
        worker: &Worker,
        owner_trusted: bool,
        c: &Criteria<Self::Needs>,
        detail: impl FnOnce() -> Option<&'a WaitingRequest<Self>>,
        users: &Users,
    ) -> Result<(), Skip<Self::Reason>>
    where
        Self: 'a;
}

/// The request `w` gets, if any: its owner's first, then its priority users' (merged in queue
/// order), then everyone's in priority order (the last only when the worker is neither in
/// maintenance nor paused). When nothing fits, `skipped` says why.
pub fn choose_request<K: Matching>(
    queue: &Queue<K>,
    w: &Worker,
    owner_trusted: bool,
    users: &Users,
    skipped: &mut K::Skipped,
) -> Option<Uuid> {
    let restricted = w.maintenance || w.paused;
    let mut candidates: Vec<Uuid> = queue.user_in_order(w.owner_id).map(|(_, id)| *id).collect();
    if !restricted {
        let mut listed: Vec<(QueueKey, Uuid)> = w
            .priority_user_ids
            .iter()
            .filter(|id| **id != w.owner_id)
            .flat_map(|u| queue.user_in_order(*u).map(|(k, id)| (*k, *id)))
            .collect();
        listed.sort_unstable();
        candidates.extend(listed.into_iter().map(|(_, id)| id));
    }
    let chosen = candidates
        .iter()
        .copied()
        .find(|id| queue.get(id).is_some_and(|r| K::can_serve(w, owner_trusted, r, users).is_ok()));
    if chosen.is_some() || restricted {
        return chosen;
    }
    let mut examined = 0i64;
    for c in queue.for_models(&w.model_ids) {
        examined += 1;
        match K::can_serve_matched(w, owner_trusted, c, || queue.get(&c.id), users) {
            Ok(()) => return Some(c.id),
            Err(skip) => K::count(skip, skipped, 1),
        }
    }
    // Everything not examined names only models this worker does not serve.
    K::count(Skip::Models, skipped, queue.queued_len() as i64 - examined);
    None
}

/// Why a request was passed over: a reason every kind shares, or one of the kind's own (`R`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip<R> {
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
    /// A reason of the kind's own checks.
    Kind(R),
}

/// Checks every kind shares: trust, speed, validated backends, allow/block lists, upfront kudos.
/// `listed` reads the full request's worker list, when there is one: (whether it has one, whether
/// the worker is on it when it is an allow-list or off it when a block-list).
pub fn common_checks<N, R>(
    worker: &Worker,
    owner_trusted: bool,
    c: &Criteria<N>,
    listed: impl FnOnce() -> Option<(bool, bool)>,
    users: &Users,
) -> Result<(), Skip<R>> {
    if c.has(flags::TRUSTED_WORKERS) && !owner_trusted {
        return Err(Skip::Untrusted);
    }
    if worker.extra_slow && !c.has(flags::EXTRA_SLOW_OK) {
        return Err(Skip::Performance);
    }
    if c.has(flags::FAST_ONLY) && worker.speed() < worker.slow_threshold() {
        return Err(Skip::Performance);
    }
    if c.has(flags::VALIDATED_BACKENDS) && !worker.is_validated_backend() {
        return Err(Skip::BridgeVersion);
    }
    if c.has(flags::NEEDS_DETAIL) {
        // (has a list, the worker is on it when it is an allow-list / off it when a block-list)
        match listed() {
            Some((true, false)) | None => return Err(Skip::WorkerId),
            _ => {}
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

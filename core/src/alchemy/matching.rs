//! How alchemy requests are matched to alchemists: a worker may take a request with a waiting form
//! it serves (a post-processor only if the image fits its `max_tiles`); the `skipped` counters of
//! an idle pop.

use horde_protocol::alchemy::AlchemySkipped;

use super::{AlchemyKind, AlchemyNeeds};
use crate::accounts::Users;
use crate::scheduler::matching::common_checks;
use crate::scheduler::{Criteria, Job, Matching, Skip, WaitingRequest};
use crate::workers::{Worker, WorkerKind};

/// Alchemy has no reasons of its own beyond the shared ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlchemySkip {}

impl Matching for AlchemyKind {
    const WORKER: WorkerKind = WorkerKind::Alchemist;
    const NAME: &'static str = "alchemy";
    const MIN_SPEED: f64 = 0.01;
    /// Forms; a speed unit is a form per second.
    const THINGS_PER_UNIT: f64 = 1.0;
    type Skipped = AlchemySkipped;
    type Reason = AlchemySkip;

    fn job_things(_r: &super::AlchemyRequest) -> f64 {
        1.0
    }
    fn in_flight_work(_r: &super::AlchemyRequest, _job: &Job) -> f64 {
        1.0
    }
    /// The public API counts only these reasons.
    fn count(skip: Skip<AlchemySkip>, skipped: &mut AlchemySkipped, n: i64) {
        let n = n.max(0) as u64;
        match skip {
            Skip::WorkerId => skipped.worker_id += n,
            Skip::Untrusted => skipped.untrusted += n,
            Skip::BridgeVersion => skipped.bridge_version += n,
            _ => {}
        }
    }
    fn can_serve_matched<'a>(
        worker: &Worker,
        owner_trusted: bool,
        c: &Criteria<AlchemyNeeds>,
        detail: impl FnOnce() -> Option<&'a WaitingRequest<Self>>,
        users: &Users,
    ) -> Result<(), Skip<AlchemySkip>> {
        let Some(req) = detail() else {
            return Err(Skip::Models);
        };
        if req.request.servable(&worker.models, worker.image.max_pixels).is_empty() {
            return Err(Skip::Models);
        }
        common_checks(worker, owner_trusted, c, || Some((false, true)), users)
    }
}

//! How text requests are matched to text workers: their checks and the `skipped` counters of an
//! idle text pop (the shared part is `scheduler::matching`).

use horde_protocol::text::TextSkipped;

use super::{TextKind, TextNeeds, TextRequest};
use crate::accounts::Users;
use crate::scheduler::matching::common_checks;
use crate::scheduler::{Criteria, Job, Matching, Skip, WaitingRequest};
use crate::workers::{Worker, WorkerKind};

/// Why a text worker may not take a text request, besides the reasons every kind shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSkip {
    MaxContextLength,
    MaxLength,
    MatchingSoftprompt,
}

impl Matching for TextKind {
    const WORKER: WorkerKind = WorkerKind::Text;
    const NAME: &'static str = "text";
    const MIN_SPEED: f64 = 0.1;
    const THINGS_PER_UNIT: f64 = 1.0;
    type Skipped = TextSkipped;
    type Reason = TextSkip;

    fn job_things(r: &TextRequest) -> f64 {
        r.max_length as f64
    }
    fn in_flight_work(r: &TextRequest, _job: &Job) -> f64 {
        r.max_length as f64
    }
    fn count(skip: Skip<TextSkip>, skipped: &mut TextSkipped, n: i64) {
        let c = match skip {
            Skip::WorkerId => &mut skipped.worker_id,
            Skip::Performance => &mut skipped.performance,
            Skip::Untrusted => &mut skipped.untrusted,
            Skip::Models => &mut skipped.models,
            Skip::BridgeVersion => &mut skipped.bridge_version,
            Skip::Kudos => &mut skipped.kudos,
            Skip::Kind(TextSkip::MaxContextLength) => &mut skipped.max_context_length,
            Skip::Kind(TextSkip::MaxLength) => &mut skipped.max_length,
            Skip::Kind(TextSkip::MatchingSoftprompt) => &mut skipped.matching_softprompt,
        };
        *c += n;
    }
    /// Cheap checks first: a pop may run this over a long queue. `detail` is consulted only for
    /// allow/block lists and softprompts.
    fn can_serve_matched<'a>(
        worker: &Worker,
        owner_trusted: bool,
        c: &Criteria<TextNeeds>,
        detail: impl FnOnce() -> Option<&'a WaitingRequest<Self>>,
        users: &Users,
    ) -> Result<(), Skip<TextSkip>> {
        if c.needs.max_context_length > worker.max_context_length {
            return Err(Skip::Kind(TextSkip::MaxContextLength));
        }
        if c.needs.max_length > worker.max_length {
            return Err(Skip::Kind(TextSkip::MaxLength));
        }
        let mut softprompt_ok = true;
        common_checks(
            worker,
            owner_trusted,
            c,
            || {
                let r = &detail()?.request;
                if let Some(sp) = &r.softprompt {
                    softprompt_ok = worker.softprompts.iter().any(|s| s == sp);
                }
                Some((!r.workers.is_empty(), r.workers.contains(&worker.id) != r.worker_blacklist))
            },
            users,
        )?;
        if !softprompt_ok {
            return Err(Skip::Kind(TextSkip::MatchingSoftprompt));
        }
        Ok(())
    }
}

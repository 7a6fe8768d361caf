//! What a kind of request brings to the lifecycle: only what differs between kinds. Everything
//! else (the concurrency limit, the tax, the queue, the hand-out, settling, faults, expiry) is
//! the lifecycle's own (`lifecycle`), the same for every kind.
//!
//! A new kind is written as parts: its validated request (dereferencing to the shared
//! `RequestOptions`), its `QueueKind` types and `Matching` (needs, own skip reasons, counters),
//! its `RequestKind` below, a queue in `State` (and in its snapshot), one line per operation in
//! `horde_ops` (with its `KindOps`), and its `Horde` calls and routes.

use std::net::IpAddr;

use horde_protocol::image::ImageCheck;
use horde_protocol::text::GenMetadata;
use uuid::Uuid;

use crate::accounts::{UserRecords, Users};
use crate::config::HordeConfig;
use crate::kudos::Centikudos;
use crate::scheduler::{FinishedJob, Job, Matching, Queue, WaitingRequest};
use crate::state::State;
use crate::workers::{Worker, Workers};
use crate::Result;

/// Makes the link of a job for a pop's or a status's answer (an upload or download address);
/// kinds without links ignore it.
pub type JobLinks<'a> = &'a dyn Fn(&Uuid) -> String;

/// What a worker reports for a job, whatever the kind: the parts the lifecycle reads itself.
pub trait JobReport {
    /// The job's id, as sent.
    fn job_id(&self) -> &str;
    /// `ok`, `censored`, `csam`, `faulted` (or empty for ok).
    fn state(&self) -> &str;
    /// Whether the worker flagged the result as censored besides its state.
    fn censored(&self) -> bool {
        false
    }
    fn seed(&self) -> i64;
    fn gen_metadata(&self) -> &[GenMetadata];
}

/// What one finished job did and is worth, as its kind prices and measures it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    /// Paid to the worker's owner.
    pub reward: Centikudos,
    /// Charged to the requester unless the result was censored.
    pub charge: Centikudos,
    /// Work done, in the kind's things (tokens; thousands of pixelsteps).
    pub things: i64,
    /// The worker's speed on this job, in the kind's speed unit.
    pub speed: f64,
    /// The fastest speed believable of a worker of an untrusted owner on this job.
    pub max_speed: f64,
}

/// A job just settled, as the kind's counters see it.
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    pub job: &'a Job,
    /// Who asked for it.
    pub requester: i64,
    /// Who owns the worker that did it.
    pub owner: i64,
    pub work: Work,
    /// Whether the result was censored (and not charged for).
    pub censored: bool,
    pub now_ms: u64,
}

/// A kind of request (text, image): the parts of its lifecycle that differ from other kinds'.
/// A new kind is added by writing these parts (and its `Matching`), its request and its
/// operations; the lifecycle itself is not copied.
pub trait RequestKind: Matching {
    /// What a worker is handed when it pops jobs of this kind (or nothing).
    type Pop;
    /// What a worker sends back for a job.
    type Report: JobReport;
    /// What a client reads of a request.
    type Status;

    /// This kind's queue.
    fn queue(s: &State) -> &Queue<Self>;
    fn queue_mut(s: &mut State) -> &mut Queue<Self>;
    /// This kind's queue, beside the workers and accounts (to measure a request's standing).
    fn queue_beside_workers(s: &mut State) -> (&mut Queue<Self>, &Workers, &Users);

    // ----- accept ------------------------------------------------------------------------------

    /// Screens a request before anything else, against the state (a prompt filter may rewrite or
    /// refuse it, and note who sent it). Nothing by default.
    fn screen(_s: &mut State, _user_id: i64, _r: &mut Self::Request, _ip: Option<IpAddr>, _now_ms: u64) -> Result<()> {
        Ok(())
    }
    /// Expected charge of one job of `r`.
    fn job_estimate(s: &State, r: &Self::Request) -> Centikudos;
    /// Expected charge of all of `r`'s jobs, without the request tax: `n` jobs at `job_estimate`
    /// by default; a kind whose jobs differ in price (alchemy's forms) sums them.
    fn jobs_estimate(s: &State, r: &Self::Request) -> Centikudos {
        Self::job_estimate(s, r) * r.n as Centikudos
    }
    /// What a settled job adds to the horde's generation figures (`/stats`): their kind and the
    /// job's things in their unit (pixelsteps, tokens); `None` when the kind is not counted.
    fn figures(_r: &Self::Request, _work: &Work) -> Option<(crate::generation_stats::GenerationKind, i64)> {
        None
    }
    /// Why `r` needs its price in kudos up front (`upfront`), or `None`. Never by default.
    fn upfront_reason(_s: &State, _r: &Self::Request, _now_ms: u64) -> Option<String> {
        None
    }
    /// Shrinks `r` to what needs no upfront kudos (`allow_downgrade`); false when the kind cannot.
    fn downgrade(_s: &State, _r: &mut Self::Request, _now_ms: u64) -> bool {
        false
    }
    /// Whether `user_id` may hold `r` in memory now (also checked before the request reaches a
    /// shared log). Always by default.
    fn check_room(_s: &State, _user_id: i64, _r: &Self::Request) -> Result<()> {
        Ok(())
    }
    /// Takes the memory the request holds while it is kept; returns the bytes the queue counts
    /// for it (`WaitingRequest::held_bytes`).
    fn hold(s: &mut State, user_id: i64, r: &Self::Request) -> Result<usize>;
    /// Gives back what `hold` took outside the queue (a refused request; an expired one).
    fn release(_s: &mut State, _r: &Self::Request) {}
    /// Counts an accepted request in its requester's records.
    fn count_request(records: &mut UserRecords, r: &Self::Request);
    /// What the kind's matching needs of a request, and the `flags` of its own (the lifecycle
    /// adds those of the options every kind shares).
    fn needs(r: &Self::Request) -> (Self::Needs, u8);

    // ----- hand out ----------------------------------------------------------------------------

    /// How many jobs of `req` worker `w` gets for `amount` asked, and their time to live (secs).
    fn batch(cfg: &HordeConfig, w: &Worker, req: &WaitingRequest<Self>, amount: u32) -> (u32, u64);
    /// The seed of the request's `index`th job.
    fn seed(_r: &Self::Request, _index: u32) -> i64 {
        0
    }
    /// The model of the `index`th job of a batch for `w` (by default the batch's `model`); a kind
    /// whose jobs differ (alchemy's forms) names each job's own.
    fn job_model(_w: &Worker, _req: &WaitingRequest<Self>, _index: u32, model: &str) -> String {
        model.to_string()
    }
    /// Notes a batch just started (by default nothing).
    fn started(_s: &mut State, _request_id: &Uuid, _jobs: &[Job]) {}
    /// What the worker is handed with `jobs` (all of one batch, of `model`).
    fn handout(w: &Worker, req: &WaitingRequest<Self>, jobs: &[Job], model: String, links: JobLinks) -> Self::Pop;
    /// The answer of a pop that found nothing, with why-not counters.
    fn idle(skipped: Self::Skipped) -> Self::Pop;

    // ----- settle ------------------------------------------------------------------------------

    /// Checks a worker's result, and keeps what is kept outside the request (an image's bytes).
    fn check_result(s: &mut State, job: &Job, report: &Self::Report) -> Result<()>;
    /// What the job did and is worth.
    fn work(s: &State, req: &WaitingRequest<Self>, job: &Job, report: &Self::Report, now_ms: u64) -> Work;
    /// The kind's own counters of a settled job (the requester's and the worker owner's records,
    /// the worker's figures, recent throughput); returns the result the request keeps.
    fn count_work(s: &mut State, done: &Settled, report: Self::Report) -> Self::Output;
    /// The kind's fields of a webhook announcement of `g`, and the job whose image goes with it
    /// (and whether as a link).
    fn announce(
        g: &FinishedJob<Self::Output>,
        r: &Self::Request,
        body: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Option<(Uuid, bool)>;

    // ----- faults and expiry -------------------------------------------------------------------

    /// Drops what a failed job left outside the request (an uploaded image).
    fn drop_result(_s: &mut State, _job_id: &Uuid) {}
    /// Drops what an expired request kept outside the queue (its images, its reserved bytes).
    fn forget(_s: &mut State, _r: &WaitingRequest<Self>) {}

    // ----- status ------------------------------------------------------------------------------

    /// What a client reads of `req`, standing as `check` says.
    fn status(s: &State, check: ImageCheck, req: &WaitingRequest<Self>, links: JobLinks) -> Self::Status;
}

//! Every change to the horde's in-memory state, as an operation: what `Horde` runs on its replica
//! (at once on a single process, through the shared log when several processes share the state).
//!
//! An operation carries everything that varies between processes: the time, the ids' seed, the
//! records loaded from storage. Applying it is deterministic, so every replica reaches the same
//! state and the same answer.
//!
//! This is plumbing: each operation is declared once below (its fields, its answer's type and the
//! rule it applies, a method named for that rule in the rule's own module), and the declaration
//! makes its variant, its typed form (`op::*`, run with `Horde::run`, answered with its own type)
//! and its dispatch.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

use horde_protocol::alchemy::{AlchemyPopResponse, AlchemyStatusResponse};
use horde_protocol::image::{ImagePopResponse, ImageStatus, RateRequest};
use horde_protocol::text::{TextPopResponse, TextStatus};
use horde_protocol::users::{ModifyUser as UserChanges, ModifyUserResponse};
use horde_protocol::workers::{ModifyWorker as WorkerChanges, ModifyWorkerResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::accounts::api_key::ApiKeyHash;
use crate::accounts::deletion::Deletion;
use crate::accounts::{TestRoles, User};
use crate::alchemy::{AlchemyJobResult, AlchemyKind, AlchemyRequest};
use crate::image::{ImageJobResult, ImageKind, ImageLinks, ImageRequest, LinkPurpose};
use crate::kudos::Centikudos;
use crate::lifecycle::{no_links, RequestKind, Submission};
use crate::replication::Machine;
use crate::safety::filter::FilterRule;
use crate::safety::suspicion::Suspicion;
use crate::state::{ReapReport, State};
use crate::store::FlushBatch;
use crate::text::{TextJobResult, TextKind, TextRequest};
use crate::workers::{Worker, WorkerPop};
use crate::{HordeError, Result};

/// An operation with its answer's type: what `Horde::run` takes.
pub trait Operation {
    /// What applying it answers.
    type Answer;
    /// The operation as the log carries it.
    fn into_op(self) -> HordeOp;
    /// Its answer, out of what the replica hands back.
    fn answer(value: OpValue) -> Result<Self::Answer>;
}

/// An operation in the log's form runs as it is, answered untyped.
impl Operation for HordeOp {
    type Answer = OpValue;
    fn into_op(self) -> HordeOp {
        self
    }
    fn answer(value: OpValue) -> Result<OpValue> {
        Ok(value)
    }
}

/// Declares the operations: for each, a variant of `HordeOp` and of `OpValue`, a typed struct
/// in `op` and the arm of `HordeMachine::run` that applies it (`|h| …`, `h` the machine, the
/// fields in scope).
macro_rules! operations {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident { $($field:ident : $ty:ty),* $(,)? } -> $answer:ty = |$h:ident| $apply:expr;
    )*) => {
        /// A change to the state, as the log carries it.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        pub enum HordeOp {
            $( $(#[doc = $doc])* $name { $($field: $ty),* }, )*
        }

        /// What an operation answers, under the operation's name.
        #[derive(Debug)]
        pub enum OpValue {
            $( $name($answer), )*
        }

        /// The operations, typed: each answers with its own type (`Operation::Answer`).
        pub mod op {
            use super::*;
            $(
                $(#[doc = $doc])*
                #[derive(Debug, Clone)]
                pub struct $name { $(pub $field: $ty),* }

                impl Operation for $name {
                    type Answer = $answer;
                    fn into_op(self) -> HordeOp {
                        HordeOp::$name { $($field: self.$field),* }
                    }
                    fn answer(value: OpValue) -> Result<$answer> {
                        match value {
                            OpValue::$name(a) => Ok(a),
                            other => Err(HordeError::Internal(format!("{} answered {other:?}", stringify!($name)))),
                        }
                    }
                }
            )*
        }

        impl HordeMachine {
            /// Applies an operation: the rule it is named for.
            fn run(&mut self, op: HordeOp) -> Result<OpValue> {
                match op {
                    $( HordeOp::$name { $($field),* } => {
                        let $h = &mut *self;
                        $apply.map(OpValue::$name)
                    } )*
                }
            }
        }
    };
}

operations! {
    /// An account read from storage (kept only if not already in memory).
    LoadUser { user: User, key: Option<ApiKeyHash> } -> () = |h| h.state.load_user(user, key);
    /// A new account, with its starting balance.
    NewAccount { user: User, key: ApiKeyHash, kudos: Centikudos, now: u64 } -> User = |h| h.state.new_account(user, key, kudos, now);
    SuspectUser { id: i64, why: Suspicion } -> () = |h| h.state.suspect_user(id, why);
    /// Test mode: a new key, roles and balance for an existing account.
    RefreshTestUser { id: i64, key: ApiKeyHash, kudos: Centikudos, roles: TestRoles, now: u64 } -> User = |h| h.state.refresh_test_user(id, key, kudos, roles, now);
    ModifyUser { id: i64, changes: UserChanges, username: Option<String>, now: u64 } -> Box<(ModifyUserResponse, User)> = |h| h.state.modify_user(id, changes, username, now);
    /// A style's author paid for another's request that used it.
    RewardStyleAuthor { author: i64, requester: i64, now: u64 } -> Centikudos = |h| crate::kudos::reward_style_author(&mut h.state, author, requester, now);
    /// `DELETE /users/{id}`: marks the account deleted, or wipes it (`accounts::deletion`).
    DeleteUser { id: i64, now: u64 } -> Box<(Deletion, User)> = |h| h.state.delete_user(id, now);
    /// A transfer, under the sender's `Idempotency-Key` if given.
    Transfer { from: i64, to: i64, amount: f64, key: Option<String>, now: u64 } -> Centikudos = |h| h.state.transfer(from, to, amount, key, now);
    /// A text request, screened, then queued (or priced, on a dry run).
    SubmitText { user_id: i64, req: TextRequest, ip: Option<IpAddr>, now: u64 } -> Submission = |h| h.state.submit::<TextKind>(user_id, req, ip, now);
    CancelText { id: Uuid, now: u64 } -> TextStatus = |h| h.state.cancel::<TextKind>(&id, now, &no_links);
    TextProgress { user_id: i64, job: String, text: String, now: u64 } -> bool = |h| h.state.text_progress(user_id, &job, text, now);
    SubmitTextJob { user_id: i64, result: TextJobResult, now: u64 } -> f64 = |h| h.state.settle::<TextKind>(user_id, result, now);
    /// A worker read from storage or just created (kept only if not already in memory).
    LoadWorker { worker: Worker } -> () = |h| h.state.load_worker(worker);
    PopText { worker_id: Uuid, pop: WorkerPop, ip: Option<IpAddr>, now: u64 } -> TextPopResponse = |h| h.pop::<TextKind>(worker_id, pop, ip, now, None);
    /// An image request through the prompt filter, then queued (or priced, on a dry run).
    SubmitImage { user_id: i64, req: ImageRequest, ip: Option<IpAddr>, now: u64 } -> Submission = |h| h.state.submit::<ImageKind>(user_id, req, ip, now);
    PopImage { worker_id: Uuid, pop: WorkerPop, ip: Option<IpAddr>, now: u64, base: String, upload_secs: u64 } -> ImagePopResponse = |h| h.pop::<ImageKind>(worker_id, pop, ip, now, Some((base, upload_secs)));
    UploadImage { job: Uuid, bytes: Vec<u8> } -> () = |h| h.state.upload_image(&job, bytes);
    CancelImage { id: Uuid, now: u64, base: String, download_secs: u64 } -> ImageStatus = |h| h.cancel::<ImageKind>(id, now, (base, download_secs));
    SubmitImageJob { user_id: i64, result: ImageJobResult, now: u64 } -> f64 = |h| h.state.settle::<ImageKind>(user_id, result, now);
    /// An alchemy request queued (or priced, on a dry run).
    SubmitAlchemy { user_id: i64, req: AlchemyRequest, ip: Option<IpAddr>, now: u64 } -> Submission = |h| h.state.submit::<AlchemyKind>(user_id, req, ip, now);
    PopAlchemy { worker_id: Uuid, pop: WorkerPop, ip: Option<IpAddr>, now: u64, base: String, upload_secs: u64 } -> AlchemyPopResponse = |h| h.pop::<AlchemyKind>(worker_id, pop, ip, now, Some((base, upload_secs)));
    CancelAlchemy { id: Uuid, now: u64, base: String, download_secs: u64 } -> AlchemyStatusResponse = |h| h.cancel::<AlchemyKind>(id, now, (base, download_secs));
    SubmitAlchemyJob { user_id: i64, result: AlchemyJobResult, now: u64 } -> f64 = |h| h.state.settle::<AlchemyKind>(user_id, result, now);
    RateImages { id: Uuid, rate: RateRequest, now: u64 } -> f64 = |h| h.state.rate_images(&id, rate, now);
    TimeoutIp { ip: IpAddr, minutes: u64, now: u64 } -> () = |h| h.state.timeout_ip(&ip, minutes, now);
    BlockWorkerIp { worker_id: Uuid, days: u64, now: u64 } -> u64 = |h| h.state.block_worker_ip(&worker_id, days, now);
    SetFilter { rules: Vec<FilterRule> } -> () = |h| h.state.set_filter(rules);
    ModifyWorker { id: Uuid, changes: WorkerChanges, name: Option<String> } -> Box<(ModifyWorkerResponse, Worker)> = |h| h.state.modify_worker(&id, changes, name);
    DeleteWorker { id: Uuid } -> () = |h| h.state.delete_worker(&id);
    Reap { now: u64 } -> ReapReport = |h| Ok(h.state.reap(now));
    /// Kudos a moderator awards from the mint (`/kudos/award`).
    AwardKudos { to: i64, cents: Centikudos, now: u64 } -> Centikudos = |h| crate::kudos::award(&mut h.state, to, cents, now);
    /// A restarting horde cancels the jobs no worker took and refunds the requests it drops
    /// (with `unfinished`, every request not finished: see `State::drop_for_restart`).
    DropForRestart { unfinished: bool, now: u64 } -> usize = |h| Ok(h.state.drop_for_restart(unfinished, now));
    /// Cuts the durable writes so far into a batch stored under `token` (only the kudos
    /// movements without `stats`: see `State::take_pending_writes`).
    Flush { token: String, stats: bool } -> () = |h| h.cut_batch(token, stats);
}

/// What the horde does through operations for every kind of request.
pub trait KindOps: RequestKind {
    /// The kind's submission.
    type Submit: Operation<Answer = Submission>;
    fn submit(user_id: i64, req: Self::Request, ip: Option<IpAddr>, now: u64) -> Self::Submit;
}

impl KindOps for TextKind {
    type Submit = op::SubmitText;
    fn submit(user_id: i64, req: TextRequest, ip: Option<IpAddr>, now: u64) -> op::SubmitText {
        op::SubmitText { user_id, req, ip, now }
    }
}

impl KindOps for ImageKind {
    type Submit = op::SubmitImage;
    fn submit(user_id: i64, req: ImageRequest, ip: Option<IpAddr>, now: u64) -> op::SubmitImage {
        op::SubmitImage { user_id, req, ip, now }
    }
}

impl KindOps for AlchemyKind {
    type Submit = op::SubmitAlchemy;
    fn submit(user_id: i64, req: AlchemyRequest, ip: Option<IpAddr>, now: u64) -> op::SubmitAlchemy {
        op::SubmitAlchemy { user_id, req, ip, now }
    }
}

/// An operation with the seed of the ids it makes (when replicas must agree on them; a process
/// on its own draws them from its own generator).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub seed: Option<[u8; 32]>,
    pub op: HordeOp,
}

/// A batch of durable writes waiting to be stored.
#[derive(Debug)]
pub struct OutboxBatch {
    pub token: String,
    pub batch: FlushBatch,
    /// When this replica cut it (local time, for the takeover delay).
    pub cut_at: Instant,
}

/// The horde's state as a replicated machine.
#[derive(Debug)]
pub struct HordeMachine {
    pub state: State,
    pub links: ImageLinks,
    /// Batches cut by `Flush` operations, oldest first.
    pub outbox: VecDeque<OutboxBatch>,
    /// How many times the shared log was lost under this replica.
    pub logs_lost: u64,
}

impl HordeMachine {
    /// A worker's pop of jobs of kind `K`: its check-in, then its jobs, with upload links under
    /// `upload`'s base address valid for its seconds.
    fn pop<K: RequestKind>(
        &mut self,
        worker_id: Uuid,
        pop: WorkerPop,
        ip: Option<IpAddr>,
        now: u64,
        upload: Option<(String, u64)>,
    ) -> Result<K::Pop> {
        self.state.worker_popped(&worker_id, &pop, ip, now)?;
        let links = &self.links;
        let link = |job: &Uuid| match &upload {
            Some((base, secs)) => links.url(base, LinkPurpose::Upload, job, now / 1000 + secs),
            None => String::new(),
        };
        self.state.pop::<K>(&worker_id, pop.amount, now, &link)
    }

    /// Cancels a request of kind `K`; its status links to downloads under `download`'s base
    /// address, valid for its seconds.
    fn cancel<K: RequestKind>(&mut self, id: Uuid, now: u64, download: (String, u64)) -> Result<K::Status> {
        let links = &self.links;
        let (base, secs) = download;
        let link = |job: &Uuid| links.url(&base, LinkPurpose::Download, job, now / 1000 + secs);
        self.state.cancel::<K>(&id, now, &link)
    }

    /// Cuts the durable writes so far into a batch for the persister (see `Flush`).
    fn cut_batch(&mut self, token: String, stats: bool) -> Result<()> {
        let batch = self.state.take_pending_writes(stats);
        if !batch.is_empty() {
            self.outbox.push_back(OutboxBatch {
                token,
                batch,
                cut_at: Instant::now(),
            });
        }
        Ok(())
    }
}

impl Machine for HordeMachine {
    type Op = Envelope;
    type Output = Result<OpValue>;

    /// The state, then the batches not yet known stored (a joining process stores them too, if
    /// their cutter does not).
    fn snapshot(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.state.write_snapshot(&mut out)?;
        let outbox: Vec<(&str, &FlushBatch)> = self.outbox.iter().map(|b| (b.token.as_str(), &b.batch)).collect();
        ciborium::into_writer(&outbox, &mut out).map_err(|e| HordeError::Internal(format!("writing a snapshot: {e}")))?;
        Ok(out)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<()> {
        let mut reader = snapshot;
        self.state.restore_snapshot(&mut reader)?;
        let outbox: Vec<(String, FlushBatch)> =
            ciborium::from_reader(reader).map_err(|_| HordeError::Internal("a snapshot does not match this version of horde".into()))?;
        self.outbox = outbox
            .into_iter()
            .map(|(token, batch)| OutboxBatch {
                token,
                batch,
                cut_at: Instant::now(),
            })
            .collect();
        Ok(())
    }

    fn apply(&mut self, envelope: Envelope) -> Result<OpValue> {
        if let Some(seed) = envelope.seed {
            self.state.reseed_ids(seed);
        }
        self.run(envelope.op)
    }

    /// Redis lost the log. Every replica drops the state the log carried (requests, jobs,
    /// results, IP timeouts) along with the accounts and workers it had loaded and their writes
    /// not yet cut into a batch, and starts afresh, as a new process would: replicas must agree,
    /// and they may have reached different places in the lost log. Batches already cut are still
    /// stored.
    fn log_lost(&mut self) {
        let s = &self.state;
        let (mint, burn) = s.ledger.system_balances();
        let mut fresh = State::new(
            s.cfg.clone(),
            crate::kudos::KudosLedger::with_system_balances(mint, burn),
            s.kudos_model.clone(),
        );
        fresh.filter = s.filter.clone();
        self.state = fresh;
        self.logs_lost += 1;
    }
}

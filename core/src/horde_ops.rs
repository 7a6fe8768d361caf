//! Every change to the horde's in-memory state, as an operation: what `Horde` runs on its replica
//! (at once on a single process, through the shared log when several processes share the state).
//!
//! An operation carries everything that varies between processes: the time, the ids' seed, the
//! records loaded from storage. Applying it is deterministic, so every replica reaches the same
//! state and the same answer.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

use horde_protocol::image::{ImagePopResponse, ImageStatus, RateRequest};
use horde_protocol::text::{TextPopResponse, TextStatus};
use horde_protocol::users::ModifyUser;
use horde_protocol::workers::{ModifyWorker, ModifyWorkerResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::accounts::api_key::ApiKeyHash;
use crate::accounts::User;
use crate::image::{ImageLinks, ImageRequest, LinkPurpose};
use crate::image_rules::ImageJobResult;
use crate::kudos::transfer_keys::TransferKey;
use crate::kudos::{to_kudos, Centikudos};
use crate::replication::Machine;
use crate::safety::filter::{FilterOutcome, FilterRule, PromptFilter};
use crate::safety::suspicion::Suspicion;
use crate::state::{Accepted, JobResult, ReapReport, State};
use crate::store::FlushBatch;
use crate::text::TextRequest;
use crate::workers::{Worker, WorkerPop};
use crate::{HordeError, Result};

/// A change to the state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HordeOp {
    /// An account read from storage (kept only if not already in memory).
    LoadUser {
        user: User,
        key: Option<ApiKeyHash>,
    },
    /// A new account, with its starting balance.
    NewAccount {
        user: User,
        key: ApiKeyHash,
        kudos: Centikudos,
        now: u64,
    },
    SuspectUser {
        id: i64,
        why: Suspicion,
    },
    /// Test mode: a new key, roles and balance for an existing account.
    RefreshTestUser {
        id: i64,
        key: ApiKeyHash,
        kudos: Centikudos,
        username: String,
        moderator: bool,
        trusted: bool,
        now: u64,
    },
    ModifyUser {
        id: i64,
        m: ModifyUser,
        username: Option<String>,
        now: u64,
    },
    /// A transfer, under the sender's `Idempotency-Key` if given.
    Transfer {
        from: i64,
        to: i64,
        amount: f64,
        key: Option<String>,
        now: u64,
    },
    SubmitText {
        user_id: i64,
        req: TextRequest,
        now: u64,
    },
    CancelText {
        id: Uuid,
        now: u64,
    },
    TextProgress {
        user_id: i64,
        job: String,
        text: String,
        now: u64,
    },
    SubmitTextJob {
        user_id: i64,
        result: JobResult,
        now: u64,
    },
    /// A worker read from storage or just created (kept only if not already in memory).
    LoadWorker {
        worker: Worker,
    },
    PopText {
        worker_id: Uuid,
        pop: WorkerPop,
        ip: Option<IpAddr>,
        now: u64,
    },
    /// An image request through the prompt filter, then queued (or priced, on a dry run).
    SubmitImage {
        user_id: i64,
        req: ImageRequest,
        ip: Option<IpAddr>,
        now: u64,
    },
    PopImage {
        worker_id: Uuid,
        pop: WorkerPop,
        ip: Option<IpAddr>,
        now: u64,
        base: String,
        upload_secs: u64,
    },
    UploadImage {
        job: Uuid,
        bytes: Vec<u8>,
    },
    CancelImage {
        id: Uuid,
        now: u64,
        base: String,
        download_secs: u64,
    },
    SubmitImageJob {
        user_id: i64,
        result: ImageJobResult,
        now: u64,
    },
    RateImages {
        id: Uuid,
        rate: RateRequest,
        now: u64,
    },
    TimeoutIp {
        ip: IpAddr,
        minutes: u64,
        now: u64,
    },
    BlockWorkerIp {
        worker_id: Uuid,
        days: u64,
        now: u64,
    },
    SetFilter {
        rules: Vec<FilterRule>,
    },
    ModifyWorker {
        id: Uuid,
        m: ModifyWorker,
        name: Option<String>,
    },
    DeleteWorker {
        id: Uuid,
    },
    Reap {
        now: u64,
    },
    /// Kudos a moderator awards, from the mint (`/kudos/award`).
    AwardKudos {
        to: i64,
        cents: Centikudos,
        now: u64,
    },
    /// A restarting horde cancels the jobs no worker took and refunds the requests it drops
    /// (with `unfinished`, every request not finished: see `State::drop_for_restart`).
    DropForRestart {
        unfinished: bool,
        now: u64,
    },
    /// Cuts the durable writes so far into a batch stored under `token` (only the kudos
    /// movements without `stats`: see `State::take_pending_writes`).
    Flush {
        token: String,
        stats: bool,
    },
}

/// An operation with the seed of the ids it makes (when replicas must agree on them; a process
/// on its own draws them from its own generator).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub seed: Option<[u8; 32]>,
    pub op: HordeOp,
}

/// What an operation answers.
#[derive(Debug)]
pub enum OpValue {
    Unit,
    User(User),
    Accepted(Accepted),
    DryRun(f64),
    TextStatus(TextStatus),
    ImageStatus(ImageStatus),
    Cancelled(bool),
    TextPop(TextPopResponse),
    ImagePop(ImagePopResponse),
    Kudos(f64),
    Centikudos(Centikudos),
    Minutes(u64),
    ModifiedUser(Box<(horde_protocol::users::ModifyUserResponse, User)>),
    ModifiedWorker(Box<(ModifyWorkerResponse, Worker)>),
    Reaped(ReapReport),
    Count(usize),
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
    fn run(&mut self, op: HordeOp) -> Result<OpValue> {
        let s = &mut self.state;
        match op {
            HordeOp::LoadUser { user, key } => {
                s.users.insert_loaded(user, key);
                Ok(OpValue::Unit)
            }
            HordeOp::NewAccount { user, key, kudos, now } => {
                let id = user.id;
                s.users.insert_loaded(user, Some(key));
                s.ledger.admin_adjust(&mut s.users, id, kudos, now)?;
                let u = s.users.get(id).cloned().ok_or_else(|| HordeError::UserNotFound(id.to_string()))?;
                Ok(OpValue::User(u))
            }
            HordeOp::SuspectUser { id, why } => {
                if let Some(u) = s.users.get_mut(id) {
                    u.suspicions.add(why);
                }
                Ok(OpValue::Unit)
            }
            HordeOp::RefreshTestUser {
                id,
                key,
                kudos,
                username,
                moderator,
                trusted,
                now,
            } => {
                s.users.set_key(id, key);
                let current = s.users.get(id).map(|u| u.kudos).unwrap_or(0);
                s.ledger.admin_adjust(&mut s.users, id, kudos - current, now)?;
                let u = s.users.get_mut(id).ok_or_else(|| HordeError::UserNotFound(id.to_string()))?;
                u.username = username;
                u.moderator = moderator;
                u.trusted = trusted;
                Ok(OpValue::User(u.clone()))
            }
            HordeOp::ModifyUser { id, m, username, now } => {
                let mut resp = horde_protocol::users::ModifyUserResponse::default();
                if let Some(k) = m.kudos {
                    s.ledger.admin_adjust(&mut s.users, id, crate::kudos::to_centikudos(k), now)?;
                }
                let u = s.users.get_mut(id).ok_or_else(|| HordeError::UserNotFound(id.to_string()))?;
                if m.kudos.is_some() {
                    resp.new_kudos = Some(to_kudos(u.kudos));
                }
                macro_rules! set {
                    ($field:ident, $value:expr) => {
                        if let Some(v) = $value {
                            u.$field = v.clone();
                            resp.$field = Some(v);
                        }
                    };
                }
                set!(concurrency, m.concurrency);
                set!(moderator, m.moderator);
                set!(trusted, m.trusted);
                set!(flagged, m.flagged);
                set!(worker_invited, m.worker_invited);
                set!(public_workers, m.public_workers);
                set!(username, username);
                if let Some(c) = m.contact {
                    u.contact = Some(c.clone());
                    resp.contact = Some(c);
                }
                if let Some(c) = m.admin_comment {
                    u.admin_comment = Some(c.clone());
                    resp.admin_comment = Some(c);
                }
                Ok(OpValue::ModifiedUser(Box::new((resp, u.clone()))))
            }
            HordeOp::Transfer {
                from,
                to,
                amount,
                key,
                now,
            } => {
                if let Some(first) = key.as_deref().and_then(|k| s.transfer_keys.get(from, k)) {
                    return Ok(OpValue::Centikudos(first.replay(to, amount)?));
                }
                let transferred = s.ledger.transfer(&mut s.users, from, to, amount, now)?;
                if let Some(key) = key {
                    let record = TransferKey {
                        from,
                        key,
                        to,
                        transferred,
                        at_ms: now,
                    };
                    s.transfer_keys.insert(record.clone());
                    s.pending.transfer_keys.push(record);
                }
                Ok(OpValue::Centikudos(transferred))
            }
            HordeOp::SubmitText { user_id, req, now } => Ok(OpValue::Accepted(s.submit_text(user_id, req, now)?)),
            HordeOp::CancelText { id, now } => Ok(OpValue::TextStatus(s.cancel_text(&id, now)?)),
            HordeOp::TextProgress { user_id, job, text, now } => Ok(OpValue::Cancelled(s.text_progress(user_id, &job, text, now)?)),
            HordeOp::SubmitTextJob { user_id, result, now } => Ok(OpValue::Kudos(s.submit_job(user_id, result, now)?)),
            HordeOp::LoadWorker { worker } => {
                if s.workers.get(&worker.id).is_none() {
                    s.workers.insert(worker);
                }
                Ok(OpValue::Unit)
            }
            HordeOp::PopText { worker_id, pop, ip, now } => {
                s.check_in(&worker_id, &pop, now)?;
                if let Some(w) = s.workers.get_mut(&worker_id) {
                    w.last_ip = ip;
                }
                Ok(OpValue::TextPop(s.pop_text(&worker_id, pop.amount, now)?))
            }
            HordeOp::SubmitImage { user_id, mut req, ip, now } => {
                match s.filter.check(&req.prompt, req.replacement_filter) {
                    FilterOutcome::Pass => {}
                    FilterOutcome::Replaced(p) => req.prompt = p,
                    FilterOutcome::Corrupt => {
                        if let Some(ip) = ip {
                            s.ip_timeouts.offend(&ip, now);
                        }
                        if user_id != crate::accounts::ANONYMOUS_USER_ID {
                            if let Some(u) = s.users.get_mut(user_id) {
                                u.suspicions.add(Suspicion::CorruptPrompt);
                            }
                        }
                        return Err(HordeError::CorruptPrompt);
                    }
                }
                if req.dry_run {
                    return Ok(OpValue::DryRun(to_kudos(s.estimate_image_request(&req))));
                }
                Ok(OpValue::Accepted(s.submit_image(user_id, req, now)?))
            }
            HordeOp::PopImage {
                worker_id,
                pop,
                ip,
                now,
                base,
                upload_secs,
            } => {
                let links = &self.links;
                let link = |job: &Uuid| links.url(&base, LinkPurpose::Upload, job, now / 1000 + upload_secs);
                s.check_in(&worker_id, &pop, now)?;
                if let Some(w) = s.workers.get_mut(&worker_id) {
                    w.last_ip = ip;
                }
                Ok(OpValue::ImagePop(s.pop_image(&worker_id, pop.amount, now, &link)?))
            }
            HordeOp::UploadImage { job, bytes } => {
                s.upload_image(&job, bytes)?;
                Ok(OpValue::Unit)
            }
            HordeOp::CancelImage {
                id,
                now,
                base,
                download_secs,
            } => {
                let links = &self.links;
                let link = |job: &Uuid| links.url(&base, LinkPurpose::Download, job, now / 1000 + download_secs);
                Ok(OpValue::ImageStatus(s.cancel_image(&id, now, &link)?))
            }
            HordeOp::SubmitImageJob { user_id, result, now } => Ok(OpValue::Kudos(s.submit_image_job(user_id, result, now)?)),
            HordeOp::RateImages { id, rate, now } => Ok(OpValue::Kudos(s.rate_images(&id, rate, now)?)),
            HordeOp::TimeoutIp { ip, minutes, now } => {
                s.ip_timeouts.set(&ip, minutes, now);
                Ok(OpValue::Unit)
            }
            HordeOp::BlockWorkerIp { worker_id, days, now } => {
                let w = s
                    .workers
                    .get(&worker_id)
                    .ok_or_else(|| HordeError::WorkerNotFound(worker_id.to_string()))?;
                let ip = w.last_ip.ok_or(HordeError::WorkerIpUnknown)?;
                let minutes = days.min(30) * 24 * 60;
                s.ip_timeouts.set(&ip, minutes, now);
                Ok(OpValue::Minutes(minutes))
            }
            HordeOp::SetFilter { rules } => {
                s.filter = PromptFilter::new(rules)?;
                Ok(OpValue::Unit)
            }
            HordeOp::ModifyWorker { id, m, name } => {
                let mut resp = ModifyWorkerResponse::default();
                if let Some(n) = name {
                    s.workers.rename(&id, n.clone());
                    resp.name = Some(n);
                }
                let w = s.workers.get_mut(&id).ok_or_else(|| HordeError::WorkerNotFound(id.to_string()))?;
                if let Some(v) = m.maintenance {
                    w.maintenance = v;
                    w.maintenance_msg = if v { m.maintenance_msg.clone() } else { None };
                    resp.maintenance = Some(v);
                }
                if let Some(v) = m.paused {
                    w.paused = v;
                    resp.paused = Some(v);
                }
                if let Some(v) = m.info {
                    w.info = v.clone();
                    resp.info = Some(v);
                }
                Ok(OpValue::ModifiedWorker(Box::new((resp, w.clone()))))
            }
            HordeOp::DeleteWorker { id } => {
                s.workers.remove(&id);
                s.pending.workers.remove(&id);
                Ok(OpValue::Unit)
            }
            HordeOp::AwardKudos { to, cents, now } => Ok(OpValue::Centikudos(crate::kudos::award(s, to, cents, now)?)),
            HordeOp::Reap { now } => Ok(OpValue::Reaped(s.reap(now))),
            HordeOp::DropForRestart { unfinished, now } => Ok(OpValue::Count(s.drop_for_restart(unfinished, now))),
            HordeOp::Flush { token, stats } => {
                let batch = s.take_pending_writes(stats);
                if !batch.is_empty() {
                    self.outbox.push_back(OutboxBatch {
                        token,
                        batch,
                        cut_at: Instant::now(),
                    });
                }
                Ok(OpValue::Unit)
            }
        }
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

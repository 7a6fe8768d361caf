//! `Horde`: the rules (`State`) joined to durable storage (`Store`), one file per use case:
//! `accounts`, `requests` (what every kind of request shares), `text`, `image`, `workers`,
//! `moderation`, and persistence (`flush`, `drain`).
//!
//! Hot paths (submit, pop, job submit, status) touch only memory once the accounts and workers
//! involved are loaded. Accounts and workers are loaded from storage on first use; their durable
//! changes are queued and written by `flush` in one transaction per batch.
//!
//! Every change to the state is an operation (`horde_ops`) run on a `Replica`: applied at once
//! under a short-held lock on a single process, or through the shared log in Redis when several
//! processes serve one horde. Reads on a shared replica first catch up with the log.

mod accounts;
mod alchemy;
mod awards;
mod collections;
mod drain;
mod flush;
mod generation_stats;
mod image;
mod ipaddr;
mod moderation;
mod modes;
mod requests;
mod shared_keys;
mod styles;
mod teams;
mod text;
mod worker_messages;
mod workers;

use std::sync::Arc;

use horde_protocol::status as wire_status;
use parking_lot::{MappedMutexGuard, MutexGuard};
use uuid::Uuid;

use crate::accounts::api_key::{generate_secret, ApiKeyHasher};
use crate::accounts::ANONYMOUS_USER_ID;
use crate::clock::Clock;
use crate::config::HordeConfig;
use crate::horde_ops::op;
use crate::horde_ops::{Envelope, HordeMachine, Operation};
use crate::image::{ImageKind, ImageLinks};
use crate::kudos::image_model::KudosModel;
use crate::kudos::KudosLedger;
use crate::replication::{Replica, SharedLogConfig};
use crate::safety::filter::PromptFilter;
use crate::state::{ReapReport, State};
use crate::store::Store;
use crate::text::TextKind;
use crate::{HordeError, Result};

pub use accounts::AccountSpec;
pub use drain::DrainReport;

/// The horde.
pub struct Horde {
    replica: Replica<HordeMachine>,
    store: Store,
    clock: Arc<dyn Clock>,
    hasher: ApiKeyHasher,
    links: ImageLinks,
    flushes: flush::Flushes,
    /// Set when the horde stops taking new work before a restart.
    draining: std::sync::atomic::AtomicBool,
    /// Unexpired messages to workers, for pops.
    worker_messages: crate::worker_messages::MessageCache,
    /// The modes (`/status/modes`) as last read.
    modes_cache: crate::modes::ModesCache,
}

impl std::fmt::Debug for Horde {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Horde")
    }
}

impl Horde {
    /// Opens the horde on a migrated store. `secret` keys the API-key hash; without one, a secret
    /// is generated once and kept in the database.
    pub async fn open(store: Store, cfg: HordeConfig, clock: Arc<dyn Clock>, secret: Option<String>) -> Result<Arc<Self>> {
        Self::open_with(store, cfg, clock, secret, None).await
    }

    /// Opens the horde; with `shared`, its in-memory state is the one every process on that
    /// Redis log shares (all of them must use the same database and configuration).
    pub async fn open_with(
        store: Store,
        cfg: HordeConfig,
        clock: Arc<dyn Clock>,
        secret: Option<String>,
        shared: Option<&SharedLogConfig>,
    ) -> Result<Arc<Self>> {
        let secret = match secret.filter(|s| !s.is_empty()) {
            Some(s) => s,
            None => store.setting_or_insert("api_key_secret", &generate_secret()).await?,
        };
        let (mint, burn) = store.system_balances().await?;
        let mut state = State::new(cfg, KudosLedger::with_system_balances(mint, burn), KudosModel::shipped()?);
        state.filter = PromptFilter::new(store.filters().await?)?;
        let machine = HordeMachine {
            state,
            links: ImageLinks::new(secret.as_bytes()),
            outbox: Default::default(),
            logs_lost: 0,
        };
        let replica = match shared {
            Some(log) => {
                // Replicas agree only if their rules do: same version, same settings.
                let mut log = log.clone();
                log.settings = format!("{} {:?} {}", crate::VERSION, machine.state.cfg, log.settings);
                Replica::shared(machine, &log).await?
            }
            None => Replica::local(machine),
        };
        let horde = Arc::new(Self {
            replica,
            store,
            clock,
            links: ImageLinks::new(secret.as_bytes()),
            hasher: ApiKeyHasher::new(secret),
            flushes: flush::Flushes::default(),
            draining: Default::default(),
            worker_messages: Default::default(),
            modes_cache: Default::default(),
        });
        horde.ensure_user(ANONYMOUS_USER_ID).await?;
        Ok(horde)
    }

    /// Whether this process shares its state with others (through Redis).
    pub fn is_shared(&self) -> bool {
        self.replica.is_shared()
    }

    /// With a shared state: stores this replica as the log's snapshot and trims the log (one
    /// process at a time runs this, every few seconds). Returns the snapshot's size in bytes.
    pub async fn publish_snapshot(&self) -> Result<usize> {
        self.replica.publish_snapshot().await
    }

    /// Runs an operation on the state (through the shared log when shared); answers with the
    /// operation's own type.
    pub(super) async fn run<O: Operation>(&self, op: O) -> Result<O::Answer> {
        let seed = self.is_shared().then(rand::random);
        let value = self.replica.execute(Envelope { seed, op: op.into_op() }).await??;
        O::answer(value)
    }

    /// This replica's state, as it is (no catching up): for what only this process needs.
    pub(super) fn local(&self) -> MappedMutexGuard<'_, State> {
        MutexGuard::map(self.replica.lock(), |m| &mut m.state)
    }

    /// The state once this replica has caught up with every process's changes: for reads.
    pub(super) async fn synced(&self) -> Result<MappedMutexGuard<'_, State>> {
        self.replica.sync().await?;
        Ok(self.local())
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `f` on this process's replica of the state under its lock (for tests and
    /// diagnostics; changes made here are not shared with other processes).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.local())
    }

    pub(super) fn parse_request_id(id: &str) -> Result<Uuid> {
        Uuid::parse_str(id.trim()).map_err(|_| HordeError::RequestNotFound(id.chars().take(60).collect()))
    }

    pub(super) fn parse_worker_id(id: &str) -> Result<Uuid> {
        Uuid::parse_str(id.trim()).map_err(|_| HordeError::WorkerNotFound(id.chars().take(60).collect()))
    }

    /// Replaces the kudos model (e.g. a refitted one given on the command line). Processes
    /// sharing a state must all be given the same one.
    pub fn set_kudos_model(&self, model: KudosModel) {
        self.local().kudos_model = model;
    }

    /// The horde's figures for monitoring (this replica's view, without catching up).
    pub fn telemetry(&self) -> crate::telemetry::Telemetry {
        let now = self.now_ms();
        self.local().telemetry(now)
    }

    // ----- status and duties ---------------------------------------------------------------

    pub async fn image_models(&self) -> Result<Vec<wire_status::ActiveModel>> {
        let now = self.now_ms();
        Ok(self.synced().await?.active_models::<ImageKind>(now))
    }

    pub async fn text_models(&self) -> Result<Vec<wire_status::ActiveModel>> {
        let now = self.now_ms();
        Ok(self.synced().await?.active_models::<TextKind>(now))
    }

    pub async fn performance(&self) -> Result<wire_status::Performance> {
        let now = self.now_ms();
        Ok(self.synced().await?.performance(now))
    }

    /// Times out stale jobs and forgets expired requests (with a shared state, one process at a
    /// time does this for all: see `lease`).
    pub async fn reap(&self) -> Result<ReapReport> {
        let now = self.now_ms();
        self.run(op::Reap { now }).await
    }

    /// Whether storage answers (the database, and the shared state's Redis when there is one).
    pub async fn storage_ok(&self) -> bool {
        self.store.ping().await && self.replica.sync().await.is_ok()
    }
}

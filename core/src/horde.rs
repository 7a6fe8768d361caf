//! `Horde`: the rules (`State`) joined to durable storage (`Store`).
//!
//! Hot paths (submit, pop, job submit, status) touch only memory once the accounts and workers
//! involved are loaded. Accounts and workers are loaded from storage on first use; their durable
//! changes are queued and written by `flush` in one transaction per batch.
//!
//! Every change to the state is an operation (`horde_ops`) run on a `Replica`: applied at once
//! under a short-held lock on a single process, or through the shared log in Redis when several
//! processes serve one horde. Reads on a shared replica first catch up with the log.

use std::sync::Arc;

use horde_protocol::status as wire_status;
use horde_protocol::stream::{TextProgressRequest, TextProgressResponse, PROGRESS_VERSION};
use horde_protocol::text::{GenerateTextRequest, TextPopRequest, TextPopResponse, TextStatus, TextSubmitRequest};
use horde_protocol::users as wire_users;
use horde_protocol::workers as wire_workers;
use parking_lot::{MappedMutexGuard, MutexGuard};
use uuid::Uuid;

use crate::accounts::api_key::{generate_api_key, generate_secret, ApiKeyHasher};
use crate::accounts::{parse_user_reference, validate_username, User, ANONYMOUS_USER_ID};
use crate::clock::Clock;
use crate::config::HordeConfig;
use crate::horde_ops::{Envelope, HordeMachine, HordeOp, OpValue};
use crate::image::{ImageLinks, ImageRequest, LinkPurpose};
use crate::image_rules::{ImageJobResult, WebhookEvent};
use crate::kudos::image_model::KudosModel;
use crate::kudos::transfer_keys::validate_key;
use crate::kudos::{to_centikudos, to_kudos, KudosLedger};
use crate::replication::{Replica, SharedLogConfig};
use crate::safety::filter::{validate_rule, FilterRule, PromptFilter};
use crate::safety::suspicion::{self, Suspicion};
use crate::state::{Accepted, JobResult, ReapReport, State};
use crate::store::{NewUser, Store};
use crate::text::{StreamCursor, StreamEvent, TextRequest};
use crate::workers::{validate_worker_name, Worker, WorkerKind, WorkerPop, MAX_WORKER_INFO};
use crate::{HordeError, Result};
use horde_protocol::image::{
    GenerateImageRequest, ImageCheck, ImagePopRequest, ImagePopResponse, ImageStatus, ImageSubmitRequest, RateRequest,
};
use std::net::IpAddr;

#[path = "horde_drain.rs"]
mod drain;
pub use drain::DrainReport;
#[path = "kudos/horde_awards.rs"]
mod awards;
#[path = "styles/horde_collections.rs"]
mod collections;
#[path = "horde_flush.rs"]
mod flush;
#[path = "safety/horde_ipaddr.rs"]
mod ipaddr;
#[path = "modes/horde_modes.rs"]
mod modes;
#[path = "shared_keys/horde_shared_keys.rs"]
mod shared_keys;
#[path = "styles/horde_styles.rs"]
mod styles;
#[path = "teams/horde_teams.rs"]
mod teams;
#[path = "worker_messages/horde_worker_messages.rs"]
mod worker_messages;

/// Outcome of a text generation request.
#[derive(Debug, Clone)]
pub enum TextSubmission {
    Queued(Accepted),
    DryRun(f64),
}

/// Settings of a new account.
#[derive(Debug, Clone, Default)]
pub struct AccountSpec {
    pub username: String,
    pub oauth_id: Option<String>,
    pub kudos: f64,
    pub moderator: bool,
    pub trusted: bool,
    pub pseudonymous: bool,
}

/// Takes the value of one kind out of an operation's answer.
macro_rules! expect {
    ($value:expr, $kind:path) => {
        match $value {
            $kind(v) => Ok(v),
            other => Err(HordeError::Internal(format!("unexpected answer to an operation: {other:?}"))),
        }
    };
}

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

    /// Runs an operation on the state (through the shared log when shared).
    async fn run(&self, op: HordeOp) -> Result<OpValue> {
        let seed = self.is_shared().then(rand::random);
        self.replica.execute(Envelope { seed, op }).await?
    }

    /// This replica's state, as it is (no catching up): for what only this process needs.
    fn local(&self) -> MappedMutexGuard<'_, State> {
        MutexGuard::map(self.replica.lock(), |m| &mut m.state)
    }

    /// The state once this replica has caught up with every process's changes: for reads.
    async fn synced(&self) -> Result<MappedMutexGuard<'_, State>> {
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

    // ----- accounts ------------------------------------------------------------------------

    /// Loads an account into memory if needed. Returns whether it exists.
    async fn ensure_user(&self, id: i64) -> Result<bool> {
        if self.local().users.contains(id) {
            return Ok(true);
        }
        match self.store.user_by_id(id).await? {
            Some(user) => {
                self.run(HordeOp::LoadUser { user, key: None }).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The user an API key belongs to (`0000000000` is the anonymous user).
    pub async fn authenticate(&self, api_key: &str) -> Result<i64> {
        let key = api_key.trim();
        if key == horde_protocol::ANONYMOUS_API_KEY {
            // Loaded at start, and again after a shared state was lost.
            self.ensure_user(ANONYMOUS_USER_ID).await?;
            return Ok(ANONYMOUS_USER_ID);
        }
        if key.is_empty() || key.len() > 100 {
            return Err(HordeError::InvalidApiKey);
        }
        let hash = self.hasher.hash(key);
        if let Some(id) = self.local().users.by_key(&hash) {
            return Ok(id);
        }
        let user = self.store.user_by_key(&hash).await?.ok_or(HordeError::InvalidApiKey)?;
        let id = user.id;
        self.run(HordeOp::LoadUser { user, key: Some(hash) }).await?;
        Ok(id)
    }

    /// Creates an account and returns it with its API key (shown once).
    pub async fn create_account(&self, spec: AccountSpec) -> Result<(User, String)> {
        let username = validate_username(&spec.username)?;
        let key = generate_api_key();
        let hash = self.hasher.hash(&key);
        let now = self.now_ms();
        let new = NewUser {
            username,
            oauth_id: spec.oauth_id.unwrap_or_else(|| Uuid::new_v4().to_string()),
            key: hash,
            moderator: spec.moderator,
            trusted: spec.trusted,
            pseudonymous: spec.pseudonymous,
            concurrency: self.local().cfg.default_concurrency,
            created_secs: (now / 1000) as i64,
        };
        let id = self.store.insert_user(&new).await?;
        let user = self
            .store
            .user_by_id(id)
            .await?
            .ok_or_else(|| HordeError::UserNotFound(id.to_string()))?;
        let op = HordeOp::NewAccount {
            user,
            key: hash,
            kudos: to_centikudos(spec.kudos),
            now,
        };
        let user = expect!(self.run(op).await?, OpValue::User)?;
        self.commit().await?;
        Ok((user, key))
    }

    /// Pseudonymous registration: a new account and its key, shown once.
    pub async fn register(&self, username: &str) -> Result<wire_users::NewApiKey> {
        let kudos = to_kudos(self.local().cfg.registration_kudos);
        let (user, api_key) = self
            .create_account(AccountSpec {
                username: username.to_string(),
                kudos,
                pseudonymous: true,
                ..Default::default()
            })
            .await?;
        if user.username.chars().count() > suspicion::LONG_USERNAME {
            self.run(HordeOp::SuspectUser {
                id: user.id,
                why: Suspicion::UsernameLong,
            })
            .await?;
        }
        Ok(wire_users::NewApiKey {
            api_key,
            id: user.id,
            username: user.display_name(),
        })
    }

    /// Test mode: creates or refreshes a user by `oauth_id` with the given roles and balance, and
    /// issues a new key.
    pub async fn upsert_test_user(&self, req: wire_users::TestUserRequest) -> Result<wire_users::TestUserResponse> {
        let username = validate_username(req.username.as_deref().unwrap_or("test_user"))?;
        let oauth_id = req.oauth_id.filter(|s| !s.is_empty()).unwrap_or_else(|| format!("test:{username}"));
        let moderator = req.moderator.unwrap_or(true);
        let trusted = req.trusted.unwrap_or(true);
        let kudos = req.kudos.unwrap_or(10_000.0);
        if !kudos.is_finite() || kudos.abs() > 1e12 {
            return Err(HordeError::Validation("kudos out of range".into()));
        }
        let existing = self.store.user_by_oauth_id(&oauth_id).await?;
        let (id, api_key) = match existing {
            None => {
                let (u, key) = self
                    .create_account(AccountSpec {
                        username,
                        oauth_id: Some(oauth_id),
                        kudos,
                        moderator,
                        trusted,
                        pseudonymous: false,
                    })
                    .await?;
                (u.id, key)
            }
            Some(u) => {
                let id = u.id;
                self.ensure_user(id).await?;
                let key = generate_api_key();
                let hash = self.hasher.hash(&key);
                self.store.set_user_key(id, &hash).await?;
                let now = self.now_ms();
                let op = HordeOp::RefreshTestUser {
                    id,
                    key: hash,
                    kudos: to_centikudos(kudos),
                    username,
                    moderator,
                    trusted,
                    now,
                };
                let profile = expect!(self.run(op).await?, OpValue::User)?;
                self.store.update_user_profile(&profile).await?;
                self.commit().await?;
                (id, key)
            }
        };
        let username = self.local().users.get(id).map(User::display_name).unwrap_or_default();
        Ok(wire_users::TestUserResponse {
            api_key,
            user_id: id.to_string(),
            username,
        })
    }

    fn is_moderator(&self, id: i64) -> bool {
        self.local().users.get(id).is_some_and(|u| u.moderator)
    }

    /// A user's details as `viewer` may see them.
    pub async fn user_details(&self, id: i64, viewer: Option<i64>) -> Result<wire_users::UserDetails> {
        if !self.ensure_user(id).await? {
            return Err(HordeError::UserNotFound(id.to_string()));
        }
        let worker_ids: Vec<String> = self.store.worker_ids_of(id).await?.iter().map(Uuid::to_string).collect();
        let privileged = viewer.is_some_and(|v| (v == id && id != ANONYMOUS_USER_ID) || self.is_moderator(v));
        let now_secs = (self.now_ms() / 1000) as i64;
        let s = self.synced().await?;
        let active = if privileged { s.active_requests_of(id) } else { vec![] };
        let u = s.users.get(id).ok_or_else(|| HordeError::UserNotFound(id.to_string()))?;
        Ok(u.details(privileged, worker_ids, active, now_secs))
    }

    /// `/users`: 25 per page by kudos or by age.
    pub async fn list_users(&self, page: i64, by_age: bool) -> Result<Vec<wire_users::UserDetails>> {
        if page > 10_000 {
            return Ok(vec![]);
        }
        let users = self.store.list_users(page, by_age).await?;
        let now_secs = (self.now_ms() / 1000) as i64;
        let s = self.synced().await?;
        Ok(users
            .into_iter()
            .map(|u| {
                // Memory holds movements not yet stored.
                let u = s.users.get(u.id).cloned().unwrap_or(u);
                u.details(false, vec![], vec![], now_secs)
            })
            .collect())
    }

    /// `PUT /users/{id}`: moderators may change roles, limits and balances; a user may change
    /// their own name, contact and worker visibility.
    pub async fn modify_user(&self, viewer: i64, id: i64, m: wire_users::ModifyUser) -> Result<wire_users::ModifyUserResponse> {
        if viewer == ANONYMOUS_USER_ID {
            return Err(HordeError::AnonForbidden);
        }
        if !self.ensure_user(id).await? {
            return Err(HordeError::UserNotFound(id.to_string()));
        }
        let moderator = self.is_moderator(viewer);
        let mod_fields = m.kudos.is_some()
            || m.concurrency.is_some()
            || m.moderator.is_some()
            || m.trusted.is_some()
            || m.flagged.is_some()
            || m.worker_invited.is_some()
            || m.admin_comment.is_some();
        let self_fields = m.username.is_some() || m.public_workers.is_some() || m.contact.is_some();
        if !mod_fields && !self_fields {
            return Err(HordeError::NoUserModSelected);
        }
        if (mod_fields && !moderator) || (self_fields && !moderator && viewer != id) {
            return Err(HordeError::NotModerator);
        }
        if id == ANONYMOUS_USER_ID && self_fields {
            return Err(HordeError::AnonForbidden);
        }
        if let Some(c) = m.concurrency {
            if !(0..=500).contains(&c) {
                return Err(HordeError::Validation("concurrency must be between 0 and 500.".into()));
            }
        }
        if let Some(k) = m.kudos {
            if !k.is_finite() || k.abs() > 1e12 {
                return Err(HordeError::Validation("kudos out of range".into()));
            }
        }
        let username = m.username.as_deref().map(validate_username).transpose()?;
        for s in [&m.contact, &m.admin_comment].into_iter().flatten() {
            if s.contains('\0') || s.chars().count() > 500 {
                return Err(HordeError::Validation(
                    "contact and admin_comment may be at most 500 characters.".into(),
                ));
            }
        }
        let now = self.now_ms();
        let kudos_changed = m.kudos.is_some();
        let (resp, profile) = *expect!(self.run(HordeOp::ModifyUser { id, m, username, now }).await?, OpValue::ModifiedUser)?;
        self.store.update_user_profile(&profile).await?;
        if kudos_changed {
            self.commit().await?;
        }
        Ok(resp)
    }

    /// `POST /kudos/transfer`, answered once the transfer is stored. A `key` (the
    /// `Idempotency-Key` header) the sender used in the last day gets that transfer's answer,
    /// and nothing is transferred again.
    pub async fn transfer(&self, from: i64, to: &str, amount: Option<f64>, key: Option<&str>) -> Result<f64> {
        if let Some(k) = key {
            validate_key(k)?;
        }
        let to_id = parse_user_reference(to).ok_or_else(|| HordeError::UserNotFound(to.chars().take(60).collect()))?;
        if !self.ensure_user(to_id).await? {
            return Err(HordeError::UserNotFound(to.chars().take(60).collect()));
        }
        let amount = amount.unwrap_or(100.0);
        let now = self.now_ms();
        if let Some(k) = key {
            // Keys of transfers stored before this process started are only in storage.
            let in_memory = self.synced().await?.transfer_keys.get(from, k).is_some();
            if !in_memory {
                if let Some(first) = self.store.transfer_key(from, k, now).await? {
                    return Ok(to_kudos(first.replay(to_id, amount)?));
                }
            }
        }
        let op = HordeOp::Transfer {
            from,
            to: to_id,
            amount,
            key: key.map(str::to_string),
            now,
        };
        let cents = expect!(self.run(op).await?, OpValue::Centikudos)?;
        self.commit().await?;
        Ok(to_kudos(cents))
    }

    // ----- text generation -----------------------------------------------------------------

    /// `POST /generate/text/async`.
    pub async fn generate_text(&self, user_id: i64, req: GenerateTextRequest, ip: Option<IpAddr>) -> Result<TextSubmission> {
        crate::request_checks::proxied_account(req.proxied_account.as_deref())?;
        self.check_ip(ip)?;
        let req = self.styled_text_request(req).await?;
        self.submit_text_request(user_id, TextRequest::try_from(req)?).await
    }

    /// Whether an online worker could serve `req` for `user_id` now (nothing is charged).
    pub async fn text_servable(&self, user_id: i64, req: &TextRequest) -> Result<bool> {
        let now = self.now_ms();
        Ok(self.synced().await?.text_servable(user_id, req, now))
    }

    /// Queues (or prices, on a dry run) an already validated text request.
    pub async fn submit_text_request(&self, user_id: i64, req: TextRequest) -> Result<TextSubmission> {
        self.check_taking_work()?;
        if let Some(url) = &req.webhook {
            crate::image::request::check_webhook(url, &self.local().cfg)?;
        }
        if req.dry_run {
            return Ok(TextSubmission::DryRun(to_kudos(State::estimate_request(&req))));
        }
        // Checked here too, so a refused prompt never reaches the shared log (the operation
        // checks again against the state it applies to).
        crate::text::memory::check_request(&self.local(), user_id, &req)?;
        let now = self.now_ms();
        let accepted = expect!(self.run(HordeOp::SubmitText { user_id, req, now }).await?, OpValue::Accepted)?;
        Ok(TextSubmission::Queued(accepted))
    }

    fn parse_request_id(id: &str) -> Result<Uuid> {
        Uuid::parse_str(id.trim()).map_err(|_| HordeError::RequestNotFound(id.chars().take(60).collect()))
    }

    /// `GET /generate/text/status/{id}`.
    pub async fn text_status(&self, id: &str) -> Result<TextStatus> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        self.synced().await?.text_status(&id, now)
    }

    /// `DELETE /generate/text/status/{id}`.
    pub async fn cancel_text(&self, id: &str) -> Result<TextStatus> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        expect!(self.run(HordeOp::CancelText { id, now }).await?, OpValue::TextStatus)
    }

    /// The horde's figures for monitoring (this replica's view, without catching up).
    pub fn telemetry(&self) -> crate::telemetry::Telemetry {
        let now = self.now_ms();
        self.local().telemetry(now)
    }

    /// Subscribes to the changes of text request `id` (see `State::subscribe_text`).
    pub async fn subscribe_text(&self, id: &str) -> Result<(Uuid, tokio::sync::watch::Receiver<()>)> {
        let id = Self::parse_request_id(id)?;
        let rx = self.synced().await?.subscribe_text(&id)?;
        Ok((id, rx))
    }

    /// What a streaming client of request `id` has not been sent yet (changes reach this replica
    /// from every process and wake its subscribers).
    pub fn text_stream_events(&self, id: &Uuid, cursor: &mut StreamCursor) -> Result<Vec<StreamEvent>> {
        let now = self.now_ms();
        self.local().text_stream_events(id, cursor, now)
    }

    /// `POST /generate/text/progress`.
    pub async fn text_progress(&self, user_id: i64, p: TextProgressRequest) -> Result<TextProgressResponse> {
        if let Some(v) = p.version.filter(|v| *v != PROGRESS_VERSION) {
            return Err(HordeError::Validation(format!(
                "Progress protocol version {v} is not supported; this horde speaks version {PROGRESS_VERSION}."
            )));
        }
        let now = self.now_ms();
        let op = HordeOp::TextProgress {
            user_id,
            job: p.id,
            text: p.text,
            now,
        };
        let cancelled = expect!(self.run(op).await?, OpValue::Cancelled)?;
        Ok(TextProgressResponse { cancelled })
    }

    /// Finds the popping worker by name, creating it on its first pop.
    async fn worker_for_pop(&self, user_id: i64, name: &str, kind: WorkerKind) -> Result<Uuid> {
        if let Some((id, owner, has_kind)) = {
            let s = self.local();
            s.workers
                .id_by_name(name)
                .and_then(|id| s.workers.get(&id).map(|w| (id, w.owner_id, w.kind)))
        } {
            return if owner != user_id {
                Err(HordeError::WrongCredentials)
            } else if has_kind != kind {
                Err(HordeError::PolymorphicNameConflict(name.to_string()))
            } else {
                Ok(id)
            };
        }
        if let Some(w) = self.store.worker_by_name(name).await? {
            if w.owner_id != user_id {
                return Err(HordeError::WrongCredentials);
            }
            if w.kind != kind {
                return Err(HordeError::PolymorphicNameConflict(name.to_string()));
            }
            let id = w.id;
            self.run(HordeOp::LoadWorker { worker: w }).await?;
            return Ok(id);
        }
        let (trusted, invited) = self
            .local()
            .users
            .get(user_id)
            .map(|u| (u.trusted, u.worker_invited))
            .unwrap_or((false, 0));
        let existing = self.store.worker_ids_of(user_id).await?.len();
        let cfg_limit = {
            let s = self.local();
            if trusted {
                s.cfg.max_workers_trusted
            } else {
                s.cfg.max_workers_untrusted
            }
        };
        let limit = cfg_limit.max(invited.max(0) as usize);
        if existing >= limit {
            return Err(HordeError::TooManyWorkers(limit));
        }
        let mut w = Worker::new(Uuid::new_v4(), name.to_string(), user_id, (self.now_ms() / 1000) as i64);
        w.kind = kind;
        let id = w.id;
        if let Err(e) = self.store.insert_worker(&w).await {
            // Another pop may have created it at the same moment.
            if let Some(other) = self.store.worker_by_name(name).await? {
                return if other.owner_id == user_id {
                    Box::pin(self.worker_for_pop(user_id, name, kind)).await
                } else {
                    Err(HordeError::WrongCredentials)
                };
            }
            return Err(e);
        }
        self.run(HordeOp::LoadWorker { worker: w }).await?;
        Ok(id)
    }

    /// `POST /generate/text/pop`.
    pub async fn pop_text(&self, user_id: i64, pop: TextPopRequest, ip: Option<IpAddr>) -> Result<TextPopResponse> {
        self.check_taking_work()?;
        self.check_ip(ip)?;
        if user_id == ANONYMOUS_USER_ID {
            return Err(HordeError::AnonForbiddenWorker);
        }
        let pop = WorkerPop::try_from(pop)?;
        let worker_id = self.worker_for_pop(user_id, &pop.name, WorkerKind::Text).await?;
        let now = self.now_ms();
        expect!(self.run(HordeOp::PopText { worker_id, pop, ip, now }).await?, OpValue::TextPop)
    }

    // ----- image generation ----------------------------------------------------------------

    /// `POST /generate/async`.
    /// `ip` is the client's address (timeouts; `None` when unknown).
    pub async fn generate_image(&self, user_id: i64, req: GenerateImageRequest, ip: Option<IpAddr>) -> Result<TextSubmission> {
        self.check_taking_work()?;
        crate::request_checks::proxied_account(req.proxied_account.as_deref())?;
        let req = self.styled_image_request(req).await?;
        let now = self.now_ms();
        let req = {
            let s = self.local();
            Self::check_ip_in(&s, ip, now)?;
            // Parsed here: parsing draws the random seed, which the operation then carries.
            ImageRequest::parse(req, &s.cfg)?
        };
        match self.run(HordeOp::SubmitImage { user_id, req, ip, now }).await? {
            OpValue::DryRun(k) => Ok(TextSubmission::DryRun(k)),
            other => Ok(TextSubmission::Queued(expect!(other, OpValue::Accepted)?)),
        }
    }

    fn check_ip_in(s: &State, ip: Option<IpAddr>, now_ms: u64) -> Result<()> {
        match ip.and_then(|ip| s.ip_timeouts.remaining_secs(&ip, now_ms)) {
            Some(secs) => Err(HordeError::TimeoutIp {
                minutes_left: secs.div_ceil(60),
            }),
            None => Ok(()),
        }
    }

    /// `TimeoutIP` if `ip` is timed out.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<()> {
        let now = self.now_ms();
        Self::check_ip_in(&self.local(), ip, now)
    }

    /// A moderator times an address out for `minutes` (0 lifts it).
    pub async fn timeout_ip(&self, viewer: i64, ip: IpAddr, minutes: u64) -> Result<()> {
        self.require_moderator(viewer).await?;
        let now = self.now_ms();
        let minutes = minutes.min(60 * 24 * 30);
        self.run(HordeOp::TimeoutIp { ip, minutes, now }).await?;
        Ok(())
    }

    /// `PUT|DELETE /operations/block_worker_ipaddr/{worker_id}`: a moderator times out the address
    /// a worker last checked in from, for `days` (0 lifts it). Returns the minutes set.
    pub async fn block_worker_ip(&self, viewer: i64, worker_id: &str, days: u64) -> Result<u64> {
        self.require_moderator(viewer).await?;
        let id = Self::parse_worker_id(worker_id)?;
        let now = self.now_ms();
        let op = HordeOp::BlockWorkerIp { worker_id: id, days, now };
        expect!(self.run(op).await?, OpValue::Minutes)
    }

    async fn require_moderator(&self, viewer: i64) -> Result<()> {
        self.ensure_user(viewer).await?;
        if self.is_moderator(viewer) {
            Ok(())
        } else {
            Err(HordeError::NotModerator)
        }
    }

    // ----- prompt filter -------------------------------------------------------------------

    async fn reload_filter(&self) -> Result<()> {
        let rules = self.store.filters().await?;
        self.run(HordeOp::SetFilter { rules }).await?;
        Ok(())
    }

    /// `GET /filters`: rules of one type, or containing a text (moderators).
    pub async fn list_filters(&self, viewer: i64, filter_type: Option<i64>, contains: Option<&str>) -> Result<Vec<FilterRule>> {
        self.require_moderator(viewer).await?;
        let s = self.synced().await?;
        Ok(s.filter
            .rules()
            .iter()
            .filter(|r| filter_type.is_none_or(|t| r.filter_type == t))
            .filter(|r| contains.is_none_or(|c| r.regex.contains(c) || r.description.contains(c)))
            .cloned()
            .collect())
    }

    /// One rule (moderators).
    pub async fn filter(&self, viewer: i64, id: i64) -> Result<FilterRule> {
        self.require_moderator(viewer).await?;
        let s = self.synced().await?;
        s.filter
            .rules()
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or(HordeError::FilterNotFound(id))
    }

    /// `PUT /filters`: adds a rule (moderators).
    pub async fn add_filter(
        &self,
        viewer: i64,
        regex: String,
        filter_type: i64,
        description: String,
        replacement: String,
    ) -> Result<FilterRule> {
        self.require_moderator(viewer).await?;
        validate_rule(&regex, filter_type)?;
        let mut rule = FilterRule {
            id: 0,
            regex,
            filter_type,
            description,
            replacement,
            user_id: viewer,
        };
        rule.id = self.store.insert_filter(&rule).await?;
        self.reload_filter().await?;
        Ok(rule)
    }

    /// `PATCH /filters/{id}`: changes the given fields (moderators).
    pub async fn modify_filter(
        &self,
        viewer: i64,
        id: i64,
        regex: Option<String>,
        filter_type: Option<i64>,
        description: Option<String>,
        replacement: Option<String>,
    ) -> Result<FilterRule> {
        let mut rule = self.filter(viewer, id).await?;
        if let Some(r) = regex {
            rule.regex = r;
        }
        if let Some(t) = filter_type {
            rule.filter_type = t;
        }
        if let Some(d) = description {
            rule.description = d;
        }
        if let Some(r) = replacement {
            rule.replacement = r;
        }
        rule.user_id = viewer;
        validate_rule(&rule.regex, rule.filter_type)?;
        if !self.store.update_filter(&rule).await? {
            return Err(HordeError::FilterNotFound(id));
        }
        self.reload_filter().await?;
        Ok(rule)
    }

    /// `DELETE /filters/{id}` (moderators).
    pub async fn delete_filter(&self, viewer: i64, id: i64) -> Result<()> {
        self.require_moderator(viewer).await?;
        if !self.store.delete_filter(id).await? {
            return Err(HordeError::FilterNotFound(id));
        }
        self.reload_filter().await
    }

    /// `POST /filters`: how a prompt fares (suspicion 0–2 and the matching terms), for moderators
    /// testing rules. Nothing is recorded.
    pub async fn check_prompt(&self, viewer: i64, prompt: &str, filter_type: Option<i64>) -> Result<(i64, Vec<String>)> {
        self.require_moderator(viewer).await?;
        let s = self.synced().await?;
        let positive = prompt.split("###").next().unwrap_or("");
        let (underage, lewd) = s.filter.contexts(positive);
        Ok((i64::from(underage) + i64::from(lewd), s.filter.matches(prompt, filter_type)))
    }

    /// `GET /filters/regex`: the combined regex of each type (moderators).
    pub async fn filter_regexes(&self, viewer: i64, filter_type: Option<i64>) -> Result<Vec<(i64, String)>> {
        self.require_moderator(viewer).await?;
        let s = self.synced().await?;
        Ok([10, 11, 20]
            .into_iter()
            .filter(|t| filter_type.is_none_or(|f| f == *t))
            .filter_map(|t| s.filter.regex_of(t).map(|r| (t, r)))
            .collect())
    }

    /// A link to `job`'s image for `purpose`, under `base` (the horde's public address).
    pub fn image_link(&self, base: &str, purpose: LinkPurpose, job: &Uuid) -> String {
        let secs = {
            let s = self.local();
            match purpose {
                LinkPurpose::Upload => s.cfg.upload_url_secs,
                LinkPurpose::Download => s.cfg.download_url_secs,
            }
        };
        self.link_with(base, purpose, job, secs)
    }

    fn link_with(&self, base: &str, purpose: LinkPurpose, job: &Uuid, valid_secs: u64) -> String {
        self.links.url(base, purpose, job, self.now_ms() / 1000 + valid_secs)
    }

    /// `GET /generate/check/{id}`.
    pub async fn image_check(&self, id: &str) -> Result<ImageCheck> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        self.synced().await?.image_check(&id, now)
    }

    /// `GET /generate/status/{id}`; image links point at `base`.
    pub async fn image_status(&self, id: &str, base: &str) -> Result<ImageStatus> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        let mut s = self.synced().await?;
        let secs = s.cfg.download_url_secs;
        let link = |job: &Uuid| self.link_with(base, LinkPurpose::Download, job, secs);
        s.image_status(&id, now, &link)
    }

    /// `DELETE /generate/status/{id}`.
    pub async fn cancel_image(&self, id: &str, base: &str) -> Result<ImageStatus> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        let download_secs = self.local().cfg.download_url_secs;
        let op = HordeOp::CancelImage {
            id,
            now,
            base: base.to_string(),
            download_secs,
        };
        expect!(self.run(op).await?, OpValue::ImageStatus)
    }

    /// `POST /generate/pop`; upload links point at `base`.
    pub async fn pop_image(&self, user_id: i64, pop: ImagePopRequest, base: &str, ip: Option<IpAddr>) -> Result<ImagePopResponse> {
        self.check_taking_work()?;
        self.check_ip(ip)?;
        if user_id == ANONYMOUS_USER_ID {
            return Err(HordeError::AnonForbiddenWorker);
        }
        let pop = WorkerPop::try_from(pop)?;
        let worker_id = self.worker_for_pop(user_id, &pop.name, WorkerKind::Image).await?;
        let now = self.now_ms();
        let upload_secs = self.local().cfg.upload_url_secs;
        let op = HordeOp::PopImage {
            worker_id,
            pop,
            ip,
            now,
            base: base.to_string(),
            upload_secs,
        };
        expect!(self.run(op).await?, OpValue::ImagePop)
    }

    /// `PUT` to an upload link: keeps the job's image until its request expires.
    pub async fn upload_image(&self, token: &str, bytes: Vec<u8>) -> Result<()> {
        let job = self.links.verify(LinkPurpose::Upload, token, self.now_ms() / 1000)?;
        self.run(HordeOp::UploadImage { job, bytes }).await?;
        Ok(())
    }

    /// `GET` of a download link: the image's WebP bytes.
    pub async fn download_image(&self, token: &str) -> Result<Arc<Vec<u8>>> {
        let job = self.links.verify(LinkPurpose::Download, token, self.now_ms() / 1000)?;
        self.synced().await?.image_bytes(&job).ok_or(HordeError::InvalidImageLink)
    }

    /// `POST /generate/submit`, answered once the reward is stored.
    pub async fn submit_image(&self, user_id: i64, sub: ImageSubmitRequest) -> Result<f64> {
        let result = ImageJobResult {
            job_id: sub.id.unwrap_or_default(),
            generation: sub.generation.unwrap_or_default(),
            state: sub.state.unwrap_or_else(|| "ok".into()),
            seed: sub.seed.unwrap_or(0),
            censored: sub.censored.unwrap_or(false),
            gen_metadata: sub.gen_metadata.unwrap_or_default(),
        };
        let now = self.now_ms();
        let reward = expect!(self.run(HordeOp::SubmitImageJob { user_id, result, now }).await?, OpValue::Kudos)?;
        self.commit().await?;
        Ok(reward)
    }

    /// `POST /generate/rate/{id}`, answered once the reward is stored.
    pub async fn rate_images(&self, id: &str, rate: RateRequest) -> Result<f64> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        let reward = expect!(self.run(HordeOp::RateImages { id, rate, now }).await?, OpValue::Kudos)?;
        self.commit().await?;
        Ok(reward)
    }

    /// Finished jobs waiting to be announced to their webhooks. Every replica queues them; with
    /// a shared state, only the process holding the webhook duty sends what it takes.
    pub fn take_webhooks(&self) -> Vec<WebhookEvent> {
        std::mem::take(&mut self.local().webhooks)
    }

    /// A job's image as base64, for webhooks of requests with `r2: false`.
    pub fn image_base64(&self, job: &Uuid) -> Option<String> {
        use base64::Engine;
        let bytes = self.local().image_bytes(job)?;
        Some(base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()))
    }

    /// Replaces the kudos model (e.g. a refitted one given on the command line). Processes
    /// sharing a state must all be given the same one.
    pub fn set_kudos_model(&self, model: KudosModel) {
        self.local().kudos_model = model;
    }

    /// `POST /generate/text/submit`, answered once the reward is stored.
    pub async fn submit_text(&self, user_id: i64, sub: TextSubmitRequest) -> Result<f64> {
        let result = JobResult {
            job_id: sub.id.unwrap_or_default(),
            generation: sub.generation.unwrap_or_default(),
            state: sub.state.unwrap_or_else(|| "ok".into()),
            seed: sub.seed.unwrap_or(0),
            gen_metadata: sub.gen_metadata.unwrap_or_default(),
        };
        let now = self.now_ms();
        let reward = expect!(self.run(HordeOp::SubmitTextJob { user_id, result, now }).await?, OpValue::Kudos)?;
        self.commit().await?;
        Ok(reward)
    }

    // ----- workers -------------------------------------------------------------------------

    fn worker_view(&self, s: &State, w: &Worker, viewer: Option<i64>) -> wire_workers::WorkerDetails {
        let owner = s.users.get(w.owner_id);
        let viewer_mod = viewer.and_then(|v| s.users.get(v)).is_some_and(|u| u.moderator);
        let is_owner = viewer == Some(w.owner_id) && w.owner_id != ANONYMOUS_USER_ID;
        let show_owner = viewer_mod || is_owner || owner.is_some_and(|u| u.public_workers);
        w.details(
            self.now_ms(),
            s.cfg.worker_online_secs,
            owner.is_some_and(|u| u.trusted),
            owner.is_some_and(|u| u.flagged),
            if show_owner { owner.map(User::display_name) } else { None },
            viewer_mod,
        )
    }

    /// `GET /workers`: online workers, optionally by type and name.
    pub async fn list_workers(
        &self,
        kind: Option<&str>,
        name: Option<&str>,
        viewer: Option<i64>,
    ) -> Result<Vec<wire_workers::WorkerDetails>> {
        let kind = match kind.filter(|k| !k.is_empty()) {
            None => None,
            Some(k) => match WorkerKind::parse(k) {
                Some(k) => Some(k),
                None => return Ok(vec![]),
            },
        };
        let now = self.now_ms();
        let s = self.synced().await?;
        let mut out: Vec<_> = s
            .workers
            .iter()
            .filter(|w| w.is_online(now, s.cfg.worker_online_secs))
            .filter(|w| kind.is_none_or(|k| w.kind == k))
            .filter(|w| name.is_none_or(|n| w.name == n))
            .map(|w| self.worker_view(&s, w, viewer))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Loads a worker (and its owner) into memory if needed.
    async fn ensure_worker(&self, id: &Uuid) -> Result<()> {
        let known = self.local().workers.get(id).map(|w| w.owner_id);
        let owner = match known {
            Some(o) => o,
            None => {
                let w = self
                    .store
                    .worker_by_id(id)
                    .await?
                    .ok_or_else(|| HordeError::WorkerNotFound(id.to_string()))?;
                let owner = w.owner_id;
                self.run(HordeOp::LoadWorker { worker: w }).await?;
                owner
            }
        };
        self.ensure_user(owner).await?;
        Ok(())
    }

    fn parse_worker_id(id: &str) -> Result<Uuid> {
        Uuid::parse_str(id.trim()).map_err(|_| HordeError::WorkerNotFound(id.chars().take(60).collect()))
    }

    /// `GET /workers/{id}` (also offline workers).
    pub async fn worker_details(&self, id: &str, viewer: Option<i64>) -> Result<wire_workers::WorkerDetails> {
        let id = Self::parse_worker_id(id)?;
        self.ensure_worker(&id).await?;
        let s = self.synced().await?;
        let w = s.workers.get(&id).ok_or_else(|| HordeError::WorkerNotFound(id.to_string()))?;
        Ok(self.worker_view(&s, w, viewer))
    }

    /// `GET /workers/name/{name}`.
    pub async fn worker_details_by_name(&self, name: &str, viewer: Option<i64>) -> Result<wire_workers::WorkerDetails> {
        let known = self.synced().await?.workers.id_by_name(name);
        let id = match known {
            Some(id) => id,
            None => self
                .store
                .worker_by_name(name)
                .await?
                .map(|w| w.id)
                .ok_or_else(|| HordeError::WorkerNotFound(name.chars().take(100).collect()))?,
        };
        self.worker_details(&id.to_string(), viewer).await
    }

    /// `PUT /workers/{id}`: maintenance and info by the owner or a moderator, pause by moderators.
    pub async fn modify_worker(&self, viewer: i64, id: &str, m: wire_workers::ModifyWorker) -> Result<wire_workers::ModifyWorkerResponse> {
        let id = Self::parse_worker_id(id)?;
        self.ensure_worker(&id).await?;
        if m.maintenance.is_none() && m.paused.is_none() && m.info.is_none() && m.name.is_none() {
            return Err(HordeError::NoWorkerModSelected);
        }
        let moderator = self.is_moderator(viewer);
        let owner = self.synced().await?.workers.get(&id).map(|w| w.owner_id);
        if owner != Some(viewer) && !moderator {
            return Err(HordeError::NotOwner);
        }
        if m.paused.is_some() && !moderator {
            return Err(HordeError::NotModerator);
        }
        if let Some(info) = &m.info {
            if info.chars().count() > MAX_WORKER_INFO || info.contains('\0') {
                return Err(HordeError::Validation(format!("info may be at most {MAX_WORKER_INFO} characters.")));
            }
        }
        if let Some(msg) = &m.maintenance_msg {
            if msg.chars().count() > MAX_WORKER_INFO || msg.contains('\0') {
                return Err(HordeError::Validation(format!(
                    "maintenance_msg may be at most {MAX_WORKER_INFO} characters."
                )));
            }
        }
        let new_name = m.name.as_deref().map(validate_worker_name).transpose()?;
        if let Some(n) = &new_name {
            let taken_here = self.local().workers.id_by_name(n).is_some_and(|other| other != id);
            let taken_db = self.store.worker_by_name(n).await?.is_some_and(|w| w.id != id);
            if taken_here || taken_db {
                return Err(HordeError::WorkerNameTaken(n.clone()));
            }
        }
        let op = HordeOp::ModifyWorker { id, m, name: new_name };
        let (resp, snapshot) = *expect!(self.run(op).await?, OpValue::ModifiedWorker)?;
        self.store.update_worker(&snapshot).await?;
        Ok(resp)
    }

    /// `DELETE /workers/{id}` by the owner or a moderator; refused while jobs are in flight.
    pub async fn delete_worker(&self, viewer: i64, id: &str) -> Result<wire_workers::DeletedWorker> {
        let id = Self::parse_worker_id(id)?;
        self.ensure_worker(&id).await?;
        let moderator = self.is_moderator(viewer);
        let name = {
            let s = self.synced().await?;
            let w = s.workers.get(&id).ok_or_else(|| HordeError::WorkerNotFound(id.to_string()))?;
            if w.owner_id != viewer && !moderator {
                return Err(HordeError::NotOwner);
            }
            if w.in_flight > 0 {
                return Err(HordeError::Locked);
            }
            w.name.clone()
        };
        self.store.delete_worker(&id).await?;
        self.run(HordeOp::DeleteWorker { id }).await?;
        Ok(wire_workers::DeletedWorker {
            deleted_id: id.to_string(),
            deleted_name: name,
        })
    }

    // ----- status and duties ---------------------------------------------------------------

    pub async fn image_models(&self) -> Result<Vec<wire_status::ActiveModel>> {
        let now = self.now_ms();
        Ok(self.synced().await?.image_models(now))
    }

    pub async fn text_models(&self) -> Result<Vec<wire_status::ActiveModel>> {
        let now = self.now_ms();
        Ok(self.synced().await?.text_models(now))
    }

    pub async fn performance(&self) -> Result<wire_status::Performance> {
        let now = self.now_ms();
        Ok(self.synced().await?.performance(now))
    }

    /// Times out stale jobs and forgets expired requests (with a shared state, one process at a
    /// time does this for all: see `lease`).
    pub async fn reap(&self) -> Result<ReapReport> {
        let now = self.now_ms();
        expect!(self.run(HordeOp::Reap { now }).await?, OpValue::Reaped)
    }

    /// Whether storage answers (the database, and the shared state's Redis when there is one).
    pub async fn storage_ok(&self) -> bool {
        self.store.ping().await && self.replica.sync().await.is_ok()
    }
}

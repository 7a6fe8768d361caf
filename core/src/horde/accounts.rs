//! Accounts: authentication, registration, test-mode users, profiles, roles and transfers.

use horde_protocol::users as wire_users;
use uuid::Uuid;

use super::Horde;
use crate::accounts::api_key::generate_api_key;
use crate::accounts::deletion::Deletion;
use crate::accounts::{parse_user_reference, validate_username, TestRoles, User, ANONYMOUS_USER_ID};
use crate::horde_ops::op;
use crate::kudos::transfer_keys::validate_key;
use crate::kudos::{to_centikudos, to_kudos};
use crate::safety::suspicion::{self, Suspicion};
use crate::store::NewUser;
use crate::{HordeError, Result};

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

impl Horde {
    /// Loads an account into memory if needed. Returns whether it exists.
    pub(super) async fn ensure_user(&self, id: i64) -> Result<bool> {
        if self.local().users.contains(id) {
            return Ok(true);
        }
        match self.store.user_by_id(id).await? {
            Some(user) => {
                self.run(op::LoadUser { user, key: None }).await?;
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
        self.run(op::LoadUser { user, key: Some(hash) }).await?;
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
        let op = op::NewAccount {
            user,
            key: hash,
            kudos: to_centikudos(spec.kudos),
            now,
        };
        let user = self.run(op).await?;
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
            self.run(op::SuspectUser {
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
                let op = op::RefreshTestUser {
                    id,
                    key: hash,
                    kudos: to_centikudos(kudos),
                    roles: TestRoles {
                        username,
                        moderator,
                        trusted,
                    },
                    now,
                };
                let profile = self.run(op).await?;
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

    pub(super) fn is_moderator(&self, id: i64) -> bool {
        self.local().users.get(id).is_some_and(|u| u.moderator)
    }

    pub(super) async fn require_moderator(&self, viewer: i64) -> Result<()> {
        self.ensure_user(viewer).await?;
        if self.is_moderator(viewer) {
            Ok(())
        } else {
            Err(HordeError::NotModerator)
        }
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
        if !by_age && self.store.journal_unfolded() {
            // Committed movements wait in the journal; the order by balance needs them folded.
            self.store.fold_journal().await?;
        }
        let users = self.store.list_users(page, by_age).await?;
        let now_secs = (self.now_ms() / 1000) as i64;
        let s = self.synced().await?;
        // Memory holds movements not yet stored: the page shows (and is ordered by) them.
        let mut users: Vec<User> = users.into_iter().map(|u| s.users.get(u.id).cloned().unwrap_or(u)).collect();
        if !by_age {
            users.sort_by_key(|u| (std::cmp::Reverse(u.kudos), u.id));
        }
        Ok(users.into_iter().map(|u| u.details(false, vec![], vec![], now_secs)).collect())
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
        let self_fields = m.username.is_some() || m.public_workers.is_some() || m.contact.is_some() || m.undelete.is_some();
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
        if let Some(contact) = &m.contact {
            crate::safety::profanity::check(contact, "ProfaneUserContact", "contact")?;
        }
        for s in [&m.contact, &m.admin_comment].into_iter().flatten() {
            if s.contains('\0') || s.chars().count() > 500 {
                return Err(HordeError::Validation(
                    "contact and admin_comment may be at most 500 characters.".into(),
                ));
            }
        }
        let now = self.now_ms();
        let kudos_changed = m.kudos.is_some();
        let (resp, profile) = *self
            .run(op::ModifyUser {
                id,
                changes: m,
                username,
                now,
            })
            .await?;
        self.store.update_user_profile(&profile).await?;
        if kudos_changed {
            self.commit().await?;
        }
        Ok(resp)
    }

    /// `DELETE /users/{id}` (`accounts::deletion`): the account's own request or a moderator's;
    /// moderators' accounts cannot be deleted.
    pub async fn delete_user(&self, viewer: i64, id: i64) -> Result<Deletion> {
        if viewer == ANONYMOUS_USER_ID || id == ANONYMOUS_USER_ID {
            return Err(HordeError::AnonForbidden);
        }
        if !self.ensure_user(id).await? {
            return Err(HordeError::UserNotFound(id.to_string()));
        }
        if viewer != id && !self.is_moderator(viewer) {
            return Err(HordeError::NotModerator);
        }
        if self.is_moderator(id) {
            return Err(HordeError::forbidden(
                "DeleteModerator",
                "A moderator's account cannot be deleted; take the role away first.",
            ));
        }
        let now = self.now_ms();
        let (deletion, user) = *self.run(op::DeleteUser { id, now }).await?;
        match deletion {
            Deletion::Marked => self.store.update_user_profile(&user).await?,
            Deletion::Pending { .. } => {}
            Deletion::Wiped => {
                for worker in self.store.worker_ids_of(id).await? {
                    self.store.delete_worker(&worker).await?;
                    self.run(op::DeleteWorker { id: worker }).await?;
                }
                self.store.wipe_user(&user).await?;
            }
        }
        Ok(deletion)
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
        let op = op::Transfer {
            from,
            to: to_id,
            amount,
            key: key.map(str::to_string),
            now,
        };
        let cents = self.run(op).await?;
        self.commit().await?;
        Ok(to_kudos(cents))
    }
}

//! Changes to accounts in memory: loading and creating them, roles, limits and balances set by
//! moderators (or test mode), suspicions, and kudos transfers (once per idempotency key).

use horde_protocol::users::{ModifyUser, ModifyUserResponse};

use super::api_key::ApiKeyHash;
use super::User;
use crate::kudos::transfer_keys::TransferKey;
use crate::kudos::{to_centikudos, to_kudos, Centikudos};
use crate::safety::suspicion::Suspicion;
use crate::state::State;
use crate::{HordeError, Result};

/// Name and roles test mode gives an account.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TestRoles {
    pub username: String,
    pub moderator: bool,
    pub trusted: bool,
}

impl State {
    /// Keeps an account read from storage, unless it is already in memory.
    pub fn load_user(&mut self, user: User, key: Option<ApiKeyHash>) -> Result<()> {
        self.users.insert_loaded(user, key);
        Ok(())
    }

    /// A new account with its starting balance.
    pub fn new_account(&mut self, user: User, key: ApiKeyHash, kudos: Centikudos, now_ms: u64) -> Result<User> {
        let id = user.id;
        self.users.insert_loaded(user, Some(key));
        self.ledger.admin_adjust(&mut self.users, id, kudos, now_ms)?;
        self.users.get(id).cloned().ok_or_else(|| HordeError::UserNotFound(id.to_string()))
    }

    /// Notes a suspicion against an account.
    pub fn suspect_user(&mut self, id: i64, why: Suspicion) -> Result<()> {
        if let Some(u) = self.users.get_mut(id) {
            u.suspicions.add(why);
        }
        Ok(())
    }

    /// Test mode: a new key, name, roles and balance for an existing account.
    pub fn refresh_test_user(&mut self, id: i64, key: ApiKeyHash, kudos: Centikudos, roles: TestRoles, now_ms: u64) -> Result<User> {
        self.users.set_key(id, key);
        let current = self.users.get(id).map(|u| u.kudos).unwrap_or(0);
        self.ledger.admin_adjust(&mut self.users, id, kudos - current, now_ms)?;
        let u = self.users.get_mut(id).ok_or_else(|| HordeError::UserNotFound(id.to_string()))?;
        u.username = roles.username;
        u.moderator = roles.moderator;
        u.trusted = roles.trusted;
        Ok(u.clone())
    }

    /// `PUT /users/{id}`, once allowed and validated: sets what `m` gives (a new balance through
    /// the ledger). Answers what changed and the account as it now is.
    pub fn modify_user(
        &mut self,
        id: i64,
        m: ModifyUser,
        username: Option<String>,
        now_ms: u64,
    ) -> Result<Box<(ModifyUserResponse, User)>> {
        let mut resp = ModifyUserResponse::default();
        if let Some(k) = m.kudos {
            self.ledger.admin_adjust(&mut self.users, id, to_centikudos(k), now_ms)?;
        }
        let u = self.users.get_mut(id).ok_or_else(|| HordeError::UserNotFound(id.to_string()))?;
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
        if m.undelete == Some(true) && u.deleted_secs.take().is_some() {
            resp.undelete = Some(true);
        }
        Ok(Box::new((resp, u.clone())))
    }

    /// A kudos transfer. Under a `key` the sender used in the last day, that transfer's answer
    /// again, and nothing moves.
    pub fn transfer(&mut self, from: i64, to: i64, amount: f64, key: Option<String>, now_ms: u64) -> Result<Centikudos> {
        if let Some(first) = key.as_deref().and_then(|k| self.transfer_keys.get(from, k)) {
            return first.replay(to, amount);
        }
        self.users.check_not_deleted(from)?;
        self.users.check_not_deleted(to)?;
        let transferred = self.ledger.transfer(&mut self.users, from, to, amount, now_ms)?;
        if let Some(key) = key {
            let record = TransferKey {
                from,
                key,
                to,
                transferred,
                at_ms: now_ms,
            };
            self.transfer_keys.insert(record.clone());
            self.pending.transfer_keys.push(record);
        }
        Ok(transferred)
    }
}

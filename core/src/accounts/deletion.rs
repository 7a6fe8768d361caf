//! Deleting an account (`DELETE /users/{id}`), as the public horde does it in two steps.
//!
//! The first deletion (the account's own request, or a moderator's; moderators' accounts cannot
//! be deleted) marks the account deleted: it may no longer request generations, run workers or
//! send or receive kudos (403 `DeletedUser`), and `PUT /users/{id}` with `undelete` takes it back.
//! A deletion asked again once the account has stayed deleted for 30 days wipes it: its name
//! becomes `<wiped>`, its sign-in identity, contact and API key are dropped, and its workers and
//! shared keys are deleted. Its balance, its kudos history and its counters stay (as anonymous
//! figures, so the kudos the horde holds still add up); nothing else about it is kept.

use super::{User, Users};
use crate::state::State;
use crate::{HordeError, Result};

/// How long an account stays deleted before a deletion asked again wipes it.
pub const WIPE_AFTER_SECS: i64 = 30 * 86_400;
/// The name of a wiped account.
pub const WIPED_NAME: &str = "<wiped>";

/// What a deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Deletion {
    /// Marked deleted now.
    Marked,
    /// Deleted already; wiped by a deletion asked again in this many seconds.
    Pending { wipe_in_secs: i64 },
    /// Wiped.
    Wiped,
}

/// 403 `DeletedUser`: what a deleted account may no longer do.
pub fn deleted_user() -> HordeError {
    HordeError::forbidden(
        "DeletedUser",
        "This account is marked deleted. Its owner can take that back with PUT /users/{id} and undelete: true.",
    )
}

impl Users {
    /// Refuses a deleted account (`DeletedUser`).
    pub fn check_not_deleted(&self, id: i64) -> Result<()> {
        match self.get(id) {
            Some(u) if u.deleted_secs.is_some() => Err(deleted_user()),
            _ => Ok(()),
        }
    }
}

impl State {
    /// Marks `id` deleted at `now_ms`, or wipes it when it has been deleted for 30 days (see the
    /// module). The workers and shared keys of a wiped account are the caller's to delete.
    pub fn delete_user(&mut self, id: i64, now_ms: u64) -> Result<Box<(Deletion, User)>> {
        let now = (now_ms / 1000) as i64;
        let u = self.users.get_mut(id).ok_or_else(|| HordeError::UserNotFound(id.to_string()))?;
        let deletion = match u.deleted_secs {
            None => {
                u.deleted_secs = Some(now);
                Deletion::Marked
            }
            Some(at) if now - at < WIPE_AFTER_SECS => Deletion::Pending {
                wipe_in_secs: WIPE_AFTER_SECS - (now - at),
            },
            Some(_) => {
                u.username = WIPED_NAME.into();
                u.oauth_id = format!("wiped:{id}");
                u.contact = None;
                u.admin_comment = None;
                u.public_workers = false;
                Deletion::Wiped
            }
        };
        let user = u.clone();
        if deletion == Deletion::Wiped {
            self.users.drop_key(id);
        }
        Ok(Box::new((deletion, user)))
    }
}

impl Users {
    /// Forgets `id`'s API key: no key signs in as it any more.
    pub fn drop_key(&mut self, id: i64) {
        if let Some(old) = self.key_of.remove(&id) {
            self.by_key.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::api_key;
    use crate::config::HordeConfig;
    use crate::kudos::KudosLedger;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn deletion_marks_then_wipes_after_thirty_days() {
        let mut s = State::new(
            HordeConfig::default(),
            KudosLedger::default(),
            crate::kudos::image_model::KudosModel::shipped().expect("kudos model"),
        );
        let key = api_key::ApiKeyHasher::new(b"secret".to_vec()).hash("the-key");
        let mut u = User::new(7, "alice", "oauth-alice");
        u.contact = Some("alice@example.com".into());
        s.users.insert_loaded(u, Some(key));
        assert!(s.users.check_not_deleted(7).is_ok());
        let (d, u) = *s.delete_user(7, T0).expect("marked");
        assert_eq!((d, u.deleted_secs), (Deletion::Marked, Some((T0 / 1000) as i64)));
        assert_eq!(s.users.check_not_deleted(7).err().map(|e| e.rc()), Some("DeletedUser"));
        let (d, _) = *s.delete_user(7, T0 + 86_400_000).expect("pending");
        assert_eq!(
            d,
            Deletion::Pending {
                wipe_in_secs: WIPE_AFTER_SECS - 86_400
            }
        );
        assert_eq!(s.users.by_key(&key), Some(7), "the key still signs in, to undelete");
        let (d, u) = *s.delete_user(7, T0 + WIPE_AFTER_SECS as u64 * 1000).expect("wiped");
        assert_eq!(d, Deletion::Wiped);
        assert_eq!((u.username.as_str(), u.contact.as_deref()), (WIPED_NAME, None));
        assert_ne!(u.oauth_id, "oauth-alice");
        assert_eq!(s.users.by_key(&key), None, "no key signs in as a wiped account");
    }
}

//! Users: identity, roles, balances and the cache of accounts the horde has seen.

pub mod api_key;
pub mod changes;
pub mod deletion;

use std::collections::HashMap;

use horde_protocol::users as wire;

use crate::kudos::{to_kudos, Centikudos};

pub use changes::TestRoles;

/// Id of the anonymous user.
pub const ANONYMOUS_USER_ID: i64 = 0;

/// Kudos earned or spent, by kind. Each bucket is the signed sum of the balance changes of that
/// kind, so the buckets always add up to the balance.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KudosBuckets {
    pub accumulated: Centikudos,
    pub gifted: Centikudos,
    pub received: Centikudos,
    pub admin: Centikudos,
    pub awarded: Centikudos,
}

impl KudosBuckets {
    pub fn total(&self) -> Centikudos {
        self.accumulated + self.gifted + self.received + self.admin + self.awarded
    }
}

/// Counters of what a user asked for and contributed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRecords {
    pub usage_tokens: i64,
    pub requests_text: i64,
    pub contribution_tokens: i64,
    pub fulfilled_text: i64,
    /// Thousands of pixelsteps asked for.
    pub usage_kps: i64,
    pub requests_image: i64,
    /// Thousands of pixelsteps generated.
    pub contribution_kps: i64,
    pub fulfilled_image: i64,
}

impl UserRecords {
    /// Adds another set of counts.
    pub fn add(&mut self, o: &UserRecords) {
        self.usage_tokens += o.usage_tokens;
        self.requests_text += o.requests_text;
        self.contribution_tokens += o.contribution_tokens;
        self.fulfilled_text += o.fulfilled_text;
        self.usage_kps += o.usage_kps;
        self.requests_image += o.requests_image;
        self.contribution_kps += o.contribution_kps;
        self.fulfilled_image += o.fulfilled_image;
    }
}

/// An account as the horde keeps it in memory.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub oauth_id: String,
    pub created_secs: i64,
    pub kudos: Centikudos,
    pub buckets: KudosBuckets,
    pub records: UserRecords,
    pub moderator: bool,
    pub trusted: bool,
    pub flagged: bool,
    pub pseudonymous: bool,
    pub concurrency: i64,
    pub worker_invited: i64,
    pub public_workers: bool,
    pub contact: Option<String>,
    pub admin_comment: Option<String>,
    /// When the account was marked deleted (seconds since the epoch); `None` while it is not.
    pub deleted_secs: Option<i64>,
    /// Held in memory only; a restart forgets them, like the IP timeouts.
    pub suspicions: crate::safety::Suspicions,
}

impl User {
    /// Suspicious and not trusted: no kudos transfers either way.
    pub fn is_suspicious(&self) -> bool {
        self.suspicions.is_suspicious() && !self.trusted
    }

    /// A fresh account: no kudos, no roles, the default concurrency.
    pub fn new(id: i64, username: impl Into<String>, oauth_id: impl Into<String>) -> Self {
        Self {
            id,
            username: username.into(),
            oauth_id: oauth_id.into(),
            created_secs: 0,
            kudos: 0,
            buckets: KudosBuckets::default(),
            records: UserRecords::default(),
            moderator: false,
            trusted: false,
            flagged: false,
            pseudonymous: false,
            concurrency: crate::config::DEFAULT_CONCURRENCY,
            worker_invited: 0,
            public_workers: false,
            contact: None,
            admin_comment: None,
            deleted_secs: None,
            suspicions: crate::safety::Suspicions::default(),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.id == ANONYMOUS_USER_ID
    }

    /// `alias#id`, the form users are shown and addressed by.
    pub fn display_name(&self) -> String {
        format!("{}#{}", self.username, self.id)
    }

    /// Lowest balance a charge may leave: anonymous −50, pseudonymous 14, others 25.
    pub fn kudos_floor(&self) -> Centikudos {
        if self.is_anonymous() {
            -5000
        } else if self.pseudonymous {
            1400
        } else {
            2500
        }
    }

    /// Kudos the user may give away: what is above the floor.
    pub fn available_kudos(&self) -> Centikudos {
        (self.kudos - self.kudos_floor()).max(0)
    }

    /// The wire view. `privileged`: the user themself or a moderator.
    pub fn details(&self, privileged: bool, worker_ids: Vec<String>, active_text: Vec<String>, now_secs: i64) -> wire::UserDetails {
        let show_workers = privileged || self.public_workers;
        wire::UserDetails {
            username: self.display_name(),
            id: self.id,
            kudos: to_kudos(self.kudos),
            kudos_details: wire::KudosDetails {
                accumulated: to_kudos(self.buckets.accumulated),
                gifted: to_kudos(self.buckets.gifted),
                donated: 0.0,
                admin: to_kudos(self.buckets.admin),
                received: to_kudos(self.buckets.received),
                recurring: 0.0,
                awarded: to_kudos(self.buckets.awarded),
                styled: 0.0,
            },
            records: wire::UserRecords {
                usage: wire::ThingRecords {
                    megapixelsteps: self.records.usage_kps as f64 / 1000.0,
                    tokens: self.records.usage_tokens,
                },
                contribution: wire::ThingRecords {
                    megapixelsteps: self.records.contribution_kps as f64 / 1000.0,
                    tokens: self.records.contribution_tokens,
                },
                fulfillment: wire::AmountRecords {
                    image: self.records.fulfilled_image,
                    text: self.records.fulfilled_text,
                    interrogation: 0,
                },
                request: wire::AmountRecords {
                    image: self.records.requests_image,
                    text: self.records.requests_text,
                    interrogation: 0,
                },
            },
            concurrency: self.concurrency,
            worker_invited: self.worker_invited,
            moderator: self.moderator,
            trusted: self.trusted,
            flagged: self.flagged,
            deleted: self.deleted_secs.is_some(),
            pseudonymous: self.pseudonymous,
            worker_count: worker_ids.len() as i64,
            account_age: (now_secs - self.created_secs).max(0),
            worker_ids: show_workers.then_some(worker_ids),
            contact: if privileged { self.contact.clone() } else { None },
            active_generations: privileged.then(|| wire::ActiveGenerations {
                text: active_text,
                image: vec![],
                alchemy: vec![],
            }),
            admin_comment: None,
        }
    }
}

/// Parses `alias#id` (only the number after the last `#` counts) or a bare id.
pub fn parse_user_reference(s: &str) -> Option<i64> {
    let tail = s.rsplit('#').next()?.trim();
    tail.parse::<i64>().ok().filter(|id| *id >= 0)
}

/// Checks a username: 1 to 30 characters, no `#`, no control characters and no invisible
/// formatting characters (bidirectional overrides and isolates, zero-width spaces…), which would
/// let a name read as another one.
pub fn validate_username(name: &str) -> Result<String, crate::HordeError> {
    let trimmed = name.trim();
    let n = trimmed.chars().count();
    if n > 30 {
        return Err(crate::HordeError::rejected(
            "TooLongUserName",
            "A username may be at most 30 characters.",
        ));
    }
    crate::safety::profanity::check(trimmed, "ProfaneUserName", "username")?;
    if n == 0 || trimmed.contains('#') || trimmed.chars().any(|c| c.is_control() || is_invisible_format(c)) {
        // The refused name is echoed without the characters that could reorder the message.
        let shown = trimmed.chars().filter(|c| !c.is_control() && !is_invisible_format(*c));
        return Err(crate::HordeError::InvalidUsername(shown.take(40).collect()));
    }
    Ok(trimmed.to_string())
}

/// Invisible characters of Unicode's format category (Cf) that change how the text around them
/// displays: bidirectional marks, embeddings, overrides and isolates, zero-width spaces, word
/// joiners, the byte-order mark, interlinear annotation and tag characters, the soft hyphen.
/// The zero-width joiner and non-joiner (U+200C, U+200D) stay allowed: emoji sequences and
/// several scripts need them.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200E}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// The accounts this process has seen, by id and by key hash. Accounts are loaded from storage on
/// first use and kept; balances here are authoritative while the process runs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Users {
    by_id: HashMap<i64, User>,
    by_key: HashMap<api_key::ApiKeyHash, i64>,
    key_of: HashMap<i64, api_key::ApiKeyHash>,
}

impl Users {
    pub fn get(&self, id: i64) -> Option<&User> {
        self.by_id.get(&id)
    }
    pub fn get_mut(&mut self, id: i64) -> Option<&mut User> {
        self.by_id.get_mut(&id)
    }
    /// Whether the account exists and is trusted.
    pub fn is_trusted(&self, id: i64) -> bool {
        self.get(id).is_some_and(|u| u.trusted)
    }
    pub fn by_key(&self, hash: &api_key::ApiKeyHash) -> Option<i64> {
        self.by_key.get(hash).copied()
    }
    /// Adds an account loaded from storage, unless it is already known (memory wins: it may hold
    /// movements not yet flushed).
    pub fn insert_loaded(&mut self, user: User, key: Option<api_key::ApiKeyHash>) {
        if let Some(k) = key {
            self.set_key(user.id, k);
        }
        self.by_id.entry(user.id).or_insert(user);
    }
    /// Replaces the key of an account (its old key stops working).
    pub fn set_key(&mut self, id: i64, key: api_key::ApiKeyHash) {
        if let Some(old) = self.key_of.insert(id, key) {
            self.by_key.remove(&old);
        }
        self.by_key.insert(key, id);
    }
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.by_id.values()
    }
    pub fn contains(&self, id: i64) -> bool {
        self.by_id.contains_key(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_references() {
        assert_eq!(parse_user_reference("db0#1"), Some(1));
        assert_eq!(parse_user_reference("a#b#42"), Some(42));
        assert_eq!(parse_user_reference("17"), Some(17));
        assert_eq!(parse_user_reference("name"), None);
        assert_eq!(parse_user_reference("x#-3"), None);
    }

    #[test]
    fn usernames() {
        assert_eq!(validate_username("  alice ").ok().as_deref(), Some("alice"));
        assert!(validate_username("").is_err());
        assert!(validate_username("a#b").is_err());
        assert!(validate_username(&"x".repeat(31)).is_err());
    }

    #[test]
    fn usernames_refuse_invisible_formatting() {
        for c in [
            '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            let name = format!("admin{c}nimda");
            match validate_username(&name) {
                Err(crate::HordeError::InvalidUsername(shown)) => assert_eq!(shown, "adminnimda"),
                other => panic!("U+{:04X} accepted: {other:?}", c as u32),
            }
        }
        for c in ['\u{200B}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{FEFF}', '\u{00AD}', '\u{E0041}'] {
            assert!(validate_username(&format!("a{c}b")).is_err(), "U+{:04X} accepted", c as u32);
        }
        // Joiners, accents and other scripts stay allowed.
        for ok in ["👩\u{200D}💻", "Zoë", "Ł\u{0301}ukasz", "محمد", "日本"] {
            assert!(validate_username(ok).is_ok(), "{ok} refused");
        }
    }
}

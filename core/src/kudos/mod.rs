//! Kudos: amounts, the double-entry ledger, and prices.
//!
//! Amounts are whole hundredths of a kudos (`Centikudos`), so sums are exact and conservation can
//! be checked to the last digit.

pub mod image_model;
pub mod image_price;
pub mod ledger;
pub mod text_price;
pub mod transfer_keys;

pub use ledger::{Account, KudosLedger, Posting, PostingKind};

/// Hundredths of a kudos.
pub type Centikudos = i64;

/// Centikudos → kudos, for the wire.
pub fn to_kudos(c: Centikudos) -> f64 {
    c as f64 / 100.0
}

/// Kudos → centikudos, rounded to the nearest hundredth.
pub fn to_centikudos(k: f64) -> Centikudos {
    if k.is_finite() {
        (k * 100.0).round() as i64
    } else {
        0
    }
}

/// What a style's author earns each time another's request uses the style.
pub const STYLE_REWARD: Centikudos = 200;

/// Pays `author` [`STYLE_REWARD`] from the mint for a request of `requester` that used their
/// style (nothing when they are the same account); the author must be loaded. Returns the amount.
pub fn reward_style_author(s: &mut crate::state::State, author: i64, requester: i64, now_ms: u64) -> crate::Result<Centikudos> {
    if author == requester {
        return Ok(0);
    }
    s.ledger.post(
        &mut s.users,
        Account::Mint,
        Account::User(author),
        STYLE_REWARD,
        PostingKind::StyleReward,
        now_ms,
    )?;
    Ok(STYLE_REWARD)
}

/// Awards `cents` from the mint to user `to` (a moderator's `/kudos/award`); the user must be
/// loaded. Returns the amount.
pub fn award(s: &mut crate::state::State, to: i64, cents: Centikudos, now_ms: u64) -> crate::Result<Centikudos> {
    s.ledger
        .post(&mut s.users, Account::Mint, Account::User(to), cents, PostingKind::Award, now_ms)?;
    Ok(cents)
}

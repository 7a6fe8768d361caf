//! The kudos ledger: every balance change is a posting that moves an amount from one account to
//! another. Users are accounts; kudos created (worker rewards) come from the `Mint` account and
//! kudos spent (charges, taxes) go to the `Burn` account, so the sum of all balances, system
//! accounts included, is always zero. Postings are applied to the in-memory balances under the
//! horde's lock (atomic) and queued for storage, where they are written in the same transaction
//! as the balance updates they imply.

use std::collections::HashMap;

use super::Centikudos;
use crate::accounts::{User, Users};
use crate::{HordeError, Result};

/// Who holds kudos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Account {
    User(i64),
    /// Source of every kudos the horde creates (rewards, floor adjustments, admin grants).
    Mint,
    /// Sink of every kudos spent (charges, taxes, admin removals).
    Burn,
}

impl Account {
    /// Storage form: `user:ID`, `mint`, `burn`.
    pub fn key(&self) -> String {
        match self {
            Account::User(id) => format!("user:{id}"),
            Account::Mint => "mint".into(),
            Account::Burn => "burn".into(),
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mint" => Some(Account::Mint),
            "burn" => Some(Account::Burn),
            _ => s.strip_prefix("user:")?.parse().ok().map(Account::User),
        }
    }
}

/// Why kudos moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PostingKind {
    /// 1 kudos per request, also when cancelled or faulted.
    RequestTax,
    /// A finished job: its reward plus 1 tax, scaled by the request's options.
    JobCharge,
    /// A worker's owner paid for a job.
    JobReward,
    /// A worker's owner paid for 10 minutes online.
    UptimeReward,
    /// User to user.
    Transfer,
    /// Set by a moderator or the operator.
    Admin,
    /// A charge would have left the user under their floor; this gives the difference back.
    FloorAdjustment,
    /// Paid for rating images.
    RatingReward,
    /// What a request paid upfront, given back when a restarting horde dropped it unserved.
    Refund,
    /// Awarded by a moderator (`/kudos/award`).
    Award,
    /// Paid to a style's author when another's request uses the style.
    StyleReward,
}

impl PostingKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            PostingKind::RequestTax => "request_tax",
            PostingKind::JobCharge => "job_charge",
            PostingKind::JobReward => "job_reward",
            PostingKind::UptimeReward => "uptime_reward",
            PostingKind::Transfer => "transfer",
            PostingKind::Admin => "admin",
            PostingKind::FloorAdjustment => "floor_adjustment",
            PostingKind::RatingReward => "rating_reward",
            PostingKind::Refund => "refund",
            PostingKind::Award => "award",
            PostingKind::StyleReward => "style_reward",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            PostingKind::RequestTax,
            PostingKind::JobCharge,
            PostingKind::JobReward,
            PostingKind::UptimeReward,
            PostingKind::Transfer,
            PostingKind::Admin,
            PostingKind::FloorAdjustment,
            PostingKind::RatingReward,
            PostingKind::Refund,
            PostingKind::Award,
            PostingKind::StyleReward,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One movement of kudos.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Posting {
    pub from: Account,
    pub to: Account,
    pub amount: Centikudos,
    pub kind: PostingKind,
    pub at_ms: u64,
}

/// Applies a posting's effect on one side to a user's balance and buckets.
pub fn apply_to_user(user: &mut User, kind: PostingKind, delta: Centikudos) {
    user.kudos += delta;
    let b = &mut user.buckets;
    match kind {
        PostingKind::Transfer if delta < 0 => b.gifted += delta,
        PostingKind::Transfer => b.received += delta,
        PostingKind::Admin => b.admin += delta,
        PostingKind::RatingReward | PostingKind::Award | PostingKind::StyleReward => b.awarded += delta,
        _ => b.accumulated += delta,
    }
}

/// System balances, the queue of postings not yet stored, and transfer pacing.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct KudosLedger {
    mint: Centikudos,
    burn: Centikudos,
    pending: Vec<Posting>,
    last_transfer_ms: HashMap<(i64, i64), u64>,
}

impl KudosLedger {
    /// Starts from stored system balances.
    pub fn with_system_balances(mint: Centikudos, burn: Centikudos) -> Self {
        Self {
            mint,
            burn,
            ..Default::default()
        }
    }

    pub fn balance_of(&self, users: &Users, account: Account) -> Option<Centikudos> {
        match account {
            Account::Mint => Some(self.mint),
            Account::Burn => Some(self.burn),
            Account::User(id) => users.get(id).map(|u| u.kudos),
        }
    }

    /// Moves `amount` (> 0) from one account to another. Both users must be loaded.
    pub fn post(
        &mut self,
        users: &mut Users,
        from: Account,
        to: Account,
        amount: Centikudos,
        kind: PostingKind,
        now_ms: u64,
    ) -> Result<()> {
        if amount <= 0 {
            return Ok(());
        }
        for acct in [from, to] {
            if let Account::User(id) = acct {
                if !users.contains(id) {
                    return Err(HordeError::Internal(format!("account of user {id} is not loaded")));
                }
            }
        }
        self.adjust(users, from, -amount, kind);
        self.adjust(users, to, amount, kind);
        self.pending.push(Posting {
            from,
            to,
            amount,
            kind,
            at_ms: now_ms,
        });
        Ok(())
    }

    fn adjust(&mut self, users: &mut Users, account: Account, delta: Centikudos, kind: PostingKind) {
        match account {
            Account::Mint => self.mint += delta,
            Account::Burn => self.burn += delta,
            Account::User(id) => {
                if let Some(u) = users.get_mut(id) {
                    apply_to_user(u, kind, delta);
                }
            }
        }
    }

    /// Charges a user `amount`, burning it. If that would leave them under their floor, the
    /// difference is given back by a floor adjustment, so a balance never drops below its floor
    /// because of a charge (and never changes at all if it already is below). Returns the amount
    /// charged (what the request consumed).
    pub fn charge(&mut self, users: &mut Users, user_id: i64, amount: Centikudos, kind: PostingKind, now_ms: u64) -> Result<Centikudos> {
        let (balance, floor) = match users.get(user_id) {
            Some(u) => (u.kudos, u.kudos_floor()),
            None => return Err(HordeError::Internal(format!("account of user {user_id} is not loaded"))),
        };
        if amount <= 0 {
            return Ok(0);
        }
        self.post(users, Account::User(user_id), Account::Burn, amount, kind, now_ms)?;
        let after = balance - amount;
        let allowed = floor.min(balance);
        if after < allowed {
            self.post(
                users,
                Account::Mint,
                Account::User(user_id),
                allowed - after,
                PostingKind::FloorAdjustment,
                now_ms,
            )?;
        }
        Ok(amount)
    }

    /// Pays a user `amount` of newly created kudos.
    pub fn reward(&mut self, users: &mut Users, user_id: i64, amount: Centikudos, kind: PostingKind, now_ms: u64) -> Result<()> {
        self.post(users, Account::Mint, Account::User(user_id), amount, kind, now_ms)
    }

    /// Sets a user's balance change by a moderator: positive grants, negative removes.
    pub fn admin_adjust(&mut self, users: &mut Users, user_id: i64, delta: Centikudos, now_ms: u64) -> Result<()> {
        if delta >= 0 {
            self.post(users, Account::Mint, Account::User(user_id), delta, PostingKind::Admin, now_ms)
        } else {
            self.post(users, Account::User(user_id), Account::Burn, -delta, PostingKind::Admin, now_ms)
        }
    }

    /// User-to-user transfer with the public horde's rules. `amount` in whole kudos.
    pub fn transfer(&mut self, users: &mut Users, from: i64, to: i64, amount: f64, now_ms: u64) -> Result<Centikudos> {
        if amount < 0.0 {
            return Err(HordeError::rejected(
                "NegativeKudosTransfer",
                "A transfer amount cannot be negative.",
            ));
        }
        if !amount.is_finite() || amount <= 0.0 || amount.fract() != 0.0 || amount > 1e12 {
            return Err(HordeError::InvalidKudosTransferAmount);
        }
        let cents = (amount as i64) * 100;
        let src = users.get(from).ok_or_else(|| HordeError::UserNotFound(from.to_string()))?;
        let dst = users.get(to).ok_or_else(|| HordeError::UserNotFound(to.to_string()))?;
        if src.is_anonymous() {
            return Err(HordeError::KudosTransferFromAnon);
        }
        if dst.is_anonymous() {
            return Err(HordeError::KudosTransferToAnon);
        }
        if from == to {
            return Err(HordeError::KudosTransferToSelf);
        }
        // The public horde's rc names for each side.
        if src.flagged {
            return Err(HordeError::SourceAccountFlagged);
        }
        if dst.flagged {
            return Err(HordeError::forbidden(
                "TargetAccountFlagged",
                "The receiving account is flagged and cannot receive kudos.",
            ));
        }
        if src.is_suspicious() {
            return Err(HordeError::forbidden(
                "FaultWhenKudosSending",
                "This account is under review for suspicious activity and cannot send kudos.",
            ));
        }
        if dst.is_suspicious() {
            return Err(HordeError::forbidden(
                "FaultWhenKudosReceiving",
                "The receiving account is under review for suspicious activity and cannot receive kudos.",
            ));
        }
        if let Some(t) = self.last_transfer_ms.get(&(to, from)) {
            if now_ms.saturating_sub(*t) < 60_000 {
                return Err(HordeError::TooFastKudosTransfers);
            }
        }
        if src.available_kudos() < cents {
            return Err(HordeError::KudosTransferNotEnough {
                available: super::to_kudos(src.available_kudos()),
                floor: super::to_kudos(src.kudos_floor()),
            });
        }
        self.post(users, Account::User(from), Account::User(to), cents, PostingKind::Transfer, now_ms)?;
        self.last_transfer_ms.insert((from, to), now_ms);
        Ok(cents)
    }

    /// System account balances (mint, burn).
    pub fn system_balances(&self) -> (Centikudos, Centikudos) {
        (self.mint, self.burn)
    }

    /// Postings applied in memory but not yet stored.
    pub fn take_pending(&mut self) -> Vec<Posting> {
        std::mem::take(&mut self.pending)
    }

    /// Puts back postings whose storage failed, ahead of newer ones.
    pub fn restore_pending(&mut self, mut postings: Vec<Posting>) {
        postings.append(&mut self.pending);
        self.pending = postings;
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::KudosBuckets;

    pub(crate) fn user(id: i64, kudos: Centikudos, pseudonymous: bool) -> User {
        User {
            kudos,
            buckets: KudosBuckets {
                admin: kudos,
                ..Default::default()
            },
            pseudonymous,
            ..User::new(id, format!("u{id}"), format!("o{id}"))
        }
    }

    fn users(list: Vec<User>) -> Users {
        let mut u = Users::default();
        for x in list {
            u.insert_loaded(x, None);
        }
        u
    }

    fn total(ledger: &KudosLedger, users: &Users) -> Centikudos {
        let (m, b) = ledger.system_balances();
        users.iter().map(|u| u.kudos).sum::<Centikudos>() + m + b
    }

    #[test]
    fn charge_burns_and_respects_floor() {
        let mut us = users(vec![
            user(1, 10_000, false),
            user(2, 3_000, false),
            user(3, 1_000, false),
            user(0, 0, false),
        ]);
        let start = total(&KudosLedger::default(), &us);
        let mut l = KudosLedger::default();
        assert_eq!(l.charge(&mut us, 1, 2_000, PostingKind::JobCharge, 0).ok(), Some(2_000));
        assert_eq!(us.get(1).map(|u| u.kudos), Some(8_000));
        // 30 kudos, floor 25, charge 10 → stays at 25.
        l.charge(&mut us, 2, 1_000, PostingKind::JobCharge, 0).ok();
        assert_eq!(us.get(2).map(|u| u.kudos), Some(2_500));
        // Already under the floor: unchanged.
        l.charge(&mut us, 3, 500, PostingKind::JobCharge, 0).ok();
        assert_eq!(us.get(3).map(|u| u.kudos), Some(1_000));
        // Anonymous floors at -50.
        l.charge(&mut us, 0, 9_000, PostingKind::RequestTax, 0).ok();
        assert_eq!(us.get(0).map(|u| u.kudos), Some(-5_000));
        assert_eq!(total(&l, &us), start);
        // Buckets always add up to the balance.
        for u in us.iter() {
            assert_eq!(u.buckets.total(), u.kudos, "user {}", u.id);
        }
    }

    #[test]
    fn pseudonymous_floor_is_14() {
        let mut us = users(vec![user(5, 2_000, true)]);
        let mut l = KudosLedger::default();
        l.charge(&mut us, 5, 1_000, PostingKind::JobCharge, 0).ok();
        assert_eq!(us.get(5).map(|u| u.kudos), Some(1_400));
    }

    #[test]
    fn transfer_rules() {
        let mut us = users(vec![user(0, 0, false), user(1, 10_000, false), user(2, 5_000, false)]);
        let mut l = KudosLedger::default();
        let rc = |r: Result<Centikudos>| r.err().map(|e| e.rc());
        assert_eq!(rc(l.transfer(&mut us, 0, 1, 5.0, 0)), Some("KudosTransferFromAnon"));
        assert_eq!(rc(l.transfer(&mut us, 1, 0, 5.0, 0)), Some("KudosTransferToAnon"));
        assert_eq!(rc(l.transfer(&mut us, 1, 1, 5.0, 0)), Some("KudosTransferToSelf"));
        assert_eq!(rc(l.transfer(&mut us, 1, 2, -5.0, 0)), Some("NegativeKudosTransfer"));
        assert_eq!(rc(l.transfer(&mut us, 1, 2, 0.0, 0)), Some("InvalidKudosTransferAmount"));
        assert_eq!(rc(l.transfer(&mut us, 1, 2, 1.5, 0)), Some("InvalidKudosTransferAmount"));
        // 100 kudos, floor 25: 75 available.
        assert_eq!(rc(l.transfer(&mut us, 1, 2, 76.0, 0)), Some("KudosTransferNotEnough"));
        assert_eq!(l.transfer(&mut us, 1, 2, 75.0, 0).ok(), Some(7_500));
        assert_eq!(us.get(1).map(|u| u.kudos), Some(2_500));
        assert_eq!(us.get(2).map(|u| u.kudos), Some(12_500));
        assert_eq!(us.get(1).map(|u| u.buckets.gifted), Some(-7_500));
        assert_eq!(us.get(2).map(|u| u.buckets.received), Some(7_500));
        // The receiver cannot send back within a minute.
        assert_eq!(rc(l.transfer(&mut us, 2, 1, 5.0, 30_000)), Some("TooFastKudosTransfers"));
        assert_eq!(l.transfer(&mut us, 2, 1, 5.0, 61_000).ok(), Some(500));
        // Flagged accounts neither send nor receive.
        if let Some(u) = us.get_mut(2) {
            u.flagged = true;
        }
        assert_eq!(rc(l.transfer(&mut us, 1, 2, 1.0, 200_000)), Some("TargetAccountFlagged"));
        assert_eq!(rc(l.transfer(&mut us, 2, 1, 1.0, 200_000)), Some("SourceAccountFlagged"));
        assert_eq!(l.take_pending().len(), 2);
    }

    #[test]
    fn accounts_round_trip_through_their_keys() {
        for a in [Account::User(7), Account::Mint, Account::Burn] {
            assert_eq!(Account::parse(&a.key()), Some(a));
        }
        assert_eq!(PostingKind::parse("job_reward"), Some(PostingKind::JobReward));
    }
}

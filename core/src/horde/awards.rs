//! `Horde`'s kudos awards (`POST /kudos/award`): moderators (this horde's admins) award kudos
//! from the mint to an account, into its `awarded` bucket.

use super::Horde;
use crate::accounts::parse_user_reference;
use crate::horde_ops::op;
use crate::kudos::{to_centikudos, to_kudos};
use crate::{HordeError, Result};

/// Most kudos one award gives.
const MAX_AWARD: f64 = 10_000_000.0;

impl Horde {
    /// Awards `amount` kudos (default 100) to `username` (`name#id`). Returns the kudos awarded.
    pub async fn award_kudos(&self, viewer: i64, username: &str, amount: Option<f64>) -> Result<f64> {
        self.ensure_user(viewer).await?;
        if !self.is_moderator(viewer) {
            return Err(HordeError::forbidden("NotAllowedAwards", "Only moderators can award kudos."));
        }
        let invalid = || HordeError::rejected("InvalidAwardUsername", "Invalid target username.");
        let to = parse_user_reference(username).ok_or_else(invalid)?;
        if !self.ensure_user(to).await? {
            return Err(invalid());
        }
        if to == crate::accounts::ANONYMOUS_USER_ID {
            return Err(HordeError::rejected("KudosAwardToAnon", "Cannot award anon. No go."));
        }
        let amount = amount.unwrap_or(100.0);
        if !amount.is_finite() || amount <= 0.0 || amount > MAX_AWARD {
            return Err(HordeError::Validation(format!("amount must be above 0 and at most {MAX_AWARD}.")));
        }
        let now = self.now_ms();
        let cents = self
            .run(op::AwardKudos {
                to,
                cents: to_centikudos(amount),
                now,
            })
            .await?;
        self.commit().await?;
        Ok(to_kudos(cents))
    }
}

//! Shared keys: an account's keys that others use as `apikey` to generate on its kudos, within
//! the key's kudos limit (`kudos`, -1 for none) and per-job limits (image pixels and steps, text
//! tokens), until it expires.
//!
//! Requests made with a shared key are the owner's requests: the owner pays for them as for
//! their own, so no kudos move that would not otherwise. The key only counts what it spent.
//! Keys live in the database, which every process of a horde shares.

use horde_protocol::shared_keys as wire;

use crate::{HordeError, Result};

/// Most kudos a key may be given.
pub const MAX_KUDOS: i64 = 50_000_000;
/// Most pixels per job a key may allow.
pub const MAX_IMAGE_PIXELS: i64 = 4_194_304;
/// Most image steps, and most text tokens, per job a key may allow.
pub const MAX_STEPS_OR_TOKENS: i64 = 500;
/// Kudos a new key gets when none is given.
pub const DEFAULT_KUDOS: i64 = 5000;

/// A stored shared key.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedKey {
    pub id: String,
    pub user_id: i64,
    /// The owner as `name#id` (read with the key).
    pub username: String,
    pub name: Option<String>,
    pub kudos: i64,
    pub utilized: i64,
    pub expiry_ms: Option<i64>,
    pub created_ms: i64,
    pub max_image_pixels: i64,
    pub max_image_steps: i64,
    pub max_text_tokens: i64,
}

impl SharedKey {
    /// `SharedKeyEmpty` or `SharedKeyExpired` (403) when the key can no longer be used.
    pub fn check_usable(&self, now_ms: u64) -> Result<()> {
        if self.kudos == 0 {
            return Err(HordeError::forbidden("SharedKeyEmpty", "This shared key has run out of kudos."));
        }
        if self.expiry_ms.is_some_and(|e| e < now_ms as i64) {
            return Err(HordeError::forbidden("SharedKeyExpired", "This shared key has expired"));
        }
        Ok(())
    }

    /// The key's per-job limits for an image job (400, as the public horde answers).
    pub fn check_image_job(&self, pixels: i64, steps: i64) -> Result<()> {
        if self.max_image_pixels > -1 && pixels > self.max_image_pixels {
            return Err(HordeError::rejected(
                "BadRequest",
                format!(
                    "This shared key is limited to {} pixels per job. You requested {pixels} pixels.",
                    self.max_image_pixels
                ),
            ));
        }
        if self.max_image_steps > -1 && steps > self.max_image_steps {
            return Err(HordeError::rejected(
                "BadRequest",
                format!(
                    "This shared key is limited to {} steps per job. You requested {steps} steps.",
                    self.max_image_steps
                ),
            ));
        }
        Ok(())
    }

    /// The key's per-job limit for a text job.
    pub fn check_text_job(&self, tokens: i64) -> Result<()> {
        if self.max_text_tokens > -1 && tokens > self.max_text_tokens {
            return Err(HordeError::rejected(
                "BadRequest",
                format!(
                    "This shared key is limited to {} tokens per job. You requested {tokens} tokens.",
                    self.max_text_tokens
                ),
            ));
        }
        Ok(())
    }

    /// `SharedKeyInsufficientKudos` (403) when a request's price exceeds what the key may spend.
    pub fn check_price(&self, price: f64) -> Result<()> {
        if self.kudos != -1 && price > self.kudos as f64 {
            return Err(HordeError::forbidden(
                "SharedKeyInsufficientKudos",
                format!(
                    "This shared key does not have enough remaining kudos ({}) to fulfill this request ({price}).",
                    self.kudos
                ),
            ));
        }
        Ok(())
    }

    pub fn details(&self) -> wire::SharedKeyDetails {
        wire::SharedKeyDetails {
            id: self.id.clone(),
            username: self.username.clone(),
            name: self.name.clone(),
            kudos: self.kudos,
            expiry: self.expiry_ms.map(rfc822),
            utilized: self.utilized,
            max_image_pixels: self.max_image_pixels,
            max_image_steps: self.max_image_steps,
            max_text_tokens: self.max_text_tokens,
        }
    }

    /// Applies the given fields of `input` (validated); returns whether any was given.
    pub fn apply(&mut self, input: &wire::SharedKeyInput, now_ms: u64) -> Result<bool> {
        let mut any = false;
        if let Some(k) = input.kudos {
            self.kudos = bounded("kudos", k, MAX_KUDOS)?;
            any = true;
        }
        if let Some(days) = input.expiry {
            if days < -1 {
                return Err(HordeError::Validation("expiry must be -1 (never) or a number of days.".into()));
            }
            self.expiry_ms = (days > 0).then(|| now_ms as i64 + days.min(36_500) * 86_400_000);
            any = true;
        }
        if let Some(n) = &input.name {
            let n = n.trim();
            let len = n.chars().count();
            if !(3..=255).contains(&len) || n.chars().any(char::is_control) {
                return Err(HordeError::Validation("name must be 3 to 255 characters.".into()));
            }
            self.name = Some(n.to_string());
            any = true;
        }
        if let Some(v) = input.max_image_pixels {
            self.max_image_pixels = bounded("max_image_pixels", v, MAX_IMAGE_PIXELS)?;
            any = true;
        }
        if let Some(v) = input.max_image_steps {
            self.max_image_steps = bounded("max_image_steps", v, MAX_STEPS_OR_TOKENS)?;
            any = true;
        }
        if let Some(v) = input.max_text_tokens {
            self.max_text_tokens = bounded("max_text_tokens", v, MAX_STEPS_OR_TOKENS)?;
            any = true;
        }
        Ok(any)
    }
}

fn bounded(field: &str, v: i64, max: i64) -> Result<i64> {
    if v < -1 || v > max {
        return Err(HordeError::Validation(format!("{field} must be -1 (no limit) or 0 to {max}.")));
    }
    Ok(v)
}

/// Shared keys an account may hold: 3, or 10 when trusted (or a moderator).
pub fn max_keys(trusted: bool) -> usize {
    if trusted {
        10
    } else {
        3
    }
}

/// `ms` since the epoch as an RFC 822 date (`Mon, 07 Dec 2026 06:00:00 -0000`), as the public
/// horde writes dates.
pub fn rfc822(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} -0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SharedKey {
        SharedKey {
            id: "k".into(),
            user_id: 1,
            username: "a#1".into(),
            name: None,
            kudos: 100,
            utilized: 0,
            expiry_ms: Some(10_000),
            created_ms: 0,
            max_image_pixels: 262_144,
            max_image_steps: 20,
            max_text_tokens: 100,
        }
    }

    #[test]
    fn dates_are_written_as_the_public_horde_does() {
        assert_eq!(rfc822(0), "Thu, 01 Jan 1970 00:00:00 -0000");
        assert_eq!(rfc822(1_796_623_200_000), "Mon, 07 Dec 2026 06:00:00 -0000");
    }

    #[test]
    fn a_key_refuses_past_its_limits() {
        let k = key();
        let rc = |r: Result<()>| r.err().map(|e| e.rc());
        assert_eq!(rc(k.check_usable(9_999)), None);
        assert_eq!(rc(k.check_usable(10_001)), Some("SharedKeyExpired"));
        assert_eq!(rc(SharedKey { kudos: 0, ..key() }.check_usable(0)), Some("SharedKeyEmpty"));
        assert_eq!(rc(k.check_image_job(262_144, 20)), None);
        assert_eq!(rc(k.check_image_job(262_145, 20)), Some("BadRequest"));
        assert_eq!(rc(k.check_image_job(1, 21)), Some("BadRequest"));
        assert_eq!(rc(k.check_text_job(101)), Some("BadRequest"));
        assert_eq!(rc(k.check_price(100.0)), None);
        assert_eq!(rc(k.check_price(100.5)), Some("SharedKeyInsufficientKudos"));
        assert_eq!(rc(SharedKey { kudos: -1, ..key() }.check_price(1e9)), None);
    }

    #[test]
    fn inputs_are_bounded_and_an_empty_change_is_seen() {
        let mut k = key();
        assert!(!k.apply(&wire::SharedKeyInput::default(), 0).unwrap_or(true));
        let bad = wire::SharedKeyInput {
            max_image_steps: Some(501),
            ..Default::default()
        };
        assert!(k.apply(&bad, 0).is_err());
        let ok = wire::SharedKeyInput {
            expiry: Some(2),
            kudos: Some(-1),
            ..Default::default()
        };
        assert!(k.apply(&ok, 1000).unwrap_or(false));
        assert_eq!((k.kudos, k.expiry_ms), (-1, Some(1000 + 2 * 86_400_000)));
    }
}

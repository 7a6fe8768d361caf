//! Bound checks shared by the text and image request parsers.

use uuid::Uuid;

use crate::{HordeError, Result};

/// At most this many worker ids of an allow/block list are used.
pub const MAX_WORKERS: usize = 5;

/// `params.{name}`, when given, lies in `lo..=hi` (and is a finite number).
pub fn check_f(name: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<()> {
    match v {
        Some(x) if !(x.is_finite() && x >= lo && x <= hi) => Err(HordeError::Validation(format!(
            "params.{name} must be between {lo} and {hi}, got {x}."
        ))),
        _ => Ok(()),
    }
}

/// `params.{name}`, when given, lies in `lo..=hi`.
pub fn check_i(name: &str, v: Option<i64>, lo: i64, hi: i64) -> Result<()> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(HordeError::Validation(format!(
            "params.{name} must be between {lo} and {hi}, got {x}."
        ))),
        _ => Ok(()),
    }
}

/// The first `MAX_WORKERS` ids of a worker allow/block list, each a UUID.
pub fn worker_ids(list: Option<Vec<String>>) -> Result<Vec<Uuid>> {
    list.unwrap_or_default()
        .iter()
        .take(MAX_WORKERS)
        .map(|w| {
            Uuid::parse_str(w.trim())
                .map_err(|_| HordeError::Validation(format!("'{}' is not a worker id.", w.chars().take(60).collect::<String>())))
        })
        .collect()
}

/// `proxied_account` names the end user of a service that generates for others; the public horde
/// accepts it from service accounts only. This horde has no service accounts, so a non-empty
/// value is refused from every account (400 `OnlyServiceAccountProxy`, as the public horde
/// answers ordinary accounts).
pub fn proxied_account(value: Option<&str>) -> Result<()> {
    match value {
        Some(v) if !v.trim().is_empty() => Err(HordeError::rejected(
            "OnlyServiceAccountProxy",
            "Only service accounts can provide a proxied_account value.",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxied_account_is_refused_unless_empty() {
        assert!(proxied_account(None).is_ok());
        assert!(proxied_account(Some("")).is_ok());
        let e = proxied_account(Some("someone")).err().map(|e| e.rc());
        assert_eq!(e, Some("OnlyServiceAccountProxy"));
    }
}

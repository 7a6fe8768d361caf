//! What every kind of request shares before its own work: its common options (`RequestOptions`,
//! checked once for all kinds), and the bound checks the kinds' parsers use.

use uuid::Uuid;

use crate::{HordeError, Result};

/// At most this many worker ids of an allow/block list are used.
pub const MAX_WORKERS: usize = 5;
/// Most models a request may name.
pub const MAX_MODELS: usize = 100;

/// What every kind of request may ask of the horde besides its own work: how many jobs, which
/// models and workers may serve it and how fast, only a price, a webhook. Each kind's request
/// dereferences to its options.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestOptions {
    /// Jobs asked for.
    pub n: u32,
    /// Models any of which may serve it (none: any model).
    pub models: Vec<String>,
    /// Workers that may serve it (with `worker_blacklist`: that may not).
    pub workers: Vec<Uuid>,
    /// `workers` is a block-list (only when it names a worker).
    pub worker_blacklist: bool,
    pub trusted_workers: bool,
    pub slow_workers: bool,
    pub extra_slow_workers: bool,
    pub disable_batching: bool,
    /// Only the price is asked.
    pub dry_run: bool,
    /// Shrink the request rather than refuse it when it would need upfront kudos the requester
    /// lacks (`lifecycle::upfront`).
    pub allow_downgrade: bool,
    /// Where each finished job is POSTed (checked against the horde's rules at submission).
    pub webhook: Option<String>,
}

/// The common options as the wire sends them (every kind's request has these fields).
#[derive(Debug, Clone, Default)]
pub struct WireOptions {
    pub n: Option<i64>,
    pub models: Option<Vec<String>>,
    pub workers: Option<Vec<String>>,
    pub worker_blacklist: Option<bool>,
    pub trusted_workers: Option<bool>,
    pub slow_workers: Option<bool>,
    pub extra_slow_workers: Option<bool>,
    pub disable_batching: Option<bool>,
    pub dry_run: Option<bool>,
    pub allow_downgrade: Option<bool>,
    pub webhook: Option<String>,
}

/// The common options of a wire request of any kind (they share the field names), with `n`.
macro_rules! wire_options {
    ($req:ident, $n:expr) => {
        $crate::request_checks::WireOptions {
            n: $n,
            models: $req.models,
            workers: $req.workers,
            worker_blacklist: $req.worker_blacklist,
            trusted_workers: $req.trusted_workers,
            slow_workers: $req.slow_workers,
            extra_slow_workers: $req.extra_slow_workers,
            disable_batching: $req.disable_batching,
            dry_run: $req.dry_run,
            allow_downgrade: $req.allow_downgrade,
            webhook: $req.webhook,
        }
    };
}
pub(crate) use wire_options;

impl RequestOptions {
    /// Checks and fills in the common options; `default_models` when no model list is sent.
    /// Model names are trimmed, empty ones dropped; an empty webhook is none, and a block-list
    /// naming no worker is no block-list.
    pub fn parse(wire: WireOptions, default_models: &[&str]) -> Result<Self> {
        check_i("n", wire.n, 1, 20)?;
        let models: Vec<String> = match wire.models {
            None => default_models.iter().map(|m| m.to_string()).collect(),
            Some(list) => {
                let mut m: Vec<String> = list.into_iter().map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
                m.dedup();
                m
            }
        };
        if models.len() > MAX_MODELS || models.iter().any(|m| m.len() > 255 || m.contains('\0')) {
            return Err(HordeError::Validation(format!(
                "At most {MAX_MODELS} models of at most 255 characters may be requested."
            )));
        }
        let workers = worker_ids(wire.workers)?;
        Ok(Self {
            n: wire.n.unwrap_or(1) as u32,
            models,
            worker_blacklist: wire.worker_blacklist.unwrap_or(false) && !workers.is_empty(),
            workers,
            trusted_workers: wire.trusted_workers.unwrap_or(false),
            slow_workers: wire.slow_workers.unwrap_or(true),
            extra_slow_workers: wire.extra_slow_workers.unwrap_or(false),
            disable_batching: wire.disable_batching.unwrap_or(false),
            dry_run: wire.dry_run.unwrap_or(false),
            allow_downgrade: wire.allow_downgrade.unwrap_or(false),
            webhook: wire.webhook.filter(|w| !w.is_empty()),
        })
    }
}

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

    fn options(v: serde_json::Value) -> RequestOptions {
        let w = WireOptions {
            n: v["n"].as_i64(),
            models: v["models"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect()),
            workers: v["workers"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect()),
            worker_blacklist: v["worker_blacklist"].as_bool(),
            webhook: v["webhook"].as_str().map(str::to_string),
            ..WireOptions::default()
        };
        RequestOptions::parse(w, &["default"]).expect("valid options")
    }

    /// Every kind's rule (text's before the options were shared): a block-list that names no
    /// worker is no block-list (images paid the block-list's tax for it).
    #[test]
    fn a_block_list_without_workers_is_none_for_every_kind() {
        assert!(!options(serde_json::json!({"worker_blacklist": true})).worker_blacklist);
        let id = Uuid::new_v4().to_string();
        assert!(options(serde_json::json!({"worker_blacklist": true, "workers": [id]})).worker_blacklist);
    }

    /// Every kind's rule (text's before the options were shared): an empty webhook is none
    /// (images refused it as too short).
    #[test]
    fn an_empty_webhook_is_none_for_every_kind() {
        assert_eq!(options(serde_json::json!({"webhook": ""})).webhook, None);
        assert_eq!(
            options(serde_json::json!({"webhook": "https://x.y/z"})).webhook.as_deref(),
            Some("https://x.y/z")
        );
    }

    #[test]
    fn models_are_trimmed_and_default_when_not_sent() {
        assert_eq!(options(serde_json::json!({})).models, vec!["default".to_string()]);
        assert!(options(serde_json::json!({"models": [" ", ""]})).models.is_empty());
        assert_eq!(options(serde_json::json!({"models": [" a ", "a"]})).models, vec!["a".to_string()]);
    }

    #[test]
    fn proxied_account_is_refused_unless_empty() {
        assert!(proxied_account(None).is_ok());
        assert!(proxied_account(Some("")).is_ok());
        let e = proxied_account(Some("someone")).err().map(|e| e.rc());
        assert_eq!(e, Some("OnlyServiceAccountProxy"));
    }
}

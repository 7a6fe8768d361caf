//! Webhooks, for every kind of request: the address a request may give, and the announcements
//! of its finished jobs waiting to be sent (the server sends them: `server/src/webhooks.rs`).

use uuid::Uuid;

use crate::config::HordeConfig;
use crate::state::State;
use crate::{HordeError, Result};

/// A finished job to announce to its request's webhook. The server fills in `img` (a link or
/// base64, as the request asked) when it sends it.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub url: String,
    pub body: serde_json::Value,
    /// For image jobs: the job whose image goes in `img`, and whether as a link (`r2`).
    pub image: Option<(Uuid, bool)>,
}

/// Webhook announcements waiting at most; past it new ones are dropped (webhooks are best effort
/// and must never hold memory without bound).
pub const WEBHOOK_QUEUE: usize = 256;

/// Checks a webhook address: https, 10 to 1024 characters; `http://` to a loopback address only
/// when the operator allowed it for development.
pub fn check_webhook(url: &str, cfg: &HordeConfig) -> Result<()> {
    let len = url.chars().count();
    if !(10..=1024).contains(&len) || url.chars().any(char::is_whitespace) {
        return Err(HordeError::rejected(
            "InvalidWebhook",
            "webhook must be an https URL of 10 to 1024 characters.",
        ));
    }
    if url.starts_with("https://") {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
        if loopback && cfg.allow_loopback_http_webhooks {
            return Ok(());
        }
    }
    Err(HordeError::rejected("WebhookNotHttps", "webhook must be an https URL."))
}

impl State {
    /// Queues a webhook announcement unless the queue is full.
    pub fn queue_webhook(&mut self, event: WebhookEvent) {
        if self.webhooks.len() < WEBHOOK_QUEUE {
            self.webhooks.push(event);
        } else {
            tracing::warn!("webhook queue full; an announcement was dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_must_be_https() {
        let rc = check_webhook("http://example.com/hook", &HordeConfig::default())
            .err()
            .map(|e| e.rc());
        assert_eq!(rc, Some("WebhookNotHttps"));
        assert_eq!(
            check_webhook("https://x", &HordeConfig::default()).err().map(|e| e.rc()),
            Some("InvalidWebhook")
        );
    }

    #[test]
    fn loopback_webhooks_only_when_allowed() {
        let dev = HordeConfig {
            allow_loopback_http_webhooks: true,
            ..HordeConfig::default()
        };
        assert!(check_webhook("http://127.0.0.1:9/hook", &dev).is_ok());
        assert!(check_webhook("http://example.com/hook", &dev).is_err());
        assert!(check_webhook("http://127.0.0.1:9/hook", &HordeConfig::default()).is_err());
        assert!(check_webhook("https://example.com/hook", &HordeConfig::default()).is_ok());
    }
}

//! Sends webhook announcements of finished jobs: POSTs of JSON, at most 16 at a time, 3 attempts
//! of 3 seconds each, never on the request path (the core only queues them, boundedly).

use std::sync::Arc;
use std::time::Duration;

use horde_core::image::LinkPurpose;
use horde_core::lease::{Duty, DutyLeases};
use horde_core::webhooks::WebhookEvent;
use horde_core::Horde;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Attempts per announcement.
pub const ATTEMPTS: u32 = 3;
/// Announcements sent at once.
pub const PARALLEL: usize = 16;

/// Drains the horde's webhook queue every 100 ms until `stop` turns true. Image links point at
/// `base` (the horde's public address). With a shared state every process queues the same
/// announcements, and only the one holding the webhook duty sends them.
pub fn spawn(horde: Arc<Horde>, leases: DutyLeases, base: String, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhooks disabled: no HTTP client");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(PARALLEL));
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let events = horde.take_webhooks();
                    if events.is_empty() || !leases.hold(Duty::Webhooks).await {
                        continue;
                    }
                    for event in events {
                        let body = body_of(&horde, &base, event.body.clone(), event.image);
                        let Ok(permit) = slots.clone().acquire_owned().await else { return };
                        let client = client.clone();
                        tokio::spawn(async move {
                            deliver(&client, &event, &body).await;
                            drop(permit);
                        });
                    }
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
    })
}

/// The announcement with its `img`: a download link, or base64 for `r2: false` requests.
fn body_of(horde: &Horde, base: &str, mut body: serde_json::Value, image: Option<(uuid::Uuid, bool)>) -> serde_json::Value {
    if let (Some((job, r2)), Some(obj)) = (image, body.as_object_mut()) {
        let img = if r2 {
            horde.image_link(base, LinkPurpose::Download, &job)
        } else {
            horde.image_base64(&job).unwrap_or_default()
        };
        obj.insert("img".into(), serde_json::Value::String(img));
    }
    body
}

async fn deliver(client: &reqwest::Client, event: &WebhookEvent, body: &serde_json::Value) {
    for attempt in 1..=ATTEMPTS {
        match client.post(&event.url).json(body).send().await {
            Ok(r) if r.status().is_success() => return,
            // Never log the URL's query or the body: they may carry the requester's secrets.
            Ok(r) => tracing::info!(status = %r.status(), attempt, "webhook answered with an error"),
            Err(_) => tracing::info!(attempt, "webhook unreachable"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
}

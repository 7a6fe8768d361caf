//! What every kind of request shares at the horde's door: the checks before a request reaches
//! the state (draining, the client's address, its webhook, room in memory), then its
//! submission, screened and priced or queued in one operation; and the webhook outbox.

use std::net::IpAddr;

use super::Horde;
use crate::horde_ops::KindOps;
use crate::lifecycle::Submission;
use crate::webhooks::{check_webhook, WebhookEvent};
use crate::Result;

impl Horde {
    /// Queues (or prices, on a dry run) a validated request of any kind, from client address `ip`
    /// (when known): refused while draining, from a timed-out address, with a bad webhook, or
    /// (checked here too, so a refused prompt never reaches the shared log) without room for it.
    pub async fn submit_request<K: KindOps>(&self, user_id: i64, req: K::Request, ip: Option<IpAddr>) -> Result<Submission> {
        self.check_taking_work()?;
        let now = self.now_ms();
        {
            let s = self.local();
            Self::check_ip_in(&s, ip, now)?;
            if let Some(url) = &req.webhook {
                check_webhook(url, &s.cfg)?;
            }
            if !req.dry_run {
                K::check_room(&s, user_id, &req)?;
            }
        }
        self.run(K::submit(user_id, req, ip, now)).await
    }

    /// Finished jobs waiting to be announced to their webhooks. Every replica queues them; with
    /// a shared state, only the process holding the webhook duty sends what it takes.
    pub fn take_webhooks(&self) -> Vec<WebhookEvent> {
        std::mem::take(&mut self.local().webhooks)
    }
}

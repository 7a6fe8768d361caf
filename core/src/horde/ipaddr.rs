//! `Horde`'s IP timeouts in the public horde's shapes (`/operations/ipaddr`): moderators list
//! them, look one up, set one in hours and lift one.

use std::net::IpAddr;

use super::Horde;
use crate::Result;

impl Horde {
    /// `GET /operations/ipaddr`: running timeouts, (address or IPv6 /64, seconds left).
    pub async fn ip_timeouts(&self, viewer: i64) -> Result<Vec<(String, u64)>> {
        self.require_moderator(viewer).await?;
        let now = self.now_ms();
        Ok(self.synced().await?.ip_timeouts.running(now))
    }

    /// `GET /operations/ipaddr/{ip}`: the timeout of one address, if any.
    pub async fn ip_timeout(&self, viewer: i64, ip: IpAddr) -> Result<Option<(String, u64)>> {
        self.require_moderator(viewer).await?;
        let now = self.now_ms();
        let secs = self.synced().await?.ip_timeouts.remaining_secs(&ip, now);
        Ok(secs.map(|s| (crate::safety::ip_timeouts::ip_key(&ip), s)))
    }
}

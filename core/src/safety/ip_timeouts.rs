//! IP timeouts: a client whose prompt the filter refuses is timed out, longer each time
//! (3, 9, 15, 21… minutes); its suspicion decays a day after the last offence. Moderators can time
//! an address out by hand. IPv6 addresses count per /64 (one customer's block).

use std::collections::HashMap;
use std::net::IpAddr;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct IpRecord {
    suspicion: u32,
    last_offence_ms: u64,
    until_ms: u64,
}

/// Timed-out client addresses, in memory only.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct IpTimeouts {
    entries: HashMap<String, IpRecord>,
}

/// The key an address is counted under: itself for IPv4, its /64 for IPv6.
pub fn ip_key(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl IpTimeouts {
    /// Seconds left of `ip`'s timeout, if it is timed out at `now_ms`.
    pub fn remaining_secs(&self, ip: &IpAddr, now_ms: u64) -> Option<u64> {
        let r = self.entries.get(&ip_key(ip))?;
        (r.until_ms > now_ms).then(|| (r.until_ms - now_ms).div_ceil(1000))
    }

    /// Records a refused prompt from `ip`; returns the timeout given, in minutes:
    /// `(2 × suspicion + 1) × 3`, the suspicion counting offences of the last day.
    pub fn offend(&mut self, ip: &IpAddr, now_ms: u64) -> u64 {
        let r = self.entries.entry(ip_key(ip)).or_default();
        if now_ms.saturating_sub(r.last_offence_ms) > DAY_MS {
            r.suspicion = 0;
        }
        let minutes = (2 * r.suspicion as u64 + 1) * 3;
        r.suspicion += 1;
        r.last_offence_ms = now_ms;
        r.until_ms = r.until_ms.max(now_ms + minutes * 60_000);
        minutes
    }

    /// A moderator's timeout of `minutes` (0 lifts it).
    pub fn set(&mut self, ip: &IpAddr, minutes: u64, now_ms: u64) {
        let r = self.entries.entry(ip_key(ip)).or_default();
        r.until_ms = now_ms + minutes * 60_000;
    }

    /// Forgets records with no timeout running and no offence in the last day.
    pub fn prune(&mut self, now_ms: u64) {
        self.entries
            .retain(|_, r| r.until_ms > now_ms || now_ms.saturating_sub(r.last_offence_ms) <= DAY_MS);
    }

    /// Every running timeout at `now_ms`: (address or IPv6 /64, seconds left), by address.
    pub fn running(&self, now_ms: u64) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .entries
            .iter()
            .filter(|(_, r)| r.until_ms > now_ms)
            .map(|(k, r)| (k.clone(), (r.until_ms - now_ms).div_ceil(1000)))
            .collect();
        out.sort();
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escalates_then_decays_after_a_day() {
        let mut t = IpTimeouts::default();
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let t0 = 1_000_000_000;
        assert_eq!(t.offend(&ip, t0), 3);
        assert_eq!(t.remaining_secs(&ip, t0), Some(180));
        assert_eq!(t.remaining_secs(&ip, t0 + 180_001), None);
        assert_eq!(t.offend(&ip, t0 + 200_000), 9);
        assert_eq!(t.offend(&ip, t0 + 300_000), 15);
        assert_eq!(t.offend(&ip, t0 + 400_000), 21);
        // A day after the last offence the count starts over.
        assert_eq!(t.offend(&ip, t0 + 400_000 + DAY_MS + 1), 3);
        let other: IpAddr = "203.0.113.8".parse().expect("ip");
        assert_eq!(t.remaining_secs(&other, t0), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_moderators_set_timeouts() {
        let mut t = IpTimeouts::default();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        t.offend(&a, 0);
        assert!(t.remaining_secs(&b, 1).is_some());
        let c: IpAddr = "198.51.100.1".parse().expect("ip");
        t.set(&c, 60, 0);
        assert_eq!(t.remaining_secs(&c, 0), Some(3600));
        t.set(&c, 0, 0);
        assert_eq!(t.remaining_secs(&c, 0), None);
        t.prune(2 * DAY_MS);
        assert!(t.is_empty());
    }
}

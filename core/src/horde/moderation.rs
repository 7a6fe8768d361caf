//! Moderation: timed-out client addresses (and workers'), and the prompt filter's rules.

use std::net::IpAddr;

use super::Horde;
use crate::horde_ops::op;
use crate::safety::filter::{validate_rule, FilterRule};
use crate::state::State;
use crate::{HordeError, Result};

impl Horde {
    pub(super) fn check_ip_in(s: &State, ip: Option<IpAddr>, now_ms: u64) -> Result<()> {
        match ip.and_then(|ip| s.ip_timeouts.remaining_secs(&ip, now_ms)) {
            Some(secs) => Err(HordeError::TimeoutIp {
                minutes_left: secs.div_ceil(60),
            }),
            None => Ok(()),
        }
    }

    /// `TimeoutIP` if `ip` is timed out.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<()> {
        let now = self.now_ms();
        Self::check_ip_in(&self.local(), ip, now)
    }

    /// A moderator times an address out for `minutes` (0 lifts it).
    pub async fn timeout_ip(&self, viewer: i64, ip: IpAddr, minutes: u64) -> Result<()> {
        self.require_moderator(viewer).await?;
        let now = self.now_ms();
        let minutes = minutes.min(60 * 24 * 30);
        self.run(op::TimeoutIp { ip, minutes, now }).await?;
        Ok(())
    }

    /// `PUT|DELETE /operations/block_worker_ipaddr/{worker_id}`: a moderator times out the address
    /// a worker last checked in from, for `days` (0 lifts it). Returns the minutes set.
    pub async fn block_worker_ip(&self, viewer: i64, worker_id: &str, days: u64) -> Result<u64> {
        self.require_moderator(viewer).await?;
        let id = Self::parse_worker_id(worker_id)?;
        let now = self.now_ms();
        let op = op::BlockWorkerIp { worker_id: id, days, now };
        self.run(op).await
    }

    pub(super) async fn reload_filter(&self) -> Result<()> {
        let rules = self.store.filters().await?;
        self.run(op::SetFilter { rules }).await?;
        Ok(())
    }

    /// `GET /filters`: rules of one type, or containing a text (moderators).
    pub async fn list_filters(&self, viewer: i64, filter_type: Option<i64>, contains: Option<&str>) -> Result<Vec<FilterRule>> {
        self.require_moderator(viewer).await?;
        let s = self.synced().await?;
        Ok(s.filter
            .rules()
            .iter()
            .filter(|r| filter_type.is_none_or(|t| r.filter_type == t))
            .filter(|r| contains.is_none_or(|c| r.regex.contains(c) || r.description.contains(c)))
            .cloned()
            .collect())
    }

    /// One rule (moderators).
    pub async fn filter(&self, viewer: i64, id: i64) -> Result<FilterRule> {
        self.require_moderator(viewer).await?;
        let s = self.synced().await?;
        s.filter
            .rules()
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or(HordeError::FilterNotFound(id))
    }

    /// `PUT /filters`: adds a rule (moderators).
    pub async fn add_filter(
        &self,
        viewer: i64,
        regex: String,
        filter_type: i64,
        description: String,
        replacement: String,
    ) -> Result<FilterRule> {
        self.require_moderator(viewer).await?;
        validate_rule(&regex, filter_type)?;
        let mut rule = FilterRule {
            id: 0,
            regex,
            filter_type,
            description,
            replacement,
            user_id: viewer,
        };
        rule.id = self.store.insert_filter(&rule).await?;
        self.reload_filter().await?;
        Ok(rule)
    }

    /// `PATCH /filters/{id}`: changes the given fields (moderators).
    pub async fn modify_filter(
        &self,
        viewer: i64,
        id: i64,
        regex: Option<String>,
        filter_type: Option<i64>,
        description: Option<String>,
        replacement: Option<String>,
    ) -> Result<FilterRule> {
        let mut rule = self.filter(viewer, id).await?;
        if let Some(r) = regex {
            rule.regex = r;
        }
        if let Some(t) = filter_type {
            rule.filter_type = t;
        }
        if let Some(d) = description {
            rule.description = d;
        }
        if let Some(r) = replacement {
            rule.replacement = r;
        }
        rule.user_id = viewer;
        validate_rule(&rule.regex, rule.filter_type)?;
        if !self.store.update_filter(&rule).await? {
            return Err(HordeError::FilterNotFound(id));
        }
        self.reload_filter().await?;
        Ok(rule)
    }

    /// `DELETE /filters/{id}` (moderators).
    pub async fn delete_filter(&self, viewer: i64, id: i64) -> Result<()> {
        self.require_moderator(viewer).await?;
        if !self.store.delete_filter(id).await? {
            return Err(HordeError::FilterNotFound(id));
        }
        self.reload_filter().await
    }

    /// `POST /filters`: how a prompt fares (suspicion 0–2 and the matching terms), for moderators
    /// testing rules. Nothing is recorded.
    pub async fn check_prompt(&self, viewer: i64, prompt: &str, filter_type: Option<i64>) -> Result<(i64, Vec<String>)> {
        self.require_moderator(viewer).await?;
        let s = self.synced().await?;
        let positive = prompt.split("###").next().unwrap_or("");
        let (underage, lewd) = s.filter.contexts(positive);
        Ok((i64::from(underage) + i64::from(lewd), s.filter.matches(prompt, filter_type)))
    }

    /// `GET /filters/regex`: the combined regex of each type (moderators).
    pub async fn filter_regexes(&self, viewer: i64, filter_type: Option<i64>) -> Result<Vec<(i64, String)>> {
        self.require_moderator(viewer).await?;
        let s = self.synced().await?;
        Ok([10, 11, 20]
            .into_iter()
            .filter(|t| filter_type.is_none_or(|f| f == *t))
            .filter_map(|t| s.filter.regex_of(t).map(|r| (t, r)))
            .collect())
    }
}

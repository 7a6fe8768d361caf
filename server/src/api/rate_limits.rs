//! Per-endpoint rate limits, per client IP and per API key, with the public horde's defaults.
//!
//! Each endpoint belongs to a named group; a group has one or more limits such as `2/s ip` or
//! `90/hour key`. `ip+path` counts each path (e.g. each request id) apart. Limits are token
//! buckets (tower_governor): `90/min` allows a burst of 90, then one more every 0.67 s.
//!
//! Several processes sharing one horde (`--redis-url`) share the buckets too: they are kept in
//! Redis (the same token bucket, as GCRA in a Lua script), so a client meets each limit once
//! however many processes serve it.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use super::error::ApiError;

/// The groups and their default limits (the public horde's, section 6.7 of our reference).
pub const DEFAULT_LIMITS: &[(&str, &str)] = &[
    ("default", "90/min ip"),
    ("generate", "90/min ip+path, 2/s ip+path, 2/s key+path"),
    ("check", "10/s ip+path"),
    ("image-status", "10/min ip+path"),
    ("text-status", "60/min ip+path"),
    ("worker", "60/s ip"),
    ("rate", "5/min ip+path"),
    ("transfer", "1/s key, 90/hour key"),
    ("users", "90/min ip"),
    ("user", "60/min ip+path"),
    ("worker-modify", "30/min ip"),
    ("register", "5/min ip"),
];

/// What a limit counts requests by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Ip,
    Key,
}

/// One limit: `count` requests per `period` for each subject (and path, with `per_path`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub count: u32,
    pub period: Duration,
    pub subject: Subject,
    pub per_path: bool,
}

/// Why a limit spec does not parse.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LimitSpecError {
    #[error("'{0}' is not NAME=SPEC")]
    NotAssignment(String),
    #[error("unknown rate-limit group '{0}' (known: {1})")]
    UnknownGroup(String, String),
    #[error("'{0}' is not COUNT/PERIOD SUBJECT, e.g. '2/s ip' or '90/hour key+path'")]
    BadLimit(String),
}

impl Limit {
    /// Parses `2/s ip`, `90/min ip+path`, `90/hour key`, `5/day ip`.
    pub fn parse(spec: &str) -> Result<Limit, LimitSpecError> {
        let bad = || LimitSpecError::BadLimit(spec.trim().to_string());
        let mut words = spec.split_whitespace();
        let (rate, who) = (words.next().ok_or_else(bad)?, words.next().ok_or_else(bad)?);
        if words.next().is_some() {
            return Err(bad());
        }
        let (count, unit) = rate.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.parse().ok().filter(|c| *c > 0).ok_or_else(bad)?;
        let secs = match unit {
            "s" | "sec" | "second" => 1,
            "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(bad()),
        };
        let (subject, per_path) = match who {
            "ip" => (Subject::Ip, false),
            "ip+path" => (Subject::Ip, true),
            "key" => (Subject::Key, false),
            "key+path" => (Subject::Key, true),
            _ => return Err(bad()),
        };
        Ok(Limit {
            count,
            period: Duration::from_secs(secs),
            subject,
            per_path,
        })
    }
}

/// The limits in force, by group; `None` when limits are off.
#[derive(Debug, Clone)]
pub struct RateLimits {
    groups: Option<BTreeMap<String, Vec<Limit>>>,
    /// Buckets kept in Redis, for processes sharing one horde.
    shared: Option<SharedBuckets>,
}

impl PartialEq for RateLimits {
    fn eq(&self, other: &Self) -> bool {
        self.groups == other.groups
    }
}

/// Checks every limit of a group at once: allowed only if each bucket has a token, and then
/// takes one from each. Returns 0, or the seconds to wait. ARGV: per key, the emission interval
/// (ms) and the burst. Redis's clock serves every process alike.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local over = tat - now - (burst - 1) * interval
  if over > 0 then
    return math.max(1, math.ceil(over / 1000))
  end
  tats[i] = tat + interval
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], tostring(tats[i]), 'PX', math.ceil(tats[i] - now) + 1000)
end
return 0
";

/// Token buckets in Redis under `{prefix}rate:`.
#[derive(Clone)]
pub struct SharedBuckets {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    script: Arc<redis::Script>,
}

impl std::fmt::Debug for SharedBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBuckets").field("prefix", &self.prefix).finish()
    }
}

impl SharedBuckets {
    pub fn new(conn: redis::aio::ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: format!("{prefix}rate:"),
            script: Arc::new(redis::Script::new(GCRA)),
        }
    }

    /// The buckets of `limits` that `req` counts in: (key, emission interval in ms, burst).
    fn buckets_of(&self, group: &str, limits: &[(Limit, ClientKey)], req: &Request<Body>) -> Vec<(String, f64, u32)> {
        let mut out = Vec::with_capacity(limits.len());
        for (i, (limit, key)) in limits.iter().enumerate() {
            let Ok(k) = key.extract(req) else { continue };
            let interval = limit.period.as_secs_f64() * 1000.0 / f64::from(limit.count);
            out.push((format!("{}{group}:{i}:{k:016x}", self.prefix), interval, limit.count));
        }
        out
    }

    /// Takes a token from each bucket, or says how long to wait. A Redis that does not answer
    /// lets the request through (the horde answers 503 on its own then).
    async fn take(&self, buckets: Vec<(String, f64, u32)>) -> Option<u64> {
        if buckets.is_empty() {
            return None;
        }
        let mut inv = self.script.prepare_invoke();
        for (key, interval, burst) in buckets {
            inv.key(key);
            inv.arg(interval);
            inv.arg(burst);
        }
        match inv.invoke_async::<u64>(&mut self.conn.clone()).await {
            Ok(0) => None,
            Ok(wait) => Some(wait),
            Err(e) => {
                tracing::debug!(error = %e, "shared rate limits unavailable; request let through");
                None
            }
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::with_overrides(&[]).unwrap_or_else(|_| Self::off())
    }
}

impl RateLimits {
    /// No limits at all (load tests, private hordes behind their own limiter).
    pub fn off() -> Self {
        Self {
            groups: None,
            shared: None,
        }
    }

    /// Keeps the buckets in Redis, shared with the other processes of the horde.
    pub fn shared(mut self, buckets: SharedBuckets) -> Self {
        self.shared = Some(buckets);
        self
    }

    /// The limits of `group` with the key each counts by; keys agree across processes.
    fn shared_limits(&self, group: &str) -> Arc<Vec<(Limit, ClientKey)>> {
        Arc::new(self.group(group).iter().map(|l| (*l, ClientKey::shared(*l))).collect())
    }

    /// The defaults, with some groups replaced by `NAME=SPEC[, SPEC…]` (`NAME=off` removes a
    /// group's limits).
    pub fn with_overrides(overrides: &[String]) -> Result<Self, LimitSpecError> {
        let mut groups = BTreeMap::new();
        for (name, spec) in DEFAULT_LIMITS {
            groups.insert(name.to_string(), parse_list(spec)?);
        }
        for o in overrides {
            let (name, spec) = o.split_once('=').ok_or_else(|| LimitSpecError::NotAssignment(o.clone()))?;
            let name = name.trim();
            if !groups.contains_key(name) {
                let known = DEFAULT_LIMITS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
                return Err(LimitSpecError::UnknownGroup(name.to_string(), known));
            }
            let limits = if spec.trim() == "off" { vec![] } else { parse_list(spec)? };
            groups.insert(name.to_string(), limits);
        }
        Ok(Self {
            groups: Some(groups),
            shared: None,
        })
    }

    /// The limits of one group (none when off).
    pub fn group(&self, name: &str) -> &[Limit] {
        self.groups.as_ref().and_then(|g| g.get(name)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The buckets of each limit of `group`, with the key they count requests by.
    fn buckets(&self, group: &str) -> Vec<Buckets> {
        let mut out = Vec::new();
        for limit in self.group(group) {
            let period_ns = (limit.period.as_nanos() / u128::from(limit.count)).max(1);
            let key = ClientKey::new(*limit);
            let config = GovernorConfigBuilder::default()
                .key_extractor(key.clone())
                .per_nanosecond(u64::try_from(period_ns).unwrap_or(u64::MAX))
                .burst_size(limit.count)
                .finish();
            let Some(config) = config else { continue };
            let config = Arc::new(config);
            forget_idle_clients(config.clone());
            out.push((key, config));
        }
        out
    }

    /// Wraps `router` in the limits of `group`.
    pub fn apply<S: Clone + Send + Sync + 'static>(
        &self,
        group: &str,
        mut router: utoipa_axum::router::OpenApiRouter<S>,
    ) -> utoipa_axum::router::OpenApiRouter<S> {
        if let Some(shared) = &self.shared {
            if self.group(group).is_empty() {
                return router;
            }
            let state = (shared.clone(), group.to_string(), self.shared_limits(group));
            return router.layer(axum::middleware::from_fn_with_state(state, limit_shared));
        }
        for (_, config) in self.buckets(group) {
            router = router.layer(GovernorLayer::new(config).error_handler(governor_rejected));
        }
        router
    }

    /// Limits for routes picked by path under `prefix` (the web UI's server functions): each
    /// listed path counts in its group, any other path under the prefix in `default`.
    pub fn by_path(&self, prefix: &'static str, routes: &[(&'static str, &str)]) -> PathLimits {
        let shared = self.shared.as_ref().map(|s| {
            let groups = routes
                .iter()
                .map(|(path, group)| (*path, group.to_string(), self.shared_limits(group)));
            (s.clone(), Arc::new(groups.collect()), self.shared_limits("default"))
        });
        PathLimits {
            prefix,
            routes: Arc::new(routes.iter().map(|(path, group)| (*path, self.buckets(group))).collect()),
            fallback: Arc::new(self.buckets("default")),
            shared,
        }
    }
}

type Buckets = (ClientKey, Arc<GovernorConfig<ClientKey, NoOpMiddleware>>);

/// The shared form of a group: the buckets, the group's name, its limits and keys.
type SharedGroup = (SharedBuckets, String, Arc<Vec<(Limit, ClientKey)>>);

/// Middleware of a group whose buckets are in Redis.
async fn limit_shared(State((buckets, group, limits)): State<SharedGroup>, req: Request<Body>, next: Next) -> Response {
    let taken = buckets.buckets_of(&group, &limits, &req);
    match buckets.take(taken).await {
        Some(wait_secs) => too_many_requests(Some(wait_secs)),
        None => next.run(req).await,
    }
}

/// Per path: the path, its group and the group's limits; then the default group's.
type SharedPaths = (
    SharedBuckets,
    Arc<Vec<(&'static str, String, Arc<Vec<(Limit, ClientKey)>>)>>,
    Arc<Vec<(Limit, ClientKey)>>,
);

/// Rate limits chosen by request path, for routes outside the OpenAPI routers.
#[derive(Clone)]
pub struct PathLimits {
    prefix: &'static str,
    routes: Arc<Vec<(&'static str, Vec<Buckets>)>>,
    fallback: Arc<Vec<Buckets>>,
    shared: Option<SharedPaths>,
}

/// Middleware applying [`PathLimits`]: a request over any of its limits gets the JSON 429.
pub async fn limit_by_path(State(limits): State<PathLimits>, req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path();
    if let (true, Some((buckets, routes, fallback))) = (path.starts_with(limits.prefix), &limits.shared) {
        let (group, group_limits) = match routes.iter().find(|(p, _, _)| *p == path) {
            Some((_, g, l)) => (g.as_str(), l),
            None => ("default", fallback),
        };
        let taken = buckets.buckets_of(group, group_limits, &req);
        if let Some(wait_secs) = buckets.take(taken).await {
            return too_many_requests(Some(wait_secs));
        }
        return next.run(req).await;
    }
    if path.starts_with(limits.prefix) {
        let buckets = limits.routes.iter().find(|(p, _)| *p == path).map_or(&*limits.fallback, |(_, b)| b);
        for (key, config) in buckets {
            let Ok(k) = key.extract(&req) else { continue };
            if let Err(not_until) = config.limiter().check_key(&k) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return too_many_requests(Some(whole_seconds(wait)));
            }
        }
    }
    next.run(req).await
}

fn parse_list(spec: &str) -> Result<Vec<Limit>, LimitSpecError> {
    spec.split(',').filter(|s| !s.trim().is_empty()).map(Limit::parse).collect()
}

/// A wait in whole seconds, rounded up and at least one: a client told "0 s" retries at once
/// and is refused again.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// tower_governor's refusal. Its wait is rounded down to whole seconds; one more second makes it
/// a wait after which the bucket has a token again.
fn governor_rejected(e: GovernorError) -> Response {
    match e {
        GovernorError::TooManyRequests { wait_time, .. } => too_many_requests(Some(wait_time.saturating_add(1))),
        _ => too_many_requests(None),
    }
}

/// The JSON 429, with `Retry-After` when the wait is known (`wait_secs` at least 1).
fn too_many_requests(wait_secs: Option<u64>) -> Response {
    let wait_secs = wait_secs.map(|s| s.max(1));
    let advice = wait_secs.map(|s| format!(" Try again in {s} s.")).unwrap_or_default();
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        format!("Rate limit exceeded.{advice}"),
    )
    .into_response();
    if let Some(s) = wait_secs {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
    }
    response
}

/// Buckets of clients idle long enough to be full again are dropped every minute, so the
/// limiter's memory follows active clients only.
fn forget_idle_clients(config: Arc<tower_governor::governor::GovernorConfig<ClientKey, governor::middleware::NoOpMiddleware>>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    let weak = Arc::downgrade(&config);
    drop(config);
    rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(config) = weak.upgrade() else { break };
            config.limiter().retain_recent();
            config.limiter().shrink_to_fit();
        }
    });
}

/// The rate-limit key of a request: its client (IP, IPv6 /64, or hashed API key) and maybe its
/// path, as one hash. API keys never stay in the limiter's memory (or Redis) in clear.
#[derive(Clone)]
pub struct ClientKey {
    limit: Limit,
    /// Random per process, or fixed when the buckets are shared (every process must find the
    /// same bucket for a client).
    hasher: Option<std::hash::RandomState>,
}

impl ClientKey {
    fn new(limit: Limit) -> Self {
        Self {
            limit,
            hasher: Some(std::hash::RandomState::new()),
        }
    }

    fn shared(limit: Limit) -> Self {
        Self { limit, hasher: None }
    }
}

/// The address a limit counts: IPv6 clients by their /64, since one host gets a whole /64.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl KeyExtractor for ClientKey {
    type Key = u64;

    fn extract<T>(&self, req: &Request<T>) -> Result<u64, GovernorError> {
        let ip = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| client_network(c.0.ip()))
            .ok_or(GovernorError::UnableToExtractKey)?;
        let mut h = match &self.hasher {
            Some(state) => state.build_hasher(),
            None => std::hash::DefaultHasher::new(),
        };
        // The horde's `apikey` header, or the OpenAI-compatible API's bearer token.
        let key = super::extract::api_key(req.headers()).filter(|k| k.as_str() != horde_protocol::ANONYMOUS_API_KEY);
        match (self.limit.subject, key) {
            (Subject::Key, Some(key)) => ("key", key.as_str()).hash(&mut h),
            // Anonymous callers share one key: count them by address instead.
            (Subject::Ip, _) | (Subject::Key, None) => ("ip", ip).hash(&mut h),
        }
        if self.limit.per_path {
            req.uri().path().hash(&mut h);
        }
        Ok(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(
            Limit::parse("90/min ip+path"),
            Ok(Limit {
                count: 90,
                period: Duration::from_secs(60),
                subject: Subject::Ip,
                per_path: true
            })
        );
        assert_eq!(Limit::parse("1/s key").map(|l| (l.subject, l.per_path)), Ok((Subject::Key, false)));
        for bad in ["", "90/min", "0/s ip", "x/s ip", "2/week ip", "2/s someone", "2/s ip extra"] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_replace_groups_and_reject_unknown_ones() {
        let d = RateLimits::default();
        assert_eq!(d.group("generate").len(), 3);
        assert_eq!(d.group("transfer")[1].period, Duration::from_secs(3600));
        let o = RateLimits::with_overrides(&["register=3/min ip".into(), "generate=off".into()]).expect("parse");
        assert_eq!(o.group("register")[0].count, 3);
        assert!(o.group("generate").is_empty());
        assert!(matches!(
            RateLimits::with_overrides(&["nope=1/s ip".into()]),
            Err(LimitSpecError::UnknownGroup(..))
        ));
        assert!(RateLimits::with_overrides(&["register".into()]).is_err());
        assert!(RateLimits::off().group("default").is_empty());
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(client_network(mapped), "192.0.2.1".parse::<IpAddr>().expect("ip"));
    }
}

//! `GET /metrics` in Prometheus text format: HTTP requests by route and status, pop latency, and
//! the core's figures (queue depth per type and model, job outcomes, workers online, kudos
//! burnt). Labels are route templates, types, models and statuses: never a prompt, a user, a key
//! or an address.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use horde_core::Horde;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use super::AppState;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    pop_seconds: HistogramVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(horde: Arc<Horde>) -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "horde_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let pop_seconds = HistogramVec::new(
            HistogramOpts::new("horde_pop_duration_seconds", "Time to answer a worker's pop, by type.").buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
            &["type"],
        )
        .expect("valid metric");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn Collector>,
            Box::new(pop_seconds.clone()),
            Box::new(CoreFigures::new(horde)),
            Box::new(super::connections::ConnectionFigures::default()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            http_requests,
            pop_seconds,
        }
    }

    /// Records how long a pop of `kind` (`text`, `image`) took.
    pub fn observe_pop(&self, kind: &str, started: Instant) {
        self.pop_seconds.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `GET /metrics`.
pub async fn exposition(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], state.metrics.render()).into_response()
}

/// Middleware counting every answered request by route template (`unmatched` for unknown
/// paths), method and status.
pub async fn count_http(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().clone();
    let response = next.run(req).await;
    metrics
        .http_requests
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .inc();
    response
}

/// The core's figures, read at each scrape.
struct CoreFigures {
    horde: Arc<Horde>,
    descs: Vec<Desc>,
}

struct Families {
    queued: IntGaugeVec,
    in_memory: IntGaugeVec,
    jobs: IntCounterVec,
    workers: IntGaugeVec,
    burnt: Gauge,
    memory_held: IntGaugeVec,
    memory_cap: IntGaugeVec,
    account_text_cap: IntGauge,
    accounts_holding_text: IntGauge,
}

impl Families {
    fn new() -> Self {
        Self {
            queued: IntGaugeVec::new(
                Opts::new(
                    "horde_queued_jobs",
                    "Jobs waiting for a worker, by type and requested model (any: no model named).",
                ),
                &["type", "model"],
            )
            .expect("valid metric"),
            in_memory: IntGaugeVec::new(
                Opts::new("horde_requests_in_memory", "Requests held in memory, by type."),
                &["type"],
            )
            .expect("valid metric"),
            jobs: IntCounterVec::new(
                Opts::new(
                    "horde_jobs_total",
                    "Jobs by type and outcome: popped, submitted, faulted (reported by the worker), aborted (timed out).",
                ),
                &["type", "outcome"],
            )
            .expect("valid metric"),
            workers: IntGaugeVec::new(Opts::new("horde_workers_online", "Workers online, by type."), &["type"]).expect("valid metric"),
            burnt: Gauge::new("horde_kudos_burnt", "Kudos burnt (taxes and charges) since the ledger began.").expect("valid metric"),
            memory_held: IntGaugeVec::new(
                Opts::new(
                    "horde_memory_held_bytes",
                    "Bytes counted against the memory caps, by type (text: prompts and room for results; image: images).",
                ),
                &["type"],
            )
            .expect("valid metric"),
            memory_cap: IntGaugeVec::new(
                Opts::new(
                    "horde_memory_cap_bytes",
                    "The memory caps (--text-memory-mib, --image-memory-mib), by type.",
                ),
                &["type"],
            )
            .expect("valid metric"),
            account_text_cap: IntGauge::new(
                "horde_account_text_memory_cap_bytes",
                "Text one account that is not trusted may hold (--account-text-memory-mib).",
            )
            .expect("valid metric"),
            accounts_holding_text: IntGauge::new("horde_accounts_holding_text", "Accounts whose requests hold text now.")
                .expect("valid metric"),
        }
    }

    fn collectors(&self) -> [&dyn Collector; 9] {
        [
            &self.queued,
            &self.in_memory,
            &self.jobs,
            &self.workers,
            &self.burnt,
            &self.memory_held,
            &self.memory_cap,
            &self.account_text_cap,
            &self.accounts_holding_text,
        ]
    }
}

impl CoreFigures {
    fn new(horde: Arc<Horde>) -> Self {
        let descs = Families::new()
            .collectors()
            .iter()
            .flat_map(|c| c.desc().into_iter().cloned())
            .collect();
        Self { horde, descs }
    }
}

impl Collector for CoreFigures {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let t = self.horde.telemetry();
        let f = Families::new();
        for ((kind, model), jobs) in &t.queued_jobs {
            f.queued.with_label_values(&[*kind, model.as_str()]).set(clamp(*jobs));
        }
        for (kind, n) in &t.requests_in_memory {
            f.in_memory.with_label_values(&[*kind]).set(clamp(*n));
        }
        for (kind, c) in &t.jobs {
            for (outcome, n) in [
                ("popped", c.popped),
                ("submitted", c.submitted),
                ("faulted", c.faulted),
                ("aborted", c.aborted),
            ] {
                f.jobs.with_label_values(&[*kind, outcome]).inc_by(n);
            }
        }
        for (kind, n) in &t.workers_online {
            f.workers.with_label_values(&[*kind]).set(clamp(*n));
        }
        f.burnt.set(t.kudos_burnt);
        for (kind, n) in &t.memory_held {
            f.memory_held.with_label_values(&[*kind]).set(clamp(*n));
        }
        for (kind, n) in &t.memory_cap {
            f.memory_cap.with_label_values(&[*kind]).set(clamp(*n));
        }
        f.account_text_cap.set(clamp(t.account_text_memory_cap));
        f.accounts_holding_text.set(clamp(t.accounts_holding_text));
        f.collectors().iter().flat_map(|c| c.collect()).collect()
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

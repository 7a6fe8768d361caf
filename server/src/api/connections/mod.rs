//! Connection hygiene for every listener: the accept loop and the HTTP/1 connections it serves.
//!
//! A client cannot hold a connection without using it. Each connection must send a request's
//! headers within the header timeout (counted from its first byte, or from the connection's
//! start), may sit idle between requests for the idle timeout, and must deliver a request body
//! within the body timeout plus the time its declared `Content-Length` takes at a minimum rate;
//! a `Content-Length` over the body limit is refused with 413 before anything is read. A
//! connection with a request in flight, an event stream included, is never timed out here.
//! Connections are capped; at the cap the connection quiet for longest (no request in flight)
//! is shed to make room, and a new one is refused only when every connection is busy. The cap
//! stays below the open-files limit, which [`raise_file_limit`] lifts to its hard limit, so
//! accepting never fails for want of file descriptors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use super::error::ApiError;

mod io;
use io::{Guarded, TimedBody, Watched};

/// File descriptors kept back from the connection cap for the database, Redis, webhooks and files.
pub const RESERVED_FILES: u64 = 256;
/// Most connections when `max_connections` is left to the file limit.
pub const AUTO_MAX_CONNECTIONS: u64 = 16_384;

/// How long connections may take and how many there may be.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time to send a request's headers, from their first byte (or the connection's start).
    pub header_timeout: Duration,
    /// Time a connection may wait between requests.
    pub idle_timeout: Duration,
    /// Time to send a request body, on top of its length at `body_min_bytes_per_sec`.
    pub body_timeout: Duration,
    /// Slowest upload rate counted on for a body's declared length.
    pub body_min_bytes_per_sec: u64,
    /// Most open connections.
    pub max_connections: usize,
    /// Largest request body; a larger `Content-Length` is refused at once.
    pub max_body_bytes: u64,
    /// Largest body of a worker's image upload (`PUT /api/v2/images/{token}`): upscaled results
    /// are larger than any JSON body.
    pub max_upload_bytes: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            body_min_bytes_per_sec: 32 * 1024,
            max_connections: 4096,
            max_body_bytes: super::MAX_BODY_BYTES as u64,
            max_upload_bytes: super::MAX_UPLOAD_BYTES as u64,
        }
    }
}

impl ConnectionLimits {
    /// The connection cap that fits `file_limit` open files: the limit less [`RESERVED_FILES`],
    /// at most [`AUTO_MAX_CONNECTIONS`], at least 16.
    pub fn auto_max_connections(file_limit: u64) -> usize {
        file_limit.saturating_sub(RESERVED_FILES).clamp(16, AUTO_MAX_CONNECTIONS) as usize
    }

    /// The largest body `req` may carry: the upload cap for image uploads, the body limit otherwise.
    fn body_cap<B>(&self, req: &Request<B>) -> u64 {
        if req.method() == axum::http::Method::PUT && req.uri().path().starts_with("/api/v2/images/") {
            self.max_upload_bytes.max(self.max_body_bytes)
        } else {
            self.max_body_bytes
        }
    }

    /// Time allowed for a body of `declared` bytes under `cap` (the cap when the length is unknown).
    fn body_allowance(&self, declared: Option<u64>, cap: u64) -> Duration {
        let bytes = declared.unwrap_or(cap).min(cap);
        self.body_timeout + Duration::from_secs_f64(bytes as f64 / self.body_min_bytes_per_sec.max(1) as f64)
    }
}

/// Raises this process's soft limit of open files to its hard limit; returns the limit in force
/// (`None` where it cannot be read).
pub fn raise_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes into the struct it is given, which lives for the call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        // An unlimited hard limit is not a valid soft one: a million files is plenty.
        let target = if lim.rlim_max == libc::RLIM_INFINITY {
            lim.rlim_max.min(1 << 20)
        } else {
            lim.rlim_max
        };
        if lim.rlim_cur < target {
            let raised = libc::rlimit {
                rlim_cur: target,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: setrlimit reads the struct it is given, which lives for the call.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim.rlim_cur = target;
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
        Some(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Counts of this process's connections, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Connections closed for sending no headers, or no body, in time, or idling too long.
    pub timed_out: AtomicU64,
    /// Quiet connections closed to make room at the cap.
    pub shed: AtomicU64,
    /// New connections refused at the cap because every open one was busy.
    pub refused: AtomicU64,
    /// Requests refused because their declared body exceeds the limit.
    pub bodies_too_large: AtomicU64,
}

static STATS: ConnectionStats = ConnectionStats {
    open: AtomicU64::new(0),
    accepted: AtomicU64::new(0),
    timed_out: AtomicU64::new(0),
    shed: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    bodies_too_large: AtomicU64::new(0),
};

/// This process's connection counts (every listener together).
pub fn stats() -> &'static ConnectionStats {
    &STATS
}

/// This process's connection counts as Prometheus families (read at each scrape).
#[derive(Debug)]
pub struct ConnectionFigures {
    descs: Vec<prometheus::core::Desc>,
}

impl Default for ConnectionFigures {
    fn default() -> Self {
        use prometheus::core::Collector;
        let (open, closed) = Self::families();
        let descs = open.desc().into_iter().chain(closed.desc()).cloned().collect();
        Self { descs }
    }
}

impl ConnectionFigures {
    fn families() -> (prometheus::IntGauge, prometheus::IntCounterVec) {
        let open = prometheus::IntGauge::new("horde_http_connections_open", "HTTP connections open now.").expect("valid metric");
        let events = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "horde_http_connection_events_total",
                "HTTP connections accepted, timed out (headers, body or idle), shed at the cap, refused at the cap, and requests refused for a too large declared body.",
            ),
            &["event"],
        )
        .expect("valid metric");
        (open, events)
    }
}

impl prometheus::core::Collector for ConnectionFigures {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let (open, events) = Self::families();
        open.set(i64::try_from(STATS.open.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        for (event, n) in [
            ("accepted", &STATS.accepted),
            ("timed_out", &STATS.timed_out),
            ("shed", &STATS.shed),
            ("refused", &STATS.refused),
            ("body_too_large", &STATS.bodies_too_large),
        ] {
            events.with_label_values(&[event]).inc_by(n.load(Ordering::Relaxed));
        }
        open.collect().into_iter().chain(events.collect()).collect()
    }
}

/// What the accept loop and a connection's task share about one connection.
struct Conn {
    /// Requests in flight: from their headers until their answer's body is sent or dropped.
    in_flight: AtomicUsize,
    /// Milliseconds (since the listener's start) when it last became idle.
    idle_since: AtomicU64,
    /// Milliseconds + 1 when the next request's first byte arrived; 0 while none did.
    head_started: AtomicU64,
    /// Close it now (shed at the cap).
    shed: Notify,
}

/// The listener's clock and its open connections.
struct Registry {
    start: Instant,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When `conn` is to be closed: none while a request is in flight.
    fn deadline(&self, conn: &Conn, limits: &ConnectionLimits) -> Option<Instant> {
        if conn.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match conn.head_started.load(Ordering::Acquire) {
            0 => Some(self.at(conn.idle_since.load(Ordering::Acquire)) + limits.idle_timeout),
            started => Some(self.at(started - 1) + limits.header_timeout),
        }
    }

    /// When to look at `conn` next: its deadline, or `latest` if that comes first. With `latest`
    /// at most the shorter of the header and idle timeouts from now, no deadline set later (a
    /// request's headers beginning, the connection falling idle) can come before the check.
    fn next_check(&self, conn: &Conn, limits: &ConnectionLimits, latest: Instant) -> Instant {
        self.deadline(conn, limits).map_or(latest, |d| d.min(latest))
    }

    /// Makes room for one more connection: sheds the quiet connection that has been quiet
    /// longest. False when every connection has a request in flight.
    fn shed_one(&self) -> bool {
        let mut conns = self.conns();
        let quietest = conns
            .iter()
            .filter(|(_, c)| c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, c)| match c.head_started.load(Ordering::Acquire) {
                0 => c.idle_since.load(Ordering::Acquire),
                started => started - 1,
            })
            .map(|(id, _)| *id);
        match quietest.and_then(|id| conns.remove(&id)) {
            Some(conn) => {
                conn.shed.notify_one();
                STATS.shed.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves; then stops accepting,
/// closes the connections without a request in flight (idle, or sending headers), and returns
/// once the requests in flight are answered.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    let registry = Arc::new(Registry {
        start: Instant::now(),
        conns: Mutex::new(HashMap::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let mut shutdown = pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    loop {
        let (stream, remote) = tokio::select! {
            () = shutdown.as_mut() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Per-connection failures (reset before accept) need no pause; running out
                    // of descriptors or memory does.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::Interrupted
                    ) {
                        if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                            tracing::warn!(error = %e, "accept failed (said at most every 10 s)");
                            last_warning = Some(Instant::now());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
        };
        STATS.accepted.fetch_add(1, Ordering::Relaxed);
        if registry.conns().len() >= limits.max_connections && !registry.shed_one() {
            STATS.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let now = registry.now_ms();
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            // The first request's headers are due from the connection's start.
            head_started: AtomicU64::new(now + 1),
            shed: Notify::new(),
        });
        next_id += 1;
        registry.conns().insert(next_id, conn.clone());
        STATS.open.fetch_add(1, Ordering::Relaxed);
        let task = Connection {
            id: next_id,
            conn,
            registry: registry.clone(),
            limits: limits.clone(),
            app: app.clone(),
            remote,
        };
        tasks.spawn(task.run(stream, stop_rx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// One accepted connection.
struct Connection {
    id: u64,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    limits: Arc<ConnectionLimits>,
    app: Router,
    remote: SocketAddr,
}

impl Connection {
    async fn run(self, stream: TcpStream, mut stop: watch::Receiver<bool>) {
        let io = TokioIo::new(Watched {
            stream,
            conn: self.conn.clone(),
            registry: self.registry.clone(),
        });
        let service = {
            let (conn, registry, limits, app, remote) = (
                self.conn.clone(),
                self.registry.clone(),
                self.limits.clone(),
                self.app.clone(),
                self.remote,
            );
            hyper::service::service_fn(move |req| {
                let guard = InFlight::start(conn.clone(), registry.clone());
                answer(req, guard, limits.clone(), app.clone(), remote)
            })
        };
        // hyper's own header timeout would also cut idle keep-alive connections at the header
        // timeout: the loop below keeps the two apart.
        let http = hyper::server::conn::http1::Builder::new()
            .header_read_timeout(None)
            .serve_connection(io, service);
        let mut http = pin!(http);
        let mut stopping = false;
        // One timer, moved only when it fires: a deadline can only come later than a check made
        // `check_every` before it (see `Registry::next_check`), so requests arm no timer.
        let check_every = self.limits.header_timeout.min(self.limits.idle_timeout);
        let first = self.registry.next_check(&self.conn, &self.limits, Instant::now() + check_every);
        let check = tokio::time::sleep_until(first);
        let mut check = pin!(check);
        loop {
            tokio::select! {
                done = http.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    break;
                }
                () = self.conn.shed.notified() => break,
                () = check.as_mut() => {
                    let now = Instant::now();
                    if self.registry.deadline(&self.conn, &self.limits).is_some_and(|d| d <= now) {
                        STATS.timed_out.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    check.as_mut().reset(self.registry.next_check(&self.conn, &self.limits, now + check_every));
                }
                _ = stop.changed(), if !stopping => {
                    // Nothing in flight (idle, or part of a request's headers): close now;
                    // otherwise answer the request in flight and close after it.
                    if self.conn.in_flight.load(Ordering::Acquire) == 0 {
                        break;
                    }
                    stopping = true;
                    http.as_mut().graceful_shutdown();
                }
            }
        }
        self.registry.conns().remove(&self.id);
        STATS.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request: refused at once when its declared body is too large, otherwise passed to the
/// application with its body under a deadline and its client's address.
async fn answer(
    req: Request<Incoming>,
    guard: InFlight,
    limits: Arc<ConnectionLimits>,
    app: Router,
    remote: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let cap = limits.body_cap(&req);
    if declared.is_some_and(|n| n > cap) {
        STATS.bodies_too_large.fetch_add(1, Ordering::Relaxed);
        let mut refused = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("The body may be at most {cap} bytes."),
        )
        .into_response();
        // The body is not read: the connection cannot carry another request.
        refused.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(refused.map(|b| Body::new(Guarded { inner: b, _guard: guard })));
    }
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ConnectInfo(remote));
    let deadline = Instant::now() + limits.body_allowance(declared, cap);
    let body = if http_body::Body::is_end_stream(&body) {
        Body::new(body)
    } else {
        Body::new(TimedBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        })
    };
    let response = match app.oneshot(Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    Ok(response.map(|b| Body::new(Guarded { inner: b, _guard: guard })))
}

/// A request in flight on a connection; when dropped (its answer sent or abandoned), the
/// connection is idle again if it was the last.
struct InFlight {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl InFlight {
    fn start(conn: Arc<Conn>, registry: Arc<Registry>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.head_started.store(0, Ordering::Release);
        Self { conn, registry }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.idle_since.store(self.registry.now_ms(), Ordering::Release);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_other_files() {
        assert_eq!(ConnectionLimits::auto_max_connections(1024), 768);
        assert_eq!(ConnectionLimits::auto_max_connections(100), 16);
        assert_eq!(ConnectionLimits::auto_max_connections(1 << 20), AUTO_MAX_CONNECTIONS as usize);
    }

    #[test]
    fn a_body_has_time_for_its_declared_length_up_to_the_limit() {
        let l = ConnectionLimits {
            body_timeout: Duration::from_secs(30),
            body_min_bytes_per_sec: 1024,
            max_body_bytes: 10 * 1024,
            ..ConnectionLimits::default()
        };
        let cap = l.max_body_bytes;
        assert_eq!(l.body_allowance(Some(0), cap), Duration::from_secs(30));
        assert_eq!(l.body_allowance(Some(2048), cap), Duration::from_secs(32));
        assert_eq!(l.body_allowance(None, cap), Duration::from_secs(40));
        assert_eq!(l.body_allowance(Some(u64::MAX), cap), Duration::from_secs(40));
    }

    #[test]
    fn only_image_uploads_get_the_larger_cap() {
        let l = ConnectionLimits {
            max_body_bytes: 10,
            max_upload_bytes: 100,
            ..ConnectionLimits::default()
        };
        let req = |method: &str, path: &str| Request::builder().method(method).uri(path).body(()).expect("request");
        assert_eq!(l.body_cap(&req("PUT", "/api/v2/images/abc")), 100);
        assert_eq!(l.body_cap(&req("POST", "/api/v2/images/abc")), 10);
        assert_eq!(l.body_cap(&req("PUT", "/api/v2/generate/async")), 10);
        assert_eq!(l.body_cap(&req("POST", "/api/v2/generate/async")), 10);
    }
}

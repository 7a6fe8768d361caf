//! `horde-bench`: a load generator for a horde on this machine. N requesters and M simulated
//! workers run full async → pop → submit → status cycles over HTTP; it reports cycles per second,
//! p50/p99 latency per endpoint, errors, and the memory of the server processes. Loopback only,
//! bounded in time and count.
//!
//! Without `--url` it starts its own `horde serve` (the binary next to this one) on a temporary
//! SQLite database, with the dev test-user route enabled to mint keys; with `--nodes N`,
//! `--database-url postgres://…` and `--redis-url`, N processes sharing one horde. Given several
//! URLs (or nodes), each client spreads its calls over them: a request is made on one node, its
//! status read on the next, and a worker pops on one and submits on the next.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "horde-bench",
    about = "Load generator: full text cycles over HTTP against a horde on this machine."
)]
struct Args {
    /// Base URLs of a running horde started with --dev-test-users, comma-separated for several
    /// processes of one horde (loopback only). Default: start the horde.
    #[arg(long, value_delimiter = ',')]
    url: Vec<String>,
    /// Processes to start when no --url is given (more than one needs --database-url postgres://…
    /// and --redis-url).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Redis URL for the started processes (they share one horde through it).
    #[arg(long)]
    redis_url: Option<String>,
    /// Process ids of a running horde (with --url) whose memory to report. Repeatable.
    #[arg(long)]
    pid: Vec<u32>,
    /// The horde binary to start when no --url is given. Default: `horde` next to this binary.
    #[arg(long)]
    horde: Option<std::path::PathBuf>,
    /// PostgreSQL URL for the started horde (default: SQLite in a temporary directory).
    #[arg(long)]
    database_url: Option<String>,
    /// Comma-separated numbers of concurrent requesters (with as many workers, unless --workers
    /// says otherwise) to run, one run after the other (at most 64 each).
    #[arg(long, default_value = "1,8", value_delimiter = ',')]
    pairs: Vec<usize>,
    /// Simulated workers per run (at most 64). Default: as many as requesters.
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds per run (at most 300).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests each requester keeps outstanding while its worker pops concurrently. 0 runs each
    /// pair as one strictly sequential client (async, pop, submit, status, repeat).
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Requests for a model no worker serves, queued before the runs (pops walk past them).
    #[arg(long, default_value_t = 0)]
    unmatched: usize,
}

struct Spawned {
    child: Child,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spawn_horde(args: &Args, node: usize) -> anyhow::Result<(String, Spawned)> {
    let bin = match &args.horde {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("horde"),
    };
    let dir = std::env::temp_dir().join(format!("horde-bench-{}-{node}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut cmd = Command::new(&bin);
    cmd.args(["serve", "--port", "0", "--dev-test-users", "--no-rate-limits", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn");
    if let Some(db) = &args.database_url {
        cmd.args(["--database-url", db]);
    }
    if let Some(redis) = &args.redis_url {
        cmd.args(["--redis-url", redis]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    if !url.starts_with("http://") {
        bail!("unexpected output from horde: {line:?}");
    }
    Ok((url, Spawned { child, _dir: TempDir(dir) }))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or("");
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, key: Option<&str>, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut r = self.client.request(method, format!("{}/api/v2{}", self.base, path));
        if let Some(k) = key {
            r = r.header("apikey", k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    async fn user(&self, name: &str, moderator: bool) -> anyhow::Result<(String, i64)> {
        let (st, v) = self
            .call(
                reqwest::Method::POST,
                "/dev/test-user",
                None,
                Some(json!({"username": name, "oauth_id": format!("bench-{name}"), "kudos": 1e9, "moderator": moderator, "trusted": true})),
            )
            .await?;
        if st != 200 {
            bail!("test-user route answered {st} {v}: start the horde with --dev-test-users");
        }
        let id = v["user_id"].as_str().and_then(|s| s.parse().ok()).context("user id")?;
        Ok((v["api_key"].as_str().context("api key")?.to_string(), id))
    }
}

#[derive(Default)]
struct Samples {
    async_ms: Vec<f64>,
    pop_ms: Vec<f64>,
    submit_ms: Vec<f64>,
    status_ms: Vec<f64>,
    cycles: u64,
    errors: u64,
}

fn elapsed_ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Sends one benchmark request; returns its id.
async fn send_request(api: &Api, key: &str, s: &mut Samples) -> Option<String> {
    let t = Instant::now();
    let body = json!({"prompt": "benchmark", "models": ["bench-13B"], "params": {"max_length": 32}});
    match api.call(reqwest::Method::POST, "/generate/text/async", Some(key), Some(body)).await {
        Ok((202, acc)) => {
            s.async_ms.push(elapsed_ms(t));
            acc["id"].as_str().map(str::to_string)
        }
        _ => {
            s.errors += 1;
            None
        }
    }
}

/// Pops one job as `worker` on `api` and submits a result on `submit_on`. `Some(false)`: nothing
/// to do.
async fn pop_and_submit(api: &Api, submit_on: &Api, key: &str, worker: &str, s: &mut Samples) -> Option<bool> {
    let t = Instant::now();
    let body = json!({"name": worker, "models": ["bench-13B"], "max_length": 512, "amount": 1});
    let pop = api.call(reqwest::Method::POST, "/generate/text/pop", Some(key), Some(body)).await;
    s.pop_ms.push(elapsed_ms(t));
    let Ok((200, pop)) = pop else {
        s.errors += 1;
        return None;
    };
    let Some(job) = pop["id"].as_str().map(str::to_string) else {
        return Some(false);
    };
    let t = Instant::now();
    let body = json!({"id": job, "generation": "a generated benchmark text", "state": "ok"});
    let sub = submit_on
        .call(reqwest::Method::POST, "/generate/text/submit", Some(key), Some(body))
        .await;
    s.submit_ms.push(elapsed_ms(t));
    if matches!(sub, Ok((200, _))) {
        Some(true)
    } else {
        s.errors += 1;
        None
    }
}

/// Reads a request's status: `Some(true)` when done with its text (a cycle), `Some(false)` when
/// still running.
async fn check_status(api: &Api, id: &str, s: &mut Samples) -> Option<bool> {
    let t = Instant::now();
    let st = api
        .call(reqwest::Method::GET, &format!("/generate/text/status/{id}"), None, None)
        .await;
    s.status_ms.push(elapsed_ms(t));
    match st {
        Ok((200, v)) if v["done"] == json!(true) && v["generations"][0]["text"].is_string() => {
            s.cycles += 1;
            Some(true)
        }
        Ok((200, v)) if v["done"] == json!(false) => Some(false),
        _ => {
            s.errors += 1;
            None
        }
    }
}

/// One client doing async, pop, submit, status in turn (each on the next node, if several).
async fn pair(apis: Vec<Arc<Api>>, key: String, worker: String, until: Instant) -> Samples {
    let mut s = Samples::default();
    let node = |i: usize| apis[i % apis.len()].clone();
    while Instant::now() < until {
        let Some(id) = send_request(&node(0), &key, &mut s).await else {
            continue;
        };
        match pop_and_submit(&node(1), &node(2), &key, &worker, &mut s).await {
            Some(true) => {}
            Some(false) => {
                s.errors += 1;
                continue;
            }
            None => continue,
        }
        if check_status(&node(3), &id, &mut s).await == Some(false) {
            s.errors += 1;
        }
    }
    s
}

/// A requester keeping `window` requests outstanding on `submit_on`, polling the oldest on
/// `read_on` until it is done.
async fn requester(submit_on: Arc<Api>, read_on: Arc<Api>, key: String, until: Instant, window: usize) -> Samples {
    let mut s = Samples::default();
    let mut outstanding: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    while Instant::now() < until {
        while outstanding.len() < window.max(1) {
            match send_request(&submit_on, &key, &mut s).await {
                Some(id) => outstanding.push_back(id),
                None => break,
            }
        }
        let Some(id) = outstanding.pop_front() else { continue };
        if check_status(&read_on, &id, &mut s).await == Some(false) {
            outstanding.push_front(id);
        }
    }
    s
}

/// A worker popping on `pop_on` and submitting on `submit_on` until `until`.
async fn worker(pop_on: Arc<Api>, submit_on: Arc<Api>, key: String, name: String, until: Instant) -> Samples {
    let mut s = Samples::default();
    while Instant::now() < until {
        if pop_and_submit(&pop_on, &submit_on, &key, &name, &mut s).await == Some(false) {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    s
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One pair is a chain of round trips: a single-threaded client adds no thread hops to it.
    let mut rt = if args.window == 0 && args.pairs.iter().all(|p| *p <= 1) && args.url.len() <= 1 && args.nodes <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    rt.enable_all().build()?.block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let seconds = args.seconds.clamp(1, 300);
    let nodes = args.nodes.clamp(1, 16);
    if nodes > 1 && (args.redis_url.is_none() || !args.database_url.as_deref().is_some_and(|d| d.starts_with("postgres"))) {
        bail!("--nodes {nodes} needs --database-url postgres://… and --redis-url");
    }
    let mut spawned = Vec::new();
    let bases: Vec<String> = if args.url.is_empty() {
        let mut bases = Vec::new();
        for n in 0..nodes {
            let (u, s) = spawn_horde(&args, n)?;
            bases.push(u);
            spawned.push(s);
        }
        bases
    } else {
        args.url.iter().map(|u| u.trim_end_matches('/').to_string()).collect()
    };
    if let Some(base) = bases.iter().find(|b| !is_loopback_url(b)) {
        bail!("horde-bench only targets a horde on this machine (loopback), not {base}");
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let apis: Vec<Arc<Api>> = bases
        .iter()
        .map(|b| {
            Arc::new(Api {
                base: b.clone(),
                client: client.clone(),
            })
        })
        .collect();
    let api = apis[0].clone();
    let node = |i: usize| apis[i % apis.len()].clone();
    let mode = if args.window == 0 {
        "sequential pairs".to_string()
    } else {
        format!("requesters with {} outstanding each, workers apart", args.window)
    };
    println!("horde-bench against {} ({seconds} s per run, {mode})", bases.join(", "));

    if args.unmatched > 0 {
        let (admin, _) = api.user("bench_admin", true).await?;
        let per_user = 500;
        let started = Instant::now();
        for u in 0..args.unmatched.div_ceil(per_user) {
            let (key, id) = api.user(&format!("bench_fill_{u}"), false).await?;
            api.call(
                reqwest::Method::PUT,
                &format!("/users/{id}"),
                Some(&admin),
                Some(json!({"concurrency": per_user})),
            )
            .await?;
            for _ in 0..per_user.min(args.unmatched - u * per_user) {
                let (st, v) = api
                    .call(
                        reqwest::Method::POST,
                        "/generate/text/async",
                        Some(&key),
                        Some(json!({"prompt": "never served", "models": ["nobody-serves-this"]})),
                    )
                    .await?;
                if st != 202 {
                    bail!("could not queue unmatched requests: {st} {v}");
                }
            }
        }
        println!(
            "queued {} unmatched requests in {:.1} s",
            args.unmatched,
            started.elapsed().as_secs_f64()
        );
    }

    for &n in args.pairs.iter().filter(|n| **n > 0 && **n <= 64) {
        let m = args.workers.unwrap_or(n).clamp(1, 64);
        let mut keys = vec![];
        for p in 0..n {
            keys.push(api.user(&format!("bench_pair_{n}_{p}"), false).await?.0);
        }
        let mut worker_keys = vec![];
        if args.window > 0 {
            for w in 0..m {
                worker_keys.push(api.user(&format!("bench_worker_{n}_{m}_{w}"), false).await?.0);
            }
        }
        let until = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks: Vec<_> = keys
            .into_iter()
            .enumerate()
            .map(|(p, key)| {
                if args.window == 0 {
                    let order: Vec<Arc<Api>> = (0..4).map(|i| node(p + i)).collect();
                    tokio::spawn(pair(order, key, format!("bench-worker-{n}-{p}"), until))
                } else {
                    tokio::spawn(requester(node(p), node(p + 1), key, until, args.window))
                }
            })
            .collect();
        for (w, key) in worker_keys.into_iter().enumerate() {
            let name = format!("bench-worker-{n}-{m}-{w}");
            tasks.push(tokio::spawn(worker(node(w), node(w + 1), key, name, until)));
        }
        let mut all = Samples::default();
        for t in tasks {
            let s = t.await?;
            all.cycles += s.cycles;
            all.errors += s.errors;
            all.async_ms.extend(s.async_ms);
            all.pop_ms.extend(s.pop_ms);
            all.submit_ms.extend(s.submit_ms);
            all.status_ms.extend(s.status_ms);
        }
        let secs = started.elapsed().as_secs_f64();
        let who = if args.window == 0 {
            format!("{n} pair(s)")
        } else {
            format!("{n} requester(s), {m} worker(s)")
        };
        println!(
            "\n{who}: {} cycles in {secs:.1} s = {:.0} cycles/s, {} errors",
            all.cycles,
            all.cycles as f64 / secs,
            all.errors
        );
        println!("  endpoint    p50 ms   p99 ms");
        for (name, v) in [
            ("async", &mut all.async_ms),
            ("pop", &mut all.pop_ms),
            ("submit", &mut all.submit_ms),
            ("status", &mut all.status_ms),
        ] {
            println!("  {name:<9} {:>7.3}  {:>7.3}", pct(v, 0.5), pct(v, 0.99));
        }
    }
    let pids: Vec<u32> = spawned.iter().map(|s| s.child.id()).chain(args.pid.iter().copied()).collect();
    let rss: Vec<f64> = pids.iter().filter_map(|p| rss_kib(*p)).map(|k| k as f64 / 1024.0).collect();
    if !rss.is_empty() {
        let each: Vec<String> = rss.iter().map(|m| format!("{m:.1}")).collect();
        println!(
            "\nserver memory (RSS): {:.1} MiB in all ({} MiB)",
            rss.iter().sum::<f64>(),
            each.join(" + ")
        );
    }
    for mut s in spawned {
        let _ = Command::new("kill").arg("-TERM").arg(s.child.id().to_string()).status();
        let _ = s.child.wait();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(is_loopback_url("http://127.0.0.1:7001"));
        assert!(is_loopback_url("http://localhost:7001/"));
        assert!(!is_loopback_url("http://10.0.0.5:7001"));
        assert!(!is_loopback_url("http://example.com"));
    }
}

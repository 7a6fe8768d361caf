//! Several `horde serve` processes sharing one horde through PostgreSQL and Redis (both real,
//! on loopback): requests cross nodes, no job is handed out twice, a node killed outright loses
//! nothing, and a Redis restart behaves as documented.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::TempRedis;
use common::Server;
use serde_json::{json, Value};
use sqlx::{Connection, Row};

/// A horde of `n` processes on a fresh database and Redis, or `None` when either is missing here.
async fn cluster(n: usize, extra: &[&str]) -> Option<(Vec<Server>, TempRedis, String)> {
    let db = common::fresh_pg_url().await?;
    let redis = TempRedis::start().await?;
    let nodes = (0..n).map(|_| node(&db, &redis, extra)).collect();
    Some((nodes, redis, db))
}

/// One process of the horde on `db` and `redis`, with the tests' settings and `extra`.
fn node(db: &str, redis: &TempRedis, extra: &[&str]) -> Server {
    let mut args = vec!["--dev-test-users", "--reap-interval-ms", "200", "--lease-ms", "1000"];
    args.extend_from_slice(extra);
    Server::node(db, &redis.url(), &args)
}

async fn text_request(s: &Server, key: &str, prompt: &str) -> String {
    let (st, v) = s
        .post(
            "/generate/text/async",
            Some(key),
            json!({"prompt": prompt, "params": {"max_length": 16, "max_context_length": 1024}, "models": ["m"]}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    v["id"].as_str().expect("id").to_string()
}

async fn pop(s: &Server, key: &str, name: &str) -> Value {
    let (st, v) = s
        .post(
            "/generate/text/pop",
            Some(key),
            json!({"name": name, "models": ["m"], "max_length": 512, "max_context_length": 2048}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn submit(s: &Server, key: &str, job: &str, text: &str) -> (u16, Value) {
    s.post("/generate/text/submit", Some(key), json!({"id": job, "generation": text}))
        .await
}

/// Rows of the ledger of one kind.
async fn postings(db: &str, kind: &str) -> i64 {
    let mut c = sqlx::PgConnection::connect(db).await.expect("connect");
    sqlx::query("SELECT COUNT(*) AS n FROM kudos_ledger WHERE kind = $1")
        .bind(kind)
        .fetch_one(&mut c)
        .await
        .expect("count")
        .get::<i64, _>("n")
}

/// Stored balances against the sum of each account's ledger rows: equal unless a batch was
/// stored twice or in part.
async fn ledger_matches_balances(db: &str) {
    let mut c = sqlx::PgConnection::connect(db).await.expect("connect");
    let rows = sqlx::query(
        "SELECT u.id, u.kudos, (COALESCE((SELECT SUM(amount) FROM kudos_ledger WHERE to_account = 'user:' || u.id), 0) \
         - COALESCE((SELECT SUM(amount) FROM kudos_ledger WHERE from_account = 'user:' || u.id), 0))::BIGINT AS posted FROM users u",
    )
    .fetch_all(&mut c)
    .await
    .expect("balances");
    for r in rows {
        let (id, kudos, posted): (i64, i64, i64) = (r.get(0), r.get(1), r.get::<i64, _>("posted"));
        assert_eq!(kudos, posted, "user {id}: stored balance {kudos} vs ledger {posted}");
    }
}

/// Waits until `n` job rewards are stored, then checks, past the takeover delay of the other
/// processes, that each was stored exactly once and that stored balances match the ledger.
async fn rewards_stored_once(db: &str, n: i64) {
    rewards_stored(db, n).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(postings(db, "job_reward").await, n, "a batch was stored twice");
    ledger_matches_balances(db).await;
}

/// Waits until `n` job rewards are stored.
async fn rewards_stored(db: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stored = postings(db, "job_reward").await;
        if stored >= n {
            return;
        }
        assert!(Instant::now() < deadline, "kudos lost: {stored} of {n} rewards stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_made_on_one_node_is_popped_on_another_and_read_on_a_third() {
    let Some((nodes, _redis, db)) = cluster(3, &[]).await else { return };
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (requester, requester_id) = a.user("asker", 100.0, false, false).await;
    let (worker, worker_id) = b.user("runner", 0.0, false, false).await;
    // The worker exists on B; the request, made on A, knows it can be served.
    assert!(pop(b, &worker, "w1").await["id"].is_null());
    let (st, v) = a
        .post(
            "/generate/text/async",
            Some(&requester),
            json!({"prompt": "hello", "params": {"max_length": 16}, "models": ["m"]}),
        )
        .await;
    assert_eq!(st, 202);
    assert!(v["message"].is_null(), "a worker on another node can serve it: {v}");
    let id = v["id"].as_str().expect("id").to_string();
    let (st, v) = c.get(&format!("/generate/text/status/{id}"), None).await;
    assert_eq!((st, v["waiting"].as_i64()), (200, Some(1)), "{v}");
    let job = pop(b, &worker, "w1").await;
    assert_eq!(job["payload"]["prompt"], "hello");
    let (st, v) = submit(b, &worker, job["id"].as_str().expect("job"), " world").await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = c.get(&format!("/generate/text/status/{id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(v["done"], true, "{v}");
    assert_eq!(v["generations"][0]["text"], " world");
    assert_eq!(v["generations"][0]["worker_name"], "w1");
    // Every node sees the same balances and the same worker.
    let mut seen = HashSet::new();
    for n in &nodes {
        let (_, u) = n.get(&format!("/users/{requester_id}"), None).await;
        let (_, w) = n.get(&format!("/users/{worker_id}"), None).await;
        let (_, workers) = n.get("/workers?type=text", None).await;
        seen.insert((u["kudos"].to_string(), w["kudos"].to_string(), workers.as_array().map(Vec::len)));
    }
    assert_eq!(seen.len(), 1, "nodes disagree: {seen:?}");
    // Stored once: one reward in the ledger although three processes hold the batch.
    rewards_stored_once(&db, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_workers_on_three_nodes_never_get_the_same_job() {
    let Some((nodes, _redis, db)) = cluster(3, &[]).await else { return };
    let nodes = Arc::new(nodes);
    // Eight requesters, each within its concurrency limit (30 jobs waiting).
    let mut requesters = Vec::new();
    for r in 0..8 {
        requesters.push(nodes[r % 3].user(&format!("many{r}"), 100_000.0, false, false).await.0);
    }
    let mut ids = Vec::new();
    for i in 0..240 {
        ids.push(text_request(&nodes[i % 3], &requesters[i % 8], &format!("p{i}")).await);
    }
    let mut keys = Vec::new();
    for i in 0..16 {
        keys.push(nodes[i % 3].user(&format!("worker{i}"), 0.0, false, false).await.0);
    }
    let mut tasks = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let nodes = nodes.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut idle = 0;
            let mut turn = i;
            while idle < 3 {
                // Each worker hops between nodes, as behind a load balancer.
                turn += 1;
                let node = &nodes[turn % 3];
                let v = pop(node, &key, &format!("w{i}")).await;
                match v["id"].as_str() {
                    Some(job) => {
                        idle = 0;
                        let (st, r) = submit(&nodes[(turn + 1) % 3], &key, job, "ok").await;
                        assert_eq!(st, 200, "{r}");
                        got.push(job.to_string());
                    }
                    None => idle += 1,
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker task"));
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a job was handed out twice");
    assert_eq!(all.len(), 240, "every request got its one job");
    for (i, id) in ids.iter().enumerate() {
        let (st, v) = nodes[(i + 1) % 3].get(&format!("/generate/text/status/{id}"), None).await;
        assert_eq!((st, v["done"].as_bool()), (200, Some(true)), "{v}");
    }
    rewards_stored_once(&db, 240).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_run_loses_no_request_and_no_kudos() {
    let Some((mut nodes, _redis, db)) = cluster(3, &["--min-job-ttl-secs", "2"]).await else {
        return;
    };
    let (requester, _) = nodes[0].user("steady", 100_000.0, false, false).await;
    let (worker, _) = nodes[1].user("survivor", 0.0, false, false).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(text_request(&nodes[i % 3], &requester, &format!("k{i}")).await);
    }
    // Jobs handed out by the doomed node (C): some finished through it, some left in flight.
    let mut finished = 0;
    for i in 0..6 {
        let job = pop(&nodes[2], &worker, "w").await;
        let job = job["id"].as_str().expect("a job").to_string();
        if i % 2 == 0 {
            let (st, _) = submit(&nodes[2], &worker, &job, "done on C").await;
            assert_eq!(st, 200);
            finished += 1;
        }
    }
    nodes[2].kill9();
    // The survivors serve everything else; the jobs lost in flight are handed out again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done: HashMap<String, bool> = ids.iter().map(|id| (id.clone(), false)).collect();
    while done.values().any(|d| !d) {
        assert!(Instant::now() < deadline, "requests never finished: {done:?}");
        let v = pop(&nodes[finished % 2], &worker, "w").await;
        if let Some(job) = v["id"].as_str() {
            let (st, r) = submit(&nodes[(finished + 1) % 2], &worker, job, "done").await;
            assert_eq!(st, 200, "{r}");
            finished += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for (id, d) in done.iter_mut().filter(|(_, d)| !**d) {
            let (st, v) = nodes[0].get(&format!("/generate/text/status/{id}"), None).await;
            assert_eq!(st, 200, "request {id} lost: {v}");
            *d = v["done"].as_bool() == Some(true);
        }
    }
    assert_eq!(finished, 30, "each request finished once");
    // Every finished job was paid once, including those whose batch the dead node had cut.
    rewards_stored_once(&db, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_stopped_by_sigterm_hands_its_work_over() {
    let Some((mut nodes, _redis, db)) = cluster(2, &["--drain-secs", "20"]).await else {
        return;
    };
    let (requester, _) = nodes[0].user("handed", 100.0, false, false).await;
    let (worker, _) = nodes[1].user("taker", 0.0, false, false).await;
    let queued = text_request(&nodes[0], &requester, "queued").await;
    let started = text_request(&nodes[0], &requester, "started").await;
    let job = pop(&nodes[0], &worker, "w").await;
    let job = job["id"].as_str().expect("a job").to_string();
    // The stopping node neither drains nor refunds: the other serves its work.
    let signalled = Instant::now();
    nodes[0].terminate();
    let exit = nodes[0].wait_exit(Duration::from_secs(15)).expect("still running after SIGTERM");
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "waited {:?} for work others serve",
        signalled.elapsed()
    );
    let (st, _) = submit(&nodes[1], &worker, &job, "done on B").await;
    assert_eq!(st, 200);
    let next = pop(&nodes[1], &worker, "w").await;
    let (st, _) = submit(&nodes[1], &worker, next["id"].as_str().expect("the queued job"), "also on B").await;
    assert_eq!(st, 200);
    for id in [&queued, &started] {
        let (_, v) = nodes[1].get(&format!("/generate/text/status/{id}"), None).await;
        assert_eq!(v["done"], true, "{v}");
        assert_eq!(v["generations"].as_array().map(Vec::len), Some(1), "{v}");
    }
    rewards_stored(&db, 2).await;
    assert_eq!(postings(&db, "refund").await, 0, "work handed over was refunded");
    ledger_matches_balances(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_restart_drops_requests_in_flight_and_the_horde_goes_on() {
    let Some((nodes, mut redis, db)) = cluster(2, &[]).await else {
        return;
    };
    let (requester, requester_id) = nodes[0].user("before", 1000.0, false, false).await;
    let (worker, _) = nodes[1].user("after", 0.0, false, false).await;
    let id = text_request(&nodes[0], &requester, "lost").await;
    let job = pop(&nodes[1], &worker, "w").await;
    let (st, _) = submit(&nodes[1], &worker, job["id"].as_str().expect("job"), "paid").await;
    assert_eq!(st, 200);
    let pending = text_request(&nodes[0], &requester, "in flight").await;
    // Let the persister store the finished job and both taxes before Redis goes (postings not yet
    // cut into a batch would be dropped with it, both sides).
    rewards_stored(&db, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while postings(&db, "request_tax").await < 2 {
        assert!(Instant::now() < deadline, "the taxes were not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, before) = nodes[0].get(&format!("/users/{requester_id}"), None).await;
    redis.kill();
    let (st, v) = nodes[1].get(&format!("/generate/text/status/{pending}"), None).await;
    assert_eq!(st, 503, "no shared state, no answer: {v}");
    assert_eq!(v["rc"], "SharedStateUnavailable");
    // Load balancers see it in the heartbeat.
    let (st, hb) = nodes[0].get("/status/heartbeat", None).await;
    assert_eq!((st, hb["message"].as_str()), (503, Some("DOWN")));
    redis.start_again().await;
    // Once the nodes see the empty Redis, requests in flight are gone (404) everywhere.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = nodes[0].get(&format!("/generate/text/status/{pending}"), None).await.0;
        let b = nodes[1].get(&format!("/generate/text/status/{id}"), None).await.0;
        if (a, b) == (404, 404) {
            break;
        }
        assert!(Instant::now() < deadline, "still answering {a}/{b} after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stored kudos survive; the horde takes new work at once.
    let (_, after) = nodes[1].get(&format!("/users/{requester_id}"), None).await;
    assert_eq!(before["kudos"], after["kudos"]);
    let again = text_request(&nodes[1], &requester, "again").await;
    let job = pop(&nodes[0], &worker, "w").await;
    assert_eq!(job["payload"]["prompt"], "again");
    let (st, _) = submit(&nodes[1], &worker, job["id"].as_str().expect("job"), "ok").await;
    assert_eq!(st, 200);
    let (_, v) = nodes[0].get(&format!("/generate/text/status/{again}"), None).await;
    assert_eq!(v["done"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_state_needs_postgresql() {
    let Some(redis) = TempRedis::start().await else { return };
    let dir = std::env::temp_dir().join(format!("horde-sqlite-shared-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_horde"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&dir)
        .args(["--redis-url", &redis.url()])
        .output()
        .expect("run horde");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--database-url postgres"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_started_later_begins_from_the_snapshot() {
    let Some((mut nodes, redis, db)) = cluster(2, &["--snapshot-ms", "200"]).await else {
        return;
    };
    let (requester, requester_id) = nodes[0].user("early", 1000.0, false, false).await;
    let (worker, _) = nodes[1].user("late_worker", 0.0, false, false).await;
    for i in 0..5 {
        let id = text_request(&nodes[i % 2], &requester, "done early").await;
        let job = pop(&nodes[1], &worker, "w").await;
        submit(&nodes[0], &worker, job["id"].as_str().expect("job"), "x").await;
        assert_eq!(nodes[1].get(&format!("/generate/text/status/{id}"), None).await.1["done"], true);
    }
    let waiting = text_request(&nodes[0], &requester, "for the newcomer").await;
    // A few snapshots later the log no longer starts at the beginning.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let client = redis::Client::open(redis.url()).expect("url");
    let mut c = client.get_multiplexed_async_connection().await.expect("redis");
    let len: i64 = redis::cmd("XLEN").arg("horde:log").query_async(&mut c).await.expect("XLEN");
    assert!(len < 10, "the log was not trimmed: {len} entries");
    nodes.push(node(&db, &redis, &["--snapshot-ms", "200"]));
    let newcomer = &nodes[2];
    let (st, v) = newcomer.get(&format!("/generate/text/status/{waiting}"), None).await;
    assert_eq!((st, v["waiting"].as_i64()), (200, Some(1)), "{v}");
    let (_, a) = nodes[0].get(&format!("/users/{requester_id}"), None).await;
    let (_, b) = newcomer.get(&format!("/users/{requester_id}"), None).await;
    assert_eq!(a["kudos"], b["kudos"]);
    let job = pop(newcomer, &worker, "w").await;
    assert_eq!(job["payload"]["prompt"], "for the newcomer");
    let (st, _) = submit(newcomer, &worker, job["id"].as_str().expect("job"), "welcome").await;
    assert_eq!(st, 200);
    assert_eq!(
        nodes[0].get(&format!("/generate/text/status/{waiting}"), None).await.1["done"],
        true
    );
    rewards_stored_once(&db, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_with_other_settings_may_not_join() {
    let Some((nodes, redis, db)) = cluster(1, &[]).await else { return };
    assert_eq!(nodes[0].get("/status/heartbeat", None).await.0, 200);
    let dir = std::env::temp_dir().join(format!("horde-other-settings-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_horde"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(&dir)
        .args(["--database-url", &db, "--redis-url", &redis.url(), "--request-expiry-minutes", "5"])
        .output()
        .expect("run horde");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "a process with another request expiry joined");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("other settings"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_count_once_across_processes() {
    let Some((nodes, _redis, _db)) = cluster(2, &["--rate-limit", "register=3/min ip"]).await else {
        return;
    };
    for (i, node) in [0, 1, 0].into_iter().enumerate() {
        let (st, v) = nodes[node].post("/register", None, json!({"username": format!("r{i}")})).await;
        assert_eq!(st, 201, "{v}");
    }
    for node in &nodes {
        let (st, v) = node.post("/register", None, json!({"username": "one_too_many"})).await;
        assert_eq!((st, v["rc"].as_str()), (429, Some("TooManyRequests")), "{v}");
    }
}

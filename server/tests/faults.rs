//! Faults, on SQLite and PostgreSQL: a worker that vanishes mid-job, double and late submits, and
//! a stranger submitting another worker's job, `kill -9` right after an answer, repeated transfers
//! (`Idempotency-Key`). Nothing is lost, nothing is paid twice, and what was answered is stored.

mod common;

use std::time::Duration;

use common::{Db, Server};
use serde_json::{json, Value};

async fn kudos(s: &Server, key: &str) -> f64 {
    s.get("/find_user", Some(key)).await.1["kudos"].as_f64().expect("kudos")
}

async fn vanished_worker_double_and_late_submits(db: Db) {
    // Requests live 63 s, so a text job's TTL is 3 s and the reaper sees it within 0.1 s.
    let s = server!(
        db,
        &[
            "--dev-test-users",
            "--request-expiry-minutes",
            "1.05",
            "--min-job-ttl-secs",
            "1",
            "--reap-interval-ms",
            "100"
        ]
    );
    let (req, _) = s.user("req", 500.0, false, false).await;
    let (ghost, _) = s.user("ghost", 0.0, false, false).await;
    let (steady, _) = s.user("steady", 0.0, false, false).await;
    let (stranger, _) = s.user("stranger", 0.0, false, false).await;
    let (_, acc) = s
        .post(
            "/generate/text/async",
            Some(&req),
            json!({"prompt": "p", "params": {"max_length": 40}}),
        )
        .await;
    let id = acc["id"].as_str().expect("id").to_string();

    // The ghost takes the job and disappears.
    let (_, lost) = s.post("/generate/text/pop", Some(&ghost), json!({"name": "ghost-w"})).await;
    let lost_job = lost["id"].as_str().expect("ghost got the job").to_string();
    // While it is in flight, nobody else gets it, and a stranger cannot submit it.
    let (_, none) = s.post("/generate/text/pop", Some(&steady), json!({"name": "steady-w"})).await;
    assert_eq!(none["id"], Value::Null);
    let (st, v) = s
        .post(
            "/generate/text/submit",
            Some(&stranger),
            json!({"id": lost_job, "generation": "mine!"}),
        )
        .await;
    assert_eq!((st, v["rc"].as_str()), (403, Some("WrongCredentials")), "{v}");

    // After its TTL the job is handed out again, and the request completes on another worker.
    let mut job = Value::Null;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, pop) = s.post("/generate/text/pop", Some(&steady), json!({"name": "steady-w"})).await;
        if pop["id"].is_string() {
            job = pop;
            break;
        }
    }
    let job_id = job["id"].as_str().expect("the job was requeued to the steady worker").to_string();
    assert_ne!(job_id, lost_job);
    let (_, status) = s.get(&format!("/generate/text/status/{id}"), None).await;
    assert_eq!(status["restarted"].as_i64(), Some(1), "{status}");

    let (st, first) = s
        .post(
            "/generate/text/submit",
            Some(&steady),
            json!({"id": job_id, "generation": "done well"}),
        )
        .await;
    assert_eq!(st, 200, "{first}");
    assert!(first["reward"].as_f64().is_some_and(|r| r > 0.0));
    s.settle().await;
    let paid = kudos(&s, &steady).await;

    // Double submit: 400 and no second reward.
    let (st, v) = s
        .post("/generate/text/submit", Some(&steady), json!({"id": job_id, "generation": "again"}))
        .await;
    assert_eq!((st, v["rc"].as_str()), (400, Some("DuplicateGen")), "{v}");
    // Late submit of the requeued job: rejected, unpaid, and the result stays the steady worker's.
    let (st, v) = s
        .post(
            "/generate/text/submit",
            Some(&ghost),
            json!({"id": lost_job, "generation": "too late"}),
        )
        .await;
    assert_eq!((st, v["rc"].as_str()), (400, Some("AbortedGen")), "{v}");
    s.settle().await;
    assert_eq!(kudos(&s, &steady).await, paid);
    assert_eq!(kudos(&s, &ghost).await, 0.0);
    let (_, status) = s.get(&format!("/generate/text/status/{id}"), None).await;
    assert_eq!(status["done"], true);
    let texts: Vec<&str> = status["generations"]
        .as_array()
        .map(|g| g.iter().filter_map(|x| x["text"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(texts, ["done well"]);
    let (_, ghost_worker) = s.get("/workers/name/ghost-w", None).await;
    assert_eq!(ghost_worker["uncompleted_jobs"].as_i64(), Some(1), "{ghost_worker}");
}
on_both_databases!(vanished_worker, vanished_worker_double_and_late_submits);

/// Stored balances of `ids` (in centikudos), read from the database itself, after checking that
/// the books balance: every balance equals its ledger rows, and nothing was created or destroyed.
async fn stored_balances(s: &Server, ids: &[i64]) -> Vec<i64> {
    let store = horde_core::Store::connect(&s.db_url).await.expect("open store");
    let ledger = store.ledger_balances().await.expect("ledger");
    let stored = store.stored_balances().await.expect("balances");
    let (mint, burn) = store.system_balances().await.expect("system");
    store.close().await;
    assert_eq!(stored.values().sum::<i64>() + mint + burn, 0, "kudos created or destroyed");
    for (id, bal) in &stored {
        assert_eq!(ledger.get(&format!("user:{id}")).copied().unwrap_or(0), *bal, "user {id}");
    }
    ids.iter().map(|id| stored.get(id).copied().unwrap_or(0)).collect()
}

async fn answered_means_stored(db: Db) {
    // A minute between periodic flushes: whatever is stored by the kill was stored because the
    // answer waited for it.
    let mut s = server!(db, &["--dev-test-users", "--flush-interval-ms", "60000"]);
    let (giver, giver_id) = s.user("giver", 1_000.0, false, false).await;
    let (_, taker_id) = s.user("taker", 0.0, false, false).await;
    let (worker, worker_id) = s.user("earner", 0.0, false, false).await;
    let mut received = 0;
    let mut earned = 0;
    for round in 0..5 {
        // A transfer answered 200, then kill -9 at once.
        let (st, v) = s
            .post(
                "/kudos/transfer",
                Some(&giver),
                json!({"username": format!("taker#{taker_id}"), "amount": 3}),
            )
            .await;
        assert_eq!((st, v["transferred"].as_f64()), (200, Some(3.0)), "round {round}: {v}");
        s.kill9();
        received += 300;
        assert_eq!(stored_balances(&s, &[taker_id]).await, [received], "round {round}: transfer lost");
        s.start_again();
        // A job's reward answered 200, then kill -9 at once.
        let (st, _) = s
            .post(
                "/generate/text/async",
                Some(&giver),
                json!({"prompt": "p", "params": {"max_length": 20}}),
            )
            .await;
        assert_eq!(st, 202);
        let (_, job) = s.post("/generate/text/pop", Some(&worker), json!({"name": "earner-w"})).await;
        let job = job["id"].as_str().expect("a job").to_string();
        let (st, v) = s
            .post("/generate/text/submit", Some(&worker), json!({"id": job, "generation": "done"}))
            .await;
        assert_eq!(st, 200, "round {round}: {v}");
        let reward = (v["reward"].as_f64().expect("reward") * 100.0).round() as i64;
        assert!(reward > 0);
        s.kill9();
        earned += reward;
        assert_eq!(stored_balances(&s, &[worker_id]).await, [earned], "round {round}: reward lost");
        s.start_again();
    }
    // A registration answered 201 survives too, and the restarted horde reads what was stored.
    let (st, reg) = s.post("/register", None, json!({"username": "newcomer"})).await;
    assert_eq!(st, 201, "{reg}");
    s.kill9();
    s.start_again();
    let (st, me) = s.get("/find_user", reg["api_key"].as_str()).await;
    assert_eq!((st, me["id"].as_i64()), (200, reg["id"].as_i64()), "{me}");
    assert_eq!(kudos(&s, &worker).await * 100.0, earned as f64);
    let (_, giver_now) = s.get(&format!("/users/{giver_id}"), None).await;
    assert!(giver_now["kudos"].as_f64().is_some_and(|k| k < 1_000.0 - 15.0), "{giver_now}");
}
on_both_databases!(answered_means_stored, answered_means_stored);

async fn transfer(s: &Server, key: &str, idempotency: Option<&str>, to: &str, amount: f64) -> (u16, Value) {
    let mut r = s
        .client
        .post(s.api("/kudos/transfer"))
        .header("apikey", key)
        .json(&json!({"username": to, "amount": amount}));
    if let Some(k) = idempotency {
        r = r.header("Idempotency-Key", k);
    }
    let resp = r.send().await.expect("transfer");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn user_kudos(s: &Server, id: i64) -> f64 {
    s.get(&format!("/users/{id}"), None).await.1["kudos"].as_f64().expect("kudos")
}

async fn idempotency_key_transfers_once(db: Db) {
    let mut s = server!(db, &["--dev-test-users"]);
    let (giver, _) = s.user("payer", 1_000.0, false, false).await;
    let (_, payee_id) = s.user("payee", 0.0, false, false).await;
    let payee = format!("payee#{payee_id}");
    // A repeat gets the first answer; nothing moves twice.
    assert_eq!(transfer(&s, &giver, Some("order-1"), &payee, 5.0).await.1["transferred"], 5.0);
    let (st, v) = transfer(&s, &giver, Some("order-1"), &payee, 5.0).await;
    assert_eq!((st, v["transferred"].as_f64()), (200, Some(5.0)), "{v}");
    assert_eq!(user_kudos(&s, payee_id).await, 5.0);
    // The same key for another transfer is refused.
    let (st, v) = transfer(&s, &giver, Some("order-1"), &payee, 6.0).await;
    assert_eq!((st, v["rc"].as_str()), (400, Some("IdempotencyKeyConflict")), "{v}");
    // Repeats racing each other: one transfer.
    let mut racing = Vec::new();
    for _ in 0..8 {
        let (s, giver, payee) = (&s, &giver, &payee);
        racing.push(async move { transfer(s, giver, Some("order-2"), payee, 7.0).await });
    }
    for (st, v) in futures_util::future::join_all(racing).await {
        assert_eq!((st, v["transferred"].as_f64()), (200, Some(7.0)), "{v}");
    }
    assert_eq!(user_kudos(&s, payee_id).await, 12.0);
    // Without a key, or with another, a repeat is a new transfer.
    assert_eq!(transfer(&s, &giver, None, &payee, 1.0).await.0, 200);
    assert_eq!(transfer(&s, &giver, Some("order-3"), &payee, 1.0).await.0, 200);
    assert_eq!(user_kudos(&s, payee_id).await, 14.0);
    // After kill -9 and a restart the key is still known (from storage).
    s.kill9();
    s.start_again();
    let (st, v) = transfer(&s, &giver, Some("order-2"), &payee, 7.0).await;
    assert_eq!((st, v["transferred"].as_f64()), (200, Some(7.0)), "{v}");
    let (st, v) = transfer(&s, &giver, Some("order-2"), &payee, 8.0).await;
    assert_eq!((st, v["rc"].as_str()), (400, Some("IdempotencyKeyConflict")), "{v}");
    assert_eq!(user_kudos(&s, payee_id).await, 14.0);
    // Keys are the sender's own: another sender's same key is its own transfer.
    let (other, _) = s.user("other-payer", 100.0, false, false).await;
    assert_eq!(transfer(&s, &other, Some("order-2"), &payee, 2.0).await.0, 200);
    assert_eq!(user_kudos(&s, payee_id).await, 16.0);
    // Malformed keys are refused.
    let (st, v) = transfer(&s, &giver, Some(&"k".repeat(200)), &payee, 1.0).await;
    assert_eq!((st, v["rc"].as_str()), (400, Some("ValidationError")), "{v}");
}
on_both_databases!(idempotency_key, idempotency_key_transfers_once);

async fn sigterm_drains_then_exits(db: Db) {
    let mut s = server!(db, &["--dev-test-users", "--drain-secs", "6"]);
    let (asker, asker_id) = s.user("asker", 100.0, false, false).await;
    let (worker, _) = s.user("runner", 0.0, false, false).await;
    let mut ids = Vec::new();
    for prompt in ["first", "second", "third"] {
        let (st, v) = s
            .post(
                "/generate/text/async",
                Some(&asker),
                json!({"prompt": prompt, "params": {"max_length": 20}}),
            )
            .await;
        assert_eq!(st, 202, "{v}");
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    let (_, job) = s.post("/generate/text/pop", Some(&worker), json!({"name": "runner-w"})).await;
    assert_eq!(job["payload"]["prompt"], "first");
    let job = job["id"].as_str().expect("a job").to_string();
    // A slow client: headers that never end.
    let mut slow = tokio::net::TcpStream::connect(s.url.trim_start_matches("http://"))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut slow, b"GET /api/v2/status/heartbeat HTTP/1.1\r\nHost: h\r\n")
        .await
        .expect("write");

    let signalled = std::time::Instant::now();
    s.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // No new work: requesters are refused, workers told to wait.
    let (st, v) = s.post("/generate/text/async", Some(&asker), json!({"prompt": "late"})).await;
    assert_eq!((st, v["rc"].as_str()), (503, Some("MaintenanceMode")), "{v}");
    let (st, v) = s.post("/generate/text/pop", Some(&worker), json!({"name": "runner-w"})).await;
    assert_eq!((st, v["rc"].as_str()), (503, Some("MaintenanceMode")), "{v}");
    // The requests no worker took are dropped: done, nothing charged.
    for id in &ids[1..] {
        let (st, v) = s.get(&format!("/generate/text/status/{id}"), None).await;
        assert_eq!((st, v["done"].as_bool(), v["kudos"].as_f64()), (200, Some(true), Some(0.0)), "{v}");
    }
    // The job in flight finishes, and its requester reads the result.
    let (st, v) = s
        .post("/generate/text/submit", Some(&worker), json!({"id": job, "generation": "finished"}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, first) = s.get(&format!("/generate/text/status/{}", ids[0]), None).await;
    assert_eq!((st, first["done"].as_bool()), (200, Some(true)), "{first}");
    assert_eq!(first["generations"][0]["text"], "finished");
    // Then it exits by its deadline, although the slow client still holds its connection.
    let exit = s.wait_exit(Duration::from_secs(10)).expect("still running 10 s after SIGTERM");
    let took = signalled.elapsed();
    assert!(exit.success(), "{exit:?}");
    assert!(
        took < Duration::from_millis(7_500),
        "exited {took:?} after SIGTERM, past its 6 s drain"
    );
    drop(slow);
    // The dropped requests' taxes came back; the served one paid its tax and its job.
    let paid = (first["kudos"].as_f64().expect("kudos") * 100.0).round() as i64;
    assert!(paid > 100, "{first}");
    assert_eq!(stored_balances(&s, &[asker_id]).await, [10_000 - paid]);
}

mod sigterm_drains {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        sigterm_drains_then_exits(Db::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        sigterm_drains_then_exits(Db::Postgres).await;
    }
}

//! Faults, on SQLite and PostgreSQL: a worker that vanishes mid-job, double and late submits, and
//! a stranger submitting another worker's job. Nothing is lost and nothing is paid twice.

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

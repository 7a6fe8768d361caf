//! Rate limits per endpoint group, per client IP and per API key, answered as JSON 429s.

mod common;

use common::{Db, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_count_by_ip_key_and_path_and_answer_json() {
    limits_count_by_ip_key_and_path(Db::Sqlite).await;
}

/// The same limits with the buckets in Redis (`--redis-url`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_limits_count_by_ip_key_and_path_and_answer_json() {
    limits_count_by_ip_key_and_path(Db::Shared).await;
}

async fn limits_count_by_ip_key_and_path(db: Db) {
    let Some(s) = Server::start(
        db,
        &[
            "--dev-test-users",
            "--rate-limit",
            "register=3/min ip",
            "--rate-limit",
            "generate=2/min key+path",
            "--rate-limit",
            "default=4/min ip",
            "--rate-limit",
            "text-status=2/min ip+path",
            "--rate-limit",
            "check=2/min ip+path",
        ],
    )
    .await
    else {
        return;
    };

    // Per IP: the burst of 3 registrations is spent (a refused name counts too).
    let (st, _) = s.post("/register", None, json!({"username": "one"})).await;
    assert_eq!(st, 201);
    let (st, _) = s.post("/register", None, json!({"username": "bad#name"})).await;
    assert_eq!(st, 400);
    let (st, _) = s.post("/register", None, json!({"username": "two"})).await;
    assert_eq!(st, 201);
    let (st, v) = s.post("/register", None, json!({"username": "three"})).await;
    assert_eq!((st, v["rc"].as_str()), (429, Some("TooManyRequests")), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("Try again in")), "{v}");

    // Per key and path: each key has its own bucket for text generation; image generation is a
    // separate path.
    let (alice, _) = s.user("alice", 100.0, false, false).await;
    let (bob, _) = s.user("bob", 100.0, false, false).await;
    let mut ids = vec![];
    for _ in 0..2 {
        let (st, v) = s.post("/generate/text/async", Some(&alice), json!({"prompt": "p"})).await;
        assert_eq!(st, 202, "{v}");
        ids.push(v["id"].as_str().unwrap_or_default().to_string());
    }
    let (st, v) = s.post("/generate/text/async", Some(&alice), json!({"prompt": "p"})).await;
    assert_eq!((st, v["rc"].as_str()), (429, Some("TooManyRequests")));
    let (st, _) = s.post("/generate/text/async", Some(&bob), json!({"prompt": "p"})).await;
    assert_eq!(st, 202, "another key from the same address is not limited");
    let (st, _) = s
        .post("/generate/async", Some(&alice), json!({"prompt": "p", "dry_run": true}))
        .await;
    assert_eq!(st, 200, "another path has its own bucket");
    // Alchemy requests are in the generate group, their status in the check group.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let alchemy = json!({"forms": [{"name": "caption"}], "source_image": png});
    let mut alchemy_id = String::new();
    for _ in 0..2 {
        let (st, v) = s.post("/interrogate/async", Some(&alice), alchemy.clone()).await;
        assert_eq!(st, 202, "{v}");
        alchemy_id = v["id"].as_str().unwrap_or_default().to_string();
    }
    let (st, v) = s.post("/interrogate/async", Some(&alice), alchemy).await;
    assert_eq!((st, v["rc"].as_str()), (429, Some("TooManyRequests")));
    for _ in 0..2 {
        assert_eq!(s.get(&format!("/interrogate/status/{alchemy_id}"), None).await.0, 200);
    }
    assert_eq!(s.get(&format!("/interrogate/status/{alchemy_id}"), None).await.0, 429);

    // Per IP and path: each request id is polled within its own limit.
    for _ in 0..2 {
        assert_eq!(s.get(&format!("/generate/text/status/{}", ids[0]), None).await.0, 200);
    }
    assert_eq!(s.get(&format!("/generate/text/status/{}", ids[0]), None).await.0, 429);
    assert_eq!(s.get(&format!("/generate/text/status/{}", ids[1]), None).await.0, 200);

    // The default group covers the rest per IP; the heartbeat is exempt.
    for _ in 0..4 {
        assert_eq!(s.get("/status/performance", None).await.0, 200);
    }
    let (st, v) = s.get("/status/models", None).await;
    assert_eq!((st, v["rc"].as_str()), (429, Some("TooManyRequests")));
    for _ in 0..20 {
        assert_eq!(s.get("/status/heartbeat", None).await.0, 200);
    }
}

#[test]
fn a_bad_limit_stops_the_server_with_a_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_horde"))
        .args(["serve", "--port", "0", "--rate-limit", "nosuchgroup=1/s ip"])
        .output()
        .expect("run horde");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown rate-limit group 'nosuchgroup'"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_horde"))
        .args(["serve", "--port", "0", "--rate-limit", "register=1/fortnight ip"])
        .output()
        .expect("run horde");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("COUNT/PERIOD SUBJECT"));
}

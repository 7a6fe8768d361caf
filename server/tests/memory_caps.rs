//! Bounded text memory: a fresh account is refused past its share of bytes and its waiting
//! requests, what is refused is not held (nor does the process grow), and past the total cap
//! every account gets 503 `TextStoreFull`. The figures are on `/metrics`.

mod common;

use common::{Db, Server};
use serde_json::{json, Value};

const MIB: usize = 1024 * 1024;

/// The value of a metric line starting with `name` on `/metrics`.
async fn metric(s: &Server, name: &str) -> f64 {
    let text = s
        .client
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} on /metrics"))
}

/// Resident memory of the server process, in bytes (Linux).
fn rss(s: &Server) -> Option<usize> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid()?)).ok()?;
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

async fn register(s: &Server, name: &str) -> String {
    let (st, v) = s.post("/register", None, json!({ "username": name })).await;
    assert_eq!(st, 201, "{v}");
    v["api_key"].as_str().expect("api key").to_string()
}

async fn submit(s: &Server, key: &str, prompt_bytes: usize) -> (u16, Value) {
    s.post("/generate/text/async", Some(key), json!({"prompt": "x".repeat(prompt_bytes)}))
        .await
}

on_both_databases!(a_fresh_account_is_refused_past_its_caps, fresh_account_caps);

async fn fresh_account_caps(db: Db) {
    let s = server!(db);
    let key = register(&s, "greedy").await;
    // 16 MiB per untrusted account: three prompts of 4 MiB fit, the fourth does not.
    for _ in 0..3 {
        let (st, v) = submit(&s, &key, 4 * MIB).await;
        assert_eq!(st, 202, "{v}");
    }
    let held = metric(&s, "horde_memory_held_bytes{type=\"text\"}").await;
    assert!(held >= (12 * MIB) as f64 && held < (13 * MIB) as f64, "held {held}");
    let before = rss(&s);
    for _ in 0..27 {
        let (st, v) = submit(&s, &key, 4 * MIB).await;
        assert_eq!((st, v["rc"].as_str()), (429, Some("TooManyPromptBytes")), "{v}");
    }
    // Nothing refused is held: neither counted nor resident (27 × 4 MiB would be 108 MiB).
    assert_eq!(metric(&s, "horde_memory_held_bytes{type=\"text\"}").await, held);
    if let (Some(before), Some(after)) = (before, rss(&s)) {
        assert!(after < before + 48 * MIB, "RSS grew from {before} to {after}");
    }
    // Small requests still fit, up to the waiting-request limit (the public horde's 30).
    for _ in 3..30 {
        let (st, v) = submit(&s, &key, 1000).await;
        assert_eq!(st, 202, "{v}");
    }
    let (st, v) = submit(&s, &key, 1000).await;
    assert_eq!((st, v["rc"].as_str()), (429, Some("TooManyPrompts")), "{v}");
    // Another fresh account has its own share.
    let other = register(&s, "modest").await;
    let (st, v) = submit(&s, &other, 4 * MIB).await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(metric(&s, "horde_accounts_holding_text").await, 2.0);
    assert_eq!(metric(&s, "horde_account_text_memory_cap_bytes").await, (16 * MIB) as f64);
}

/// Past the total cap every account, trusted ones too, is answered 503 `TextStoreFull`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_text_cap_answers_503() {
    let s = server!(Db::Sqlite, &["--dev-test-users", "--text-memory-mib", "1"]);
    let (key, _) = s.user("trusted_writer", 100.0, false, true).await;
    assert_eq!(metric(&s, "horde_memory_cap_bytes{type=\"text\"}").await, MIB as f64);
    let mut accepted = 0;
    let refusal = loop {
        let (st, v) = submit(&s, &key, 200 * 1024).await;
        if st != 202 {
            break (st, v);
        }
        accepted += 1;
        assert!(accepted < 10, "never refused");
    };
    assert_eq!(accepted, 5, "five prompts of 200 KiB fit in 1 MiB");
    let (st, v) = refusal;
    assert_eq!((st, v["rc"].as_str()), (503, Some("TextStoreFull")), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("1 MiB")), "{v}");
    let held = metric(&s, "horde_memory_held_bytes{type=\"text\"}").await;
    assert!(held <= MIB as f64, "held {held}");
    // Smaller requests that fit are still taken.
    let (st, v) = submit(&s, &key, 1000).await;
    assert_eq!(st, 202, "{v}");
}

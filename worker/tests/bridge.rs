//! The bridge against a real horde (the server's router, in-process, on an in-memory database),
//! with small backends made for the test.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
#[path = "../../server/tests/common/sse.rs"]
mod sse;

use common::horde;
use horde_worker::{Bridge, Generated, TextBackend, TextJob};
use serde_json::json;

/// Repeats the prompt back.
struct Echo;
impl TextBackend for Echo {
    fn models(&self) -> Vec<String> {
        vec!["echo-1B".into()]
    }
    fn generate(&self, job: &TextJob) -> Result<Generated, String> {
        let prompt = job.payload.prompt.clone().unwrap_or_default();
        Ok(Generated {
            tokens: prompt.split_whitespace().count() + 1,
            text: format!("echo: {prompt}"),
            seed: 11,
        })
    }
}

/// Always fails.
struct Broken;
impl TextBackend for Broken {
    fn models(&self) -> Vec<String> {
        vec!["broken-1B".into()]
    }
    fn generate(&self, _job: &TextJob) -> Result<Generated, String> {
        Err("out of memory".into())
    }
}

/// Takes its time.
struct Slow;
impl TextBackend for Slow {
    fn models(&self) -> Vec<String> {
        vec!["slow-1B".into()]
    }
    fn generate(&self, job: &TextJob) -> Result<Generated, String> {
        std::thread::sleep(Duration::from_millis(600));
        Echo.generate(job)
    }
}

/// Says `words` numbered words, one every 40 ms, reporting each as it comes; stops when told.
struct Streamer {
    words: usize,
}
impl TextBackend for Streamer {
    fn models(&self) -> Vec<String> {
        vec!["streamer-1B".into()]
    }
    fn generate(&self, job: &TextJob) -> Result<Generated, String> {
        self.generate_streaming(job, &mut |_| true)
    }
    fn generate_streaming(&self, _job: &TextJob, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Generated, String> {
        let mut text = String::new();
        let mut tokens = 0;
        for i in 0..self.words {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(&format!("word{i}"));
            tokens += 1;
            std::thread::sleep(Duration::from_millis(40));
            if !on_text(&text) {
                break;
            }
        }
        Ok(Generated { text, tokens, seed: 3 })
    }
}

/// Runs a bridge in the background until the returned sender fires.
fn start(bridge: Bridge) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<horde_worker::BridgeStats>) {
    common::in_background(|shutdown| async move { bridge.run(shutdown).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_jobs_in_parallel_and_enters_maintenance_on_shutdown() {
    let f = horde().await;
    let (stop, running) = start(Bridge::new(f.config("echo-worker", 2), Arc::new(Echo)).expect("bridge"));
    let ids = [
        f.request("one two").await,
        f.request("three").await,
        f.request("four five six").await,
    ];
    for (id, prompt) in ids.iter().zip(["one two", "three", "four five six"]) {
        let s = f.wait_for(id, |s| s["done"] == json!(true)).await;
        assert_eq!(s["generations"][0]["text"], format!("echo: {prompt}"));
        assert_eq!(s["generations"][0]["worker_name"], "echo-worker");
        assert_eq!(s["generations"][0]["model"], "echo-1B");
        assert_eq!(s["generations"][0]["seed"], 11);
    }
    let _ = stop.send(());
    let stats = running.await.expect("bridge task");
    assert_eq!((stats.jobs_done, stats.jobs_faulted), (3, 0));
    assert_eq!(stats.tokens, 3 + 2 + 4);
    assert!(stats.kudos > 0.0);
    let w = f.worker("echo-worker").await;
    assert_eq!(w["maintenance_mode"], true, "{w}");
    assert_eq!(w["requests_fulfilled"], 3);
    assert_eq!(w["threads"], 2);
    assert!(w["bridge_agent"].as_str().is_some_and(|b| b.starts_with("horde-worker:")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_generations_are_reported_as_faulted() {
    let f = horde().await;
    let (stop, running) = start(Bridge::new(f.config("broken-worker", 1), Arc::new(Broken)).expect("bridge"));
    let id = f.request("doomed").await;
    // The horde hands a failed job out again and faults the request after more than two failures.
    let s = f.wait_for(&id, |s| s["faulted"] == json!(true)).await;
    assert_eq!((s["done"].as_bool(), s["restarted"].as_i64()), (Some(true), Some(3)));
    let _ = stop.send(());
    let stats = running.await.expect("bridge task");
    assert_eq!((stats.jobs_done, stats.jobs_faulted), (0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_running_job_first() {
    let f = horde().await;
    let (stop, running) = start(Bridge::new(f.config("slow-worker", 1), Arc::new(Slow)).expect("bridge"));
    let id = f.request("take your time").await;
    f.wait_for(&id, |s| s["processing"] == json!(1)).await;
    let _ = stop.send(());
    let stats = running.await.expect("bridge task");
    assert_eq!(stats.jobs_done, 1, "the job in hand was finished before stopping");
    let s = f.status(&id).await;
    assert_eq!(
        (s["done"].as_bool(), s["generations"][0]["text"].as_str()),
        (Some(true), Some("echo: take your time"))
    );
    assert_eq!(f.worker("slow-worker").await["maintenance_mode"], true);
    // Another request is not taken any more: the worker is in maintenance and only serves its owner.
    let other = f.request("later").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.status(&other).await["processing"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop_errors_back_off_and_shutdown_still_answers() {
    let f = horde().await;
    let mut cfg = f.config("bad-key-worker", 1);
    cfg.api_key = "not-a-valid-key-000000".into();
    let bridge = Bridge::new(cfg, Arc::new(Echo)).expect("bridge");
    let started = Instant::now();
    let stats = bridge.run(tokio::time::sleep(Duration::from_millis(1500))).await;
    assert!(
        stats.pop_errors >= 1 && stats.pop_errors <= 3,
        "backed off: {} pops in 1.5 s",
        stats.pop_errors
    );
    assert!(started.elapsed() < Duration::from_secs(4), "stopped during the back-off wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_streams_its_text_to_clients() {
    let f = horde().await;
    let id = f.request("stream please").await;
    let reader = sse::SseReader::open(&f.http, &format!("{}/api/v2/generate/text/stream/{id}", f.base), None, None).await;
    let (stop, running) = start(Bridge::new(f.config("streaming-worker", 1), Arc::new(Streamer { words: 10 })).expect("bridge"));
    let events = reader.collect().await;
    let deltas: Vec<String> = events
        .iter()
        .filter(|(n, _)| n == "delta")
        .filter_map(|(_, d)| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect();
    let expected = (0..10).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
    assert_eq!(deltas.concat(), expected);
    assert!(deltas.len() > 2, "tokens arrived as they were made: {deltas:?}");
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("done"));
    let _ = stop.send(());
    running.await.expect("bridge task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_stops_the_worker_early() {
    let f = horde().await;
    let id = f.request("a long one").await;
    let mut reader = sse::SseReader::open(&f.http, &format!("{}/api/v2/generate/text/stream/{id}", f.base), None, None).await;
    let (stop, running) = start(Bridge::new(f.config("cancel-worker", 1), Arc::new(Streamer { words: 200 })).expect("bridge"));
    while let Some((name, _)) = reader.next().await {
        if name == "delta" {
            break;
        }
    }
    let cancelled = f
        .http
        .delete(format!("{}/api/v2/generate/text/status/{id}", f.base))
        .send()
        .await
        .expect("cancel");
    assert_eq!(cancelled.status(), 200);
    let started = Instant::now();
    let events = reader.collect().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "200 words take 8 s; the worker stopped early"
    );
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("done"));
    let s = f.status(&id).await;
    let text = s["generations"][0]["text"].as_str().expect("text").to_string();
    assert!(text.starts_with("word0") && text.split(' ').count() < 200, "{text}");
    let _ = stop.send(());
    let stats = running.await.expect("bridge task");
    assert_eq!(stats.jobs_done, 1);
}

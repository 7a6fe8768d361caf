//! Generation figures while the periodic batch stores them: `/stats/text/totals` adds the stored
//! figures to those still queued in memory, and a flush moves them from one to the other. A read
//! during a flush must find each finished job in one place or the other, never in neither.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use horde_core::clock::ManualClock;
use horde_core::config::HordeConfig;
use horde_core::store::Store;
use horde_core::AccountSpec;
use horde_core::Horde;
use horde_protocol::text::{GenerateTextRequest, TextPopRequest, TextSubmitRequest};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_read_during_a_flush_count_every_finished_job() {
    // A file, as served: the batch is stored on a thread of its own, so reads overlap it.
    let dir = std::env::temp_dir().join(format!("horde-figures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = Store::connect(&format!("sqlite://{}?mode=rwc", dir.join("horde.db").display()))
        .await
        .expect("store");
    let horde = Arc::new(
        Horde::open(store, HordeConfig::default(), Arc::new(ManualClock::new(1_700_000_000_000)), None)
            .await
            .expect("horde"),
    );
    let spec = |name: &str| AccountSpec {
        username: name.into(),
        oauth_id: None,
        kudos: 10_000.0,
        moderator: false,
        trusted: true,
        pseudonymous: false,
    };
    let (requester, _) = horde.create_account(spec("requester")).await.expect("requester");
    let (owner, _) = horde.create_account(spec("owner")).await.expect("owner");
    for finished in 1..=20i64 {
        let req: GenerateTextRequest =
            serde_json::from_value(json!({"prompt": "count me", "models": ["m"], "params": {"max_length": 16}})).expect("request");
        horde.generate_text(requester.id, req, None).await.expect("queued");
        let pop: TextPopRequest = serde_json::from_value(json!({"name": "counter", "models": ["m"]})).expect("pop");
        let job = horde.pop_text(owner.id, pop, None).await.expect("popped");
        let job_id = serde_json::to_value(&job).expect("job")["id"].as_str().expect("a job").to_string();
        let sub: TextSubmitRequest = serde_json::from_value(json!({"id": job_id, "generation": "done"})).expect("submit");
        horde.submit_text(owner.id, sub).await.expect("submitted");
        // Another thread reads, one read after the other, for as long as the flush runs.
        let flushing = Arc::new(AtomicBool::new(true));
        let reader = tokio::spawn({
            let (horde, flushing) = (horde.clone(), flushing.clone());
            async move {
                let mut seen = Vec::new();
                loop {
                    let done = !flushing.load(Ordering::SeqCst);
                    seen.push(horde.text_totals().await.expect("totals").total.requests);
                    if done {
                        return seen;
                    }
                }
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        horde.flush().await.expect("flushed");
        flushing.store(false, Ordering::SeqCst);
        let seen = reader.await.expect("reader");
        assert!(seen.iter().all(|n| *n == finished), "after {finished} jobs, read {seen:?}");
        assert_eq!(horde.text_totals().await.expect("totals").total.requests, finished);
    }
    drop(horde);
    let _ = std::fs::remove_dir_all(&dir);
}

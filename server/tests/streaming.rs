//! Token streaming end to end over HTTP: a worker reports progress (protocol 1), clients follow
//! the request as Server-Sent Events.

mod common;

use std::collections::HashMap;

use common::sse::SseReader;
use common::{Db, Server};
use serde_json::{json, Value};

async fn submit(s: &Server, key: &str, body: Value) -> String {
    let (st, v) = s.post("/generate/text/async", Some(key), body).await;
    assert_eq!(st, 202, "{v}");
    v["id"].as_str().expect("id").to_string()
}

/// Pops one job of `amount`; returns the job ids.
async fn pop(s: &Server, key: &str, amount: i64) -> Vec<String> {
    let (st, v) = s
        .post(
            "/generate/text/pop",
            Some(key),
            json!({"name": "streamer", "models": ["m"], "amount": amount, "threads": 20, "max_length": 512}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect()
}

async fn progress(s: &Server, key: &str, job: &str, text: &str) -> (u16, Value) {
    s.post("/generate/text/progress", Some(key), json!({"id": job, "text": text})).await
}

async fn open(s: &Server, id: &str) -> SseReader {
    SseReader::open(&s.client, &s.api(&format!("/generate/text/stream/{id}")), None, None).await
}

/// Per job: concatenated deltas (resets replace), and the final generations' texts.
fn replay(events: &[(String, String)]) -> (HashMap<String, String>, HashMap<String, String>) {
    let (mut texts, mut finals) = (HashMap::new(), HashMap::new());
    for (name, data) in events {
        let v: Value = serde_json::from_str(data).expect("event json");
        let job = v["job"].as_str().unwrap_or_default().to_string();
        match name.as_str() {
            "delta" => texts
                .entry(job)
                .or_insert_with(String::new)
                .push_str(v["text"].as_str().unwrap_or_default()),
            "reset" => {
                texts.insert(job, v["text"].as_str().unwrap_or_default().to_string());
            }
            "generation" => {
                finals.insert(job, v["generation"]["text"].as_str().unwrap_or_default().to_string());
            }
            _ => {}
        }
    }
    (texts, finals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_concatenate_to_the_final_text_and_late_clients_catch_up() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (req_key, _) = s.user("stream_req", 100.0, false, false).await;
    let (worker_key, _) = s.user("stream_worker", 0.0, false, false).await;
    let id = submit(&s, &req_key, json!({"prompt": "Tell a story", "params": {"max_length": 64}})).await;
    let mut early = open(&s, &id).await;
    let (name, data) = early.next().await.expect("first event");
    assert_eq!(name, "status");
    let first: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(first["waiting"], 1);
    let job = pop(&s, &worker_key, 1).await.remove(0);
    let steps = ["Once", "Once upon", "Once upon a tíme", "Once upon a tíme, 🐉"];
    for t in steps {
        let (st, v) = progress(&s, &worker_key, &job, t).await;
        assert_eq!((st, v["cancelled"].as_bool()), (200, Some(false)), "{v}");
    }
    // A client joining mid-generation first gets everything so far.
    let mut middle = open(&s, &id).await;
    let mut seen = String::new();
    while seen != steps[3] {
        let (name, data) = middle.next().await.expect("event");
        if name == "delta" {
            seen.push_str(
                serde_json::from_str::<Value>(&data).expect("json")["text"]
                    .as_str()
                    .unwrap_or_default(),
            );
        }
    }
    let final_text = "Once upon a tíme, 🐉 slept.";
    let (st, _) = s
        .post(
            "/generate/text/submit",
            Some(&worker_key),
            json!({"id": job, "generation": final_text, "state": "ok"}),
        )
        .await;
    assert_eq!(st, 200);
    for (who, events) in [("early", early.collect().await), ("middle", middle.collect().await)] {
        let (texts, finals) = replay(&events);
        if who == "early" {
            assert_eq!(texts.get(&job).map(String::as_str), Some(final_text), "{who}: deltas");
        }
        assert_eq!(finals.get(&job).map(String::as_str), Some(final_text), "{who}: generation");
        let (last, data) = events.last().expect("events");
        assert_eq!(last, "done", "{who} ends with done");
        let status: Value = serde_json::from_str(data).expect("json");
        assert_eq!((status["done"].as_bool(), status["finished"].as_i64()), (Some(true), Some(1)));
        assert_eq!(status["generations"][0]["text"], final_text);
        assert!(!events.iter().any(|(n, _)| n == "reset" || n == "error"), "{who}: {events:?}");
    }
    // After the end: the whole story in order, then the end.
    let late = open(&s, &id).await.collect().await;
    let names: Vec<&str> = late.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["delta", "generation", "status", "done"]);
    assert_eq!(replay(&late).0.get(&job).map(String::as_str), Some(final_text));
    // The status endpoint agrees.
    let (_, status) = s.get(&format!("/generate/text/status/{id}"), None).await;
    assert_eq!(status["generations"][0]["text"], final_text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_checked_and_old_workers_still_stream_at_submit() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (req_key, _) = s.user("p_req", 100.0, false, false).await;
    let (worker_key, _) = s.user("p_worker", 0.0, false, false).await;
    let (other_key, _) = s.user("p_other", 0.0, false, false).await;
    let id = submit(&s, &req_key, json!({"prompt": "p"})).await;
    let job = pop(&s, &worker_key, 1).await.remove(0);
    let (st, v) = progress(&s, &other_key, &job, "x").await;
    assert_eq!((st, v["rc"].as_str()), (403, Some("WrongCredentials")));
    let (st, _) = s.post("/generate/text/progress", None, json!({"id": job, "text": "x"})).await;
    assert_eq!(st, 401);
    let (st, v) = s
        .post(
            "/generate/text/progress",
            Some(&worker_key),
            json!({"id": job, "text": "x", "version": 2}),
        )
        .await;
    assert_eq!((st, v["rc"].as_str()), (400, Some("ValidationError")));
    let (st, v) = progress(&s, &worker_key, "not-a-job", "x").await;
    assert_eq!((st, v["rc"].as_str()), (404, Some("InvalidJobID")));
    progress(&s, &worker_key, &job, "abc").await;
    let (st, v) = progress(&s, &worker_key, &job, "abd").await;
    assert_eq!((st, v["rc"].as_str()), (400, Some("ValidationError")), "must extend");
    let (st, v) = s.get("/generate/text/stream/00000000-0000-0000-0000-000000000000", None).await;
    assert_eq!((st, v["rc"].as_str()), (404, Some("RequestNotFound")));

    // A worker that never reports progress: the text arrives whole at submit.
    let id2 = submit(&s, &req_key, json!({"prompt": "q"})).await;
    let reader = open(&s, &id2).await;
    // (The first request's job is still held; finish it first.)
    s.post("/generate/text/submit", Some(&worker_key), json!({"id": job, "generation": "abc"}))
        .await;
    let job2 = pop(&s, &worker_key, 1).await.remove(0);
    s.post(
        "/generate/text/submit",
        Some(&worker_key),
        json!({"id": job2, "generation": "whole"}),
    )
    .await;
    let events = reader.collect().await;
    assert_eq!(replay(&events).0.get(&job2).map(String::as_str), Some("whole"));
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("done"));
    let _ = id;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_stream_stops_the_worker_and_ends_the_stream() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (req_key, _) = s.user("c_req", 100.0, false, false).await;
    let (worker_key, _) = s.user("c_worker", 0.0, false, false).await;
    let id = submit(&s, &req_key, json!({"prompt": "p", "params": {"n": 2}})).await;
    let mut reader = open(&s, &id).await;
    let job = pop(&s, &worker_key, 1).await.remove(0);
    progress(&s, &worker_key, &job, "The beginning").await;
    loop {
        let (name, _) = reader.next().await.expect("event");
        if name == "delta" {
            break;
        }
    }
    // A client that drops its stream mid-way changes nothing for the others.
    let dropped = open(&s, &id).await;
    drop(dropped);
    let (st, _) = s
        .send(reqwest::Method::DELETE, &format!("/generate/text/status/{id}"), None, json!({}))
        .await;
    assert_eq!(st, 200);
    let (st, v) = progress(&s, &worker_key, &job, "The beginning and").await;
    assert_eq!((st, v["cancelled"].as_bool()), (200, Some(true)), "the worker is told to stop");
    s.post(
        "/generate/text/submit",
        Some(&worker_key),
        json!({"id": job, "generation": "The beginning and"}),
    )
    .await;
    let events = reader.collect().await;
    let (name, data) = events.last().expect("events");
    assert_eq!(name, "done");
    let status: Value = serde_json::from_str(data).expect("json");
    assert_eq!((status["done"].as_bool(), status["finished"].as_i64()), (Some(true), Some(1)));
    assert_eq!(status["generations"][0]["text"], "The beginning and");
    // The second job was never handed out.
    assert!(pop(&s, &worker_key, 1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_on_one_request_and_on_many() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (worker_key, _) = s.user("many_worker", 0.0, false, false).await;
    let mut requests = vec![];
    for u in 0..4 {
        let (key, _) = s.user(&format!("many_req{u}"), 1000.0, false, false).await;
        for _ in 0..5 {
            requests.push(submit(&s, &key, json!({"prompt": "p", "params": {"max_length": 32}})).await);
        }
    }
    // 200 clients on the first request, and 10 on each of the 20 requests.
    let mut readers = vec![];
    for _ in 0..200 {
        readers.push((requests[0].clone(), open(&s, &requests[0]).await));
    }
    for id in &requests {
        for _ in 0..10 {
            readers.push((id.clone(), open(&s, id).await));
        }
    }
    let clients: Vec<_> = readers
        .into_iter()
        .map(|(id, r)| tokio::spawn(async move { (id, r.collect().await) }))
        .collect();
    let mut jobs = vec![];
    for _ in 0..20 {
        jobs.extend(pop(&s, &worker_key, 1).await);
    }
    assert_eq!(jobs.len(), 20);
    let mut text = String::new();
    for word in ["alpha", " beta", " gamma", " delta"] {
        text.push_str(word);
        for job in &jobs {
            let (st, _) = progress(&s, &worker_key, job, &text).await;
            assert_eq!(st, 200);
        }
    }
    for job in &jobs {
        let (st, _) = s
            .post(
                "/generate/text/submit",
                Some(&worker_key),
                json!({"id": job, "generation": format!("{text}.")}),
            )
            .await;
        assert_eq!(st, 200);
    }
    let mut finished = 0;
    for c in clients {
        let (id, events) = c.await.expect("client task");
        let (texts, finals) = replay(&events);
        assert_eq!(finals.len(), 1, "request {id}: {events:?}");
        for (job, final_text) in &finals {
            assert_eq!(final_text, &format!("{text}."));
            assert_eq!(texts.get(job), Some(final_text), "deltas of {job}");
        }
        assert_eq!(events.last().map(|e| e.0.as_str()), Some("done"));
        assert!(!events.iter().any(|e| e.0 == "error"));
        finished += 1;
    }
    assert_eq!(finished, 400);
}

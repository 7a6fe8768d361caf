//! The OpenAI-compatible API over HTTP, with a worker that streams (the fake test worker).

mod common;

use std::time::Duration;

use common::sse::SseReader;
use common::{fake_worker, Db, Server};
use serde_json::{json, Value};

async fn post_v1(s: &Server, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = s.client.post(format!("{}/v1{path}", s.url)).json(&body);
    if let Some(k) = key {
        r = r.header("authorization", format!("Bearer {k}"));
    }
    let resp = r.send().await.expect("request");
    let st = resp.status().as_u16();
    (st, resp.json().await.unwrap_or(Value::Null))
}

async fn kudos(s: &Server, id: i64) -> f64 {
    let (_, v) = s.get(&format!("/users/{id}"), None).await;
    v["kudos"].as_f64().expect("kudos")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_completions_whole_and_streamed() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (key, _) = s.user("oa_user", 100.0, false, false).await;
    let (worker_key, _) = s.user("oa_worker", 0.0, false, false).await;

    // No worker yet: the model is unknown, in OpenAI's error shape.
    let (st, v) = post_v1(
        &s,
        "/chat/completions",
        Some(&key),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str(), v["error"]["type"].as_str()),
        (404, Some("model_not_found"), Some("not_found_error")),
        "{v}"
    );
    let stop = fake_worker::spawn(s.client.clone(), s.api(""), worker_key, "m", Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let models: Value = s
        .client
        .get(format!("{}/v1/models", s.url))
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "m");

    let (st, v) = post_v1(
        &s,
        "/chat/completions",
        Some(&key),
        json!({"model": "m", "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hello there"}], "max_tokens": 40}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    // The worker asked for messages, so it saw the conversation itself.
    assert_eq!(v["choices"][0]["message"]["content"], "You said: hello there. Bye.");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["completion_tokens"].as_i64().unwrap_or(0) > 0);

    // Anonymous completion with n = 2.
    let (st, v) = post_v1(
        &s,
        "/completions",
        None,
        json!({"model": "m", "prompt": "Knock knock", "max_tokens": 20, "n": 2}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["object"], "text_completion");
    let texts: Vec<&str> = v["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert_eq!(texts, ["You said: Knock knock. Bye.", "You said: Knock knock. Bye."]);

    // Streamed chat: role first, then pieces that add up, a finish reason, usage, [DONE].
    let reader = SseReader::open(
        &s.client,
        &format!("{}/v1/chat/completions", s.url),
        Some(&key),
        Some(json!({"model": "m", "messages": [{"role": "user", "content": "stream me"}], "stream": true, "stream_options": {"include_usage": true}})),
    )
    .await;
    let events = reader.collect().await;
    let data: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "You said: stream me. Bye.");
    let pieces = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()))
        .count();
    assert!(pieces > 1, "the text arrived in {pieces} piece(s)");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert!(chunks.last().is_some_and(|c| c["usage"]["total_tokens"].as_i64().unwrap_or(0) > 0));

    // Streamed completion.
    let events = SseReader::open(
        &s.client,
        &format!("{}/v1/completions", s.url),
        None,
        Some(json!({"model": "m", "prompt": "Once", "stream": true, "max_tokens": 30})),
    )
    .await
    .collect()
    .await;
    let text: String = events
        .iter()
        .filter(|e| e.1 != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(&e.1).ok())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "You said: Once. Bye.");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_in_openai_shape() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (st, v) = post_v1(&s, "/completions", Some("wrong-key-123"), json!({"model": "m", "prompt": "x"})).await;
    assert_eq!((st, v["error"]["type"].as_str()), (401, Some("authentication_error")), "{v}");
    let (st, v) = post_v1(&s, "/completions", None, json!({"model": "m", "prompt": "x", "max_tokens": 0})).await;
    assert_eq!(
        (st, v["error"]["param"].as_str(), v["error"]["type"].as_str()),
        (400, Some("max_tokens"), Some("invalid_request_error"))
    );
    let (st, v) = post_v1(&s, "/chat/completions", None, json!({"model": "m"})).await;
    assert_eq!((st, v["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{v}");
    let resp = s
        .client
        .post(format!("{}/v1/completions", s.url))
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 400);
    let (st, v) = post_v1(&s, "/embeddings", None, json!({})).await;
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("unknown_url")));
}

/// The same request costs the same kudos through /v1 as through /api/v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kudos_are_charged_as_for_a_native_request() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (native_key, native_id) = s.user("k_native", 100.0, false, false).await;
    let (openai_key, openai_id) = s.user("k_openai", 100.0, false, false).await;
    let (worker_key, _) = s.user("k_worker", 0.0, false, false).await;
    let stop = fake_worker::spawn(s.client.clone(), s.api(""), worker_key, "m", Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let prompt = "A prompt of some length, to be priced the same way twice.";
    let (st, v) = s
        .post(
            "/generate/text/async",
            Some(&native_key),
            json!({"prompt": prompt, "models": ["m"], "params": {"max_length": 64}}),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    loop {
        let (_, st) = s.get(&format!("/generate/text/status/{id}"), None).await;
        if st["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, v) = post_v1(
        &s,
        "/completions",
        Some(&openai_key),
        json!({"model": "m", "prompt": prompt, "max_tokens": 64}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (a, b) = (kudos(&s, native_id).await, kudos(&s, openai_id).await);
    assert!(a < 100.0, "charged: {a}");
    assert_eq!(a, b, "native {a} vs OpenAI {b}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A client that goes away before its answer cancels the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_cancels_its_request() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (key, _) = s.user("leaver", 100.0, false, false).await;
    let (worker_key, _) = s.user("leaver_worker", 0.0, false, false).await;
    // Register the worker with one pop, then keep it away from the request.
    let (st, _) = s
        .post(
            "/generate/text/pop",
            Some(&worker_key),
            json!({"name": "idle", "models": ["m"], "max_length": 512}),
        )
        .await;
    assert_eq!(st, 200);
    let call = s
        .client
        .post(format!("{}/v1/completions", s.url))
        .header("authorization", format!("Bearer {key}"))
        .json(&json!({"model": "m", "prompt": "x", "max_tokens": 20}))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(call.is_err(), "no worker answered, the client gave up");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (st, v) = s
        .post(
            "/generate/text/pop",
            Some(&worker_key),
            json!({"name": "idle", "models": ["m"], "max_length": 512}),
        )
        .await;
    assert_eq!(st, 200);
    assert!(v["id"].is_null(), "the abandoned request was cancelled: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_move_and_name_nobody() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (key, _) = s.user("metrics_requester", 100.0, false, false).await;
    let (worker_key, _) = s.user("metrics_worker", 0.0, false, false).await;
    let scrape = || async {
        let text = s
            .client
            .get(format!("{}/metrics", s.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("exposition parses");
        (text, parsed)
    };
    let value = |scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let (_, before) = scrape().await;
    let popped_before = value(&before, "horde_jobs_total", &[("type", "text"), ("outcome", "popped")]);
    let secret = "a very private prompt about zebras";
    let (st, _) = s
        .post("/generate/text/async", Some(&key), json!({"prompt": secret, "models": ["m"]}))
        .await;
    assert_eq!(st, 202);
    let (_, mid) = scrape().await;
    assert_eq!(value(&mid, "horde_queued_jobs", &[("type", "text"), ("model", "m")]), 1.0);
    let (_, v) = s
        .post(
            "/generate/text/pop",
            Some(&worker_key),
            json!({"name": "mw", "models": ["m"], "max_length": 512}),
        )
        .await;
    let job = v["id"].as_str().expect("job").to_string();
    s.post("/generate/text/submit", Some(&worker_key), json!({"id": job, "generation": "done"}))
        .await;
    let (text, after) = scrape().await;
    assert_eq!(
        value(&after, "horde_jobs_total", &[("type", "text"), ("outcome", "popped")]),
        popped_before + 1.0
    );
    assert_eq!(
        value(&after, "horde_jobs_total", &[("type", "text"), ("outcome", "submitted")]),
        1.0
    );
    assert_eq!(value(&after, "horde_workers_online", &[("type", "text")]), 1.0);
    assert!(value(&after, "horde_kudos_burnt", &[]) > 0.0);
    assert!(value(&after, "horde_pop_duration_seconds_count", &[("type", "text")]) >= 1.0);
    assert_eq!(
        value(
            &after,
            "horde_http_requests_total",
            &[("route", "/api/v2/generate/text/async"), ("method", "POST"), ("status", "202")]
        ),
        1.0
    );
    assert!(value(&after, "horde_http_requests_total", &[("route", "/api/v2/generate/text/submit")]) >= 1.0);
    for private in [
        secret,
        "metrics_requester",
        "metrics_worker",
        key.as_str(),
        worker_key.as_str(),
        job.as_str(),
        "127.0.0.1",
    ] {
        assert!(!text.contains(private), "the exposition names {private}");
    }
}

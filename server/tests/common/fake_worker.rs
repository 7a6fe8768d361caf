//! A text worker for tests, over HTTP: it pops (declaring the `messages-v1` extension), answers
//! `You said: <last message or prompt>. Bye.`, reports that text word by word through the
//! progress protocol, then submits it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// The answer the fake worker gives to a payload.
pub fn answer(payload: &Value) -> String {
    let said = payload["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| payload["prompt"].as_str().unwrap_or_default().trim().to_string());
    format!("You said: {said}. Bye.")
}

/// Runs until the returned flag is set.
pub fn spawn(client: reqwest::Client, api: String, key: String, model: &str, step: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let model = model.to_string();
    tokio::spawn(async move {
        while !flag.load(Ordering::Relaxed) {
            let popped: Value = match client
                .post(format!("{api}/generate/text/pop"))
                .header("apikey", &key)
                .json(&json!({"name": "fake-worker", "models": [model], "max_length": 4096, "max_context_length": 8192, "extensions": ["messages-v1"]}))
                .send()
                .await
            {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            let Some(job) = popped["id"].as_str().map(str::to_string) else {
                tokio::time::sleep(Duration::from_millis(30)).await;
                continue;
            };
            let text = answer(&popped["payload"]);
            let mut so_far = String::new();
            for (i, word) in text.split(' ').enumerate() {
                if i > 0 {
                    so_far.push(' ');
                }
                so_far.push_str(word);
                let _ = client
                    .post(format!("{api}/generate/text/progress"))
                    .header("apikey", &key)
                    .json(&json!({"id": job, "text": so_far}))
                    .send()
                    .await;
                tokio::time::sleep(step).await;
            }
            let _ = client
                .post(format!("{api}/generate/text/submit"))
                .header("apikey", &key)
                .json(&json!({"id": job, "generation": text, "state": "ok"}))
                .send()
                .await;
        }
    });
    stop
}

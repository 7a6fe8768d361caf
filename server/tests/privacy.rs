//! Prompts and generations never reach the logs, even at debug level, and never reach the database.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_and_generations_stay_out_of_logs_and_storage() {
    let dir = std::env::temp_dir().join(format!("horde-privacy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let log = std::fs::File::create(dir.join("stderr.log")).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_horde"))
        .args([
            "serve",
            "--port",
            "0",
            "--dev-test-users",
            "--flush-interval-ms",
            "20",
            "--data-dir",
        ])
        .arg(&dir)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address");
    let base = format!("{}/api/v2", line.trim().rsplit(' ').next().unwrap_or_default());
    let c = reqwest::Client::new();
    let user: Value = c
        .post(format!("{base}/dev/test-user"))
        .json(&json!({"username": "p"}))
        .send()
        .await
        .expect("user")
        .json()
        .await
        .expect("json");
    let key = user["api_key"].as_str().unwrap_or_default().to_string();
    let prompt_marker = "SECRET-PROMPT-7f3a9c";
    let text_marker = "SECRET-GENERATION-41b2e8";
    let acc: Value = c
        .post(format!("{base}/generate/text/async"))
        .header("apikey", &key)
        .json(&json!({"prompt": format!("tell me {prompt_marker}")}))
        .send()
        .await
        .expect("async")
        .json()
        .await
        .expect("json");
    let pop: Value = c
        .post(format!("{base}/generate/text/pop"))
        .header("apikey", &key)
        .json(&json!({"name": "pw"}))
        .send()
        .await
        .expect("pop")
        .json()
        .await
        .expect("json");
    assert_eq!(pop["payload"]["prompt"], format!("tell me {prompt_marker}"));
    let st = c
        .post(format!("{base}/generate/text/submit"))
        .header("apikey", &key)
        .json(&json!({"id": pop["id"], "generation": text_marker}))
        .send()
        .await
        .expect("submit")
        .status();
    assert_eq!(st, 200);
    let status: Value = c
        .get(format!("{base}/generate/text/status/{}", acc["id"].as_str().unwrap_or_default()))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["generations"][0]["text"], text_marker);
    // A request body that fails to parse is not echoed into logs either.
    let _ = c
        .post(format!("{base}/generate/text/async"))
        .header("apikey", &key)
        .body(format!("{{\"prompt\": \"{prompt_marker}"))
        .send()
        .await;
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert!(child.wait().expect("wait").success());

    let logs = std::fs::read_to_string(dir.join("stderr.log")).expect("logs");
    assert!(logs.contains("horde listening"), "logs were captured");
    assert!(!logs.contains(prompt_marker), "a prompt reached the logs");
    assert!(!logs.contains(text_marker), "a generation reached the logs");
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(prompt_marker) && !hay.contains(text_marker),
            "{} holds a prompt or generation",
            path.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

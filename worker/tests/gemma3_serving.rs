//! The acceptance path of a volunteer with a KoboldCpp-style model file: `horde-worker --model
//! gemma-3-270m-q4_k_m.gguf` (Gemma 3 270M in Q4_K_M: Q5_0, Q4_K, Q6_K, Q8_0 and F32 tensors, a
//! SentencePiece tokenizer, no chat template in the file) joins a horde, answers a KoboldAI Lite
//! chat with a sensible reply and an OpenAI-style chat through its built-in Gemma template, then
//! stops cleanly. The file comes from `scripts/fetch-models.sh` (skipped with a message when
//! absent, required in CI).
//!
//! This file is the pretrained Gemma 3 270M, not the instruction-tuned one: like llama.cpp on the
//! same file, it does not follow a chat template well (it repeats the question), but it continues
//! a Lite chat transcript ("User: …\nBot:") with the right answer.

use std::path::Path;
use std::process::Command;

use serde_json::json;

mod common;

/// The worker process, killed if the test fails before it stops it (an orphan would hold the
/// test's output open).
struct ChildGuard(Option<std::process::Child>);

impl ChildGuard {
    fn get(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_answers_a_chat_with_gemma3_q4_k_m() {
    let Some(path) = common::fetched_model("gemma-3-270m-q4_k_m.gguf", Some("HORDE_GEMMA3_GGUF")) else {
        return;
    };
    let f = common::horde().await;
    let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gemma3-e2e-worker.log");
    let log = std::fs::File::create(&log_path).expect("worker log");
    let mut child = ChildGuard(Some(
        Command::new(env!("CARGO_BIN_EXE_horde-worker"))
            .args(["--url", &f.base, "--api-key", &f.owner_key, "--name", "gemma-e2e", "--model"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the worker"),
    ));
    let worker_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // The model is served under the file's name without its quantization suffix.
    let started = std::time::Instant::now();
    loop {
        let w = f.worker("gemma-e2e").await;
        if w["online"] == true && w["models"].as_array().is_some_and(|m| m.iter().any(|m| m == "gemma-3-270m")) {
            break;
        }
        let died = child.get().try_wait().ok().flatten();
        assert!(
            died.is_none() && started.elapsed() < std::time::Duration::from_secs(120),
            "worker never served gemma-3-270m ({died:?}, {w}); log:\n{}",
            worker_log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // KoboldAI Lite's chat mode: a transcript, greedy, cut at the next user turn.
    let id = f
        .request_with(json!({
            "prompt": "User: What is the capital of France?\nBot:",
            "models": ["gemma-3-270m"],
            "params": {"max_length": 32, "temperature": 0.0, "stop_sequence": ["\nUser:"]}
        }))
        .await;
    let started = std::time::Instant::now();
    let s = loop {
        let s = f.status(&id).await;
        if s["done"] == json!(true) {
            break s;
        }
        let died = child.get().try_wait().ok().flatten();
        assert!(
            died.is_none() && started.elapsed() < std::time::Duration::from_secs(180),
            "no answer ({died:?}, {s}); log:\n{}",
            worker_log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let g = &s["generations"][0];
    let text = g["text"].as_str().unwrap_or_default();
    assert!(text.contains("Paris") && !text.contains("User:"), "{s}");
    assert_eq!(
        (g["model"].as_str(), g["worker_name"].as_str()),
        (Some("gemma-3-270m"), Some("gemma-e2e"))
    );
    // An OpenAI chat: the messages reach the worker, which renders them in Gemma's turns and stops
    // at the end of the turn (or the token limit) without showing any control token.
    let resp = f
        .http
        .post(format!("{}/v1/chat/completions", f.base))
        .header("authorization", format!("Bearer {}", f.requester_key))
        .json(&json!({
            "model": "gemma-3-270m",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 16,
            "temperature": 0.0
        }))
        .timeout(std::time::Duration::from_secs(180))
        .send()
        .await
        .expect("chat");
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(status, 200, "{body}; log:\n{}", worker_log());
    let reply = body["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    assert!(!reply.trim().is_empty(), "{body}");
    assert!(!reply.contains("<end_of_turn>") && !reply.contains("<start_of_turn>"), "{reply:?}");
    let log = worker_log();
    assert!(
        log.contains("using a built-in one") && log.contains("\"gemma\""),
        "the built-in Gemma template is used"
    );
    let _ = Command::new("kill").arg("-INT").arg(child.get().id().to_string()).status();
    let mut child = child.0.take().expect("child");
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "clean exit on SIGINT: {exit:?}; log:\n{}", worker_log());
}

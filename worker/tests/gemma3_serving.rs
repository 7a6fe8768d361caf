//! The acceptance path of a volunteer with a KoboldCpp-style model file: `horde-worker --model
//! gemma-3-270m-q4_k_m.gguf` (Gemma 3 270M in Q4_K_M: Q5_0, Q4_K, Q6_K, Q8_0 and F32 tensors, a
//! SentencePiece tokenizer, no chat template in the file) joins a horde and answers an OpenAI-style
//! chat with a sensible reply, then stops cleanly. The file comes from `scripts/fetch-models.sh`
//! (skipped with a message when absent, required in CI).

use std::path::Path;
use std::process::Command;

use serde_json::json;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_answers_a_chat_with_gemma3_q4_k_m() {
    let Some(path) = common::fetched_model("gemma-3-270m-q4_k_m.gguf", Some("HORDE_GEMMA3_GGUF")) else {
        return;
    };
    let f = common::horde().await;
    let log_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gemma3-e2e-worker.log");
    let log = std::fs::File::create(&log_path).expect("worker log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_horde-worker"))
        .args(["--url", &f.base, "--api-key", &f.owner_key, "--name", "gemma-e2e", "--model"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stderr(log)
        .spawn()
        .expect("start the worker");
    let worker_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    // The model is served under the file's name without its quantization suffix.
    let started = std::time::Instant::now();
    loop {
        let w = f.worker("gemma-e2e").await;
        if w["online"] == true && w["models"].as_array().is_some_and(|m| m.iter().any(|m| m == "gemma-3-270m")) {
            break;
        }
        let died = child.try_wait().ok().flatten();
        assert!(
            died.is_none() && started.elapsed() < std::time::Duration::from_secs(120),
            "worker never served gemma-3-270m ({died:?}, {w}); log:\n{}",
            worker_log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let resp = f
        .http
        .post(format!("{}/v1/chat/completions", f.base))
        .header("authorization", format!("Bearer {}", f.requester_key))
        .json(&json!({
            "model": "gemma-3-270m",
            "messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
            "max_tokens": 32,
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
    assert!(reply.contains("Paris"), "reply {reply:?}; log:\n{}", worker_log());
    // The turn ended at Gemma's end-of-turn token, which is not shown.
    assert!(!reply.contains("<end_of_turn>") && !reply.contains("<start_of_turn>"), "{reply:?}");
    let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "clean exit on SIGINT: {exit:?}; log:\n{}", worker_log());
}

//! A worker on burn's wgpu backend (in CI: Mesa's software Vulkan, lavapipe) serving Gemma 3 270M
//! and SmolLM2 jobs through a horde, both models in one worker, two jobs at once: each job's text
//! is the CPU engine's greedy text for the same prompt.
//!
//! Without a wgpu adapter the test says so and passes, unless `HORDE_REQUIRE_GPU_SMOKE=1` (CI);
//! without the model files it skips unless `HORDE_REQUIRE_MODELS=1`.
#![cfg(feature = "wgpu")]

use std::sync::Arc;

use horde_protocol::text::TextParams;
use horde_worker::device::Compute;
use horde_worker::text_model::{TextModel, TextModels};
use serde_json::json;

mod common;

/// The wgpu device, if this machine has an adapter.
fn wgpu() -> Option<Compute> {
    common::wgpu_device().map(Compute::Burn)
}

const JOBS: [(&str, &str, &str); 2] = [
    (
        "gemma-3-270m-q4_k_m.gguf",
        "HORDE_GEMMA3_GGUF",
        "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    ),
    (
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "HORDE_SMOLLM2_GGUF",
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wgpu_worker_serves_gemma_and_smollm2_with_the_cpu_engines_text() {
    let Some(gpu) = wgpu() else { return };
    let mut paths = vec![];
    for (file, env, _) in JOBS {
        let Some(path) = common::fetched_model(file, Some(env)) else {
            return;
        };
        paths.push(path.to_str().expect("utf-8 path").to_string());
    }
    let params = json!({"max_length": 16, "temperature": 0.0, "stop_sequence": ["\n"]});
    let greedy: TextParams = serde_json::from_value(params.clone()).expect("params");
    // What the CPU engine answers, and the worker's models on the device.
    let mut expected = vec![];
    let mut on_device = vec![];
    for (path, (_, _, prompt)) in paths.iter().zip(JOBS) {
        let cpu = TextModel::load(path, &Compute::cpu(), false).expect("cpu model");
        expected.push((cpu.name.clone(), cpu.generate(prompt, &greedy, 1).expect("cpu").text));
        on_device.push(TextModel::load(path, &gpu, true).expect("device model"));
    }
    let f = common::horde().await;
    let mut cfg = f.config("wgpu-worker", 2);
    cfg.device = "wgpu".into();
    let bridge = horde_worker::Bridge::new(cfg, Arc::new(TextModels::new(on_device, 2))).expect("bridge");
    let (stop, running) = common::in_background(|shutdown| async move { bridge.run(shutdown).await });
    let mut ids = vec![];
    for ((name, _), (_, _, prompt)) in expected.iter().zip(JOBS) {
        ids.push(f.request_with(json!({"prompt": prompt, "models": [name], "params": params})).await);
    }
    for (id, (name, text)) in ids.iter().zip(&expected) {
        let status = f.wait_for(id, |s| s["done"] == true).await;
        let generation = &status["generations"][0];
        assert_eq!(generation["model"], name.as_str(), "{status}");
        assert_eq!(generation["text"], text.as_str(), "{name} on wgpu through the horde");
        assert!(!text.trim().is_empty(), "{name} answered nothing");
    }
    let _ = stop.send(());
    running.await.expect("bridge");
}

//! Prefill and decode speed of the default model (SmolLM2-135M-Instruct Q4_1) on the CPU: 128
//! greedy tokens from a fixed prompt, median of 3 runs after a warm-up. By default as the worker
//! runs it (the host engine on the Q4_1 weights, `llama::host`); `--burn` runs it on burn's flex
//! backend (weights dequantized to f32, or f16 with `--f16-weights`).
//! Threads follow RAYON_NUM_THREADS. Run:
//!   RAYON_NUM_THREADS=1 cargo bench -p horde-worker --bench decode
//!   RAYON_NUM_THREADS=2 cargo bench -p horde-worker --bench decode
//!   RAYON_NUM_THREADS=1 cargo bench -p horde-worker --bench decode -- --burn [--f16-weights]

use std::path::PathBuf;
use std::time::Instant;

use horde_worker::device::Compute;
use horde_worker::gguf::Gguf;
use horde_worker::llama::{Llama, LlamaConfig};
use horde_worker::sampling::argmax;
use horde_worker::tokenizer;

const PROMPT: &str = "<|im_start|>user\nWrite a short story about a cat.<|im_end|>\n<|im_start|>assistant\n";

fn main() {
    let path = std::env::var_os("HORDE_SMOLLM2_GGUF").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/horde/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    if !path.exists() {
        println!("skipping: {} is missing (run scripts/fetch-models.sh)", path.display());
        return;
    }
    let quick = std::env::args().any(|a| a == "--test");
    let g = Gguf::open(&path).expect("gguf");
    let (tk, special) = tokenizer::from_gguf(&g).expect("tokenizer");
    let f16 = std::env::args().any(|a| a == "--f16-weights");
    let burn_only = std::env::args().any(|a| a == "--burn");
    let compute = if burn_only {
        Compute::Burn(burn::prelude::Device::flex())
    } else {
        Compute::Host
    };
    let model = Llama::load(LlamaConfig::from_gguf(&g).expect("config"), &g, &compute).expect("model");
    let model = if f16 { model.with_f16_weights() } else { model };
    let prompt = tokenizer::encode(&tk, &special, PROMPT).expect("encode");
    let new_tokens = if quick { 4 } else { 128 };
    let run = |n: usize| {
        let mut cache = model.new_cache();
        let t0 = Instant::now();
        let mut logits = model.forward(&prompt, &mut cache);
        let t1 = Instant::now();
        let mut out = vec![argmax(&logits)];
        while out.len() < n {
            logits = model.forward(&[*out.last().unwrap_or(&0)], &mut cache);
            out.push(argmax(&logits));
        }
        let t2 = Instant::now();
        (
            prompt.len() as f64 / (t1 - t0).as_secs_f64(),
            (n - 1) as f64 / (t2 - t1).as_secs_f64(),
            out,
        )
    };
    run(8);
    let mut runs: Vec<(f64, f64)> = vec![];
    let mut text = String::new();
    for _ in 0..(if quick { 1 } else { 3 }) {
        let (p, d, out) = run(new_tokens);
        text = tokenizer::decode(&tk, &out).unwrap_or_default();
        runs.push((p, d));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    println!(
        "SmolLM2-135M Q4_1, {}, threads {threads}: prefill {:.1} tok/s ({} tokens), decode {:.1} tok/s ({} tokens)",
        match (burn_only, f16) {
            (true, false) => "all on burn flex (f32 weights)",
            (true, true) => "all on burn flex (f16 weights)",
            (false, _) => "host engine (Q4_1 weights)",
        },
        median(runs.iter().map(|r| r.0).collect()),
        prompt.len(),
        median(runs.iter().map(|r| r.1).collect()),
        new_tokens - 1
    );
    println!("output: {:?}", text.chars().take(120).collect::<String>());
    println!("weights read per token: {:.1} MB", model.weight_bytes() as f64 / 1e6);
}

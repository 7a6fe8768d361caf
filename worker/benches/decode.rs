//! Prefill and decode speed of a GGUF model on the CPU: 128 greedy tokens from a fixed chat
//! prompt, median of 3 runs after a warm-up. The model is SmolLM2-135M-Instruct Q4_1 by default;
//! `--model PATH` (or HORDE_DECODE_GGUF) runs another, e.g. Gemma 3 270M Q4_K_M. By default as
//! the worker runs it (the host engine on the file's weights, `llama::host`); `--burn` runs it
//! on burn's flex backend (weights dequantized to f32, or f16 with `--f16-weights`).
//! Threads follow RAYON_NUM_THREADS. Run:
//!   RAYON_NUM_THREADS=1 cargo bench -p horde-worker --bench decode
//!   RAYON_NUM_THREADS=2 cargo bench -p horde-worker --bench decode -- --model ~/.cache/horde/models/gemma-3-270m-q4_k_m.gguf
//!   RAYON_NUM_THREADS=1 cargo bench -p horde-worker --bench decode -- --burn [--f16-weights]

use std::path::PathBuf;
use std::time::Instant;

use horde_worker::device::Compute;
use horde_worker::gguf::Gguf;
use horde_worker::llama::{Architecture, Llama, LlamaConfig};
use horde_worker::sampling::argmax;
use horde_worker::tokenizer;

const CHATML_PROMPT: &str = "<|im_start|>user\nWrite a short story about a cat.<|im_end|>\n<|im_start|>assistant\n";
const GEMMA_PROMPT: &str = "<start_of_turn>user\nWrite a short story about a cat.<end_of_turn>\n<start_of_turn>model\n";
/// GEMMA_PROMPT as Gemma 3's token ids (with BOS), for when the tokenizer cannot read the file.
const GEMMA_PROMPT_IDS: [u32; 17] = [
    2, 105, 2364, 107, 6974, 496, 2822, 3925, 1003, 496, 5866, 236761, 106, 107, 105, 4368, 107,
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let given = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HORDE_DECODE_GGUF").map(PathBuf::from));
    let path = given.unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/horde/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    if !path.exists() {
        println!("skipping: {} is missing (run scripts/fetch-models.sh)", path.display());
        return;
    }
    let quick = std::env::args().any(|a| a == "--test");
    let g = Gguf::open(&path).expect("gguf");
    let tokenizer = tokenizer::from_gguf(&g);
    let f16 = std::env::args().any(|a| a == "--f16-weights");
    let burn_only = std::env::args().any(|a| a == "--burn");
    let compute = if burn_only {
        Compute::Burn(burn::prelude::Device::flex())
    } else {
        Compute::Host
    };
    // Loaded as the worker loads it (`--f16-weights`: matrices converted before they reach burn).
    let model = Llama::load_with(LlamaConfig::from_gguf(&g).expect("config"), &g, &compute, f16).expect("model");
    let gemma = model.config.arch == Architecture::Gemma3;
    let prompt = match &tokenizer {
        Ok((tk, special)) => tokenizer::encode(tk, special, if gemma { GEMMA_PROMPT } else { CHATML_PROMPT }).expect("encode"),
        Err(_) if gemma => GEMMA_PROMPT_IDS.to_vec(),
        Err(e) => panic!("no tokenizer for this model: {e}"),
    };
    let name = g.get_str("general.name").unwrap_or("model").to_string();
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
        text = match &tokenizer {
            Ok((tk, _)) => tokenizer::decode(tk, &out).unwrap_or_default(),
            Err(_) => format!("{out:?}"),
        };
        runs.push((p, d));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    println!(
        "{name}, {}, threads {threads}: prefill {:.1} tok/s ({} tokens), decode {:.1} tok/s ({} tokens)",
        match (burn_only, f16) {
            (true, false) => "all on burn flex (f32 weights)",
            (true, true) => "all on burn flex (f16 weights)",
            (false, _) => "host engine (the file's weights)",
        },
        median(runs.iter().map(|r| r.0).collect()),
        prompt.len(),
        median(runs.iter().map(|r| r.1).collect()),
        new_tokens - 1
    );
    println!("output: {:?}", text.chars().take(120).collect::<String>());
    println!("weights read per token: {:.1} MB", model.weight_bytes() as f64 / 1e6);
    let file_mb = std::fs::metadata(&path).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
    let kv_mb = (model.config.layers * (model.config.k_dim() + model.config.v_dim()) * (prompt.len() + new_tokens) * 4) as f64 / 1e6;
    println!(
        "peak RSS {:.1} MB (file {file_mb:.1} MB, KV cache of one run {kv_mb:.1} MB)",
        peak_rss_mb().unwrap_or(f64::NAN)
    );
}

/// The process's peak resident memory (`VmHWM`), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024.0 / 1e6)
}

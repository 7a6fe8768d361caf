//! A text model on the device against the CPU engine, and its speed.

use std::path::Path;
use std::time::Instant;

use horde_worker::device::Compute;
use horde_worker::gguf::Gguf;
use horde_worker::llama::{Architecture, KvCache, Llama, SequenceStep};
use horde_worker::sampling::argmax;
use horde_worker::tokenizer;

use crate::Options;

const CHATML_PROMPT: &str = "<|im_start|>user\nWrite a short story about a cat.<|im_end|>\n<|im_start|>assistant\n";
const GEMMA_PROMPT: &str = "<start_of_turn>user\nWrite a short story about a cat.<end_of_turn>\n<start_of_turn>model\n";

/// The largest logit difference allowed, relative to the largest CPU logit: the device runs
/// f16 weights (relative rounding 4.9e-4 per weight) where the CPU engine reads the file's
/// blocks; the burn and host engines' own test allows 2e-2 absolute on a tiny model.
const LOGIT_TOLERANCE: f32 = 2e-2;

/// Checks the first-token logits and prints the speeds; `Ok(false)` when the check fails.
pub fn check(path: &Path, options: &Options, peak_gbs: Option<f64>) -> Result<bool, String> {
    let g = Gguf::open(path).map_err(|e| e.to_string())?;
    let gpu = Llama::from_gguf_with(&g, &Compute::Burn(options.device.clone()), true).map_err(|e| e.to_string())?;
    let prompt = chat_prompt(&g, &gpu)?;

    let passed = {
        let cpu = Llama::from_gguf(&g, &Compute::cpu()).map_err(|e| e.to_string())?;
        let want = cpu.forward(&prompt, &mut cpu.new_cache());
        let got = gpu.forward(&prompt, &mut gpu.new_cache());
        compare_logits(&got, &want)
    };

    // Prompts of the asked length: the chat prompt's tokens over and over.
    let long: Vec<u32> = prompt.iter().copied().cycle().take(options.prompt_tokens).collect();
    let batch = options.batch;
    // Warm-up: kernels compile and autotune on first use.
    gpu.forward(&long, &mut gpu.new_cache());

    let start = Instant::now();
    let mut cache = gpu.new_cache();
    gpu.forward(&long, &mut cache);
    let prefill_1 = long.len() as f64 / start.elapsed().as_secs_f64();

    // The batch's prompts in one forward pass (`Llama::forward_batch`), as the worker runs them.
    let start = Instant::now();
    let mut caches: Vec<KvCache> = (0..batch).map(|_| gpu.new_cache()).collect();
    let mut last: Vec<u32> = {
        let mut steps: Vec<SequenceStep<'_>> = caches.iter_mut().map(|cache| SequenceStep { tokens: &long, cache }).collect();
        gpu.forward_batch(&mut steps).iter().map(|l| argmax(l)).collect()
    };
    let prefill_8 = (batch * long.len()) as f64 / start.elapsed().as_secs_f64();

    let decode_1 = decode(&gpu, std::slice::from_mut(&mut cache), &mut [0], options.new_tokens);
    let decode_8 = decode(&gpu, &mut caches, &mut last, options.new_tokens);

    println!(
        "prefill ({} tokens): batch 1 {prefill_1:.1} tok/s, batch {batch} {prefill_8:.1} tok/s",
        long.len()
    );
    println!(
        "decode ({} tokens): batch 1 {decode_1:.1} tok/s, batch {batch} {decode_8:.1} tok/s (aggregate, one forward pass per step)",
        options.new_tokens
    );
    let bytes = gpu.weight_bytes() as f64;
    let achieved = bytes * decode_1 / 1e9;
    match peak_gbs {
        Some(peak) => println!(
            "decode bandwidth: {:.1} MB of weights per token x {decode_1:.1} tok/s = {achieved:.1} GB/s, {:.1}% of the card's {peak:.0} GB/s",
            bytes / 1e6,
            100.0 * achieved / peak
        ),
        None => println!(
            "decode bandwidth: {:.1} MB of weights per token x {decode_1:.1} tok/s = {achieved:.1} GB/s (peak unknown)",
            bytes / 1e6
        ),
    }
    crate::card::print_memory(&options.device, "this model and its 9 KV caches");
    Ok(passed)
}

/// The model's chat prompt in its tokens.
fn chat_prompt(g: &Gguf, model: &Llama) -> Result<Vec<u32>, String> {
    let (tk, special) = tokenizer::from_gguf(g).map_err(|e| format!("tokenizer: {e}"))?;
    let text = if model.config.arch == Architecture::Gemma3 {
        GEMMA_PROMPT
    } else {
        CHATML_PROMPT
    };
    tokenizer::encode(&tk, &special, text).map_err(|e| format!("tokenizer: {e}"))
}

/// Tokens per second of `steps` greedy steps of all the sequences, one batched forward pass per
/// step; `last` holds each sequence's latest token.
fn decode(model: &Llama, caches: &mut [KvCache], last: &mut [u32], steps: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..steps {
        let tokens: Vec<[u32; 1]> = last.iter().map(|t| [*t]).collect();
        let mut batch: Vec<SequenceStep<'_>> = caches
            .iter_mut()
            .zip(&tokens)
            .map(|(cache, t)| SequenceStep { tokens: t, cache })
            .collect();
        for (token, logits) in last.iter_mut().zip(model.forward_batch(&mut batch)) {
            *token = argmax(&logits);
        }
    }
    (steps * caches.len()) as f64 / start.elapsed().as_secs_f64()
}

/// Prints how far the device's logits are from the CPU's; whether they are within tolerance
/// and pick the same token.
fn compare_logits(got: &[f32], want: &[f32]) -> bool {
    if got.len() != want.len() || want.is_empty() {
        println!("FAIL first-token logits: {} on the device, {} on the CPU", got.len(), want.len());
        return false;
    }
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| if a.is_finite() { (a - b).abs() } else { f32::INFINITY })
        .fold(0f32, f32::max);
    let (top_got, top_want) = (argmax(got), argmax(want));
    let ok = worst <= LOGIT_TOLERANCE * scale && top_got == top_want;
    println!(
        "{} first-token logits: max |device - cpu| {worst:.4} (largest logit {scale:.2}, bound {:.4}); top token {top_got} vs {top_want}",
        if ok { "PASS" } else { "FAIL" },
        LOGIT_TOLERANCE * scale
    );
    ok
}

//! The decoder on burn's wgpu backend (in CI: Mesa's software Vulkan, lavapipe) against the host
//! engine: a tiny random Gemma-3-shaped model (grouped-query attention, sliding windows, QK-norm)
//! gives the same greedy tokens; a batch of sequences equals each alone; the first layer on the
//! device and the second on the host equals the host; the real Gemma 3 270M and SmolLM2 give the
//! CPU engine's first greedy tokens; and a model reaches the device in its file encoding, with no
//! f32 (or f16) copy of its matrices.
//!
//! Without a wgpu adapter the tests say so and pass, unless `HORDE_REQUIRE_GPU_SMOKE=1` (CI),
//! which makes that a failure.
#![cfg(feature = "wgpu")]

use horde_worker::device::Compute;
use horde_worker::gguf::writer::write;
use horde_worker::gguf::{Gguf, TensorType, Value};
use horde_worker::llama::{KvCache, Llama, LlamaConfig, SequenceStep};
use horde_worker::sampling::argmax;
use horde_worker::tokenizer;

mod common;

use common::Rng;

/// The wgpu device, if this machine has an adapter.
fn wgpu() -> Option<Compute> {
    common::wgpu_device().map(Compute::Burn)
}

const VOCAB: usize = 64;

/// A 2-layer Gemma 3 shaped model: 4 query heads over 2 key/value heads of 16, a sliding window
/// of 4 on its first layer, matrices in F32, F16 and Q8_0.
fn tiny_model() -> Gguf {
    let (dim, heads, kv_heads, hd, ffn, layers) = (64usize, 4usize, 2usize, 16usize, 96usize, 2usize);
    let mut rng = Rng(2024);
    let kinds = [TensorType::Q8_0, TensorType::F16, TensorType::F32];
    let mut tensors: Vec<(String, Vec<usize>, TensorType, Vec<f32>)> = vec![];
    let mut matrix = |rng: &mut Rng, name: String, rows: usize, cols: usize| {
        let kind = kinds[tensors.len() % kinds.len()];
        let values = rng.values(rows * cols, 1.5 / (cols as f32).sqrt());
        tensors.push((name, vec![rows, cols], kind, values));
    };
    matrix(&mut rng, "token_embd.weight".into(), VOCAB, dim);
    let mut norms = vec![];
    for l in 0..layers {
        let p = |s: &str| format!("blk.{l}.{s}");
        matrix(&mut rng, p("attn_q.weight"), heads * hd, dim);
        matrix(&mut rng, p("attn_k.weight"), kv_heads * hd, dim);
        matrix(&mut rng, p("attn_v.weight"), kv_heads * hd, dim);
        matrix(&mut rng, p("attn_output.weight"), dim, heads * hd);
        matrix(&mut rng, p("ffn_gate.weight"), ffn, dim);
        matrix(&mut rng, p("ffn_up.weight"), ffn, dim);
        matrix(&mut rng, p("ffn_down.weight"), dim, ffn);
        for (name, n) in [
            ("attn_norm.weight", dim),
            ("ffn_norm.weight", dim),
            ("attn_q_norm.weight", hd),
            ("attn_k_norm.weight", hd),
            ("post_attention_norm.weight", dim),
            ("post_ffw_norm.weight", dim),
        ] {
            norms.push((p(name), n));
        }
    }
    norms.push(("output_norm.weight".into(), dim));
    for (name, n) in norms {
        let values = rng.values(n, 0.2).into_iter().map(|x| 1.0 + x).collect();
        tensors.push((name, vec![n], TensorType::F32, values));
    }
    let tensors: Vec<(&str, Vec<usize>, TensorType, Vec<f32>)> =
        tensors.iter().map(|(n, s, k, v)| (n.as_str(), s.clone(), *k, v.clone())).collect();
    let metadata = [
        ("general.architecture", Value::String("gemma3".into())),
        ("gemma3.block_count", Value::U32(layers as u32)),
        ("gemma3.context_length", Value::U32(64)),
        ("gemma3.embedding_length", Value::U32(dim as u32)),
        ("gemma3.feed_forward_length", Value::U32(ffn as u32)),
        ("gemma3.attention.head_count", Value::U32(heads as u32)),
        ("gemma3.attention.head_count_kv", Value::U32(kv_heads as u32)),
        ("gemma3.attention.key_length", Value::U32(hd as u32)),
        ("gemma3.attention.value_length", Value::U32(hd as u32)),
        ("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("gemma3.attention.sliding_window", Value::U32(4)),
        ("gemma3.rope.freq_base", Value::F32(10_000.0)),
    ];
    Gguf::parse(write(&metadata, &tensors)).expect("parses")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// The prompt's logits, then `steps` greedy tokens: (tokens, logits of each forward).
fn greedy(model: &Llama, prompt: &[u32], steps: usize, cache: &mut KvCache) -> (Vec<u32>, Vec<Vec<f32>>) {
    let mut logits = vec![model.forward(prompt, cache)];
    let mut tokens = vec![];
    for _ in 0..steps {
        let next = argmax(logits.last().expect("logits"));
        tokens.push(next);
        logits.push(model.forward(&[next], cache));
    }
    (tokens, logits)
}

const PROMPT: [u32; 7] = [2, 17, 33, 5, 60, 8, 41];

#[test]
fn the_tiny_model_on_wgpu_gives_the_host_engines_greedy_tokens() {
    let Some(gpu) = wgpu() else { return };
    let g = tiny_model();
    let host = Llama::from_gguf_with(&g, &Compute::Host, true).expect("host model");
    let device = Llama::from_gguf_with(&g, &gpu, true).expect("device model");
    let (want, want_logits) = greedy(&host, &PROMPT, 10, &mut host.new_cache());
    // A cache smaller than the sequence: it grows once on the way.
    let mut cache = device.new_cache_with_capacity(12);
    let (got, got_logits) = greedy(&device, &PROMPT, 10, &mut cache);
    assert_eq!(cache.device_capacity(), Some(24));
    for (i, (a, b)) in want_logits.iter().zip(&got_logits).enumerate() {
        let diff = max_diff(a, b);
        assert!(diff < 2e-2, "step {i}: wgpu and host logits differ by {diff}");
    }
    assert_eq!(got, want, "greedy tokens on wgpu and on the host");
}

#[test]
fn a_batch_on_wgpu_equals_each_sequence_alone() {
    let Some(gpu) = wgpu() else { return };
    let g = tiny_model();
    let model = Llama::from_gguf_with(&g, &gpu, true).expect("device model");
    // Prompts of 7, 2 and 5 tokens (past the window of 4 and not), then decode steps together.
    let prompts: [&[u32]; 3] = [&PROMPT, &[9, 3], &[44, 12, 7, 7, 30]];
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| greedy(&model, p, 6, &mut model.new_cache_with_capacity(16)).0)
        .collect();
    let mut caches: Vec<KvCache> = prompts.iter().map(|_| model.new_cache_with_capacity(16)).collect();
    // The prompts in one batch too.
    let mut batch: Vec<SequenceStep<'_>> = prompts
        .iter()
        .zip(caches.iter_mut())
        .map(|(tokens, cache)| SequenceStep { tokens, cache })
        .collect();
    let mut logits = model.forward_batch(&mut batch);
    let mut together: Vec<Vec<u32>> = vec![vec![]; 3];
    for _ in 0..6 {
        let next: Vec<[u32; 1]> = logits.iter().map(|l| [argmax(l)]).collect();
        for (out, n) in together.iter_mut().zip(&next) {
            out.push(n[0]);
        }
        let mut batch: Vec<SequenceStep<'_>> = next
            .iter()
            .zip(caches.iter_mut())
            .map(|(tokens, cache)| SequenceStep { tokens, cache })
            .collect();
        logits = model.forward_batch(&mut batch);
    }
    assert_eq!(together, alone);
}

#[test]
fn one_layer_on_wgpu_and_one_on_the_host_equal_the_host() {
    let Some(gpu) = wgpu() else { return };
    let g = tiny_model();
    let config = || LlamaConfig::from_gguf(&g).expect("config");
    let host = Llama::load_with(config(), &g, &Compute::Host, true).expect("host model");
    let split = Llama::load_with_gpu_layers(config(), &g, &gpu, true, Some(1)).expect("split model");
    let (want, want_logits) = greedy(&host, &PROMPT, 10, &mut host.new_cache());
    let (got, got_logits) = greedy(&split, &PROMPT, 10, &mut split.new_cache_with_capacity(20));
    for (i, (a, b)) in want_logits.iter().zip(&got_logits).enumerate() {
        let diff = max_diff(a, b);
        assert!(diff < 2e-2, "step {i}: split and host logits differ by {diff}");
    }
    assert_eq!(got, want);
}

#[test]
fn a_model_reaches_the_device_in_its_file_encoding_without_an_f32_matrix() {
    let Some(gpu) = wgpu() else { return };
    let g = tiny_model();
    let c = LlamaConfig::from_gguf(&g).expect("config");
    for f16 in [false, true] {
        let model = Llama::from_gguf_with(&g, &gpu, f16).expect("device model");
        let up = model.uploaded_bytes().expect("a device model");
        // Every matrix as the file has it (F32 ones as f16), padded to whole 4-byte words: the
        // tied embedding once, as the LM head; no decoded copy of any.
        let expected: usize = g
            .tensors
            .iter()
            .filter(|t| t.dims.len() == 2)
            .map(|t| {
                let (_, raw) = g.tensor_bytes(&t.name).expect("bytes");
                let bytes = if t.kind == TensorType::F32 { raw.len() / 2 } else { raw.len() };
                bytes.div_ceil(4) * 4
            })
            .sum();
        assert_eq!((up.encoded, up.f16, up.other), (expected, 0, 0), "f16 weights {f16}");
        // Only norms in f32: 4 of `dim` and 2 of `head_dim` per layer, and the output norm.
        let norms = c.layers * (4 * c.dim + 2 * c.head_dim) + c.dim;
        assert_eq!(up.f32, 4 * norms);
        assert_eq!(model.weight_bytes(), expected);
    }
}

/// `steps` greedy tokens of a real model on the CPU engine and on wgpu, after `chat` (encoded by
/// the model's tokenizer).
fn first_tokens_agree(file: &str, env: &str, chat: &str, steps: usize) {
    let Some(gpu) = wgpu() else { return };
    let Some(path) = common::fetched_model(file, Some(env)) else {
        return;
    };
    let g = Gguf::open(&path).expect("parses");
    let (tokenizer, special) = tokenizer::from_gguf(&g).expect("tokenizer");
    let mut prompt = tokenizer::encode(&tokenizer, &special, chat).expect("encode");
    if let Ok(bos) = g.get_i64("tokenizer.ggml.bos_token_id") {
        prompt.insert(0, bos as u32);
    }
    let prompt = &prompt[..];
    let cpu = Llama::from_gguf(&g, &Compute::cpu()).expect("cpu model");
    let (want, _) = greedy(&cpu, prompt, steps, &mut cpu.new_cache());
    drop(cpu);
    let device = Llama::from_gguf_with(&g, &gpu, true).expect("device model");
    let (got, _) = greedy(
        &device,
        prompt,
        steps,
        &mut device.new_cache_with_capacity(prompt.len() + steps + 1),
    );
    eprintln!("{file}: cpu {want:?}, wgpu {got:?}");
    assert_eq!(got, want, "{file}: first greedy tokens on wgpu and on the CPU");
}

#[test]
fn gemma3_270m_on_wgpu_gives_the_cpu_engines_first_tokens() {
    let chat = "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n";
    first_tokens_agree("gemma-3-270m-q4_k_m.gguf", "HORDE_GEMMA3_GGUF", chat, 8);
}

#[test]
fn smollm2_on_wgpu_gives_the_cpu_engines_first_tokens() {
    let chat = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    first_tokens_agree("SmolLM2-135M-Instruct.Q4_1.gguf", "HORDE_SMOLLM2_GGUF", chat, 8);
}

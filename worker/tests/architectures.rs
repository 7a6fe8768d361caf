//! Each architecture the decoder runs, on a tiny random model this test writes as GGUF (the real
//! tensor names and metadata keys; F32, F16 and Q8_0 matrices, rows of whole blocks): the logits
//! of our decoder, on the host engine and on burn's flex backend, match an independent numpy
//! forward pass (`compat/gguf_reference.py`) at several positions of a prompt fed in pieces
//! (which also exercises the KV cache). Bad models give one clear error.
//!
//! Tolerance: 5e-4 absolute on logits of magnitude up to ~3 (measured: burn within 2e-6, the host
//! engine within 1.2e-4). The host engine's integer kernels
//! (AVX-512) round the activations to 16 bits per block, everything else is f32 against numpy's f32.

use std::path::PathBuf;

use horde_worker::device::Compute;
use horde_worker::gguf::writer::write;
use horde_worker::gguf::{Gguf, TensorType, Value};
use horde_worker::llama::{Architecture, Llama, LlamaConfig};

mod common;
mod numpy_reference;

use common::Rng;

const TOLERANCE: f32 = 5e-4;

/// A tiny model's shape and which architecture extras it has.
#[derive(Clone)]
struct Spec {
    arch: &'static str,
    layers: usize,
    dim: usize,
    heads: usize,
    kv_heads: usize,
    /// `attention.key_length` / `value_length` when not dim / heads.
    head_dim: usize,
    /// `rope.dimension_count` when not head_dim.
    rope_dims: usize,
    ffn: usize,
    vocab: usize,
    /// q, k and v in one `attn_qkv`, gate and up in one `ffn_up` (Phi-3).
    fused: bool,
    /// q, k and v biases (Qwen2).
    biases: bool,
    /// QK-norm and sandwich norms (Gemma 3).
    gemma_norms: bool,
    /// Llama 3's `rope_freqs.weight`.
    rope_freqs: bool,
    /// A separate `output.weight` (else tied to the embedding).
    output: bool,
    /// More metadata (`{arch}.` is prepended).
    extra: Vec<(&'static str, Value)>,
}

fn base(arch: &'static str) -> Spec {
    Spec {
        arch,
        layers: 2,
        dim: 64,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        rope_dims: 16,
        ffn: 96,
        vocab: 48,
        fused: false,
        biases: false,
        gemma_norms: false,
        rope_freqs: false,
        output: false,
        extra: vec![],
    }
}

type Tensor = (String, Vec<usize>, TensorType, Vec<f32>);

/// The GGUF metadata and tensors of a random model of this shape.
fn model(s: &Spec, seed: u64) -> (Vec<(String, Value)>, Vec<Tensor>) {
    let mut rng = Rng(seed);
    let kinds = [TensorType::Q8_0, TensorType::F16, TensorType::F32];
    let mut next_kind = 0usize;
    let mut tensors: Vec<Tensor> = vec![];
    let mut matrix = |rng: &mut Rng, name: String, rows: usize, cols: usize| {
        next_kind += 1;
        let scale = 1.0 / (cols as f32).sqrt() * 1.5;
        (
            name,
            vec![rows, cols],
            kinds[next_kind % kinds.len()],
            rng.values(rows * cols, scale),
        )
    };
    let norm = |rng: &mut Rng, name: String, n: usize| {
        let values = rng.values(n, 0.2).into_iter().map(|x| 1.0 + x).collect();
        (name, vec![n], TensorType::F32, values)
    };
    let (q, kv) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
    tensors.push(matrix(&mut rng, "token_embd.weight".into(), s.vocab, s.dim));
    tensors.push(norm(&mut rng, "output_norm.weight".into(), s.dim));
    if s.output {
        tensors.push(matrix(&mut rng, "output.weight".into(), s.vocab, s.dim));
    }
    if s.rope_freqs {
        let divisors = (0..s.rope_dims / 2).map(|i| 1.0 + i as f32 * 0.7).collect();
        tensors.push(("rope_freqs.weight".into(), vec![s.rope_dims / 2], TensorType::F32, divisors));
    }
    for l in 0..s.layers {
        let p = |name: &str| format!("blk.{l}.{name}");
        tensors.push(norm(&mut rng, p("attn_norm.weight"), s.dim));
        if s.fused {
            tensors.push(matrix(&mut rng, p("attn_qkv.weight"), q + 2 * kv, s.dim));
        } else {
            tensors.push(matrix(&mut rng, p("attn_q.weight"), q, s.dim));
            tensors.push(matrix(&mut rng, p("attn_k.weight"), kv, s.dim));
            tensors.push(matrix(&mut rng, p("attn_v.weight"), kv, s.dim));
        }
        if s.biases {
            for (name, n) in [("attn_q.bias", q), ("attn_k.bias", kv), ("attn_v.bias", kv)] {
                tensors.push((p(name), vec![n], TensorType::F32, rng.values(n, 0.5)));
            }
        }
        if s.gemma_norms {
            tensors.push(norm(&mut rng, p("attn_q_norm.weight"), s.head_dim));
            tensors.push(norm(&mut rng, p("attn_k_norm.weight"), s.head_dim));
            tensors.push(norm(&mut rng, p("post_attention_norm.weight"), s.dim));
            tensors.push(norm(&mut rng, p("post_ffw_norm.weight"), s.dim));
        }
        tensors.push(matrix(&mut rng, p("attn_output.weight"), s.dim, q));
        tensors.push(norm(&mut rng, p("ffn_norm.weight"), s.dim));
        if s.fused {
            tensors.push(matrix(&mut rng, p("ffn_up.weight"), 2 * s.ffn, s.dim));
        } else {
            tensors.push(matrix(&mut rng, p("ffn_gate.weight"), s.ffn, s.dim));
            tensors.push(matrix(&mut rng, p("ffn_up.weight"), s.ffn, s.dim));
        }
        tensors.push(matrix(&mut rng, p("ffn_down.weight"), s.dim, s.ffn));
    }
    let key = |k: &str| format!("{}.{k}", s.arch);
    let mut metadata = vec![
        ("general.architecture".to_string(), Value::String(s.arch.into())),
        (key("block_count"), Value::U32(s.layers as u32)),
        (key("context_length"), Value::U32(64)),
        (key("embedding_length"), Value::U32(s.dim as u32)),
        (key("feed_forward_length"), Value::U32(s.ffn as u32)),
        (key("attention.head_count"), Value::U32(s.heads as u32)),
        (key("attention.head_count_kv"), Value::U32(s.kv_heads as u32)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        (key("rope.freq_base"), Value::F32(10_000.0)),
    ];
    if s.head_dim != s.dim / s.heads {
        metadata.push((key("attention.key_length"), Value::U32(s.head_dim as u32)));
        metadata.push((key("attention.value_length"), Value::U32(s.head_dim as u32)));
    }
    if s.rope_dims != s.head_dim {
        metadata.push((key("rope.dimension_count"), Value::U32(s.rope_dims as u32)));
    }
    // Extra keys replace the defaults.
    for (k, v) in &s.extra {
        metadata.retain(|(existing, _)| *existing != key(k));
        metadata.push((key(k), v.clone()));
    }
    (metadata, tensors)
}

fn encode(metadata: &[(String, Value)], tensors: &[Tensor]) -> Vec<u8> {
    let metadata: Vec<(&str, Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let tensors: Vec<(&str, Vec<usize>, TensorType, Vec<f32>)> =
        tensors.iter().map(|(n, s, k, v)| (n.as_str(), s.clone(), *k, v.clone())).collect();
    write(&metadata, &tensors)
}

/// Writes the model, runs the reference on `prompt`, and checks both engines at `positions`.
fn check(name: &str, s: &Spec, prompt: &[u32], positions: &[usize]) -> Option<()> {
    let (metadata, tensors) = model(s, 7 + prompt.len() as u64);
    let bytes = encode(&metadata, &tensors);
    let path: PathBuf = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tiny-{name}.gguf"));
    std::fs::write(&path, &bytes).expect("write the model");
    let g = Gguf::open(&path).expect("parse");
    // The description is read without Python.
    let config = LlamaConfig::from_gguf(&g).expect("config");
    assert_eq!(config.arch.name(), s.arch);
    let python = numpy_reference::python()?;
    let reference = numpy_reference::run(&python, &path, prompt, positions, 0);
    for compute in [Compute::Host, Compute::Burn(burn::prelude::Device::flex())] {
        let engine = if matches!(compute, Compute::Host) { "host" } else { "burn" };
        let model = Llama::from_gguf(&g, &compute).expect("model");
        let mut cache = model.new_cache();
        let mut done = 0;
        for &p in positions {
            let logits = model.forward(&prompt[done..=p], &mut cache);
            done = p + 1;
            let want = &reference.logits[&p];
            let diff = numpy_reference::max_diff(&logits, want);
            let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
            eprintln!("{name} on {engine}: position {p}: max diff {diff:.2e} (logits up to {scale:.2})");
            assert!(scale > 0.1, "{name}: degenerate logits");
            assert!(diff < TOLERANCE, "{name} on {engine}: position {p} differs from numpy by {diff}");
        }
    }
    Some(())
}

const PROMPT: [u32; 12] = [1, 17, 5, 33, 2, 47, 9, 9, 21, 0, 40, 13];

#[test]
fn llama3_with_rope_freqs_gqa_and_a_separate_output_matches_numpy() {
    let spec = Spec {
        rope_freqs: true,
        output: true,
        ..base("llama")
    };
    check("llama3", &spec, &PROMPT[..7], &[0, 3, 4, 6]);
}

#[test]
fn mistral_nemo_with_a_key_length_other_than_dim_over_heads_matches_numpy() {
    // q is 4 heads × 32 = 128 wide on a 64-wide model; attn_output maps 128 back to 64.
    let spec = Spec {
        head_dim: 32,
        rope_dims: 32,
        extra: vec![("rope.freq_base", Value::F32(1_000_000.0))],
        ..base("llama")
    };
    check("nemo", &spec, &PROMPT[..6], &[1, 2, 5]);
}

#[test]
fn qwen2_with_biases_and_rotate_half_matches_numpy() {
    let spec = Spec {
        biases: true,
        output: true,
        ..base("qwen2")
    };
    check("qwen2", &spec, &PROMPT[..8], &[0, 4, 7]);
}

#[test]
fn gemma3_with_sliding_windows_longer_than_the_window_matches_numpy() {
    // Six layers: 0-4 local (window 4, rope base 10000), 5 global (base 1e6, linear scaling ×2);
    // a 12-token prompt is three windows long. Soft-capped logits.
    let spec = Spec {
        layers: 6,
        heads: 2,
        kv_heads: 1,
        head_dim: 48,
        rope_dims: 48,
        gemma_norms: true,
        extra: vec![
            ("attention.sliding_window", Value::U32(4)),
            ("rope.freq_base", Value::F32(1_000_000.0)),
            ("rope.scaling.type", Value::String("linear".into())),
            ("rope.scaling.factor", Value::F32(2.0)),
            ("final_logit_softcapping", Value::F32(3.0)),
        ],
        ..base("gemma3")
    };
    check("gemma3", &spec, &PROMPT, &[0, 2, 3, 4, 8, 11]);
}

#[test]
fn phi3_with_fused_matrices_and_partial_rotary_matches_numpy() {
    let spec = Spec {
        fused: true,
        rope_dims: 8,
        output: true,
        ..base("phi3")
    };
    check("phi3", &spec, &PROMPT[..6], &[0, 1, 5]);
}

#[test]
fn the_description_follows_the_metadata() {
    let gemma = Spec {
        layers: 6,
        heads: 2,
        kv_heads: 1,
        head_dim: 48,
        rope_dims: 48,
        gemma_norms: true,
        extra: vec![("attention.sliding_window", Value::U32(4))],
        ..base("gemma3")
    };
    let (metadata, tensors) = model(&gemma, 1);
    let c = LlamaConfig::from_gguf(&Gguf::parse(encode(&metadata, &tensors)).expect("gguf")).expect("config");
    assert_eq!(c.arch, Architecture::Gemma3);
    assert_eq!((c.head_dim, c.q_dim(), c.k_dim()), (48, 96, 48));
    assert_eq!(
        (0..6).map(|l| c.window(l)).collect::<Vec<_>>(),
        [Some(4), Some(4), Some(4), Some(4), Some(4), None]
    );
    assert!((c.embedding_scale - 8.0).abs() < 1e-6 && (c.attention_scale - 1.0 / 48f32.sqrt()).abs() < 1e-7);
    let (metadata, tensors) = model(&base("llama"), 1);
    let c = LlamaConfig::from_gguf(&Gguf::parse(encode(&metadata, &tensors)).expect("gguf")).expect("config");
    assert_eq!(
        (c.arch, c.window(0), c.embedding_scale, c.final_softcap),
        (Architecture::Llama, None, 1.0, None)
    );
    assert_eq!((c.context, c.rope.position_scale), (64, 1.0));
    // YaRN is not applied: the model runs unscaled, up to its original context.
    let yarn = Spec {
        extra: vec![
            ("rope.scaling.type", Value::String("yarn".into())),
            ("rope.scaling.factor", Value::F32(4.0)),
            ("rope.scaling.original_context_length", Value::U32(16)),
        ],
        ..base("qwen2")
    };
    let (metadata, tensors) = model(&yarn, 1);
    let c = LlamaConfig::from_gguf(&Gguf::parse(encode(&metadata, &tensors)).expect("gguf")).expect("config");
    assert_eq!((c.arch, c.context, c.rope.position_scale), (Architecture::Qwen2, 16, 1.0));
}

#[test]
fn phi3_long_rope_is_refused_by_name() {
    let (metadata, mut tensors) = model(
        &Spec {
            fused: true,
            ..base("phi3")
        },
        1,
    );
    tensors.push(("rope_factors_long.weight".into(), vec![8], TensorType::F32, vec![1.0; 8]));
    let e = load_error(&metadata, &tensors);
    assert!(e.contains("rope_factors_long.weight") && e.contains("LongRoPE"), "{e}");
}

fn load_error(metadata: &[(String, Value)], tensors: &[Tensor]) -> String {
    let g = Gguf::parse(encode(metadata, tensors)).expect("gguf");
    let errors: Vec<String> = [Compute::Host, Compute::Burn(burn::prelude::Device::flex())]
        .into_iter()
        .map(|compute| match Llama::from_gguf(&g, &compute) {
            Ok(_) => panic!("the model loaded"),
            Err(e) => e.to_string(),
        })
        .collect();
    assert_eq!(errors[0], errors[1], "both engines give the same error");
    errors[0].clone()
}

#[test]
fn an_unknown_architecture_is_named_with_the_supported_ones() {
    let (mut metadata, tensors) = model(&base("llama"), 1);
    metadata[0].1 = Value::String("mamba".into());
    let e = load_error(&metadata, &tensors);
    assert!(e.contains("'mamba'") && e.contains("llama, qwen2, gemma3, phi3"), "{e}");
}

#[test]
fn a_missing_or_misshaped_tensor_is_named_with_its_shapes() {
    let (metadata, tensors) = model(&base("qwen2"), 1);
    let without: Vec<Tensor> = tensors.iter().filter(|t| t.0 != "blk.1.ffn_down.weight").cloned().collect();
    let e = load_error(&metadata, &without);
    assert!(e.contains("blk.1.ffn_down.weight"), "{e}");
    // attn_k 64 rows instead of 2 kv heads × 16.
    let mut misshaped = tensors.clone();
    let k = misshaped.iter_mut().find(|t| t.0 == "blk.0.attn_k.weight").expect("attn_k");
    *k = (k.0.clone(), vec![64, 64], k.2, vec![0.1; 64 * 64]);
    let e = load_error(&metadata, &misshaped);
    assert!(
        e.contains("blk.0.attn_k.weight") && e.contains("[64, 64]") && e.contains("[32, 64]"),
        "{e}"
    );
    // Gemma 3 needs its QK-norm.
    let gemma = Spec {
        layers: 1,
        gemma_norms: true,
        ..base("gemma3")
    };
    let (metadata, tensors) = model(&gemma, 1);
    let without: Vec<Tensor> = tensors.into_iter().filter(|t| t.0 != "blk.0.attn_q_norm.weight").collect();
    let e = load_error(&metadata, &without);
    assert!(e.contains("blk.0.attn_q_norm.weight"), "{e}");
}

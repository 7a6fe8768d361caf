//! The real Gemma 3 270M (Q4_K_M GGUF: F32, Q5_0, Q4_K, Q6_K and Q8_0 tensors, `gemma3`
//! architecture; fetched by `scripts/fetch-models.sh`) on the host engine against the independent
//! numpy forward pass (`compat/gguf_reference.py`, PyPI `gguf` dequantizing every tensor to f32):
//! logits of the prompt's first positions and of its last, and a 32-token greedy continuation.
//! Token ids are given directly (BOS 2, `<start_of_turn>` 105, `user` 2364, `\n` 107, ...), so
//! this does not depend on the tokenizer.
//!
//! Tolerance: 0.05 absolute on logits up to ~20: the reference multiplies f32 copies of the
//! weights, the host engine reads the file's blocks (its integer kernels round activations).
//! Measured with row-by-row dequantizing kernels for the K-quants and Q5_0: at most 8e-3 over the
//! five positions, continuation identical.
//!
//! Needs kernels (or dequantization) of Q5_0, Q4_K and Q6_K in `crate::quants`.

use horde_worker::device::Compute;
use horde_worker::gguf::Gguf;
use horde_worker::llama::{Architecture, Llama};
use horde_worker::sampling::argmax;

mod common;
mod numpy_reference;

/// `<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n`
const PROMPT: [u32; 16] = [2, 105, 2364, 107, 3689, 563, 506, 5279, 529, 7001, 236881, 106, 107, 105, 4368, 107];
const POSITIONS: [usize; 5] = [0, 1, 2, 3, 15];
const TOLERANCE: f32 = 0.05;

#[test]
fn gemma3_270m_matches_the_numpy_reference() {
    let Some(path) = common::fetched_model("gemma-3-270m-q4_k_m.gguf", Some("HORDE_GEMMA3_GGUF")) else {
        return;
    };
    let g = Gguf::open(&path).expect("parses");
    let model = Llama::from_gguf(&g, &Compute::Host).expect("model");
    let c = &model.config;
    assert_eq!(c.arch, Architecture::Gemma3);
    assert_eq!(
        (c.layers, c.dim, c.heads, c.kv_heads, c.head_dim, c.vocab),
        (18, 640, 4, 1, 256, 262144)
    );
    assert_eq!(c.sliding_window.as_ref().map(|s| s.window), Some(512));
    let Some(python) = numpy_reference::python() else { return };
    let reference = numpy_reference::run(&python, &path, &PROMPT, &POSITIONS, 32);

    let mut cache = model.new_cache();
    let mut done = 0;
    let mut logits = vec![];
    for p in POSITIONS {
        logits = model.forward(&PROMPT[done..=p], &mut cache);
        done = p + 1;
        let want = &reference.logits[&p];
        let diff = numpy_reference::max_diff(&logits, want);
        eprintln!("position {p}: max diff {diff:.2e}, argmax {} vs {}", argmax(&logits), argmax(want));
        assert!(diff < TOLERANCE, "position {p}: logits differ from numpy by {diff}");
    }
    let mut out = vec![];
    while out.len() < reference.continuation.len() {
        let next = argmax(&logits);
        out.push(next);
        logits = model.forward(&[next], &mut cache);
    }
    assert_eq!(reference.continuation.len(), 32);
    assert_eq!(out, reference.continuation, "greedy continuations differ");
}

//! Runs `compat/gguf_reference.py` (an independent numpy forward pass over a GGUF file, on PyPI's
//! `gguf` reader) in a venv the tests create, for the architecture tests. Without python3 or
//! PyPI the callers skip, saying so, unless HORDE_REQUIRE_COMPAT=1 (CI) makes that a failure.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../../compat/python_venv.rs"]
mod python_venv;

/// What the reference computed.
pub struct Reference {
    /// Logits at the prompt positions asked for.
    pub logits: HashMap<usize, Vec<f32>>,
    /// The greedy continuation of the whole prompt.
    pub continuation: Vec<u32>,
}

/// The packages of the gguf + numpy references (also `quant_blocks.rs`'s, sharing one venv).
pub const PACKAGES: [&str; 2] = ["numpy==2.4.6", "gguf==0.19.0"];

/// The venv's python, or `None` (the test skips) when it cannot be set up.
pub fn python() -> Option<PathBuf> {
    python_venv::reference_python(Path::new(env!("CARGO_TARGET_TMPDIR")), "gguf-reference-venv", &PACKAGES)
}

/// The reference's logits of `tokens` at `positions` and its greedy continuation of `new` tokens.
pub fn run(python: &Path, model: &Path, tokens: &[u32], positions: &[usize], new: usize) -> Reference {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/gguf_reference.py");
    let out = model.with_extension("reference.json");
    let list = |v: Vec<String>| v.join(",");
    let status = Command::new(python)
        .arg(&script)
        .arg(model)
        .args(["--tokens", &list(tokens.iter().map(|t| t.to_string()).collect())])
        .args(["--positions", &list(positions.iter().map(|p| p.to_string()).collect())])
        .args(["--new", &new.to_string()])
        .arg("--out")
        .arg(&out)
        .env("OPENBLAS_NUM_THREADS", "1")
        .status()
        .expect("run the numpy reference");
    assert!(status.success(), "the numpy reference failed on {}", model.display());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).expect("reference output")).expect("json");
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect()
    };
    Reference {
        logits: json["logits"]
            .as_object()
            .expect("logits")
            .iter()
            .map(|(k, v)| (k.parse().expect("position"), floats(v)))
            .collect(),
        continuation: json["continuation"]
            .as_array()
            .expect("continuation")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect(),
    }
}

/// The largest absolute difference of two logit vectors of the same length.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "logit counts differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

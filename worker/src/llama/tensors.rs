//! Which tensors make up a layer, with the shapes the config expects, shared by both engines:
//! the small vectors (norms, biases) read as f32, and the names and shapes of the matrices each
//! engine then loads its own way. A missing or mis-shaped tensor is one error naming it.

use super::config::LlamaConfig;
use super::Weights;
use crate::gguf::GgufError;

/// A tensor whose shape is not the one the config expects.
pub(super) fn shape_error(name: &str, found: &[usize], expected: &[usize]) -> GgufError {
    GgufError::Invalid(format!("tensor {name} has shape {found:?}, expected {expected:?}"))
}

/// A vector of `len` values, or `None` if the model has no such tensor.
pub(super) fn optional_vector(w: &dyn Weights, name: &str, len: usize) -> Result<Option<Vec<f32>>, GgufError> {
    match w.tensor(name)? {
        Some((data, shape)) if shape.iter().product::<usize>() == len && shape.iter().filter(|d| **d != 1).count() <= 1 => Ok(Some(data)),
        Some((_, shape)) => Err(shape_error(name, &shape, &[len])),
        None => Ok(None),
    }
}

/// A vector of `len` values the model must have.
pub(super) fn vector(w: &dyn Weights, name: &str, len: usize) -> Result<Vec<f32>, GgufError> {
    optional_vector(w, name, len)?.ok_or_else(|| GgufError::MissingTensor(name.to_string()))
}

/// A matrix to load: its name and `[rows, cols]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MatrixName {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
}

impl MatrixName {
    fn new(name: String, rows: usize, cols: usize) -> Self {
        Self { name, rows, cols }
    }

    /// Checks a loaded matrix's shape.
    pub(super) fn check(&self, rows: usize, cols: usize) -> Result<(), GgufError> {
        if (rows, cols) != (self.rows, self.cols) {
            return Err(shape_error(&self.name, &[rows, cols], &[self.rows, self.cols]));
        }
        Ok(())
    }
}

/// One layer's tensors.
pub(super) struct LayerTensors {
    pub attn_norm: Vec<f32>,
    /// Matrices whose rows, stacked, give q, k and v side by side (`[q_dim + k_dim + v_dim, dim]`):
    /// three matrices, or Phi-3's one `attn_qkv`.
    pub qkv: Vec<MatrixName>,
    /// Biases of q, k and v side by side (Qwen2).
    pub qkv_bias: Option<Vec<f32>>,
    /// Per-head RMSNorm weights of q and k (`[head_dim]`, Gemma 3).
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    /// `[dim, q heads · value_dim]`.
    pub output: MatrixName,
    /// Norm of the attention's output before it is added (Gemma 3).
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    /// Matrices whose rows, stacked, give gate and up side by side (`[2 · ffn_dim, dim]`):
    /// `ffn_gate` and `ffn_up`, or Phi-3's one `ffn_up` with the gate first.
    pub gate_up: Vec<MatrixName>,
    pub down: MatrixName,
    /// Norm of the feed-forward's output before it is added (Gemma 3).
    pub post_ffn_norm: Option<Vec<f32>>,
}

impl LayerTensors {
    /// Layer `l`'s vectors, and the names and shapes of its matrices.
    pub(super) fn load(c: &LlamaConfig, w: &dyn Weights, l: usize) -> Result<Self, GgufError> {
        let p = |s: &str| format!("blk.{l}.{s}");
        let (dim, qkv_rows) = (c.dim, c.q_dim() + c.k_dim() + c.v_dim());
        let fused_qkv = w.has(&p("attn_qkv.weight"));
        let qkv = if fused_qkv {
            vec![MatrixName::new(p("attn_qkv.weight"), qkv_rows, dim)]
        } else {
            vec![
                MatrixName::new(p("attn_q.weight"), c.q_dim(), dim),
                MatrixName::new(p("attn_k.weight"), c.k_dim(), dim),
                MatrixName::new(p("attn_v.weight"), c.v_dim(), dim),
            ]
        };
        let qkv_bias = if fused_qkv {
            optional_vector(w, &p("attn_qkv.bias"), qkv_rows)?
        } else {
            let parts = [
                optional_vector(w, &p("attn_q.bias"), c.q_dim())?,
                optional_vector(w, &p("attn_k.bias"), c.k_dim())?,
                optional_vector(w, &p("attn_v.bias"), c.v_dim())?,
            ];
            match parts {
                [None, None, None] => None,
                [Some(q), Some(k), Some(v)] => Some([q, k, v].concat()),
                _ => return Err(GgufError::Invalid(format!("layer {l} has biases for some of q, k and v only"))),
            }
        };
        let gemma = c.arch.gemma_norms();
        let gemma_vector = |name: &str, len: usize| -> Result<Option<Vec<f32>>, GgufError> {
            if gemma {
                vector(w, &p(name), len).map(Some)
            } else {
                Ok(None)
            }
        };
        let gate_up = if w.has(&p("ffn_gate.weight")) {
            vec![
                MatrixName::new(p("ffn_gate.weight"), c.ffn_dim, dim),
                MatrixName::new(p("ffn_up.weight"), c.ffn_dim, dim),
            ]
        } else {
            vec![MatrixName::new(p("ffn_up.weight"), 2 * c.ffn_dim, dim)]
        };
        Ok(Self {
            attn_norm: vector(w, &p("attn_norm.weight"), dim)?,
            qkv,
            qkv_bias,
            q_norm: gemma_vector("attn_q_norm.weight", c.head_dim)?,
            k_norm: gemma_vector("attn_k_norm.weight", c.head_dim)?,
            output: MatrixName::new(p("attn_output.weight"), dim, c.heads * c.value_dim),
            post_attn_norm: gemma_vector("post_attention_norm.weight", dim)?,
            ffn_norm: vector(w, &p("ffn_norm.weight"), dim)?,
            gate_up,
            down: MatrixName::new(p("ffn_down.weight"), dim, c.ffn_dim),
            post_ffn_norm: gemma_vector("post_ffw_norm.weight", dim)?,
        })
    }
}

/// The LM head: `output.weight`, or the embedding again when the model ties them.
pub(super) fn lm_head_name(w: &dyn Weights) -> &'static str {
    if w.has("output.weight") {
        "output.weight"
    } else {
        "token_embd.weight"
    }
}

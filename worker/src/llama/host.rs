//! The CPU side of the model: weights kept in their file encoding (`QuantMatrix`), a KV cache in
//! plain f32 vectors, and the single-token decode step written directly against them.
//!
//! Decoding is one matrix-vector product per weight matrix per token, so its speed is the speed
//! of reading the weights. burn's CPU backend multiplies dequantized f32 (or f16) copies; here a
//! Q4_1 model reads 0.625 bytes per weight and each block is widened in registers (see
//! `crate::matvec`). Prefill (many tokens at once) stays on burn, whose matrix-matrix products
//! are the faster path there; both share this cache, the embedding and the LM head.

use super::{LlamaConfig, Weights};
use crate::gguf::GgufError;
use crate::matvec::{attend, QuantMatrix};

struct HostLayer {
    attn_norm: Vec<f32>,
    /// q, k and v rows stacked: `[dim + 2·kv_dim, dim]`.
    wqkv: QuantMatrix,
    wo: QuantMatrix,
    ffn_norm: Vec<f32>,
    /// gate and up rows stacked: `[2·ffn_dim, dim]`.
    w_gate_up: QuantMatrix,
    w_down: QuantMatrix,
}

/// The model's weights on the host.
pub(super) struct HostModel {
    embedding: QuantMatrix,
    lm_head: QuantMatrix,
    layers: Vec<HostLayer>,
    output_norm: Vec<f32>,
    /// `[context][head_dim / 2]` each.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

/// Keys and values of one layer, `[positions][kv_heads · head_dim]`.
#[derive(Default, Clone)]
pub(super) struct HostKv {
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
}

fn vector(w: &dyn Weights, name: &str, len: usize) -> Result<Vec<f32>, GgufError> {
    let (data, _) = w.tensor(name)?.ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
    if data.len() != len {
        return Err(GgufError::Invalid(format!("{name} has {} values, expected {len}", data.len())));
    }
    Ok(data)
}

fn matrix(w: &dyn Weights, name: &str, rows: usize, cols: usize) -> Result<QuantMatrix, GgufError> {
    let m = w.matrix(name)?.ok_or_else(|| GgufError::MissingTensor(name.to_string()))?;
    if (m.rows(), m.cols()) != (rows, cols) {
        return Err(GgufError::Invalid(format!(
            "{name} is {}x{}, expected {rows}x{cols}",
            m.rows(),
            m.cols()
        )));
    }
    Ok(m)
}

/// `x / rms(x) · weight`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f64) -> Vec<f32> {
    let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    let scale = 1.0 / (mean_sq + eps as f32).sqrt();
    x.iter().zip(weight).map(|(v, w)| v * scale * w).collect()
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

impl HostModel {
    pub(super) fn load(c: &LlamaConfig, w: &dyn Weights) -> Result<Self, GgufError> {
        let (dim, kv_dim) = (c.dim, c.kv_heads * c.head_dim());
        let embedding = matrix(w, "token_embd.weight", c.vocab, dim)?;
        let lm_head = match w.matrix("output.weight")? {
            Some(_) => matrix(w, "output.weight", c.vocab, dim)?,
            None => embedding.clone(),
        }
        .prepared();
        let mut layers = Vec::with_capacity(c.layers);
        for l in 0..c.layers {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            layers.push(HostLayer {
                attn_norm: vector(w, &p("attn_norm"), dim)?,
                wqkv: QuantMatrix::stack(vec![
                    matrix(w, &p("attn_q"), dim, dim)?,
                    matrix(w, &p("attn_k"), kv_dim, dim)?,
                    matrix(w, &p("attn_v"), kv_dim, dim)?,
                ])?
                .prepared(),
                wo: matrix(w, &p("attn_output"), dim, dim)?.prepared(),
                ffn_norm: vector(w, &p("ffn_norm"), dim)?,
                w_gate_up: QuantMatrix::stack(vec![
                    matrix(w, &p("ffn_gate"), c.ffn_dim, dim)?,
                    matrix(w, &p("ffn_up"), c.ffn_dim, dim)?,
                ])?
                .prepared(),
                w_down: matrix(w, &p("ffn_down"), dim, c.ffn_dim)?.prepared(),
            });
        }
        let (cos, sin) = rope_tables(c);
        Ok(Self {
            embedding,
            lm_head,
            layers,
            output_norm: vector(w, "output_norm.weight", dim)?,
            cos,
            sin,
        })
    }

    /// f32 matrices become f16 (quantized ones stay as they are).
    pub(super) fn with_f16_weights(mut self) -> Self {
        for l in &mut self.layers {
            for m in [&mut l.wqkv, &mut l.wo, &mut l.w_gate_up, &mut l.w_down] {
                *m = m.clone().to_f16();
            }
        }
        self.lm_head = self.lm_head.to_f16();
        self
    }

    /// The embeddings of `tokens`, one row each (`[tokens.len()][dim]`, flattened).
    pub(super) fn embed(&self, tokens: &[u32]) -> Vec<f32> {
        let dim = self.embedding.cols();
        let mut out = Vec::with_capacity(tokens.len() * dim);
        for t in tokens {
            let row = self.embedding.row(*t as usize);
            // An id outside the vocabulary embeds as zeros rather than panicking.
            out.extend(if row.len() == dim { row } else { vec![0.0; dim] });
        }
        out
    }

    /// Logits of a final hidden state (before the output norm).
    pub(super) fn logits(&self, c: &LlamaConfig, x: &[f32]) -> Vec<f32> {
        let h = rms_norm(x, &self.output_norm, c.rms_eps);
        let mut out = vec![0f32; self.lm_head.rows()];
        self.lm_head.matvec(&h, &mut out);
        out
    }

    /// Rotates consecutive heads of `head_dim` values in place by position `pos` (pairs
    /// `2i, 2i+1`).
    fn rope(&self, c: &LlamaConfig, v: &mut [f32], pos: usize) {
        let half = c.head_dim() / 2;
        let (cos, sin) = (&self.cos[pos * half..][..half], &self.sin[pos * half..][..half]);
        for head in v.chunks_exact_mut(c.head_dim()) {
            for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                let (x0, x1) = (pair[0], pair[1]);
                pair[0] = x0 * cos[i] - x1 * sin[i];
                pair[1] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }

    /// Runs one token at position `cache[..].len()` (the same for every layer), appends its keys
    /// and values, and returns the logits.
    pub(super) fn step(&self, c: &LlamaConfig, token: u32, pos: usize, cache: &mut [HostKv]) -> Vec<f32> {
        let (dim, hd) = (c.dim, c.head_dim());
        let kv_dim = c.kv_heads * hd;
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut x = self.embed(&[token]);
        let mut qkv = vec![0f32; dim + 2 * kv_dim];
        let mut attn = vec![0f32; dim];
        let mut scores = vec![0f32; pos + 1];
        let mut proj = vec![0f32; dim];
        let mut gate_up = vec![0f32; 2 * c.ffn_dim];
        for (layer, kv) in self.layers.iter().zip(cache.iter_mut()) {
            let h = rms_norm(&x, &layer.attn_norm, c.rms_eps);
            layer.wqkv.matvec(&h, &mut qkv);
            let (q, rest) = qkv.split_at_mut(dim);
            let (k, v) = rest.split_at_mut(kv_dim);
            self.rope(c, q, pos);
            self.rope(c, k, pos);
            kv.keys.extend_from_slice(k);
            kv.values.extend_from_slice(v);
            for (head, out) in attn.chunks_exact_mut(hd).enumerate() {
                // Each key/value head serves `group` consecutive query heads.
                let at = head / group * hd;
                let q = &q[head * hd..][..hd];
                attend(q, &kv.keys[at..], &kv.values[at..], kv_dim, pos + 1, scale, &mut scores, out);
            }
            layer.wo.matvec(&attn, &mut proj);
            x.iter_mut().zip(&proj).for_each(|(x, p)| *x += p);
            let h = rms_norm(&x, &layer.ffn_norm, c.rms_eps);
            layer.w_gate_up.matvec(&h, &mut gate_up);
            let (gate, up) = gate_up.split_at(c.ffn_dim);
            let ff: Vec<f32> = gate.iter().zip(up).map(|(g, u)| silu(*g) * u).collect();
            layer.w_down.matvec(&ff, &mut proj);
            x.iter_mut().zip(&proj).for_each(|(x, p)| *x += p);
        }
        self.logits(c, &x)
    }
}

/// cos and sin of `position · base^(-2i/head_dim)`, `[context][head_dim / 2]`.
pub(super) fn rope_tables(c: &LlamaConfig) -> (Vec<f32>, Vec<f32>) {
    let half = c.head_dim() / 2;
    let mut cos = Vec::with_capacity(c.context * half);
    let mut sin = Vec::with_capacity(c.context * half);
    for pos in 0..c.context {
        for i in 0..half {
            let inv = c.rope_base.powf(-((2 * i) as f64) / c.head_dim() as f64);
            let angle = pos as f64 * inv;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

//! The model on the CPU: weights kept in their file encoding (`QuantMatrix`), activations and the
//! KV cache in plain f32 vectors, every step written directly against them.
//!
//! A decode step is one matrix-vector product per weight matrix, so its speed is the speed of
//! reading the weights: a Q4_1 model reads 0.625 bytes per weight (see `crate::matvec`). A prompt
//! goes through as a batch: each matrix is read once for every four of its tokens.

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
    shaped(name, m, rows, cols)
}

fn shaped(name: &str, m: QuantMatrix, rows: usize, cols: usize) -> Result<QuantMatrix, GgufError> {
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
        // A separate LM head, or the embedding again (tied).
        let lm_head = match w.matrix("output.weight")? {
            Some(m) => shaped("output.weight", m, c.vocab, dim)?,
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

    /// Bytes of weight matrices one token reads.
    pub(super) fn weight_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.wqkv.bytes() + l.wo.bytes() + l.w_gate_up.bytes() + l.w_down.bytes())
            .sum::<usize>()
            + self.lm_head.bytes()
    }

    /// Runs `tokens` at positions `start..`, appends their keys and values to `cache`, and
    /// returns the logits of the last one.
    pub(super) fn forward(&self, c: &LlamaConfig, tokens: &[u32], start: usize, cache: &mut [HostKv]) -> Vec<f32> {
        let (dim, hd, n) = (c.dim, c.head_dim(), tokens.len());
        let kv_dim = c.kv_heads * hd;
        let qkv_dim = dim + 2 * kv_dim;
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        // Activations are `[tokens][width]`, row after row.
        let mut x = self.embed(tokens);
        let mut qkv = vec![0f32; n * qkv_dim];
        let mut attn = vec![0f32; n * dim];
        let mut scores = vec![0f32; start + n];
        let mut proj = vec![0f32; n * dim];
        let mut gate_up = vec![0f32; n * 2 * c.ffn_dim];
        let mut ff = vec![0f32; n * c.ffn_dim];
        for (layer, kv) in self.layers.iter().zip(cache.iter_mut()) {
            let h = rms_norm_rows(&x, &layer.attn_norm, c.rms_eps);
            layer.wqkv.matmul(&h, &mut qkv);
            for (t, row) in qkv.chunks_exact_mut(qkv_dim).enumerate() {
                let (q, rest) = row.split_at_mut(dim);
                let (k, v) = rest.split_at_mut(kv_dim);
                self.rope(c, q, start + t);
                self.rope(c, k, start + t);
                kv.keys.extend_from_slice(k);
                kv.values.extend_from_slice(v);
            }
            for (t, (row, out)) in qkv.chunks_exact(qkv_dim).zip(attn.chunks_exact_mut(dim)).enumerate() {
                // Token t sees the positions up to its own.
                let seen = start + t + 1;
                for (head, out) in out.chunks_exact_mut(hd).enumerate() {
                    // Each key/value head serves `group` consecutive query heads.
                    let at = head / group * hd;
                    let q = &row[head * hd..][..hd];
                    attend(q, &kv.keys[at..], &kv.values[at..], kv_dim, seen, scale, &mut scores, out);
                }
            }
            layer.wo.matmul(&attn, &mut proj);
            x.iter_mut().zip(&proj).for_each(|(x, p)| *x += p);
            let h = rms_norm_rows(&x, &layer.ffn_norm, c.rms_eps);
            layer.w_gate_up.matmul(&h, &mut gate_up);
            for (row, out) in gate_up.chunks_exact(2 * c.ffn_dim).zip(ff.chunks_exact_mut(c.ffn_dim)) {
                let (gate, up) = row.split_at(c.ffn_dim);
                out.iter_mut().zip(gate.iter().zip(up)).for_each(|(o, (g, u))| *o = silu(*g) * u);
            }
            layer.w_down.matmul(&ff, &mut proj);
            x.iter_mut().zip(&proj).for_each(|(x, p)| *x += p);
        }
        self.logits(c, &x[(n - 1) * dim..])
    }
}

/// `rms_norm` of each row of `[rows][weight.len()]`.
fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f64) -> Vec<f32> {
    x.chunks_exact(weight.len()).flat_map(|row| rms_norm(row, weight, eps)).collect()
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

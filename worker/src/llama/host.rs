//! The model on the CPU: weights kept in their file encoding (`QuantMatrix`), activations and the
//! KV cache in plain f32 vectors, every step written directly against them.
//!
//! A decode step is one matrix-vector product per weight matrix, so its speed is the speed of
//! reading the weights: a Q4_1 model reads 0.625 bytes per weight (see `crate::matvec`). A prompt
//! goes through as a batch: each matrix is read once for every four of its tokens.

use super::config::LlamaConfig;
use super::projection::{load_matrix, Projection};
use super::rope::{rotate, LayerFrequencies};
use super::tensors::{lm_head_name, vector, LayerTensors, MatrixName};
use super::Weights;
use crate::gguf::GgufError;
use crate::matvec::{attend, softmax, QuantMatrix};

struct HostLayer {
    /// Norms and biases.
    vectors: LayerTensors,
    /// q, k and v side by side: `[q_dim + k_dim + v_dim]` outputs.
    qkv: Projection,
    output: QuantMatrix,
    /// gate and up side by side: `[2·ffn_dim]` outputs.
    gate_up: Projection,
    down: QuantMatrix,
}

/// The model's weights on the host.
pub(super) struct HostModel {
    embedding: QuantMatrix,
    lm_head: QuantMatrix,
    /// Layers `first_layer..` of the model (all of them unless the first ones run on a burn
    /// device: partial offload).
    layers: Vec<HostLayer>,
    first_layer: usize,
    output_norm: Vec<f32>,
    rope: LayerFrequencies,
}

/// Keys and values of one layer, `[positions][k_dim]` and `[positions][v_dim]`.
#[derive(Default, Clone)]
pub(super) struct HostKv {
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
}

/// One sequence's part of a batched step: its new tokens, at positions `start..`, and its cache.
pub(super) struct HostSequence<'a> {
    pub tokens: &'a [u32],
    pub start: usize,
    pub cache: &'a mut [HostKv],
}

/// `x / rms(x) · weight`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f64) -> Vec<f32> {
    let mut out = x.to_vec();
    rms_norm_in_place(&mut out, weight, eps);
    out
}

fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f64) {
    let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
    let scale = 1.0 / (mean_sq + eps as f32).sqrt();
    x.iter_mut().zip(weight).for_each(|(v, w)| *v *= scale * w);
}

/// `rms_norm` of each row of `[rows][weight.len()]`.
fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f64) -> Vec<f32> {
    x.chunks_exact(weight.len()).flat_map(|row| rms_norm(row, weight, eps)).collect()
}

/// Attention of one query over `n` positions whose keys and values have different widths
/// (`keys`: stride `k_stride`, `q.len()` wide; `values`: stride `v_stride`, `out.len()` wide).
#[allow(clippy::too_many_arguments)]
fn attend_unequal(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    k_stride: usize,
    v_stride: usize,
    n: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    for (j, s) in scores[..n].iter_mut().enumerate() {
        *s = q.iter().zip(&keys[j * k_stride..][..q.len()]).map(|(a, b)| a * b).sum::<f32>() * scale;
    }
    softmax(&mut scores[..n]);
    out.fill(0.0);
    let width = out.len();
    for (j, s) in scores[..n].iter().enumerate() {
        out.iter_mut().zip(&values[j * v_stride..][..width]).for_each(|(o, v)| *o += s * v);
    }
}

impl HostModel {
    pub(super) fn load(c: &LlamaConfig, w: &dyn Weights) -> Result<Self, GgufError> {
        Self::load_from_layer(c, w, 0)
    }

    /// Loads layers `first_layer..` (and the embedding, output norm and LM head).
    pub(super) fn load_from_layer(c: &LlamaConfig, w: &dyn Weights, first_layer: usize) -> Result<Self, GgufError> {
        let embedding = load_matrix(
            w,
            &MatrixName {
                name: "token_embd.weight".into(),
                rows: c.vocab,
                cols: c.dim,
            },
        )?;
        let lm_head = match lm_head_name(w) {
            "token_embd.weight" => embedding.clone(),
            name => load_matrix(
                w,
                &MatrixName {
                    name: name.into(),
                    rows: c.vocab,
                    cols: c.dim,
                },
            )?,
        }
        .prepared();
        let first_layer = first_layer.min(c.layers);
        let mut layers = Vec::with_capacity(c.layers - first_layer);
        for l in first_layer..c.layers {
            let vectors = LayerTensors::load(c, w, l)?;
            layers.push(HostLayer {
                qkv: Projection::load(w, &vectors.qkv)?,
                output: load_matrix(w, &vectors.output)?.prepared(),
                gate_up: Projection::load(w, &vectors.gate_up)?,
                down: load_matrix(w, &vectors.down)?.prepared(),
                vectors,
            });
        }
        Ok(Self {
            embedding,
            lm_head,
            layers,
            first_layer,
            output_norm: vector(w, "output_norm.weight", c.dim)?,
            rope: LayerFrequencies::load(c, w)?,
        })
    }

    /// f32 matrices become f16 (quantized ones stay as they are).
    pub(super) fn with_f16_weights(mut self) -> Self {
        self.layers = self
            .layers
            .into_iter()
            .map(|l| HostLayer {
                qkv: l.qkv.into_f16(),
                output: l.output.to_f16(),
                gate_up: l.gate_up.into_f16(),
                down: l.down.to_f16(),
                vectors: l.vectors,
            })
            .collect();
        self.lm_head = self.lm_head.to_f16();
        self
    }

    /// The embeddings of `tokens`, one row each (`[tokens.len()][dim]`, flattened), scaled.
    pub(super) fn embed(&self, c: &LlamaConfig, tokens: &[u32]) -> Vec<f32> {
        let dim = self.embedding.cols();
        let mut out = Vec::with_capacity(tokens.len() * dim);
        for t in tokens {
            let row = self.embedding.row(*t as usize);
            // An id outside the vocabulary embeds as zeros rather than panicking.
            out.extend(if row.len() == dim { row } else { vec![0.0; dim] });
        }
        if c.embedding_scale != 1.0 {
            out.iter_mut().for_each(|x| *x *= c.embedding_scale);
        }
        out
    }

    /// Logits of several final hidden states `[rows][dim]`, the LM head read once for all.
    fn logits_rows(&self, c: &LlamaConfig, x: &[f32]) -> Vec<Vec<f32>> {
        let h = rms_norm_rows(x, &self.output_norm, c.rms_eps);
        let vocab = self.lm_head.rows();
        let mut out = vec![0f32; h.len() / c.dim * vocab];
        self.lm_head.matmul(&h, &mut out);
        if let Some(cap) = c.final_softcap {
            out.iter_mut().for_each(|x| *x = cap * (*x / cap).tanh());
        }
        out.chunks_exact(vocab.max(1)).map(<[f32]>::to_vec).collect()
    }

    /// Layers this model holds.
    #[cfg_attr(not(feature = "burn"), allow(dead_code))]
    pub(super) fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Bytes of weight matrices one token reads.
    pub(super) fn weight_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.qkv.bytes() + l.output.bytes() + l.gate_up.bytes() + l.down.bytes())
            .sum::<usize>()
            + self.lm_head.bytes()
    }

    /// Runs `tokens` at positions `start..`, appends their keys and values to `cache`, and
    /// returns the logits of the last one.
    pub(super) fn forward(&self, c: &LlamaConfig, tokens: &[u32], start: usize, cache: &mut [HostKv]) -> Vec<f32> {
        let mut batch = [HostSequence { tokens, start, cache }];
        self.forward_batch(c, &mut batch).pop().unwrap_or_default()
    }

    /// Runs several sequences' new tokens in one pass: their rows go through each weight matrix
    /// together (a matrix is read once for the whole batch, not once per sequence), and only
    /// attention is per sequence, over its own cache. Returns the logits of each sequence's last
    /// token, in order; a sequence with no tokens gets no logits (an empty vector).
    pub(super) fn forward_batch(&self, c: &LlamaConfig, batch: &mut [HostSequence<'_>]) -> Vec<Vec<f32>> {
        let tokens: Vec<u32> = batch.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        self.forward_batch_hidden(c, self.embed(c, &tokens), batch)
    }

    /// `forward_batch` from the hidden states `x` (`[rows][dim]`, the sequences' rows one after
    /// the other) that enter this model's first layer, `first_layer` (partial offload: a burn
    /// device ran the layers before it); the sequences' tokens give only their row counts.
    pub(super) fn forward_batch_hidden(&self, c: &LlamaConfig, mut x: Vec<f32>, batch: &mut [HostSequence<'_>]) -> Vec<Vec<f32>> {
        let dim = c.dim;
        let (q_dim, k_dim, v_dim) = (c.q_dim(), c.k_dim(), c.v_dim());
        let qkv_dim = q_dim + k_dim + v_dim;
        let attn_dim = c.heads * c.value_dim;
        let activation = c.arch.activation();
        let n: usize = batch.iter().map(|s| s.tokens.len()).sum();
        if n == 0 || x.len() != n * dim {
            return vec![vec![]; batch.len()];
        }
        // cos/sin of each row's position, for the global layers and the local ones.
        let angles = |f: &super::rope::Frequencies| {
            let (mut cos, mut sin) = (Vec::new(), Vec::new());
            for s in batch.iter() {
                let (c, s) = f.angles(s.start, s.tokens.len());
                cos.extend(c);
                sin.extend(s);
            }
            (cos, sin)
        };
        let global = angles(&self.rope.global);
        let local = self.rope.local.as_ref().map(angles);
        // Activations are `[rows][width]`, the sequences' rows one after the other.
        let mut qkv = vec![0f32; n * qkv_dim];
        let mut attn = vec![0f32; n * attn_dim];
        let mut proj = vec![0f32; n * dim];
        let mut gate_up = vec![0f32; n * 2 * c.ffn_dim];
        let mut ff = vec![0f32; n * c.ffn_dim];
        for (l, layer) in self.layers.iter().enumerate() {
            let v = &layer.vectors;
            let (cos, sin) = match (&local, c.window(self.first_layer + l)) {
                (Some(local), Some(_)) => local,
                _ => &global,
            };
            let h = rms_norm_rows(&x, &v.attn_norm, c.rms_eps);
            layer.qkv.apply(&h, &mut qkv);
            let mut row = 0;
            for s in batch.iter_mut() {
                let rows = row..row + s.tokens.len();
                let kv = &mut s.cache[l];
                self.qkv_rows(c, l, &mut qkv[rows.start * qkv_dim..rows.end * qkv_dim], (cos, sin), rows.start, kv);
                self.attend_rows(
                    c,
                    l,
                    s.start,
                    &qkv[rows.start * qkv_dim..rows.end * qkv_dim],
                    kv,
                    &mut attn[rows.start * attn_dim..rows.end * attn_dim],
                );
                row = rows.end;
            }
            layer.output.matmul(&attn, &mut proj);
            if let Some(norm) = &v.post_attn_norm {
                proj = rms_norm_rows(&proj, norm, c.rms_eps);
            }
            x.iter_mut().zip(&proj).for_each(|(x, p)| *x += p);
            let h = rms_norm_rows(&x, &v.ffn_norm, c.rms_eps);
            layer.gate_up.apply(&h, &mut gate_up);
            for (row, out) in gate_up.chunks_exact(2 * c.ffn_dim).zip(ff.chunks_exact_mut(c.ffn_dim)) {
                let (gate, up) = row.split_at(c.ffn_dim);
                out.iter_mut()
                    .zip(gate.iter().zip(up))
                    .for_each(|(o, (g, u))| *o = activation.apply(*g) * u);
            }
            layer.down.matmul(&ff, &mut proj);
            if let Some(norm) = &v.post_ffn_norm {
                proj = rms_norm_rows(&proj, norm, c.rms_eps);
            }
            x.iter_mut().zip(&proj).for_each(|(x, p)| *x += p);
        }
        // The last row of each sequence, through the LM head together.
        let mut last = Vec::with_capacity(batch.len() * dim);
        let mut row = 0;
        for s in batch.iter() {
            row += s.tokens.len();
            if !s.tokens.is_empty() {
                last.extend_from_slice(&x[(row - 1) * dim..row * dim]);
            }
        }
        let mut logits = self.logits_rows(c, &last).into_iter();
        batch
            .iter()
            .map(|s| {
                if s.tokens.is_empty() {
                    vec![]
                } else {
                    logits.next().unwrap_or_default()
                }
            })
            .collect()
    }

    /// Finishes the q, k and v of a sequence's rows (biases, QK-norm, rotary embedding at the rows'
    /// positions; `cos`/`sin` are the batch's, `first_row` this sequence's first row in it) and
    /// appends the keys and values to the layer's cache.
    fn qkv_rows(&self, c: &LlamaConfig, l: usize, qkv: &mut [f32], (cos, sin): (&[f32], &[f32]), first_row: usize, kv: &mut HostKv) {
        let v = &self.layers[l].vectors;
        let (hd, half) = (c.head_dim, c.rope.dims / 2);
        let (q_dim, k_dim) = (c.q_dim(), c.k_dim());
        let qkv_dim = q_dim + k_dim + c.v_dim();
        for (t, row) in qkv.chunks_exact_mut(qkv_dim).enumerate() {
            if let Some(bias) = &v.qkv_bias {
                row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
            }
            let (q, rest) = row.split_at_mut(q_dim);
            let (k, values) = rest.split_at_mut(k_dim);
            if let (Some(qn), Some(kn)) = (&v.q_norm, &v.k_norm) {
                q.chunks_exact_mut(hd).for_each(|head| rms_norm_in_place(head, qn, c.rms_eps));
                k.chunks_exact_mut(hd).for_each(|head| rms_norm_in_place(head, kn, c.rms_eps));
            }
            let at = (first_row + t) * half;
            let (cos, sin) = (&cos[at..][..half], &sin[at..][..half]);
            rotate(c.rope.style, q, hd, cos, sin);
            rotate(c.rope.style, k, hd, cos, sin);
            kv.keys.extend_from_slice(k);
            kv.values.extend_from_slice(values);
        }
    }

    /// Attention of a sequence's rows (at positions `start..`) over its cache, which already holds
    /// their keys and values; `out` is `[rows][heads · value_dim]`.
    fn attend_rows(&self, c: &LlamaConfig, l: usize, start: usize, qkv: &[f32], kv: &HostKv, out: &mut [f32]) {
        let hd = c.head_dim;
        let (q_dim, k_dim, v_dim) = (c.q_dim(), c.k_dim(), c.v_dim());
        let qkv_dim = q_dim + k_dim + v_dim;
        let attn_dim = c.heads * c.value_dim;
        let group = c.heads / c.kv_heads;
        let window = c.window(self.first_layer + l);
        let rows = qkv.len() / qkv_dim;
        let mut scores = vec![0f32; start + rows];
        for (t, (row, out)) in qkv.chunks_exact(qkv_dim).zip(out.chunks_exact_mut(attn_dim)).enumerate() {
            // Token t sees the positions up to its own, the last `window` of them on a local layer.
            let seen = start + t + 1;
            let first = window.map_or(0, |w| seen.saturating_sub(w));
            for (head, out) in out.chunks_exact_mut(c.value_dim).enumerate() {
                // Each key/value head serves `group` consecutive query heads.
                let kv_head = head / group;
                let q = &row[head * hd..][..hd];
                let keys = &kv.keys[first * k_dim + kv_head * hd..];
                let values = &kv.values[first * v_dim + kv_head * c.value_dim..];
                if c.value_dim == hd {
                    attend(q, keys, values, k_dim, seen - first, c.attention_scale, &mut scores, out);
                } else {
                    attend_unequal(q, keys, values, k_dim, v_dim, seen - first, c.attention_scale, &mut scores, out);
                }
            }
        }
    }
}

//! The model on burn tensors: any burn device (the GPU backends, and the CPU as the reference the
//! host engine is tested against). Matrices are uploaded in the model's matrix precision (f32,
//! or f16 converted on the host), one tensor at a time (`load`); the KV cache is preallocated per
//! sequence and written in place, and attention reads each key/value head once (`attention`).
//!
//! A step runs several sequences at once (`forward_batch`): their tokens are the rows of one set
//! of matrix products per layer, only attention runs per sequence, and the logits of every
//! sequence's last token come back in one read. A model may hold only its first layers (`hidden`
//! hands the hidden states to the host engine for the rest: partial offload).

mod attention;
mod load;
mod rotary;

use burn::prelude::*;
use burn::tensor::DType;

use super::config::{Activation, LlamaConfig};
use super::rope::LayerFrequencies;
use super::tensors::{lm_head_name, vector, LayerTensors, MatrixName};
use super::Weights;
use crate::gguf::GgufError;
use crate::matvec::QuantMatrix;
use attention::{attend, AttentionSpan};
pub(super) use attention::{BurnKv, KvShape};
pub use load::UploadedBytes;
use load::{apply, Matrix, Uploader};
use rotary::{batch_angles, rotate};

struct Layer {
    attn_norm: Tensor<1>,
    /// q, k and v projections side by side: `[dim, q_dim + k_dim + v_dim]`, one matmul for all.
    wqkv: Matrix,
    /// `[1, q_dim + k_dim + v_dim]`.
    qkv_bias: Option<Tensor<2>>,
    /// `[head_dim]` each.
    q_norm: Option<Tensor<1>>,
    k_norm: Option<Tensor<1>>,
    wo: Matrix,
    post_attn_norm: Option<Tensor<1>>,
    ffn_norm: Tensor<1>,
    /// Gate and up projections side by side: `[dim, 2·ffn_dim]`.
    w_gate_up: Matrix,
    w_down: Matrix,
    post_ffn_norm: Option<Tensor<1>>,
}

/// The output norm and LM head (absent when the host engine computes the logits).
struct Head {
    output_norm: Tensor<1>,
    /// `[vocab][dim]` (the embedding's matrix when the model ties them).
    lm_head: Matrix,
}

pub(super) struct BurnModel {
    device: Device,
    /// Precision of the matrices and of the KV cache.
    matrices: DType,
    /// `[vocab][dim]` in the file's encoding, on the host: a step looks up its tokens' rows
    /// there and uploads them (a few kilobytes), so the embedding takes no device memory
    /// unless it is also the LM head.
    embedding: QuantMatrix,
    /// The model's first layers (all of them unless offloaded in part).
    layers: Vec<Layer>,
    head: Option<Head>,
    rope: LayerFrequencies,
    uploaded: UploadedBytes,
    /// Bytes of attention scores a block of queries may take (`attention::SCORE_BUDGET_BYTES`).
    score_budget: usize,
}

/// One sequence's part of a batched step: its new tokens, the position of the first, its cache.
pub(super) type BurnStep<'a, 'b> = (&'a [u32], usize, &'b mut BurnKv);

/// RMSNorm over the last dimension.
fn rms_norm<const D: usize>(x: Tensor<D>, weight: &Tensor<1>, eps: f64) -> Tensor<D> {
    let mean_sq = x.clone().powf_scalar(2.0).mean_dim(D - 1);
    let scale = mean_sq.add_scalar(eps).sqrt().recip();
    x * scale * weight.clone().unsqueeze::<D>()
}

/// GELU's tanh approximation.
fn gelu_tanh(x: Tensor<2>) -> Tensor<2> {
    let inner = (x.clone() + x.clone().powf_scalar(3.0).mul_scalar(0.044_715)).mul_scalar(0.797_884_6_f64);
    x.mul_scalar(0.5) * inner.tanh().add_scalar(1.0)
}

/// Per step: the rotary angles of all rows and each sequence's attention spans.
struct StepPlan {
    global: (Tensor<2>, Tensor<2>),
    local: Option<(Tensor<2>, Tensor<2>)>,
    /// Per sequence: first row, rows, first position; spans of global and local layers.
    sequences: Vec<(usize, usize, usize, AttentionSpan, Option<AttentionSpan>)>,
}

impl BurnModel {
    /// Loads the whole model with its projection and feed-forward matrices, embedding and LM
    /// head in `matrices` (f32 or f16); norms and biases stay f32.
    pub fn load(c: &LlamaConfig, w: &dyn Weights, device: &Device, matrices: DType) -> Result<Self, GgufError> {
        Self::load_layers(c, w, device, matrices, c.layers, true)
    }

    /// Loads the embedding, the first `layers` layers and, with `head`, the output norm and LM
    /// head.
    pub fn load_layers(
        c: &LlamaConfig,
        w: &dyn Weights,
        device: &Device,
        matrices: DType,
        layers: usize,
        head: bool,
    ) -> Result<Self, GgufError> {
        let mut up = Uploader {
            device,
            matrices,
            uploaded: UploadedBytes::default(),
            max_part_bytes: load::MAX_PART_BYTES,
        };
        let embedding_name = MatrixName {
            name: "token_embd.weight".into(),
            rows: c.vocab,
            cols: c.dim,
        };
        let embedding = w
            .matrix(&embedding_name.name)?
            .ok_or_else(|| GgufError::MissingTensor(embedding_name.name.clone()))?;
        embedding_name.check(embedding.rows(), embedding.cols())?;
        let head = if head {
            let lm_head = up.matrix(
                w,
                &MatrixName {
                    name: lm_head_name(w).into(),
                    rows: c.vocab,
                    cols: c.dim,
                },
            )?;
            Some(Head {
                output_norm: up.vector(vector(w, "output_norm.weight", c.dim)?),
                lm_head,
            })
        } else {
            None
        };
        let mut loaded = Vec::with_capacity(layers);
        for l in 0..layers.min(c.layers) {
            let t = LayerTensors::load(c, w, l)?;
            let mut optional = |v: Option<Vec<f32>>| v.map(|v| up.vector(v));
            let (qkv_bias, q_norm, k_norm) = (optional(t.qkv_bias), optional(t.q_norm), optional(t.k_norm));
            let (post_attn_norm, post_ffn_norm) = (optional(t.post_attn_norm), optional(t.post_ffn_norm));
            loaded.push(Layer {
                wqkv: up.matrices(w, &t.qkv)?,
                qkv_bias: qkv_bias.map(|b| b.unsqueeze::<2>()),
                q_norm,
                k_norm,
                wo: up.matrix(w, &t.output)?,
                post_attn_norm,
                w_gate_up: up.matrices(w, &t.gate_up)?,
                w_down: up.matrix(w, &t.down)?,
                post_ffn_norm,
                attn_norm: up.vector(t.attn_norm),
                ffn_norm: up.vector(t.ffn_norm),
            });
        }
        Ok(Self {
            device: device.clone(),
            matrices,
            embedding,
            layers: loaded,
            head,
            rope: LayerFrequencies::load(c, w)?,
            uploaded: up.uploaded,
            score_budget: attention::SCORE_BUDGET_BYTES,
        })
    }

    /// The same model with attention scores kept within `bytes` per block of queries (tests
    /// use a small budget to run long prompts in several blocks).
    #[cfg(test)]
    pub fn with_score_budget(mut self, bytes: usize) -> Self {
        self.score_budget = bytes;
        self
    }

    /// Bytes uploaded while loading, by element type.
    pub fn uploaded(&self) -> UploadedBytes {
        self.uploaded
    }

    /// Bytes of the weight matrices (what a token's step reads).
    pub fn weight_bytes(&self) -> usize {
        let head = self.head.as_ref().map_or(0, |h| h.lm_head.bytes());
        self.layers
            .iter()
            .map(|l| l.wqkv.bytes() + l.wo.bytes() + l.w_gate_up.bytes() + l.w_down.bytes())
            .sum::<usize>()
            + head
    }

    /// The shape of this model's KV cache (its layers, in the matrix precision).
    pub fn kv_shape(&self, c: &LlamaConfig) -> KvShape {
        KvShape::of(c, self.layers.len(), self.matrices)
    }

    /// A cache for `capacity` positions on this model's device.
    pub fn new_cache(&self, c: &LlamaConfig, capacity: usize) -> BurnKv {
        BurnKv::new(self.kv_shape(c), capacity, &self.device)
    }

    /// Runs `tokens` at positions `start..` and returns the logits of the last one.
    pub fn forward(&self, c: &LlamaConfig, tokens: &[u32], start: usize, cache: &mut BurnKv) -> Vec<f32> {
        self.forward_batch(c, &mut [(tokens, start, cache)]).pop().unwrap_or_default()
    }

    /// Runs each sequence's tokens at its positions, all as rows of the same matrix products,
    /// and returns the logits of each sequence's last token (empty for a sequence without
    /// tokens, and for all of them if this model has no LM head).
    pub fn forward_batch(&self, c: &LlamaConfig, steps: &mut [BurnStep<'_, '_>]) -> Vec<Vec<f32>> {
        let Some(head) = &self.head else {
            return vec![vec![]; steps.len()];
        };
        let Some((x, plan)) = self.hidden(c, steps) else {
            return vec![vec![]; steps.len()];
        };
        let last: Vec<i64> = plan.sequences.iter().map(|(row, t, ..)| (row + t - 1) as i64).collect();
        let n = last.len();
        let last = x.select(0, Tensor::<1, Int>::from_data(TensorData::new(last, [n]), &self.device));
        let h = rms_norm(last, &head.output_norm, c.rms_eps);
        let mut logits = apply(h, &head.lm_head);
        if let Some(cap) = c.final_softcap {
            logits = logits.div_scalar(cap as f64).tanh().mul_scalar(cap as f64);
        }
        let all = logits.into_data().try_to_vec::<f32>().unwrap_or_default();
        let mut rows = all.chunks_exact(c.vocab.max(1)).map(<[f32]>::to_vec);
        steps
            .iter()
            .map(|(tokens, ..)| {
                if tokens.is_empty() {
                    vec![]
                } else {
                    rows.next().unwrap_or_default()
                }
            })
            .collect()
    }

    /// The hidden states `[Σ tokens][dim]` after this model's layers (before the output norm),
    /// the sequences' rows one after the other, for the host engine to go on from; one read.
    pub fn hidden_states(&self, c: &LlamaConfig, steps: &mut [BurnStep<'_, '_>]) -> Vec<f32> {
        match self.hidden(c, steps) {
            Some((x, _)) => x.into_data().try_to_vec::<f32>().unwrap_or_default(),
            None => vec![],
        }
    }

    /// The embeddings of `ids` (zeros for ids outside the vocabulary, as on the host), scaled:
    /// looked up on the host, uploaded as `[ids.len(), dim]` f32.
    fn embed(&self, c: &LlamaConfig, ids: Vec<u32>) -> Tensor<2> {
        let mut rows = Vec::with_capacity(ids.len() * c.dim);
        for &id in &ids {
            let row = self.embedding.row(id as usize);
            if row.len() == c.dim {
                rows.extend(row);
            } else {
                rows.resize(rows.len() + c.dim, 0.0);
            }
        }
        let x = Tensor::<2>::from_data(TensorData::new(rows, [ids.len(), c.dim]), &self.device);
        if c.embedding_scale != 1.0 {
            x.mul_scalar(c.embedding_scale as f64)
        } else {
            x
        }
    }

    /// Runs the sequences with tokens through this model's layers: the hidden states of all
    /// their rows `[Σ tokens, dim]` and the step's plan; `None` if no sequence has tokens.
    fn hidden(&self, c: &LlamaConfig, steps: &mut [BurnStep<'_, '_>]) -> Option<(Tensor<2>, StepPlan)> {
        let shape = self.kv_shape(c);
        let active: Vec<usize> = (0..steps.len()).filter(|&s| !steps[s].0.is_empty()).collect();
        if active.is_empty() {
            return None;
        }
        let mut ids = Vec::new();
        let mut positions = Vec::with_capacity(active.len());
        let group = c.heads / c.kv_heads;
        let mut sequences = Vec::with_capacity(active.len());
        for &s in &active {
            let (tokens, start, cache) = &mut steps[s];
            cache.reserve(*start + tokens.len(), shape, &self.device);
            let t = tokens.len();
            sequences.push((
                ids.len(),
                t,
                *start,
                AttentionSpan::new(*start, t, None, (group, c.kv_heads), self.score_budget, &self.device),
                c.sliding_window
                    .as_ref()
                    .map(|w| AttentionSpan::new(*start, t, Some(w.window), (group, c.kv_heads), self.score_budget, &self.device)),
            ));
            positions.push((*start, t));
            ids.extend_from_slice(tokens);
        }
        let half = c.rope.dims / 2;
        let plan = StepPlan {
            global: batch_angles(&self.rope.global, half, &positions, &self.device),
            local: self.rope.local.as_ref().map(|f| batch_angles(f, half, &positions, &self.device)),
            sequences,
        };
        let mut x = self.embed(c, ids);
        for (l, layer) in self.layers.iter().enumerate() {
            x = self.layer(c, l, layer, x, &plan, &active, steps);
        }
        Some((x, plan))
    }

    /// One layer over all rows; attention per sequence.
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &self,
        c: &LlamaConfig,
        l: usize,
        layer: &Layer,
        x: Tensor<2>,
        plan: &StepPlan,
        active: &[usize],
        steps: &mut [BurnStep<'_, '_>],
    ) -> Tensor<2> {
        let rows = x.dims()[0];
        let (hd, vd) = (c.head_dim, c.value_dim);
        let (q_dim, k_dim, v_dim) = (c.q_dim(), c.k_dim(), c.v_dim());
        let window = c.window(l);
        let (cos, sin) = match (&plan.local, window) {
            (Some(local), Some(_)) => local,
            _ => &plan.global,
        };
        let h = rms_norm(x.clone(), &layer.attn_norm, c.rms_eps);
        let mut qkv = apply(h, &layer.wqkv);
        if let Some(bias) = &layer.qkv_bias {
            qkv = qkv + bias.clone();
        }
        let mut q = qkv.clone().narrow(1, 0, q_dim).reshape([rows, c.heads, hd]);
        let mut k = qkv.clone().narrow(1, q_dim, k_dim).reshape([rows, c.kv_heads, hd]);
        let v = qkv.narrow(1, q_dim + k_dim, v_dim).reshape([rows, c.kv_heads, vd]);
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            q = rms_norm(q, qn, c.rms_eps);
            k = rms_norm(k, kn, c.rms_eps);
        }
        let q = rotate(c, q, cos, sin);
        let k = rotate(c, k, cos, sin);
        let mut outputs = Vec::with_capacity(active.len());
        for (&s, (row, t, start, global, local)) in active.iter().zip(&plan.sequences) {
            let span = match (local, window) {
                (Some(local), Some(_)) => local,
                _ => global,
            };
            let part = |x: &Tensor<3>| x.clone().narrow(0, *row, *t);
            outputs.push(attend(c, &mut *steps[s].2, l, *start, part(&q), part(&k), part(&v), span));
        }
        let attn = if outputs.len() == 1 {
            outputs.pop().unwrap_or_else(|| Tensor::zeros([rows, c.heads * vd], &self.device))
        } else {
            Tensor::cat(outputs, 0)
        };
        let mut out = apply(attn, &layer.wo);
        if let Some(norm) = &layer.post_attn_norm {
            out = rms_norm(out, norm, c.rms_eps);
        }
        let x = x + out;
        let h = rms_norm(x.clone(), &layer.ffn_norm, c.rms_eps);
        let gate_up = apply(h, &layer.w_gate_up);
        let gate = gate_up.clone().narrow(1, 0, c.ffn_dim);
        let gate = match c.arch.activation() {
            Activation::Silu => burn::tensor::activation::silu(gate),
            Activation::GeluTanh => gelu_tanh(gate),
        };
        let mut out = apply(gate * gate_up.narrow(1, c.ffn_dim, c.ffn_dim), &layer.w_down);
        if let Some(norm) = &layer.post_ffn_norm {
            out = rms_norm(out, norm, c.rms_eps);
        }
        x + out
    }
}

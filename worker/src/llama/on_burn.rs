//! The model on burn tensors: any burn device (the GPU backends, and the CPU as the reference the
//! host engine is tested against). Weights are dequantized to f32 at load, one tensor at a time;
//! `forward` is pure given the cache.

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::DType;

use super::config::{Activation, LlamaConfig, Rotary};
use super::rope::LayerFrequencies;
use super::tensors::{lm_head_name, vector, LayerTensors, MatrixName};
use super::{required, Weights};
use crate::gguf::GgufError;

struct Layer {
    attn_norm: Tensor<1>,
    /// q, k and v projections side by side: `[dim, q_dim + k_dim + v_dim]`, one matmul for all.
    wqkv: Tensor<2>,
    /// `[1, q_dim + k_dim + v_dim]`.
    qkv_bias: Option<Tensor<2>>,
    /// `[head_dim]` each.
    q_norm: Option<Tensor<1>>,
    k_norm: Option<Tensor<1>>,
    wo: Tensor<2>,
    post_attn_norm: Option<Tensor<1>>,
    ffn_norm: Tensor<1>,
    /// Gate and up projections side by side: `[dim, 2·ffn_dim]`.
    w_gate_up: Tensor<2>,
    w_down: Tensor<2>,
    post_ffn_norm: Option<Tensor<1>>,
}

pub(super) struct BurnModel {
    device: Device,
    /// `[vocab, dim]`.
    embedding: Tensor<2>,
    /// `[dim, vocab]`.
    lm_head: Tensor<2>,
    layers: Vec<Layer>,
    output_norm: Tensor<1>,
    rope: LayerFrequencies,
}

/// Keys `[positions, kv_heads, head_dim]` and values `[positions, kv_heads, value_dim]` per layer.
pub(super) struct BurnKv(Vec<Option<(Tensor<3>, Tensor<3>)>>);

impl BurnKv {
    pub fn new(layers: usize) -> Self {
        Self((0..layers).map(|_| None).collect())
    }
}

fn tensor1(data: Vec<f32>, device: &Device) -> Tensor<1> {
    let n = data.len();
    Tensor::from_data(TensorData::new(data, [n]), device)
}

/// A matrix stored `[out][in]` as `[in, out]`, so `x.matmul(w)` applies it, in `dtype`: the
/// tensor's values are decoded on the host and converted before they reach the device, one tensor
/// at a time, so the device never holds an f32 copy of an f16 model.
fn linear(w: &dyn Weights, m: &MatrixName, device: &Device, dtype: DType) -> Result<Tensor<2>, GgufError> {
    let (data, shape) = required(w, &m.name)?;
    m.check_shape(&shape)?;
    let data = TensorData::new(data, [m.rows, m.cols]);
    let data = if dtype == DType::F32 { data } else { data.convert_dtype(dtype) };
    Ok(Tensor::<2>::from_data(data, (device, dtype)).transpose())
}

/// Several matrices side by side (`[in, Σ out]`).
fn linears(w: &dyn Weights, parts: &[MatrixName], device: &Device, dtype: DType) -> Result<Tensor<2>, GgufError> {
    let parts = parts.iter().map(|m| linear(w, m, device, dtype)).collect::<Result<Vec<_>, _>>()?;
    Ok(Tensor::cat(parts, 1))
}

/// `x · w` in the weight's precision, result in f32.
fn apply(x: Tensor<2>, w: &Tensor<2>) -> Tensor<2> {
    let dtype = w.dtype();
    if dtype == burn::tensor::DType::F32 {
        x.matmul(w.clone())
    } else {
        x.cast(dtype).matmul(w.clone()).cast(burn::tensor::DType::F32)
    }
}

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

impl BurnModel {
    /// Loads the model with its projection and feed-forward matrices and LM head in `matrices`
    /// (f32 or f16); embeddings, norms and biases stay f32.
    pub fn load(c: &LlamaConfig, w: &dyn Weights, device: &Device, matrices: DType) -> Result<Self, GgufError> {
        let (emb, shape) = required(w, "token_embd.weight")?;
        MatrixName {
            name: "token_embd.weight".into(),
            rows: c.vocab,
            cols: c.dim,
        }
        .check_shape(&shape)?;
        // Looked up by rows: `[vocab, dim]`.
        let embedding = Tensor::<2>::from_data(TensorData::new(emb, [c.vocab, c.dim]), device);
        let lm_head = match lm_head_name(w) {
            "token_embd.weight" if matrices == DType::F32 => embedding.clone().transpose(),
            "token_embd.weight" => embedding.clone().transpose().cast(matrices),
            name => linear(
                w,
                &MatrixName {
                    name: name.into(),
                    rows: c.vocab,
                    cols: c.dim,
                },
                device,
                matrices,
            )?,
        };
        let mut layers = Vec::with_capacity(c.layers);
        for l in 0..c.layers {
            let t = LayerTensors::load(c, w, l)?;
            let optional = |v: Option<Vec<f32>>| v.map(|v| tensor1(v, device));
            layers.push(Layer {
                wqkv: linears(w, &t.qkv, device, matrices)?,
                qkv_bias: optional(t.qkv_bias).map(|b| b.unsqueeze::<2>()),
                q_norm: optional(t.q_norm),
                k_norm: optional(t.k_norm),
                wo: linear(w, &t.output, device, matrices)?,
                post_attn_norm: optional(t.post_attn_norm),
                w_gate_up: linears(w, &t.gate_up, device, matrices)?,
                w_down: linear(w, &t.down, device, matrices)?,
                post_ffn_norm: optional(t.post_ffn_norm),
                attn_norm: tensor1(t.attn_norm, device),
                ffn_norm: tensor1(t.ffn_norm, device),
            });
        }
        Ok(Self {
            device: device.clone(),
            embedding,
            lm_head,
            layers,
            output_norm: tensor1(vector(w, "output_norm.weight", c.dim)?, device),
            rope: LayerFrequencies::load(c, w)?,
        })
    }

    /// The projection and feed-forward matrices and the LM head in f16.
    pub fn with_f16_weights(mut self) -> Self {
        let half = |t: Tensor<2>| t.cast(burn::tensor::DType::F16);
        for l in &mut self.layers {
            for w in [&mut l.wqkv, &mut l.wo, &mut l.w_gate_up, &mut l.w_down] {
                *w = half(w.clone());
            }
        }
        self.lm_head = half(self.lm_head);
        self
    }

    /// Bytes of the weight matrices (what a token's step reads).
    pub fn weight_bytes(&self) -> usize {
        let bytes = |t: &Tensor<2>| t.shape().num_elements() * t.dtype().size();
        self.layers
            .iter()
            .map(|l| bytes(&l.wqkv) + bytes(&l.wo) + bytes(&l.w_gate_up) + bytes(&l.w_down))
            .sum::<usize>()
            + bytes(&self.lm_head)
    }

    /// Rotates `[T, heads, head_dim]` by the angles of its positions (`cos`, `sin`: `[T, dims/2]`).
    fn rope(&self, c: &LlamaConfig, x: Tensor<3>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<3> {
        let [t, h, hd] = x.dims();
        let (dims, half) = (c.rope.dims, c.rope.dims / 2);
        let rotated = x.clone().narrow(2, 0, dims);
        let rotated = match c.rope.style {
            Rotary::Interleaved => {
                let (cos, sin) = (cos.clone().reshape([t, 1, half, 1]), sin.clone().reshape([t, 1, half, 1]));
                let pairs = rotated.reshape([t, h, half, 2]);
                let x0 = pairs.clone().narrow(3, 0, 1);
                let x1 = pairs.narrow(3, 1, 1);
                let r0 = x0.clone() * cos.clone() - x1.clone() * sin.clone();
                let r1 = x0 * sin + x1 * cos;
                Tensor::cat(vec![r0, r1], 3).reshape([t, h, dims])
            }
            Rotary::RotateHalf => {
                let (cos, sin) = (cos.clone().reshape([t, 1, half]), sin.clone().reshape([t, 1, half]));
                let x0 = rotated.clone().narrow(2, 0, half);
                let x1 = rotated.narrow(2, half, half);
                let r0 = x0.clone() * cos.clone() - x1.clone() * sin.clone();
                let r1 = x0 * sin + x1 * cos;
                Tensor::cat(vec![r0, r1], 2)
            }
        };
        if dims == hd {
            rotated
        } else {
            Tensor::cat(vec![rotated, x.narrow(2, dims, hd - dims)], 2)
        }
    }

    /// cos and sin of positions `start..start + t` as `[t, dims / 2]` tensors.
    fn angles(&self, c: &LlamaConfig, local: bool, start: usize, t: usize) -> (Tensor<2>, Tensor<2>) {
        let f = match (&self.rope.local, local) {
            (Some(f), true) => f,
            _ => &self.rope.global,
        };
        let (cos, sin) = f.angles(start, t);
        let half = c.rope.dims / 2;
        (
            Tensor::from_data(TensorData::new(cos, [t, half]), &self.device),
            Tensor::from_data(TensorData::new(sin, [t, half]), &self.device),
        )
    }

    /// The additive mask `[1, t, start + t]` of queries at `start..` seeing keys up to their own
    /// position and, with a window, only the last `window` of them; `None` when it hides nothing.
    fn mask(&self, start: usize, t: usize, window: Option<usize>) -> Option<Tensor<3>> {
        let total = start + t;
        let hidden = |i: usize, j: usize| j > start + i || window.is_some_and(|w| start + i - j.min(start + i) >= w);
        let m: Vec<f32> = (0..t)
            .flat_map(|i| (0..total).map(move |j| if hidden(i, j) { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        m.contains(&f32::NEG_INFINITY)
            .then(|| Tensor::<3>::from_data(TensorData::new(m, [1, t, total]), &self.device))
    }

    /// Runs `tokens` at positions `start..` and returns the logits of the last one.
    pub fn forward(&self, c: &LlamaConfig, tokens: &[u32], start: usize, cache: &mut BurnKv) -> Vec<f32> {
        let t = tokens.len();
        let (hd, vd, group) = (c.head_dim, c.value_dim, c.heads / c.kv_heads);
        let (q_dim, k_dim, v_dim) = (c.q_dim(), c.k_dim(), c.v_dim());
        let ids = Tensor::<1, Int>::from_data(
            TensorData::new(tokens.iter().map(|v| *v as i64).collect::<Vec<_>>(), [t]),
            &self.device,
        );
        let mut x = self.embedding.clone().select(0, ids);
        if c.embedding_scale != 1.0 {
            x = x.mul_scalar(c.embedding_scale as f64);
        }
        let total = start + t;
        let global = (self.angles(c, false, start, t), self.mask(start, t, None));
        let local = c
            .sliding_window
            .as_ref()
            .map(|s| (self.angles(c, true, start, t), self.mask(start, t, Some(s.window))));
        for (l, (layer, slot)) in self.layers.iter().zip(cache.0.iter_mut()).enumerate() {
            let ((cos, sin), mask) = match (&local, c.window(l)) {
                (Some(local), Some(_)) => local,
                _ => &global,
            };
            let h = rms_norm(x.clone(), &layer.attn_norm, c.rms_eps);
            let mut qkv = apply(h, &layer.wqkv);
            if let Some(bias) = &layer.qkv_bias {
                qkv = qkv + bias.clone();
            }
            let mut q = qkv.clone().narrow(1, 0, q_dim).reshape([t, c.heads, hd]);
            let mut k = qkv.clone().narrow(1, q_dim, k_dim).reshape([t, c.kv_heads, hd]);
            let v = qkv.narrow(1, q_dim + k_dim, v_dim).reshape([t, c.kv_heads, vd]);
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                q = rms_norm(q, qn, c.rms_eps);
                k = rms_norm(k, kn, c.rms_eps);
            }
            let q = self.rope(c, q, cos, sin);
            let k = self.rope(c, k, cos, sin);
            let (k_all, v_all) = match slot.take() {
                Some((pk, pv)) => (Tensor::cat(vec![pk, k], 0), Tensor::cat(vec![pv, v], 0)),
                None => (k, v),
            };
            *slot = Some((k_all.clone(), v_all.clone()));
            // Each key/value head serves `group` consecutive query heads.
            let expand = |kv: Tensor<3>, width: usize| {
                kv.reshape([total, c.kv_heads, 1, width])
                    .repeat_dim(2, group)
                    .reshape([total, c.heads, width])
                    .swap_dims(0, 1)
            };
            let keys = expand(k_all, hd); // [heads, total, hd]
            let values = expand(v_all, vd);
            let scores = q.swap_dims(0, 1).matmul(keys.swap_dims(1, 2)).mul_scalar(c.attention_scale as f64); // [heads, t, total]
            let scores = match mask {
                Some(m) => scores + m.clone(),
                None => scores,
            };
            let attn = softmax(scores, 2).matmul(values); // [heads, t, vd]
            let attn = attn.swap_dims(0, 1).reshape([t, c.heads * vd]);
            let mut out = apply(attn, &layer.wo);
            if let Some(norm) = &layer.post_attn_norm {
                out = rms_norm(out, norm, c.rms_eps);
            }
            x = x + out;
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
            x = x + out;
        }
        let last = rms_norm(x.narrow(0, t - 1, 1), &self.output_norm, c.rms_eps);
        let mut logits = apply(last, &self.lm_head);
        if let Some(cap) = c.final_softcap {
            logits = logits.div_scalar(cap as f64).tanh().mul_scalar(cap as f64);
        }
        logits.into_data().try_to_vec::<f32>().unwrap_or_default()
    }
}

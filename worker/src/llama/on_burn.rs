//! The model on burn tensors: any burn device (the GPU backends, and the CPU as the reference the
//! host engine is tested against). Weights are dequantized to f32 at load; `forward` is pure
//! given the cache.

use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};

use super::{host::rope_tables, required, LlamaConfig, Weights};
use crate::gguf::GgufError;

struct Layer {
    attn_norm: Tensor<1>,
    /// q, k and v projections side by side: `[dim, dim + 2·kv_dim]`, one matmul for all three.
    wqkv: Tensor<2>,
    wo: Tensor<2>,
    ffn_norm: Tensor<1>,
    /// SwiGLU gate and up projections side by side: `[dim, 2·ffn_dim]`.
    w_gate_up: Tensor<2>,
    w_down: Tensor<2>,
}

pub(super) struct BurnModel {
    device: Device,
    /// `[vocab, dim]`.
    embedding: Tensor<2>,
    /// `[dim, vocab]`.
    lm_head: Tensor<2>,
    layers: Vec<Layer>,
    output_norm: Tensor<1>,
    /// `[context, head_dim / 2]` each.
    cos: Tensor<2>,
    sin: Tensor<2>,
}

/// Keys and values per layer, `[positions, kv_heads, head_dim]`.
pub(super) struct BurnKv(Vec<Option<(Tensor<3>, Tensor<3>)>>);

impl BurnKv {
    pub fn new(layers: usize) -> Self {
        Self((0..layers).map(|_| None).collect())
    }
}

fn tensor1(w: &dyn Weights, name: &str, device: &Device) -> Result<Tensor<1>, GgufError> {
    let (data, shape) = required(w, name)?;
    let n = shape.iter().product::<usize>();
    Ok(Tensor::from_data(TensorData::new(data, [n]), device))
}

/// A matrix stored `[out][in]` as `[in, out]`, so `x.matmul(w)` applies it.
fn linear(w: &dyn Weights, name: &str, device: &Device) -> Result<Tensor<2>, GgufError> {
    let (data, shape) = required(w, name)?;
    let [rows, cols] = shape[..] else {
        return Err(GgufError::Invalid(format!("{name} is not a matrix")));
    };
    Ok(Tensor::<2>::from_data(TensorData::new(data, [rows, cols]), device).transpose())
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

impl BurnModel {
    pub fn load(config: &LlamaConfig, w: &dyn Weights, device: &Device) -> Result<Self, GgufError> {
        let (emb, shape) = required(w, "token_embd.weight")?;
        if shape != [config.vocab, config.dim] {
            return Err(GgufError::Invalid(format!(
                "token_embd.weight has shape {shape:?}, expected [{}, {}]",
                config.vocab, config.dim
            )));
        }
        let embedding = Tensor::<2>::from_data(TensorData::new(emb, [shape[0], shape[1]]), device);
        let lm_head = match w.tensor("output.weight")? {
            Some((data, shape)) if shape.len() == 2 => {
                Tensor::<2>::from_data(TensorData::new(data, [shape[0], shape[1]]), device).transpose()
            }
            _ => embedding.clone().transpose(),
        };
        let mut layers = Vec::with_capacity(config.layers);
        for l in 0..config.layers {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            let (wq, wk, wv) = (
                linear(w, &p("attn_q"), device)?,
                linear(w, &p("attn_k"), device)?,
                linear(w, &p("attn_v"), device)?,
            );
            let (gate, up) = (linear(w, &p("ffn_gate"), device)?, linear(w, &p("ffn_up"), device)?);
            let kv_dim = config.kv_heads * config.head_dim();
            if wq.dims() != [config.dim, config.dim] || wk.dims() != [config.dim, kv_dim] || wv.dims() != [config.dim, kv_dim] {
                return Err(GgufError::Invalid(format!(
                    "layer {l}: attention projections do not match the config"
                )));
            }
            layers.push(Layer {
                attn_norm: tensor1(w, &p("attn_norm"), device)?,
                wqkv: Tensor::cat(vec![wq, wk, wv], 1),
                wo: linear(w, &p("attn_output"), device)?,
                ffn_norm: tensor1(w, &p("ffn_norm"), device)?,
                w_gate_up: Tensor::cat(vec![gate, up], 1),
                w_down: linear(w, &p("ffn_down"), device)?,
            });
        }
        let (cos, sin) = rope_tables(config);
        let half = config.head_dim() / 2;
        Ok(Self {
            device: device.clone(),
            embedding,
            lm_head,
            layers,
            output_norm: tensor1(w, "output_norm.weight", device)?,
            cos: Tensor::from_data(TensorData::new(cos, [config.context, half]), device),
            sin: Tensor::from_data(TensorData::new(sin, [config.context, half]), device),
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

    fn rms_norm(&self, c: &LlamaConfig, x: Tensor<2>, weight: &Tensor<1>) -> Tensor<2> {
        let mean_sq = x.clone().powf_scalar(2.0).mean_dim(1);
        let scale = mean_sq.add_scalar(c.rms_eps).sqrt().recip();
        x * scale * weight.clone().unsqueeze_dim::<2>(0)
    }

    /// Rotates `[T, heads, head_dim]` by positions `start..start+T` (pairs `2i, 2i+1`).
    fn rope(&self, x: Tensor<3>, start: usize) -> Tensor<3> {
        let [t, h, hd] = x.dims();
        let half = hd / 2;
        let cos = self.cos.clone().narrow(0, start, t).reshape([t, 1, half, 1]);
        let sin = self.sin.clone().narrow(0, start, t).reshape([t, 1, half, 1]);
        let pairs = x.reshape([t, h, half, 2]);
        let x0 = pairs.clone().narrow(3, 0, 1);
        let x1 = pairs.narrow(3, 1, 1);
        let r0 = x0.clone() * cos.clone() - x1.clone() * sin.clone();
        let r1 = x0 * sin + x1 * cos;
        Tensor::cat(vec![r0, r1], 3).reshape([t, h, hd])
    }

    /// Runs `tokens` at positions `start..` and returns the logits of the last one.
    pub fn forward(&self, c: &LlamaConfig, tokens: &[u32], start: usize, cache: &mut BurnKv) -> Vec<f32> {
        let t = tokens.len();
        let (hd, group) = (c.head_dim(), c.heads / c.kv_heads);
        let ids = Tensor::<1, Int>::from_data(
            TensorData::new(tokens.iter().map(|v| *v as i64).collect::<Vec<_>>(), [t]),
            &self.device,
        );
        let mut x = self.embedding.clone().select(0, ids);
        let total = start + t;
        // Causal mask: position i (absolute start+i) sees keys 0..=start+i.
        // A single new token sees every key, so it needs no mask.
        let mask = (t > 1).then(|| {
            let m: Vec<f32> = (0..t)
                .flat_map(|i| (0..total).map(move |j| if j > start + i { f32::NEG_INFINITY } else { 0.0 }))
                .collect();
            Tensor::<3>::from_data(TensorData::new(m, [1, t, total]), &self.device)
        });
        let scale = 1.0 / (hd as f64).sqrt();
        for (layer, slot) in self.layers.iter().zip(cache.0.iter_mut()) {
            let h = self.rms_norm(c, x.clone(), &layer.attn_norm);
            let qkv = apply(h, &layer.wqkv);
            let kv_dim = c.kv_heads * hd;
            let q = self.rope(qkv.clone().narrow(1, 0, c.dim).reshape([t, c.heads, hd]), start);
            let k = self.rope(qkv.clone().narrow(1, c.dim, kv_dim).reshape([t, c.kv_heads, hd]), start);
            let v = qkv.narrow(1, c.dim + kv_dim, kv_dim).reshape([t, c.kv_heads, hd]);
            let (k_all, v_all) = match slot.take() {
                Some((pk, pv)) => (Tensor::cat(vec![pk, k], 0), Tensor::cat(vec![pv, v], 0)),
                None => (k, v),
            };
            *slot = Some((k_all.clone(), v_all.clone()));
            // Each key/value head serves `group` consecutive query heads.
            let expand = |kv: Tensor<3>| {
                kv.reshape([total, c.kv_heads, 1, hd])
                    .repeat_dim(2, group)
                    .reshape([total, c.heads, hd])
                    .swap_dims(0, 1)
            };
            let keys = expand(k_all); // [heads, total, hd]
            let values = expand(v_all);
            let scores = q.swap_dims(0, 1).matmul(keys.swap_dims(1, 2)).mul_scalar(scale); // [heads, t, total]
            let scores = match &mask {
                Some(m) => scores + m.clone(),
                None => scores,
            };
            let attn = softmax(scores, 2).matmul(values); // [heads, t, hd]
            let attn = attn.swap_dims(0, 1).reshape([t, c.dim]);
            x = x + apply(attn, &layer.wo);
            let h = self.rms_norm(c, x.clone(), &layer.ffn_norm);
            let gate_up = apply(h, &layer.w_gate_up);
            let ff = silu(gate_up.clone().narrow(1, 0, c.ffn_dim)) * gate_up.narrow(1, c.ffn_dim, c.ffn_dim);
            x = x + apply(ff, &layer.w_down);
        }
        let last = self.rms_norm(c, x.narrow(0, t - 1, 1), &self.output_norm);
        apply(last, &self.lm_head).into_data().try_to_vec::<f32>().unwrap_or_default()
    }
}

//! A Llama-family decoder on burn: RMSNorm, rotary embeddings (interleaved pairs, as GGUF stores
//! q/k), grouped-query attention with a KV cache, SwiGLU feed-forward, tied or separate LM head.
//!
//! `LlamaConfig` comes from GGUF metadata; `Llama::from_gguf` maps GGUF tensor names
//! (`blk.N.attn_q.weight`, …) onto the model, dequantizing to f32 once at load. `forward` is pure
//! given the cache.
//!
//! On the CPU the model also keeps its weights in the file's encoding (`host`): single-token
//! decode steps, the embedding and the LM head run there, reading 0.625 bytes per weight of a
//! Q4_1 file instead of 4; prompts (several tokens at once) go through burn. On a GPU everything
//! runs on burn.

mod host;

use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};

use crate::gguf::{Gguf, GgufError};
use crate::matvec::QuantMatrix;
use host::{HostKv, HostModel};

/// Shape of a Llama model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub layers: usize,
    pub dim: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn_dim: usize,
    pub vocab: usize,
    pub rms_eps: f64,
    pub rope_base: f64,
    pub context: usize,
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Reads `llama.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Self, GgufError> {
        let arch = g.get_str("general.architecture")?;
        if arch != "llama" {
            return Err(GgufError::Invalid(format!("architecture '{arch}' is not llama")));
        }
        let u = |k: &str| {
            g.get_i64(k)
                .and_then(|v| usize::try_from(v).map_err(|_| GgufError::MissingKey(k.into())))
        };
        let cfg = Self {
            layers: u("llama.block_count")?,
            dim: u("llama.embedding_length")?,
            heads: u("llama.attention.head_count")?,
            kv_heads: u("llama.attention.head_count_kv").or_else(|_| u("llama.attention.head_count"))?,
            ffn_dim: u("llama.feed_forward_length")?,
            vocab: g
                .tensor_info("token_embd.weight")
                .map(|t| t.shape()[0])
                .ok_or_else(|| GgufError::MissingTensor("token_embd.weight".into()))?,
            rms_eps: g.get_f64("llama.attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_base: g.get_f64("llama.rope.freq_base").unwrap_or(10_000.0),
            context: u("llama.context_length").unwrap_or(2048),
        };
        if cfg.heads == 0
            || cfg.kv_heads == 0
            || !cfg.dim.is_multiple_of(cfg.heads)
            || !cfg.heads.is_multiple_of(cfg.kv_heads)
            || !cfg.head_dim().is_multiple_of(2)
        {
            return Err(GgufError::Invalid(format!("inconsistent llama shape {cfg:?}")));
        }
        Ok(cfg)
    }
}

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

/// Keys and values of the positions seen so far, per layer: `[positions, kv_heads, head_dim]`.
pub struct KvCache {
    store: KvStore,
    len: usize,
}

enum KvStore {
    /// On the device, as burn tensors (GPU).
    Device(Vec<Option<(Tensor<3>, Tensor<3>)>>),
    /// In host vectors, where the CPU decode step reads them (prompts add to them through burn).
    Host(Vec<HostKv>),
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The model.
pub struct Llama {
    pub config: LlamaConfig,
    device: Device,
    layers: Vec<Layer>,
    ends: Ends,
    /// `[context, head_dim / 2]` each.
    cos: Tensor<2>,
    sin: Tensor<2>,
}

/// Where tokens come in and logits go out.
enum Ends {
    /// On the device.
    Device(Box<DeviceEnds>),
    /// On the host (CPU), which also runs single-token steps.
    Host(HostModel),
}

struct DeviceEnds {
    /// `[vocab, dim]`.
    embedding: Tensor<2>,
    /// `[dim, vocab]`.
    lm_head: Tensor<2>,
    output_norm: Tensor<1>,
}

/// A tensor in host memory: row-major f32 elements and the shape.
pub type HostTensor = (Vec<f32>, Vec<usize>);

/// Where a model's tensors come from: named and laid out as in GGUF (`blk.N.attn_q.weight`,
/// matrices `[out][in]`, q/k rows in interleaved rotary order), as f32.
pub trait Weights {
    /// The tensor's elements (row-major) and shape, or `None` if the model has no such tensor.
    fn tensor(&self, name: &str) -> Result<Option<HostTensor>, GgufError>;

    /// A matrix in its stored encoding (quantized files keep their blocks); by default the f32
    /// values of `tensor`.
    fn matrix(&self, name: &str) -> Result<Option<QuantMatrix>, GgufError> {
        match self.tensor(name)? {
            Some((data, shape)) => match shape[..] {
                [rows, cols] => QuantMatrix::from_f32(&data, rows, cols).map(Some),
                _ => Err(GgufError::Invalid(format!("{name} is not a matrix"))),
            },
            None => Ok(None),
        }
    }
}

impl Weights for Gguf {
    fn tensor(&self, name: &str) -> Result<Option<HostTensor>, GgufError> {
        if self.tensor_info(name).is_none() {
            return Ok(None);
        }
        self.dequantize(name).map(Some)
    }

    fn matrix(&self, name: &str) -> Result<Option<QuantMatrix>, GgufError> {
        if self.tensor_info(name).is_none() {
            return Ok(None);
        }
        let (info, raw) = self.encoded(name)?;
        match info.shape()[..] {
            // Rows that are not whole blocks (not written by llama.cpp) are read as f32.
            [rows, cols] if cols.is_multiple_of(info.kind.block().0) => QuantMatrix::new(info.kind, rows, cols, raw.to_vec()).map(Some),
            [rows, cols] => QuantMatrix::from_f32(&self.dequantize(name)?.0, rows, cols).map(Some),
            _ => Err(GgufError::Invalid(format!("{name} is not a matrix"))),
        }
    }
}

fn required(w: &dyn Weights, name: &str) -> Result<HostTensor, GgufError> {
    w.tensor(name)?.ok_or_else(|| GgufError::MissingTensor(name.to_string()))
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

impl Llama {
    /// Loads a GGUF model onto `device`.
    pub fn from_gguf(g: &Gguf, device: &Device) -> Result<Self, GgufError> {
        Self::load(LlamaConfig::from_gguf(g)?, g, device)
    }

    /// Builds the model from any weight source; on the CPU with the host-side decode step.
    pub fn load(config: LlamaConfig, w: &dyn Weights, device: &Device) -> Result<Self, GgufError> {
        Self::build(config, w, device, *device == Device::flex())
    }

    /// Builds the model to run everything on burn, on the CPU too (tests and benchmarks compare
    /// the two paths).
    pub fn load_burn_only(config: LlamaConfig, w: &dyn Weights, device: &Device) -> Result<Self, GgufError> {
        Self::build(config, w, device, false)
    }

    fn build(config: LlamaConfig, w: &dyn Weights, device: &Device, host: bool) -> Result<Self, GgufError> {
        let ends = if host {
            Ends::Host(HostModel::load(&config, w)?)
        } else {
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
            Ends::Device(Box::new(DeviceEnds {
                embedding,
                lm_head,
                output_norm: tensor1(w, "output_norm.weight", device)?,
            }))
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
        let (cos, sin) = host::rope_tables(&config);
        let half = config.head_dim() / 2;
        Ok(Self {
            cos: Tensor::from_data(TensorData::new(cos, [config.context, half]), device),
            sin: Tensor::from_data(TensorData::new(sin, [config.context, half]), device),
            config,
            device: device.clone(),
            layers,
            ends,
        })
    }

    /// Keeps the projection and feed-forward matrices (and the LM head) in f16: half the memory
    /// and memory traffic per token; activations, norms and attention stay f32. Quantized
    /// matrices of the CPU decode step stay quantized (they are smaller still).
    pub fn with_f16_weights(mut self) -> Self {
        let half = |t: Tensor<2>| t.cast(burn::tensor::DType::F16);
        for l in &mut self.layers {
            for w in [&mut l.wqkv, &mut l.wo, &mut l.w_gate_up, &mut l.w_down] {
                *w = half(w.clone());
            }
        }
        self.ends = match self.ends {
            Ends::Device(mut d) => {
                d.lm_head = half(d.lm_head);
                Ends::Device(d)
            }
            Ends::Host(h) => Ends::Host(h.with_f16_weights()),
        };
        self
    }

    pub fn new_cache(&self) -> KvCache {
        let layers = self.config.layers;
        KvCache {
            store: match self.ends {
                Ends::Host(_) => KvStore::Host(vec![HostKv::default(); layers]),
                Ends::Device(_) => KvStore::Device((0..layers).map(|_| None).collect()),
            },
            len: 0,
        }
    }

    fn rms_norm(&self, x: Tensor<2>, weight: &Tensor<1>) -> Tensor<2> {
        let mean_sq = x.clone().powf_scalar(2.0).mean_dim(1);
        let scale = mean_sq.add_scalar(self.config.rms_eps).sqrt().recip();
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

    /// Runs `tokens` at the positions after the cache and returns the logits of the last one.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Vec<f32> {
        if let (Ends::Host(host), [token], KvStore::Host(layers)) = (&self.ends, tokens, &mut cache.store) {
            // The whole step on one of rayon's threads: its matrix products then share the work
            // with the pool's other threads without a wake-up of the caller for each of them.
            let (config, pos) = (&self.config, cache.len);
            let logits = rayon::scope(|_| host.step(config, *token, pos, layers));
            cache.len += 1;
            return logits;
        }
        self.forward_tensors(tokens, cache)
    }

    /// `forward` on burn tensors (several tokens, or any token on a GPU).
    fn forward_tensors(&self, tokens: &[u32], cache: &mut KvCache) -> Vec<f32> {
        let c = &self.config;
        let (t, start) = (tokens.len(), cache.len);
        let (hd, group) = (c.head_dim(), c.heads / c.kv_heads);
        let mut x = match &self.ends {
            Ends::Device(d) => {
                let ids = Tensor::<1, Int>::from_data(
                    TensorData::new(tokens.iter().map(|v| *v as i64).collect::<Vec<_>>(), [t]),
                    &self.device,
                );
                d.embedding.clone().select(0, ids)
            }
            Ends::Host(host) => Tensor::from_data(TensorData::new(host.embed(tokens), [t, c.dim]), &self.device),
        };
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
        for (l, layer) in self.layers.iter().enumerate() {
            let h = self.rms_norm(x.clone(), &layer.attn_norm);
            let qkv = apply(h, &layer.wqkv);
            let kv_dim = c.kv_heads * hd;
            let q = self.rope(qkv.clone().narrow(1, 0, c.dim).reshape([t, c.heads, hd]), start);
            let k = self.rope(qkv.clone().narrow(1, c.dim, kv_dim).reshape([t, c.kv_heads, hd]), start);
            let v = qkv.narrow(1, c.dim + kv_dim, kv_dim).reshape([t, c.kv_heads, hd]);
            let (k_all, v_all) = self.extend_cache(&mut cache.store, l, k, v, start);
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
            let h = self.rms_norm(x.clone(), &layer.ffn_norm);
            let gate_up = apply(h, &layer.w_gate_up);
            let ff = silu(gate_up.clone().narrow(1, 0, c.ffn_dim)) * gate_up.narrow(1, c.ffn_dim, c.ffn_dim);
            x = x + apply(ff, &layer.w_down);
        }
        cache.len = total;
        let last = x.narrow(0, t - 1, 1);
        match &self.ends {
            Ends::Device(d) => {
                let last = self.rms_norm(last, &d.output_norm);
                apply(last, &d.lm_head).into_data().try_to_vec::<f32>().unwrap_or_default()
            }
            Ends::Host(host) => host.logits(c, &to_vec(last)),
        }
    }

    /// Adds layer `l`'s new keys and values (`[t, kv_heads, head_dim]`, positions from `start`)
    /// to the cache and returns all of them.
    fn extend_cache(&self, store: &mut KvStore, l: usize, k: Tensor<3>, v: Tensor<3>, start: usize) -> (Tensor<3>, Tensor<3>) {
        match store {
            KvStore::Device(slots) => {
                let (k_all, v_all) = match slots[l].take() {
                    Some((pk, pv)) => (Tensor::cat(vec![pk, k], 0), Tensor::cat(vec![pv, v], 0)),
                    None => (k, v),
                };
                slots[l] = Some((k_all.clone(), v_all.clone()));
                (k_all, v_all)
            }
            KvStore::Host(layers) => {
                let kv = &mut layers[l];
                let [_, heads, hd] = k.dims();
                let past = |data: &[f32]| Tensor::<3>::from_data(TensorData::new(data.to_vec(), [start, heads, hd]), &self.device);
                let all = if start == 0 {
                    (k.clone(), v.clone())
                } else {
                    (
                        Tensor::cat(vec![past(&kv.keys), k.clone()], 0),
                        Tensor::cat(vec![past(&kv.values), v.clone()], 0),
                    )
                };
                kv.keys.extend(to_vec(k));
                kv.values.extend(to_vec(v));
                all
            }
        }
    }
}

/// A tensor's f32 values, row-major.
fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::writer::write;
    use crate::gguf::{TensorType, Value};

    /// A 2-layer model with random weights and the real GGUF tensor names; rows are whole
    /// quantization blocks, as in real files.
    fn tiny_gguf() -> Gguf {
        let (vocab, d, kv, ffn) = (16usize, 32usize, 16usize, 64usize);
        let mut seed = 12345u64;
        let mut rand = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.8
                })
                .collect()
        };
        let mut tensors: Vec<(String, Vec<usize>, TensorType, Vec<f32>)> =
            vec![("token_embd.weight".into(), vec![vocab, d], TensorType::F32, rand(vocab * d))];
        for l in 0..2 {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            tensors.push((p("attn_norm"), vec![d], TensorType::F32, vec![1.0; d]));
            tensors.push((p("attn_q"), vec![d, d], TensorType::Q8_0, rand(d * d)));
            tensors.push((p("attn_k"), vec![kv, d], TensorType::F16, rand(kv * d)));
            tensors.push((p("attn_v"), vec![kv, d], TensorType::F32, rand(kv * d)));
            tensors.push((p("attn_output"), vec![d, d], TensorType::F32, rand(d * d)));
            tensors.push((p("ffn_norm"), vec![d], TensorType::F32, vec![1.0; d]));
            tensors.push((p("ffn_gate"), vec![ffn, d], TensorType::Q4_1, rand(ffn * d)));
            tensors.push((p("ffn_up"), vec![ffn, d], TensorType::F32, rand(ffn * d)));
            tensors.push((p("ffn_down"), vec![d, ffn], TensorType::F32, rand(d * ffn)));
        }
        tensors.push(("output_norm.weight".into(), vec![d], TensorType::F32, vec![1.0; d]));
        let refs: Vec<(&str, Vec<usize>, TensorType, Vec<f32>)> =
            tensors.iter().map(|(n, s, k, v)| (n.as_str(), s.clone(), *k, v.clone())).collect();
        let bytes = write(
            &[
                ("general.architecture", Value::String("llama".into())),
                ("llama.block_count", Value::U32(2)),
                ("llama.embedding_length", Value::U32(d as u32)),
                ("llama.attention.head_count", Value::U32(2)),
                ("llama.attention.head_count_kv", Value::U32(1)),
                ("llama.feed_forward_length", Value::U32(ffn as u32)),
                ("llama.context_length", Value::U32(32)),
                ("llama.rope.freq_base", Value::F32(10000.0)),
                ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            ],
            &refs,
        );
        Gguf::parse(bytes).expect("gguf")
    }

    #[test]
    fn f16_weights_stay_close_to_f32() {
        let g = tiny_gguf();
        let full = Llama::from_gguf(&g, &Device::flex()).expect("model");
        let half = Llama::from_gguf(&g, &Device::flex()).expect("model").with_f16_weights();
        let tokens = [1u32, 2, 3];
        let a = full.forward(&tokens, &mut full.new_cache());
        let b = half.forward(&tokens, &mut half.new_cache());
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff > 0.0 && diff < 2e-2, "f16 weights moved logits by {diff}");
    }

    #[test]
    fn the_host_decode_step_equals_burn() {
        // Prompt through burn into the host cache, then single-token host steps, against the
        // same tokens on burn alone; and with f16 weights (f32 matrices become f16 on both sides).
        let g = tiny_gguf();
        let device = Device::flex();
        for f16 in [false, true] {
            let load = |burn_only: bool| {
                let c = LlamaConfig::from_gguf(&g).expect("config");
                let m = if burn_only {
                    Llama::load_burn_only(c, &g, &device)
                } else {
                    Llama::load(c, &g, &device)
                };
                let m = m.expect("model");
                if f16 {
                    m.with_f16_weights()
                } else {
                    m
                }
            };
            let (host, burn) = (load(false), load(true));
            assert!(matches!(host.ends, Ends::Host(_)) && matches!(burn.ends, Ends::Device(_)));
            let (mut hc, mut bc) = (host.new_cache(), burn.new_cache());
            let mut a = host.forward(&[3, 9, 1], &mut hc);
            let mut b = burn.forward(&[3, 9, 1], &mut bc);
            for next in [4u32, 15, 0, 7] {
                let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                let tolerance = if f16 { 2e-2 } else { 1e-3 };
                assert!(
                    diff < tolerance,
                    "f16 {f16}: host and burn differ by {diff} at position {}",
                    hc.len()
                );
                a = host.forward(&[next], &mut hc);
                b = burn.forward(&[next], &mut bc);
            }
            // Several tokens after host steps read the host cache back through burn.
            let a = host.forward(&[2, 5], &mut hc);
            let b = burn.forward(&[2, 5], &mut bc);
            let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff < if f16 { 2e-2 } else { 1e-3 }, "after host steps: {diff}");
            assert_eq!((hc.len(), bc.len()), (9, 9));
        }
    }

    #[test]
    fn reads_the_shape_from_metadata() {
        let c = LlamaConfig::from_gguf(&tiny_gguf()).expect("config");
        assert_eq!(
            (c.layers, c.dim, c.heads, c.kv_heads, c.ffn_dim, c.vocab, c.context),
            (2, 32, 2, 1, 64, 16, 32)
        );
        assert_eq!(c.head_dim(), 16);
    }

    #[test]
    fn incremental_decoding_matches_a_full_pass() {
        let g = tiny_gguf();
        let model = Llama::from_gguf(&g, &Device::flex()).expect("model");
        let tokens = [3u32, 7, 1, 12, 5];
        let full = model.forward(&tokens, &mut model.new_cache());
        assert_eq!(full.len(), 16);
        let mut cache = model.new_cache();
        model.forward(&tokens[..2], &mut cache);
        model.forward(&tokens[2..4], &mut cache);
        let step = model.forward(&tokens[4..], &mut cache);
        assert_eq!(cache.len(), 5);
        let diff = full.iter().zip(&step).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "KV cache changes the result by {diff}");
        // The position matters (rotary embeddings): the same token elsewhere gives other logits.
        let shifted = model.forward(&[5], &mut model.new_cache());
        assert!(shifted.iter().zip(&step).any(|(a, b)| (a - b).abs() > 1e-4));
    }

    #[test]
    fn a_safetensors_checkpoint_gives_the_same_logits_as_gguf() {
        use safetensors::tensor::TensorView;
        let g = tiny_gguf();
        let dir = std::env::temp_dir().join(format!("hf-tiny-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = vec![];
        for t in &g.tensors {
            let (mut data, shape) = g.dequantize(&t.name).expect("tensor");
            let hf = match t.name.as_str() {
                "token_embd.weight" => "model.embed_tokens.weight".to_string(),
                "output_norm.weight" => "model.norm.weight".to_string(),
                n => {
                    let (layer, part) = n.trim_start_matches("blk.").split_once('.').expect("layer");
                    let part = match part {
                        "attn_norm.weight" => "input_layernorm.weight",
                        "attn_q.weight" => {
                            data = crate::hf::interleaved_to_rotate_half(&data, 2, shape[1]);
                            "self_attn.q_proj.weight"
                        }
                        "attn_k.weight" => {
                            data = crate::hf::interleaved_to_rotate_half(&data, 1, shape[1]);
                            "self_attn.k_proj.weight"
                        }
                        "attn_v.weight" => "self_attn.v_proj.weight",
                        "attn_output.weight" => "self_attn.o_proj.weight",
                        "ffn_norm.weight" => "post_attention_layernorm.weight",
                        "ffn_gate.weight" => "mlp.gate_proj.weight",
                        "ffn_up.weight" => "mlp.up_proj.weight",
                        "ffn_down.weight" => "mlp.down_proj.weight",
                        other => panic!("unexpected tensor {other}"),
                    };
                    format!("model.layers.{layer}.{part}")
                }
            };
            named.push((hf, shape, data.iter().flat_map(|x| x.to_le_bytes()).collect()));
        }
        let views: Vec<(String, TensorView<'_>)> = named
            .iter()
            .map(|(n, s, b)| (n.clone(), TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("view")))
            .collect();
        let bytes = safetensors::serialize(views, None).expect("serialize");
        std::fs::write(dir.join("model.safetensors"), bytes).expect("write");
        std::fs::write(
            dir.join("config.json"),
            r#"{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                "intermediate_size": 64, "vocab_size": 16, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "max_position_embeddings": 32, "tie_word_embeddings": true}"#,
        )
        .expect("write");
        let hf = crate::hf::HfWeights::open(&dir).expect("open");
        let device = Device::flex();
        let from_hf = Llama::load(hf.config.llama(), &hf, &device).expect("hf model");
        let from_gguf = Llama::from_gguf(&g, &device).expect("gguf model");
        let shape = |c: &LlamaConfig| (c.layers, c.dim, c.heads, c.kv_heads, c.ffn_dim, c.vocab, c.context);
        assert_eq!(shape(&from_hf.config), shape(&from_gguf.config));
        let tokens = [2u32, 9, 4, 4, 11];
        let a = from_gguf.forward(&tokens, &mut from_gguf.new_cache());
        let b = from_hf.forward(&tokens, &mut from_hf.new_cache());
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-5, "safetensors and GGUF disagree by {diff}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

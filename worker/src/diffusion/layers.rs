//! The building blocks the text encoder, the UNet and the VAE share, loaded by their diffusers
//! names: linear and convolution layers, group and layer norms, the ResNet block, multi-head
//! attention. Weights are in the checkpoint's float type (f16 on GPUs); the norms compute in f32
//! and give back their input's type.

use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::module::{attention, conv2d, layer_norm, linear};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};
use burn::tensor::FloatDType;

use super::weights::Checkpoint;
use super::DiffusionError;
use crate::gpu::attention::{fused_attention, has_fused_attention, AttentionMask};

/// `x · Wᵀ + b` with PyTorch's `[out, in]` weight.
pub struct Linear {
    /// `[in, out]`.
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
}

impl Linear {
    /// The layer `prefix`; a 1×1 convolution's weight `[out, in, 1, 1]` (old VAE attention
    /// checkpoints) is taken as the matrix it is.
    pub fn load(ck: &Checkpoint, prefix: &str) -> Result<Self, DiffusionError> {
        let name = format!("{prefix}.weight");
        let weight = match ck.shape(&name) {
            Some(&[o, i, 1, 1]) => ck.tensor::<4>(&name)?.reshape([o, i]),
            _ => ck.tensor::<2>(&name)?,
        };
        Ok(Self {
            weight: weight.transpose(),
            bias: ck.optional(&format!("{prefix}.bias"))?,
        })
    }

    pub fn out_features(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(x, self.weight.clone(), self.bias.clone())
    }
}

/// A 2-D convolution.
pub struct Conv2d {
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    /// Padding before and after, per spatial dimension.
    padding: (usize, usize),
}

impl Conv2d {
    /// The layer `prefix` with `stride` and symmetric padding `padding`.
    pub fn load(ck: &Checkpoint, prefix: &str, stride: usize, padding: usize) -> Result<Self, DiffusionError> {
        Self::load_padded(ck, prefix, stride, (padding, padding))
    }

    /// "Same" padding for odd kernels, stride 1.
    pub fn load_same(ck: &Checkpoint, prefix: &str) -> Result<Self, DiffusionError> {
        let name = format!("{prefix}.weight");
        let k = ck
            .shape(&name)
            .and_then(|s| s.get(2).copied())
            .ok_or(DiffusionError::Missing(name))?;
        Self::load(ck, prefix, 1, k / 2)
    }

    pub fn load_padded(ck: &Checkpoint, prefix: &str, stride: usize, padding: (usize, usize)) -> Result<Self, DiffusionError> {
        Ok(Self {
            weight: ck.tensor::<4>(&format!("{prefix}.weight"))?,
            bias: ck.optional(&format!("{prefix}.bias"))?,
            stride,
            padding,
        })
    }

    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (begin, end) = self.padding;
        let options = ConvOptions::new_with_padding([self.stride; 2], [(begin, end); 2], [1, 1], 1);
        conv2d(x, self.weight.clone(), self.bias.clone(), options)
    }
}

/// `x` in f32, and what gives a result back the type `x` had.
fn in_f32<const D: usize>(x: Tensor<D>) -> (Tensor<D>, FloatDType) {
    let dtype = FloatDType::from(x.dtype());
    (x.cast(FloatDType::F32), dtype)
}

/// Group normalization over `[batch, channels, …]`, in f32.
pub struct GroupNorm {
    groups: usize,
    eps: f64,
    gamma: Tensor<1>,
    beta: Tensor<1>,
}

impl GroupNorm {
    pub fn load(ck: &Checkpoint, prefix: &str, groups: usize, eps: f64) -> Result<Self, DiffusionError> {
        let gamma = ck.tensor_f32::<1>(&format!("{prefix}.weight"))?;
        let channels = gamma.dims()[0];
        if groups == 0 || channels % groups != 0 {
            return Err(DiffusionError::Invalid(format!("{prefix}: {channels} channels in {groups} groups")));
        }
        Ok(Self {
            groups,
            eps,
            gamma,
            beta: ck.tensor_f32::<1>(&format!("{prefix}.bias"))?,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (x, dtype) = in_f32(x);
        let [b, c, h, w] = x.dims();
        let grouped = x.reshape([b, self.groups, (c / self.groups) * h * w]);
        let mean = grouped.clone().mean_dim(2);
        let centered = grouped - mean;
        let var = centered.clone().square().mean_dim(2);
        let normed = (centered / var.add_scalar(self.eps).sqrt()).reshape([b, c, h, w]);
        let out = normed * self.gamma.clone().reshape([1, c, 1, 1]) + self.beta.clone().reshape([1, c, 1, 1]);
        out.cast(dtype)
    }
}

/// Layer normalization over the last dimension, in f32.
pub struct LayerNorm {
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
}

impl LayerNorm {
    pub fn load(ck: &Checkpoint, prefix: &str, eps: f64) -> Result<Self, DiffusionError> {
        Ok(Self {
            gamma: ck.tensor_f32(&format!("{prefix}.weight"))?,
            beta: ck.tensor_f32(&format!("{prefix}.bias"))?,
            eps,
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let (x, dtype) = in_f32(x);
        layer_norm(x, self.gamma.clone(), Some(self.beta.clone()), self.eps).cast(dtype)
    }
}

/// Multi-head scaled dot-product attention on `[batch, tokens, heads·head_dim]`, scale
/// 1/√head_dim. On cubecl devices (wgpu, cuda) it is one launch of our fused kernel
/// (`gpu::attention::fused_attention`: flash-style, no score matrix in memory), in the inputs'
/// precision (f16 on GPUs) with f32 accumulation. On burn's CPU backend, non-causal attention
/// runs on `cpu_attention`'s kernels. Elsewhere, and for what the fused kernel refuses (causal
/// attention with more keys than queries, key and value of different types), it is burn's
/// attention op (on cubecl devices, as burn is built here without `autotune`, burn-cubecl's
/// unfused fallback: calling burn-cubecl's own flash kernel directly was tried and made the
/// text model's batch test on lavapipe over ten times longer).
pub fn multi_head_attention(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
    let [b, n, inner] = q.dims();
    let m = k.dims()[1];
    let d = inner / heads;
    let device = q.device();
    if !causal && device == Device::flex() {
        let values = |t: Tensor<3>| t.into_data().try_to_vec::<f32>();
        if let (Ok(qv), Ok(kv), Ok(vv)) = (values(q.clone()), values(k.clone()), values(v.clone())) {
            let shape = super::cpu_attention::AttentionShape { batch: b, n, m, heads, d };
            let out = super::cpu_attention::attention(&qv, &kv, &vv, shape);
            return Tensor::from_data(TensorData::new(out, [b, n, inner]), &device);
        }
    }
    if has_fused_attention(&device) && (!causal || n == m) {
        let mask = if causal {
            AttentionMask::Causal { past: 0, window: None }
        } else {
            AttentionMask::Full
        };
        let dtype = q.dtype();
        let heads_of = |x: Tensor<3>, len: usize| x.reshape([b, len, heads, d]);
        let scale = 1.0 / (d as f32).sqrt();
        let (qh, kh, vh) = (heads_of(q.clone(), n), heads_of(k.clone(), m), heads_of(v.clone(), m));
        if let Some(out) = fused_attention(qh, kh, vh, m, scale, mask, dtype) {
            return out.reshape([b, n, inner]);
        }
    }
    let split = |x: Tensor<3>, len: usize| x.reshape([b, len, heads, d]).swap_dims(1, 2);
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: causal,
    };
    let out = attention(split(q, n), split(k, m), split(v, m), None, None, options);
    out.swap_dims(1, 2).reshape([b, n, inner])
}

/// diffusers' `Attention`: `to_q`, `to_k`, `to_v`, `to_out.0`; cross-attention when given a
/// context.
pub struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl Attention {
    pub fn load(ck: &Checkpoint, prefix: &str, heads: usize) -> Result<Self, DiffusionError> {
        // VAE checkpoints saved before diffusers 0.14 name the same layers query/key/value/proj_attn.
        let legacy = !ck.contains(&format!("{prefix}.to_q.weight")) && ck.contains(&format!("{prefix}.query.weight"));
        let name = |new: &str, old: &str| format!("{prefix}.{}", if legacy { old } else { new });
        let to_q = Linear::load(ck, &name("to_q", "query"))?;
        let inner = to_q.out_features();
        if heads == 0 || inner % heads != 0 {
            return Err(DiffusionError::Invalid(format!("{prefix}: {inner} features in {heads} heads")));
        }
        Ok(Self {
            to_q,
            to_k: Linear::load(ck, &name("to_k", "key"))?,
            to_v: Linear::load(ck, &name("to_v", "value"))?,
            to_out: Linear::load(ck, &name("to_out.0", "proj_attn"))?,
            heads,
        })
    }

    pub fn forward(&self, x: Tensor<3>, context: Option<&Tensor<3>>) -> Tensor<3> {
        let kv = context.cloned().unwrap_or_else(|| x.clone());
        let q = self.to_q.forward(x);
        let out = multi_head_attention(q, self.to_k.forward(kv.clone()), self.to_v.forward(kv), self.heads, false);
        self.to_out.forward(out)
    }
}

/// diffusers' `ResnetBlock2D`: norm, SiLU, 3×3 convolution, plus the time embedding (UNet),
/// twice, with a 1×1 shortcut when the channels change.
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub fn load(ck: &Checkpoint, prefix: &str, groups: usize, eps: f64) -> Result<Self, DiffusionError> {
        let time = format!("{prefix}.time_emb_proj");
        let shortcut = format!("{prefix}.conv_shortcut");
        Ok(Self {
            norm1: GroupNorm::load(ck, &format!("{prefix}.norm1"), groups, eps)?,
            conv1: Conv2d::load_same(ck, &format!("{prefix}.conv1"))?,
            time_emb_proj: if ck.contains(&format!("{time}.weight")) {
                Some(Linear::load(ck, &time)?)
            } else {
                None
            },
            norm2: GroupNorm::load(ck, &format!("{prefix}.norm2"), groups, eps)?,
            conv2: Conv2d::load_same(ck, &format!("{prefix}.conv2"))?,
            shortcut: if ck.contains(&format!("{shortcut}.weight")) {
                Some(Conv2d::load_same(ck, &shortcut)?)
            } else {
                None
            },
        })
    }

    /// `temb` is the UNet's time embedding `[batch, dim]` (already through SiLU is not expected:
    /// the block applies it).
    pub fn forward(&self, x: Tensor<4>, temb: Option<&Tensor<2>>) -> Tensor<4> {
        let mut h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb) {
            let [b, c] = [t.dims()[0], proj.out_features()];
            h = h + proj.forward(silu(t.clone())).reshape([b, c, 1, 1]);
        }
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        let skip = match &self.shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        skip + h
    }
}

/// Nearest-neighbour upsampling by 2 (`F.interpolate(scale_factor=2, mode="nearest")`).
pub fn upsample2x(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, 2, w, 2])
        .reshape([b, c, 2 * h, 2 * w])
}

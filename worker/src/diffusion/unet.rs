//! diffusers' `UNet2DConditionModel` as Stable Diffusion 1.x/2.x configure it: sinusoidal time
//! embedding, down blocks of ResNet blocks (with spatial transformers in the cross-attention
//! ones), a middle block, up blocks fed the down path's skips, and an output convolution. The
//! blocks' layout is read from the weights; heads and norms from `config.json`.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::{gelu, silu};
use burn::tensor::{DType, FloatDType};
use serde::Deserialize;

use super::layers::{upsample2x, Attention, Conv2d, GroupNorm, LayerNorm, Linear, ResnetBlock};
use super::weights::{read_config, Checkpoint};
use super::DiffusionError;

/// An int or one value per block.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    One(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    fn get(&self, i: usize) -> Option<usize> {
        match self {
            PerBlock::One(v) => Some(*v),
            PerBlock::Each(v) => v.get(i).copied(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct UNetConfig {
    #[serde(default = "four")]
    pub in_channels: usize,
    #[serde(default = "four")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default)]
    pub attention_head_dim: Option<PerBlock>,
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    #[serde(default = "groups")]
    pub norm_num_groups: usize,
    #[serde(default = "eps")]
    pub norm_eps: f64,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
}

fn four() -> usize {
    4
}
fn groups() -> usize {
    32
}
fn eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

impl UNetConfig {
    /// Heads of the attention in down block `i` (diffusers names the head count
    /// `attention_head_dim` in SD configs).
    fn heads(&self, i: usize) -> Result<usize, DiffusionError> {
        self.num_attention_heads
            .as_ref()
            .or(self.attention_head_dim.as_ref())
            .and_then(|h| h.get(i))
            .ok_or_else(|| DiffusionError::Invalid("UNet config: no attention heads for every block".into()))
    }
}

/// `proj_in`/`proj_out` of a spatial transformer: a 1×1 convolution (SD 1.x) or a linear layer.
enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

impl Projection {
    fn load(ck: &Checkpoint, prefix: &str) -> Result<Self, DiffusionError> {
        if ck.shape(&format!("{prefix}.weight")).is_some_and(|s| s.len() == 4) {
            Ok(Projection::Conv(Conv2d::load(ck, prefix, 1, 0)?))
        } else {
            Ok(Projection::Linear(Linear::load(ck, prefix)?))
        }
    }
}

struct TransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    /// GEGLU: value and gate side by side.
    ff_in: Linear,
    ff_out: Linear,
}

impl TransformerBlock {
    fn load(ck: &Checkpoint, p: &str, heads: usize) -> Result<Self, DiffusionError> {
        let n = |s: &str| format!("{p}.{s}");
        Ok(Self {
            norm1: LayerNorm::load(ck, &n("norm1"), 1e-5)?,
            attn1: Attention::load(ck, &n("attn1"), heads)?,
            norm2: LayerNorm::load(ck, &n("norm2"), 1e-5)?,
            attn2: Attention::load(ck, &n("attn2"), heads)?,
            norm3: LayerNorm::load(ck, &n("norm3"), 1e-5)?,
            ff_in: Linear::load(ck, &n("ff.net.0.proj"))?,
            ff_out: Linear::load(ck, &n("ff.net.2"))?,
        })
    }

    fn forward(&self, x: Tensor<3>, context: &Tensor<3>) -> Tensor<3> {
        let x = self.attn1.forward(self.norm1.forward(x.clone()), None) + x;
        let x = self.attn2.forward(self.norm2.forward(x.clone()), Some(context)) + x;
        let mut halves = self.ff_in.forward(self.norm3.forward(x.clone())).chunk(2, 2);
        let gate = halves.pop();
        let value = halves.pop();
        match (value, gate) {
            (Some(value), Some(gate)) => self.ff_out.forward(value * gelu(gate)) + x,
            _ => x,
        }
    }
}

/// diffusers' `Transformer2DModel`: the image as tokens, attending to itself and the text.
struct SpatialTransformer {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<TransformerBlock>,
    proj_out: Projection,
}

impl SpatialTransformer {
    fn load(ck: &Checkpoint, p: &str, heads: usize, groups: usize) -> Result<Self, DiffusionError> {
        let mut blocks = Vec::new();
        while ck.contains(&format!("{p}.transformer_blocks.{}.norm1.weight", blocks.len())) {
            blocks.push(TransformerBlock::load(
                ck,
                &format!("{p}.transformer_blocks.{}", blocks.len()),
                heads,
            )?);
        }
        Ok(Self {
            norm: GroupNorm::load(ck, &format!("{p}.norm"), groups, 1e-6)?,
            proj_in: Projection::load(ck, &format!("{p}.proj_in"))?,
            blocks,
            proj_out: Projection::load(ck, &format!("{p}.proj_out"))?,
        })
    }

    fn forward(&self, x: Tensor<4>, context: &Tensor<3>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let to_tokens = |t: Tensor<4>| {
            let ch = t.dims()[1];
            t.reshape([b, ch, h * w]).swap_dims(1, 2)
        };
        let normed = self.norm.forward(x.clone());
        let mut tokens = match &self.proj_in {
            Projection::Conv(conv) => to_tokens(conv.forward(normed)),
            Projection::Linear(lin) => lin.forward(to_tokens(normed)),
        };
        for block in &self.blocks {
            tokens = block.forward(tokens, context);
        }
        let to_image = |t: Tensor<3>| {
            let ch = t.dims()[2];
            t.swap_dims(1, 2).reshape([b, ch, h, w])
        };
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(to_image(tokens)),
            Projection::Linear(lin) => to_image(lin.forward(tokens)),
        };
        debug_assert_eq!(out.dims()[1], c);
        out + x
    }
}

/// A down or up block: ResNet blocks, each optionally followed by a spatial transformer, then
/// an optional down- or upsampling convolution.
struct Block {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<SpatialTransformer>,
    resample: Option<Conv2d>,
}

impl Block {
    fn load(ck: &Checkpoint, p: &str, heads: usize, config: &UNetConfig, down: bool) -> Result<Self, DiffusionError> {
        let (groups, eps) = (config.norm_num_groups, config.norm_eps);
        let mut resnets = Vec::new();
        while ck.contains(&format!("{p}.resnets.{}.conv1.weight", resnets.len())) {
            resnets.push(ResnetBlock::load(ck, &format!("{p}.resnets.{}", resnets.len()), groups, eps)?);
        }
        let mut attentions = Vec::new();
        while ck.contains(&format!("{p}.attentions.{}.norm.weight", attentions.len())) {
            attentions.push(SpatialTransformer::load(
                ck,
                &format!("{p}.attentions.{}", attentions.len()),
                heads,
                groups,
            )?);
        }
        if resnets.is_empty() || !(attentions.is_empty() || attentions.len() == resnets.len()) {
            return Err(DiffusionError::Invalid(format!(
                "UNet {p}: {} ResNet blocks and {} transformers",
                resnets.len(),
                attentions.len()
            )));
        }
        let resample = if down {
            format!("{p}.downsamplers.0.conv")
        } else {
            format!("{p}.upsamplers.0.conv")
        };
        let resample = if ck.contains(&format!("{resample}.weight")) {
            Some(Conv2d::load(ck, &resample, if down { 2 } else { 1 }, 1)?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            attentions,
            resample,
        })
    }
}

pub struct UNet {
    config: UNetConfig,
    time_1: Linear,
    time_2: Linear,
    conv_in: Conv2d,
    down: Vec<Block>,
    mid: (ResnetBlock, SpatialTransformer, ResnetBlock),
    up: Vec<Block>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    /// The float type of the weights and activations.
    dtype: FloatDType,
}

impl UNet {
    /// Loads `unet/` of a diffusers checkout.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, DiffusionError> {
        let config: UNetConfig = read_config(dir)?;
        Self::from_checkpoint(config, &Checkpoint::open(dir, device)?)
    }

    pub fn from_checkpoint(config: UNetConfig, ck: &Checkpoint) -> Result<Self, DiffusionError> {
        let blocks = config.block_out_channels.len();
        if blocks == 0 || !config.block_out_channels[0].is_multiple_of(2) {
            return Err(DiffusionError::Invalid("UNet config: block_out_channels".into()));
        }
        let (groups, eps) = (config.norm_num_groups, config.norm_eps);
        let down = (0..blocks)
            .map(|i| Block::load(ck, &format!("down_blocks.{i}"), config.heads(i)?, &config, true))
            .collect::<Result<Vec<_>, _>>()?;
        let up = (0..blocks)
            .map(|i| Block::load(ck, &format!("up_blocks.{i}"), config.heads(blocks - 1 - i)?, &config, false))
            .collect::<Result<Vec<_>, _>>()?;
        let mid = (
            ResnetBlock::load(ck, "mid_block.resnets.0", groups, eps)?,
            SpatialTransformer::load(ck, "mid_block.attentions.0", config.heads(blocks - 1)?, groups)?,
            ResnetBlock::load(ck, "mid_block.resnets.1", groups, eps)?,
        );
        Ok(Self {
            time_1: Linear::load(ck, "time_embedding.linear_1")?,
            time_2: Linear::load(ck, "time_embedding.linear_2")?,
            conv_in: Conv2d::load_same(ck, "conv_in")?,
            down,
            mid,
            up,
            norm_out: GroupNorm::load(ck, "conv_norm_out", groups, eps)?,
            conv_out: Conv2d::load_same(ck, "conv_out")?,
            dtype: ck.dtype(),
            config,
        })
    }

    pub fn in_channels(&self) -> usize {
        self.config.in_channels
    }

    /// The float type it computes in (f16 on GPUs).
    pub fn dtype(&self) -> FloatDType {
        self.dtype
    }

    /// How many times the UNet halves the latent (its size must divide by 2^this).
    pub fn downsamplings(&self) -> usize {
        self.down.iter().filter(|b| b.resample.is_some()).count()
    }

    /// The sinusoidal embedding of `t` (diffusers' `get_timestep_embedding`), `[batch, dim]`.
    fn time_features(&self, t: f32, batch: usize, device: &Device) -> Tensor<2> {
        let dim = self.config.block_out_channels[0];
        let half = dim / 2;
        let mut features = vec![0f32; dim];
        for i in 0..half {
            let freq = (-(10000f32.ln()) * i as f32 / (half as f32 - self.config.freq_shift as f32)).exp();
            let (sin, cos) = (t * freq).sin_cos();
            let (first, second) = if self.config.flip_sin_to_cos { (cos, sin) } else { (sin, cos) };
            features[i] = first;
            features[half + i] = second;
        }
        Tensor::<1>::from_data(TensorData::new(features, [dim]), (device, DType::from(self.dtype)))
            .unsqueeze::<2>()
            .expand([batch, dim])
    }

    /// The predicted noise for `sample` `[batch, in, h, w]` at timestep `t`, conditioned on
    /// `context` `[batch, tokens, dim]`. Takes and returns f32 (computes in `dtype`).
    pub fn forward(&self, sample: Tensor<4>, t: f32, context: &Tensor<3>) -> Tensor<4> {
        let sample = sample.cast(self.dtype);
        let context = &context.clone().cast(self.dtype);
        let batch = sample.dims()[0];
        let temb = self
            .time_2
            .forward(silu(self.time_1.forward(self.time_features(t, batch, &sample.device()))));
        let temb = Some(&temb);
        let mut x = self.conv_in.forward(sample);
        let mut skips = vec![x.clone()];
        for block in &self.down {
            for (j, resnet) in block.resnets.iter().enumerate() {
                x = resnet.forward(x, temb);
                if let Some(attn) = block.attentions.get(j) {
                    x = attn.forward(x, context);
                }
                skips.push(x.clone());
            }
            if let Some(conv) = &block.resample {
                x = conv.forward(x);
                skips.push(x.clone());
            }
        }
        x = self.mid.0.forward(x, temb);
        x = self.mid.1.forward(x, context);
        x = self.mid.2.forward(x, temb);
        for block in &self.up {
            for (j, resnet) in block.resnets.iter().enumerate() {
                if let Some(skip) = skips.pop() {
                    x = Tensor::cat(vec![x, skip], 1);
                }
                x = resnet.forward(x, temb);
                if let Some(attn) = block.attentions.get(j) {
                    x = attn.forward(x, context);
                }
            }
            if let Some(conv) = &block.resample {
                x = conv.forward(upsample2x(x));
            }
        }
        self.conv_out.forward(silu(self.norm_out.forward(x))).cast(FloatDType::F32)
    }
}

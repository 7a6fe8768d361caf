//! diffusers' `AutoencoderKL`: the decoder turns latents into images, the encoder (img2img)
//! turns images into the latent distribution's mean and spread. Norm epsilons are the VAE's
//! (1e-6); `scaling_factor` (0.18215 for SD 1.x) comes from `config.json`.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::FloatDType;
use serde::Deserialize;

use super::layers::{upsample2x, Attention, Conv2d, GroupNorm, ResnetBlock};
use super::weights::{read_config, Checkpoint};
use super::DiffusionError;

const EPS: f64 = 1e-6;

#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    pub block_out_channels: Vec<usize>,
    #[serde(default = "four")]
    pub latent_channels: usize,
    #[serde(default = "groups")]
    pub norm_num_groups: usize,
    #[serde(default = "scaling")]
    pub scaling_factor: f64,
}

fn four() -> usize {
    4
}
fn groups() -> usize {
    32
}
fn scaling() -> f64 {
    0.18215
}

/// The middle block: ResNet, single-head self-attention over all pixels, ResNet.
struct Mid {
    res0: ResnetBlock,
    norm: GroupNorm,
    attn: Attention,
    res1: ResnetBlock,
}

impl Mid {
    fn load(ck: &Checkpoint, p: &str, groups: usize) -> Result<Self, DiffusionError> {
        Ok(Self {
            res0: ResnetBlock::load(ck, &format!("{p}.resnets.0"), groups, EPS)?,
            norm: GroupNorm::load(ck, &format!("{p}.attentions.0.group_norm"), groups, EPS)?,
            attn: Attention::load(ck, &format!("{p}.attentions.0"), 1)?,
            res1: ResnetBlock::load(ck, &format!("{p}.resnets.1"), groups, EPS)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.res0.forward(x, None);
        let [b, c, h, w] = x.dims();
        let tokens = self.norm.forward(x.clone()).reshape([b, c, h * w]).swap_dims(1, 2);
        let attended = self.attn.forward(tokens, None).swap_dims(1, 2).reshape([b, c, h, w]);
        self.res1.forward(attended + x, None)
    }
}

struct Stage {
    resnets: Vec<ResnetBlock>,
    resample: Option<Conv2d>,
}

impl Stage {
    fn load(ck: &Checkpoint, p: &str, groups: usize, down: bool) -> Result<Self, DiffusionError> {
        let mut resnets = Vec::new();
        while ck.contains(&format!("{p}.resnets.{}.conv1.weight", resnets.len())) {
            resnets.push(ResnetBlock::load(ck, &format!("{p}.resnets.{}", resnets.len()), groups, EPS)?);
        }
        if resnets.is_empty() {
            return Err(DiffusionError::Missing(format!("{p}.resnets.0")));
        }
        let name = if down {
            format!("{p}.downsamplers.0.conv")
        } else {
            format!("{p}.upsamplers.0.conv")
        };
        let resample = if !ck.contains(&format!("{name}.weight")) {
            None
        } else if down {
            // diffusers pads the right and bottom by one, then convolves with stride 2.
            Some(Conv2d::load_padded(ck, &name, 2, (0, 1))?)
        } else {
            Some(Conv2d::load(ck, &name, 1, 1)?)
        };
        Ok(Self { resnets, resample })
    }
}

struct Coder {
    conv_in: Conv2d,
    stages: Vec<Stage>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    down: bool,
}

impl Coder {
    fn load(ck: &Checkpoint, p: &str, config: &VaeConfig, down: bool) -> Result<Self, DiffusionError> {
        let groups = config.norm_num_groups;
        let kind = if down { "down_blocks" } else { "up_blocks" };
        let stages = (0..config.block_out_channels.len())
            .map(|i| Stage::load(ck, &format!("{p}.{kind}.{i}"), groups, down))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            conv_in: Conv2d::load_same(ck, &format!("{p}.conv_in"))?,
            stages,
            mid: Mid::load(ck, &format!("{p}.mid_block"), groups)?,
            norm_out: GroupNorm::load(ck, &format!("{p}.conv_norm_out"), groups, EPS)?,
            conv_out: Conv2d::load_same(ck, &format!("{p}.conv_out"))?,
            down,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.conv_in.forward(x);
        if !self.down {
            x = self.mid.forward(x);
        }
        for stage in &self.stages {
            for resnet in &stage.resnets {
                x = resnet.forward(x, None);
            }
            if let Some(conv) = &stage.resample {
                x = conv.forward(if self.down { x } else { upsample2x(x) });
            }
        }
        if self.down {
            x = self.mid.forward(x);
        }
        self.conv_out.forward(silu(self.norm_out.forward(x)))
    }
}

pub struct Vae {
    config: VaeConfig,
    decoder: Coder,
    post_quant_conv: Option<Conv2d>,
    /// The encoder and `quant_conv`; absent in decoder-only checkpoints.
    encoder: Option<(Coder, Option<Conv2d>)>,
    /// The float type of the weights and activations (f16 on GPUs).
    dtype: FloatDType,
}

impl Vae {
    /// Loads `vae/` of a diffusers checkout.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, DiffusionError> {
        let config: VaeConfig = read_config(dir)?;
        Self::from_checkpoint(config, &Checkpoint::open(dir, device)?)
    }

    pub fn from_checkpoint(config: VaeConfig, ck: &Checkpoint) -> Result<Self, DiffusionError> {
        let optional_conv = |name: &str| -> Result<Option<Conv2d>, DiffusionError> {
            if ck.contains(&format!("{name}.weight")) {
                Conv2d::load_same(ck, name).map(Some)
            } else {
                Ok(None)
            }
        };
        let encoder = if ck.contains("encoder.conv_in.weight") {
            Some((Coder::load(ck, "encoder", &config, true)?, optional_conv("quant_conv")?))
        } else {
            None
        };
        Ok(Self {
            decoder: Coder::load(ck, "decoder", &config, false)?,
            post_quant_conv: optional_conv("post_quant_conv")?,
            encoder,
            dtype: ck.dtype(),
            config,
        })
    }

    pub fn scaling_factor(&self) -> f64 {
        self.config.scaling_factor
    }

    pub fn latent_channels(&self) -> usize {
        self.config.latent_channels
    }

    /// How many times the VAE halves the image size.
    pub fn downsamplings(&self) -> usize {
        self.decoder.stages.iter().filter(|s| s.resample.is_some()).count()
    }

    /// Latents (not yet divided by the scaling factor) to images in [-1, 1] (roughly); f32 in
    /// and out.
    pub fn decode(&self, latents: Tensor<4>) -> Tensor<4> {
        let latents = latents.cast(self.dtype);
        let z = match &self.post_quant_conv {
            Some(conv) => conv.forward(latents),
            None => latents,
        };
        self.decoder.forward(z).cast(FloatDType::F32)
    }

    /// Images in [-1, 1] to the latent distribution's mean and standard deviation; f32 in and
    /// out.
    pub fn encode(&self, images: Tensor<4>) -> Result<(Tensor<4>, Tensor<4>), DiffusionError> {
        let (encoder, quant) = self
            .encoder
            .as_ref()
            .ok_or_else(|| DiffusionError::Invalid("this VAE has no encoder".into()))?;
        let mut moments = encoder.forward(images.cast(self.dtype));
        if let Some(conv) = quant {
            moments = conv.forward(moments);
        }
        let moments = moments.cast(FloatDType::F32);
        let mut halves = moments.chunk(2, 1);
        let (Some(logvar), Some(mean)) = (halves.pop(), halves.pop()) else {
            return Err(DiffusionError::Invalid("VAE encoder output has too few channels".into()));
        };
        let std = logvar.clamp(-30.0, 20.0).mul_scalar(0.5).exp();
        Ok((mean, std))
    }
}

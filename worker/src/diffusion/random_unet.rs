//! A UNet with random weights and the layout diffusers gives `UNet2DConditionModel`, built in
//! memory: for timing a full-size Stable Diffusion 1.5 UNet where no checkpoint can be
//! downloaded (`examples/gpu_check.rs`), and for tests of tiny ones. The weights are f16, uniform
//! in ±1/√fan-in (PyTorch's default initialisation), norms' scales 1 and biases 0.

use burn::prelude::Device;

use super::unet::{PerBlock, UNet, UNetConfig};
use super::weights::Checkpoint;
use super::DiffusionError;

/// The hyper-parameters of a `UNet2DConditionModel` with Stable Diffusion's block types: every
/// down block but the last with cross-attention, every up block but the first.
#[derive(Debug, Clone)]
pub struct UNetShape {
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub cross_attention_dim: usize,
    pub heads: usize,
    pub norm_groups: usize,
    /// Latent channels in and out.
    pub latent_channels: usize,
}

impl UNetShape {
    /// Stable Diffusion 1.5's UNet (859,520,964 parameters).
    pub fn sd15() -> Self {
        Self {
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: 2,
            cross_attention_dim: 768,
            heads: 8,
            norm_groups: 32,
            latent_channels: 4,
        }
    }

    /// A tiny one, as `compat/sd_fixtures.py` makes for the parity tests.
    pub fn tiny() -> Self {
        Self {
            block_out_channels: vec![32, 64],
            layers_per_block: 1,
            cross_attention_dim: 32,
            heads: 8,
            norm_groups: 32,
            latent_channels: 4,
        }
    }

    /// The configuration `UNet` reads.
    pub fn config(&self) -> UNetConfig {
        UNetConfig {
            in_channels: self.latent_channels,
            out_channels: self.latent_channels,
            block_out_channels: self.block_out_channels.clone(),
            attention_head_dim: Some(PerBlock::One(self.heads)),
            num_attention_heads: None,
            norm_num_groups: self.norm_groups,
            norm_eps: 1e-5,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
        }
    }

    /// Every weight's diffusers name and shape.
    pub fn weights(&self) -> Vec<(String, Vec<usize>)> {
        let mut w = Weights::default();
        let channels = &self.block_out_channels;
        let blocks = channels.len();
        let first = channels.first().copied().unwrap_or(0);
        let temb = 4 * first;
        w.conv("conv_in", first, self.latent_channels, 3);
        w.linear("time_embedding.linear_1", temb, first);
        w.linear("time_embedding.linear_2", temb, temb);
        let mut ch = first;
        let mut skips = vec![ch];
        for (i, &out) in channels.iter().enumerate() {
            for j in 0..self.layers_per_block {
                w.resnet(&format!("down_blocks.{i}.resnets.{j}"), ch, out, temb);
                ch = out;
                if i + 1 < blocks {
                    self.transformer(&mut w, &format!("down_blocks.{i}.attentions.{j}"), ch);
                }
                skips.push(ch);
            }
            if i + 1 < blocks {
                w.conv(&format!("down_blocks.{i}.downsamplers.0.conv"), ch, ch, 3);
                skips.push(ch);
            }
        }
        w.resnet("mid_block.resnets.0", ch, ch, temb);
        self.transformer(&mut w, "mid_block.attentions.0", ch);
        w.resnet("mid_block.resnets.1", ch, ch, temb);
        for (i, &out) in channels.iter().rev().enumerate() {
            for j in 0..=self.layers_per_block {
                let skip = skips.pop().unwrap_or(0);
                w.resnet(&format!("up_blocks.{i}.resnets.{j}"), ch + skip, out, temb);
                ch = out;
                if i > 0 {
                    self.transformer(&mut w, &format!("up_blocks.{i}.attentions.{j}"), ch);
                }
            }
            if i + 1 < blocks {
                w.conv(&format!("up_blocks.{i}.upsamplers.0.conv"), ch, ch, 3);
            }
        }
        w.norm("conv_norm_out", ch);
        w.conv("conv_out", self.latent_channels, ch, 3);
        w.0
    }

    /// A `Transformer2DModel` of one block on `ch` channels (SD 1.x: 1×1 convolution projections).
    fn transformer(&self, w: &mut Weights, p: &str, ch: usize) {
        w.norm(&format!("{p}.norm"), ch);
        w.conv(&format!("{p}.proj_in"), ch, ch, 1);
        let b = format!("{p}.transformer_blocks.0");
        for norm in ["norm1", "norm2", "norm3"] {
            w.norm(&format!("{b}.{norm}"), ch);
        }
        for (attn, context) in [("attn1", ch), ("attn2", self.cross_attention_dim)] {
            w.matrix(&format!("{b}.{attn}.to_q"), ch, ch);
            w.matrix(&format!("{b}.{attn}.to_k"), ch, context);
            w.matrix(&format!("{b}.{attn}.to_v"), ch, context);
            w.linear(&format!("{b}.{attn}.to_out.0"), ch, ch);
        }
        w.linear(&format!("{b}.ff.net.0.proj"), 8 * ch, ch);
        w.linear(&format!("{b}.ff.net.2"), ch, 4 * ch);
        w.conv(&format!("{p}.proj_out"), ch, ch, 1);
    }

    /// How many weights in all.
    pub fn parameters(&self) -> usize {
        self.weights().iter().map(|(_, s)| s.iter().product::<usize>()).sum()
    }

    /// The UNet with random weights from `seed`, on `device` (f16 there on GPUs, see
    /// `super::compute_dtype`).
    pub fn random(&self, seed: u64, device: &Device) -> Result<UNet, DiffusionError> {
        let mut rng = SplitMix(seed);
        let tensors = self
            .weights()
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let values = if shape.len() == 1 {
                    // Norms' scales 1, every bias 0.
                    let one = name.ends_with(".weight");
                    vec![half::f16::from_f32(if one { 1.0 } else { 0.0 }); n]
                } else {
                    let bound = 1.0 / ((n / shape[0].max(1)).max(1) as f32).sqrt();
                    (0..n).map(|_| half::f16::from_f32(bound * (2.0 * rng.unit() - 1.0))).collect()
                };
                (name, shape, values)
            })
            .collect();
        UNet::from_checkpoint(self.config(), &Checkpoint::from_f16(tensors, device)?)
    }
}

/// Names and shapes, in the order they are added.
#[derive(Default)]
struct Weights(Vec<(String, Vec<usize>)>);

impl Weights {
    fn add(&mut self, name: String, shape: Vec<usize>) {
        self.0.push((name, shape));
    }
    /// A matrix `[out, in]` without bias.
    fn matrix(&mut self, p: &str, out: usize, input: usize) {
        self.add(format!("{p}.weight"), vec![out, input]);
    }
    fn linear(&mut self, p: &str, out: usize, input: usize) {
        self.matrix(p, out, input);
        self.add(format!("{p}.bias"), vec![out]);
    }
    fn conv(&mut self, p: &str, out: usize, input: usize, k: usize) {
        self.add(format!("{p}.weight"), vec![out, input, k, k]);
        self.add(format!("{p}.bias"), vec![out]);
    }
    fn norm(&mut self, p: &str, ch: usize) {
        self.add(format!("{p}.weight"), vec![ch]);
        self.add(format!("{p}.bias"), vec![ch]);
    }
    /// `ResnetBlock2D` from `input` to `out` channels, with the time embedding's projection.
    fn resnet(&mut self, p: &str, input: usize, out: usize, temb: usize) {
        self.norm(&format!("{p}.norm1"), input);
        self.conv(&format!("{p}.conv1"), out, input, 3);
        self.linear(&format!("{p}.time_emb_proj"), out, temb);
        self.norm(&format!("{p}.norm2"), out);
        self.conv(&format!("{p}.conv2"), out, out, 3);
        if input != out {
            self.conv(&format!("{p}.conv_shortcut"), out, input, 1);
        }
    }
}

/// splitmix64: fast, seedable, good enough for random weights.
struct SplitMix(u64);

impl SplitMix {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::weights::Checkpoint;
    use burn::prelude::*;
    use std::path::PathBuf;

    #[test]
    fn sd15_has_diffusers_parameter_count() {
        // `sum(p.numel() for p in UNet2DConditionModel(cross_attention_dim=768).parameters())`.
        assert_eq!(UNetShape::sd15().parameters(), 859_520_964);
    }

    #[test]
    fn tiny_shape_names_the_fixtures_weights() {
        // compat/sd_fixtures.py's tiny UNet has the same hyper-parameters: the same names and shapes.
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-sd/unet");
        let ck = Checkpoint::open(&dir, &Device::flex()).expect("tiny UNet");
        let ours = UNetShape::tiny().weights();
        for (name, shape) in &ours {
            assert_eq!(ck.shape(name), Some(shape.as_slice()), "{name}");
        }
        assert_eq!(ours.len(), ck.len(), "the fixture has weights we do not make");
    }

    #[test]
    fn random_tiny_unet_runs() {
        let device = Device::flex();
        let unet = UNetShape::tiny().random(7, &device).expect("random UNet");
        let sample = Tensor::<4>::random([1, 4, 8, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let context = Tensor::<3>::random([1, 5, 32], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let out = unet.forward(sample, 10.0, &context);
        assert_eq!(out.dims(), [1, 4, 8, 8]);
        let values = out.into_data().try_to_vec::<f32>().expect("f32");
        assert!(values.iter().all(|v| v.is_finite()));
        assert!(values.iter().any(|v| *v != 0.0));
    }
}

//! Text (and an optional source image) to images: CLIP encodes the prompt and the negative
//! prompt, the sampler walks the UNet's noise predictions with classifier-free guidance, the VAE
//! decodes the latents. Deterministic for a given seed.

use std::path::Path;

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::clip::ClipTextEncoder;
use super::sampler::{NoiseSchedule, SamplerKind, Schedule};
use super::tokenizer::ClipTokenizer;
use super::unet::UNet;
use super::vae::Vae;
use super::DiffusionError;

/// One generation.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub prompt: String,
    pub negative_prompt: String,
    pub width: usize,
    pub height: usize,
    pub steps: usize,
    pub cfg_scale: f64,
    pub sampler: SamplerKind,
    pub karras: bool,
    pub seed: u64,
    /// 1 = CLIP's last layer.
    pub clip_skip: usize,
    /// img2img: the source image and how much of it to replace (0: keep, 1: all).
    pub source: Option<(RgbImage, f64)>,
}

/// An 8-bit RGB image, rows top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// A loaded diffusers checkout.
pub struct ImagePipeline {
    tokenizer: ClipTokenizer,
    text_encoder: ClipTextEncoder,
    unet: UNet,
    vae: Vae,
    noise: NoiseSchedule,
    device: Device,
}

/// Unit Gaussian noise of `shape` from `rng` (Box–Muller).
pub fn gaussian(rng: &mut StdRng, shape: [usize; 4], device: &Device) -> Tensor<4> {
    let n = shape.iter().product::<usize>();
    let mut values = Vec::with_capacity(n + 1);
    while values.len() < n {
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        values.push((r * angle.cos()) as f32);
        values.push((r * angle.sin()) as f32);
    }
    values.truncate(n);
    Tensor::from_data(TensorData::new(values, shape), device)
}

impl ImagePipeline {
    /// Loads `tokenizer/merges.txt`, `text_encoder/`, `unet/` and `vae/` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, DiffusionError> {
        let tokenizer = ClipTokenizer::from_merges_file(&dir.join("tokenizer").join("merges.txt"))?;
        let text_encoder = ClipTextEncoder::load(&dir.join("text_encoder"), device)?;
        if text_encoder.vocab_size() != tokenizer.vocab_size() {
            return Err(DiffusionError::Invalid(format!(
                "the text encoder has {} tokens, the tokenizer {}",
                text_encoder.vocab_size(),
                tokenizer.vocab_size()
            )));
        }
        let unet = UNet::load(&dir.join("unet"), device)?;
        let vae = Vae::load(&dir.join("vae"), device)?;
        if vae.latent_channels() != unet.in_channels() {
            return Err(DiffusionError::Invalid("the VAE's latents do not fit the UNet".into()));
        }
        Ok(Self {
            tokenizer,
            text_encoder,
            unet,
            vae,
            noise: NoiseSchedule::stable_diffusion(),
            device: device.clone(),
        })
    }

    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }
    pub fn text_encoder(&self) -> &ClipTextEncoder {
        &self.text_encoder
    }
    pub fn unet(&self) -> &UNet {
        &self.unet
    }
    pub fn vae(&self) -> &Vae {
        &self.vae
    }
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Image sizes must be multiples of this (the latent must survive the UNet's halvings).
    pub fn size_multiple(&self) -> usize {
        1 << (self.vae.downsamplings() + self.unet.downsamplings())
    }

    /// `[negative; positive]` text embeddings, `[2, 77, dim]`.
    pub fn encode_prompts(&self, prompt: &str, negative: &str, clip_skip: usize) -> Result<Tensor<3>, DiffusionError> {
        let (positive, _) = self.tokenizer.encode_padded(prompt);
        let (negative, _) = self.tokenizer.encode_padded(negative);
        self.text_encoder.forward(&[negative, positive], clip_skip)
    }

    fn check(&self, req: &ImageRequest) -> Result<(), DiffusionError> {
        let m = self.size_multiple();
        if req.width == 0 || req.height == 0 || !req.width.is_multiple_of(m) || !req.height.is_multiple_of(m) {
            return Err(DiffusionError::Invalid(format!(
                "width and height must be positive multiples of {m}"
            )));
        }
        if req.steps == 0 {
            return Err(DiffusionError::Invalid("steps must be at least 1".into()));
        }
        Ok(())
    }

    /// Generates one image. `progress(done, total)` is called after each step.
    pub fn generate(&self, req: &ImageRequest, progress: &mut dyn FnMut(usize, usize)) -> Result<RgbImage, DiffusionError> {
        self.check(req)?;
        let scale = 1 << self.vae.downsamplings();
        let shape = [1, self.vae.latent_channels(), req.height / scale, req.width / scale];
        let mut rng = StdRng::seed_from_u64(req.seed);
        let schedule = Schedule::new(req.sampler, req.steps, req.karras, &self.noise);
        let context = self.encode_prompts(&req.prompt, &req.negative_prompt, req.clip_skip)?;
        let noise = gaussian(&mut rng, shape, &self.device);
        let (start, x) = match &req.source {
            None => (0, schedule.initial(noise)),
            Some((image, strength)) => {
                if image.width != req.width || image.height != req.height {
                    return Err(DiffusionError::Invalid("the source image must have the requested size".into()));
                }
                // diffusers: the last ⌊steps · strength⌋ steps run.
                let kept = ((req.steps as f64 * strength.clamp(0.0, 1.0)) as usize).min(req.steps);
                let start = req.steps - kept;
                let (mean, _) = self.vae.encode(image_tensor(image, &self.device))?;
                let clean = mean.mul_scalar(self.vae.scaling_factor());
                if kept == 0 {
                    return Ok(self.decode(clean));
                }
                (start, schedule.noised(clean, noise, start))
            }
        };
        let total = schedule.steps() - start;
        let latents = self.sample(&schedule, x, start, &context, req.cfg_scale, &mut rng, &mut |done| {
            progress(done - start, total)
        });
        Ok(self.decode(latents))
    }

    /// The sampling loop with classifier-free guidance (skipped when `cfg_scale` ≤ 1, as in
    /// diffusers). `context` is `[negative; positive]`.
    #[allow(clippy::too_many_arguments)]
    pub fn sample(
        &self,
        schedule: &Schedule,
        x: Tensor<4>,
        start: usize,
        context: &Tensor<3>,
        cfg_scale: f64,
        rng: &mut StdRng,
        progress: &mut dyn FnMut(usize),
    ) -> Tensor<4> {
        let guided = cfg_scale > 1.0;
        let positive_only = context.clone().narrow(0, 1, 1);
        let shape = x.dims();
        let device = self.device.clone();
        let mut denoise = |input: Tensor<4>, t: f64| -> Tensor<4> {
            if guided {
                let both = self.unet.forward(Tensor::cat(vec![input.clone(), input], 0), t as f32, context);
                let mut halves = both.chunk(2, 0);
                let (Some(text), Some(uncond)) = (halves.pop(), halves.pop()) else {
                    return Tensor::zeros(shape, &device);
                };
                uncond.clone() + (text - uncond).mul_scalar(cfg_scale)
            } else {
                self.unet.forward(input, t as f32, &positive_only)
            }
        };
        let device = self.device.clone();
        let mut fresh = || gaussian(rng, shape, &device);
        schedule.run(x, start, &mut denoise, &mut fresh, progress)
    }

    /// Latents to `[batch, 3, h, w]` in [0, 1].
    pub fn decode_to_unit(&self, latents: Tensor<4>) -> Tensor<4> {
        let image = self.vae.decode(latents.div_scalar(self.vae.scaling_factor()));
        image.div_scalar(2.0).add_scalar(0.5).clamp(0.0, 1.0)
    }

    fn decode(&self, latents: Tensor<4>) -> RgbImage {
        let unit = self.decode_to_unit(latents);
        let [_, _, h, w] = unit.dims();
        let values: Vec<f32> = unit.into_data().try_to_vec::<f32>().unwrap_or_default();
        let mut pixels = vec![0u8; h * w * 3];
        for c in 0..3 {
            for i in 0..h * w {
                pixels[i * 3 + c] = (values.get(c * h * w + i).copied().unwrap_or(0.0) * 255.0).round() as u8;
            }
        }
        RgbImage {
            width: w,
            height: h,
            pixels,
        }
    }
}

/// An RGB image as `[1, 3, h, w]` in [-1, 1].
pub fn image_tensor(image: &RgbImage, device: &Device) -> Tensor<4> {
    let (h, w) = (image.height, image.width);
    let mut values = vec![0f32; 3 * h * w];
    for (i, px) in image.pixels.chunks_exact(3).enumerate() {
        for c in 0..3 {
            values[c * h * w + i] = f32::from(px[c]) / 127.5 - 1.0;
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 3, h, w]), device)
}

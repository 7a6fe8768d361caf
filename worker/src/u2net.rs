//! U²-Net, the salient-object network rembg runs for background removal (`strip_background`),
//! loaded from a safetensors file with the names of U²-Net's PyTorch state dict
//! (`stage1.rebnconvin.conv_s1.weight`, `….bn_s1.running_mean`, `side1.weight`, `outconv.weight`;
//! `u2net` and the small `u2netp` share them, channel counts are read from the weights). Batch
//! norms are folded into their convolutions at load. The mask is computed at 320×320 (rembg's
//! size), stretched to [0, 1] and resized back to the image, where it becomes the alpha channel.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};

use crate::diffusion::layers::Conv2d;
use crate::diffusion::pipeline::RgbImage;
use crate::diffusion::weights::Checkpoint;
use crate::diffusion::DiffusionError;

/// The side of the square the mask is computed at.
pub const MASK_SIZE: usize = 320;
const BN_EPS: f32 = 1e-5;
/// ImageNet's mean and deviation, which rembg normalizes with.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A 3×3 convolution, its batch norm folded in, and a ReLU.
struct ConvBnRelu {
    weight: Tensor<4>,
    bias: Tensor<1>,
    dilation: usize,
}

impl ConvBnRelu {
    fn load(ck: &Checkpoint, prefix: &str, dilation: usize, device: &Device) -> Result<Self, DiffusionError> {
        let get = |name: &str| ck.values(&format!("{prefix}.{name}"));
        let (mut w, shape) = get("conv_s1.weight")?;
        let (b, _) = get("conv_s1.bias")?;
        let (gamma, _) = get("bn_s1.weight")?;
        let (beta, _) = get("bn_s1.bias")?;
        let (mean, _) = get("bn_s1.running_mean")?;
        let (var, _) = get("bn_s1.running_var")?;
        let out = shape[0];
        if [b.len(), gamma.len(), beta.len(), mean.len(), var.len()].iter().any(|&n| n != out) {
            return Err(DiffusionError::Invalid(format!("{prefix}: batch norm of the wrong size")));
        }
        let per = w.len() / out.max(1);
        let mut bias = vec![0f32; out];
        for o in 0..out {
            let scale = gamma[o] / (var[o] + BN_EPS).sqrt();
            w[o * per..(o + 1) * per].iter_mut().for_each(|v| *v *= scale);
            bias[o] = (b[o] - mean[o]) * scale + beta[o];
        }
        Ok(Self {
            weight: Tensor::from_data(TensorData::new(w, shape), device),
            bias: Tensor::from_data(TensorData::new(bias, [out]), device),
            dilation,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let d = self.dilation;
        let options = ConvOptions::new_with_padding([1, 1], [(d, d); 2], [d, d], 1);
        relu(conv2d(x, self.weight.clone(), Some(self.bias.clone()), options))
    }
}

/// 2×2 max pooling, rounding odd sides up (PyTorch's `ceil_mode=True`).
fn pool(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(x, MaxPoolOptions::new([2, 2]).with_ceil_mode(true))
}

/// Source rows and weights of a bilinear resize of `inp` samples to `out`
/// (`align_corners=False`, as `F.interpolate(mode="bilinear")`).
fn bilinear_axis(inp: usize, out: usize) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let scale = inp as f32 / out as f32;
    let (mut lo, mut hi, mut lambda) = (vec![], vec![], vec![]);
    for i in 0..out {
        let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(inp - 1);
        let i1 = (i0 + 1).min(inp - 1);
        lo.push(i0 as i64);
        hi.push(i1 as i64);
        lambda.push(src - i0 as f32);
    }
    (lo, hi, lambda)
}

/// `x` resized bilinearly to `height` × `width`.
pub fn resize_bilinear(x: Tensor<4>, height: usize, width: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let device = x.device();
    let along = |x: Tensor<4>, dim: usize, inp: usize, out: usize| -> Tensor<4> {
        if inp == out {
            return x;
        }
        let (lo, hi, lambda) = bilinear_axis(inp, out);
        let index = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [out]), &device);
        let mut shape = [1, 1, 1, 1];
        shape[dim] = out;
        let lambda = Tensor::<1>::from_data(TensorData::new(lambda, [out]), &device).reshape(shape);
        let a = x.clone().select(dim, index(lo));
        let b = x.select(dim, index(hi));
        a.clone() + (b - a) * lambda
    };
    let x = along(x, 2, h, height);
    along(x, 3, w, width)
}

fn resize_like(x: Tensor<4>, like: &Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = like.dims();
    resize_bilinear(x, h, w)
}

/// A residual U-block: an input convolution, a small U-Net over its output, their sum. RSU-L
/// pools between its first L−1 levels and dilates its deepest convolution by 2; RSU-4F does not
/// pool and dilates by 1, 2, 4, 8 instead.
struct Rsu {
    input: ConvBnRelu,
    /// Encoder convolutions, shallowest first.
    encoder: Vec<ConvBnRelu>,
    /// Decoder convolutions, deepest first.
    decoder: Vec<ConvBnRelu>,
    pooled: bool,
}

impl Rsu {
    fn load(ck: &Checkpoint, prefix: &str, pooled: bool, device: &Device) -> Result<Self, DiffusionError> {
        let levels = (1..)
            .take_while(|k| ck.contains(&format!("{prefix}.rebnconv{k}.conv_s1.weight")))
            .count();
        if levels < 3 {
            return Err(DiffusionError::Missing(format!("{prefix}.rebnconv1..3")));
        }
        let dilation = |k: usize| match (pooled, k == levels) {
            (true, true) => 2,
            (true, false) => 1,
            (false, _) => 1 << (k - 1),
        };
        let encoder = (1..=levels)
            .map(|k| ConvBnRelu::load(ck, &format!("{prefix}.rebnconv{k}"), dilation(k), device))
            .collect::<Result<_, _>>()?;
        let decoder = (1..levels)
            .rev()
            .map(|k| ConvBnRelu::load(ck, &format!("{prefix}.rebnconv{k}d"), if pooled { 1 } else { dilation(k) }, device))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            input: ConvBnRelu::load(ck, &format!("{prefix}.rebnconvin"), 1, device)?,
            encoder,
            decoder,
            pooled,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let levels = self.encoder.len();
        let hxin = self.input.forward(x);
        let mut skips = Vec::with_capacity(levels);
        let mut hx = hxin.clone();
        for (k, conv) in self.encoder.iter().enumerate() {
            hx = conv.forward(hx);
            if k + 1 == levels {
                break;
            }
            skips.push(hx.clone());
            if self.pooled && k + 2 < levels {
                hx = pool(hx);
            }
        }
        let mut d = hx;
        for (j, conv) in self.decoder.iter().enumerate() {
            let Some(skip) = skips.pop() else { break };
            if self.pooled && j > 0 {
                d = resize_like(d, &skip);
            }
            d = conv.forward(Tensor::cat(vec![d, skip], 1));
        }
        d + hxin
    }
}

/// U²-Net: six RSU stages down, five up, a side output per stage, fused.
pub struct U2Net {
    encoder: Vec<Rsu>,
    /// `stage5d` … `stage1d`.
    decoder: Vec<Rsu>,
    /// `side1` … `side6`.
    sides: Vec<Conv2d>,
    outconv: Conv2d,
    device: Device,
}

impl U2Net {
    /// Loads the network from one safetensors file, in f32 on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, DiffusionError> {
        let ck = Checkpoint::open_files(&[path.to_path_buf()], device)?;
        Self::from_checkpoint(&ck, device)
    }

    pub fn from_checkpoint(ck: &Checkpoint, device: &Device) -> Result<Self, DiffusionError> {
        // Stages 5, 6 and 5d are RSU-4F; the others pool.
        let stage = |name: &str| Rsu::load(ck, name, !matches!(name, "stage5" | "stage6" | "stage5d"), device);
        Ok(Self {
            encoder: ["stage1", "stage2", "stage3", "stage4", "stage5", "stage6"]
                .iter()
                .map(|s| stage(s))
                .collect::<Result<_, _>>()?,
            decoder: ["stage5d", "stage4d", "stage3d", "stage2d", "stage1d"]
                .iter()
                .map(|s| stage(s))
                .collect::<Result<_, _>>()?,
            sides: (1..=6)
                .map(|i| Conv2d::load(ck, &format!("side{i}"), 1, 1))
                .collect::<Result<_, _>>()?,
            outconv: Conv2d::load(ck, "outconv", 1, 0)?,
            device: device.clone(),
        })
    }

    /// The fused saliency map `[b, 1, h, w]` in (0, 1) of a normalized `[b, 3, h, w]` input.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut skips = Vec::with_capacity(6);
        let mut hx = x;
        for (i, stage) in self.encoder.iter().enumerate() {
            if i > 0 {
                hx = pool(hx);
            }
            hx = stage.forward(hx);
            skips.push(hx.clone());
        }
        // skips = hx1 … hx6; the decoder starts from hx6.
        let mut decoded = vec![skips[5].clone()];
        let mut d = skips[5].clone();
        for (j, stage) in self.decoder.iter().enumerate() {
            let skip = skips[4 - j].clone();
            d = stage.forward(Tensor::cat(vec![resize_like(d, &skip), skip], 1));
            decoded.push(d.clone());
        }
        // decoded = hx6, hx5d, hx4d, hx3d, hx2d, hx1d: side i reads the stage-i output.
        let d1 = self.sides[0].forward(decoded[5].clone());
        let mut sides = vec![d1.clone()];
        for i in 1..6 {
            sides.push(resize_like(self.sides[i].forward(decoded[5 - i].clone()), &d1));
        }
        sigmoid(self.outconv.forward(Tensor::cat(sides, 1)))
    }

    /// The network's input for `image` at `size` × `size`: resized (Lanczos), divided by its
    /// largest value, normalized with ImageNet's mean and deviation (rembg's preprocessing).
    pub fn input(&self, image: &RgbImage, size: usize) -> Result<Tensor<4>, String> {
        let buffer = image::RgbImage::from_raw(image.width as u32, image.height as u32, image.pixels.clone())
            .ok_or("image buffer has the wrong size")?;
        let resized = image::imageops::resize(&buffer, size as u32, size as u32, image::imageops::FilterType::Lanczos3);
        let max = f32::from(resized.as_raw().iter().copied().max().unwrap_or(0)).max(1.0);
        let mut values = vec![0f32; 3 * size * size];
        for (i, p) in resized.as_raw().iter().enumerate() {
            let c = i % 3;
            values[c * size * size + i / 3] = (f32::from(*p) / max - MEAN[c]) / STD[c];
        }
        Ok(Tensor::from_data(TensorData::new(values, [1, 3, size, size]), &self.device))
    }

    /// The foreground mask of `image` at its own size, 0 (background) to 255, computed at
    /// `size` × `size`: the saliency map stretched to [0, 1] and resized back (Lanczos).
    pub fn mask(&self, image: &RgbImage, size: usize) -> Result<Vec<u8>, String> {
        let map: Vec<f32> = self
            .forward(self.input(image, size)?)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| format!("the mask: {e:?}"))?;
        let (lo, hi) = map.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let span = (hi - lo).max(f32::EPSILON);
        // Truncated to 8 bits, as rembg's `astype("uint8")`.
        let small: Vec<u8> = map.iter().map(|&v| ((v - lo) / span * 255.0) as u8).collect();
        let small = image::GrayImage::from_raw(size as u32, size as u32, small).ok_or("mask buffer has the wrong size")?;
        let full = image::imageops::resize(
            &small,
            image.width as u32,
            image.height as u32,
            image::imageops::FilterType::Lanczos3,
        );
        Ok(full.into_raw())
    }

    /// `image` with its background made transparent, as rembg's plain cutout (PIL's composite of
    /// the image over transparent black through the mask): RGBA, colour × mask, the mask as alpha.
    pub fn strip_background(&self, image: &RgbImage) -> Result<image::RgbaImage, String> {
        cutout(image, &self.mask(image, MASK_SIZE)?)
    }
}

/// `image` over transparent black through `mask` (0..=255 per pixel).
pub fn cutout(image: &RgbImage, mask: &[u8]) -> Result<image::RgbaImage, String> {
    let blend = |c: u8, a: u8| ((u32::from(c) * u32::from(a) + 127) / 255) as u8;
    let pixels: Vec<u8> = image
        .pixels
        .chunks_exact(3)
        .zip(mask)
        .flat_map(|(p, &a)| [blend(p[0], a), blend(p[1], a), blend(p[2], a), a])
        .collect();
    image::RgbaImage::from_raw(image.width as u32, image.height as u32, pixels).ok_or_else(|| "RGBA buffer has the wrong size".into())
}

//! The RRDBNet upscaler of ESRGAN / Real-ESRGAN (`RealESRGAN_x4plus`, `RealESRGAN_x2plus`,
//! `RealESRGAN_x4plus_anime_6B`, `NMKD_Siax`, `4x_AnimeSharp` share it), loaded from a
//! safetensors file with the names of Real-ESRGAN's PyTorch state dict (`conv_first`,
//! `body.N.rdbK.convJ`, `conv_body`, `conv_up1`, `conv_up2`, `conv_hr`, `conv_last`; an optional
//! `params_ema.` prefix). Its shape (features, blocks, scale) is read from the weights.
//! Images are upscaled tile by tile, each tile with a margin of context, so memory stays bounded.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::leaky_relu;

use crate::diffusion::layers::{upsample2x, Conv2d};
use crate::diffusion::pipeline::RgbImage;
use crate::diffusion::weights::Checkpoint;
use crate::diffusion::DiffusionError;

/// Slope of the network's leaky ReLUs.
const SLOPE: f64 = 0.2;
/// Weight of a dense block's output against its input.
const RESIDUAL: f64 = 0.2;

/// Input pixels per tile side, and context around each tile (Real-ESRGAN's defaults are 0 or
/// 400 with 10; smaller tiles keep a CPU's activations under a few hundred megabytes).
pub const TILE: usize = 128;
pub const TILE_PAD: usize = 10;

/// A residual dense block: five convolutions, each seeing the input and every earlier output.
struct DenseBlock {
    convs: Vec<Conv2d>,
}

impl DenseBlock {
    fn load(ck: &Checkpoint, prefix: &str) -> Result<Self, DiffusionError> {
        let convs = (1..=5)
            .map(|j| Conv2d::load(ck, &format!("{prefix}.conv{j}"), 1, 1))
            .collect::<Result<_, _>>()?;
        Ok(Self { convs })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut seen = vec![x.clone()];
        let last = self.convs.len() - 1;
        for conv in &self.convs[..last] {
            let out = leaky_relu(conv.forward(Tensor::cat(seen.clone(), 1)), SLOPE);
            seen.push(out);
        }
        self.convs[last].forward(Tensor::cat(seen, 1)) * RESIDUAL + x
    }
}

/// Residual-in-residual dense block: three dense blocks and a scaled skip.
struct Rrdb {
    blocks: [DenseBlock; 3],
}

impl Rrdb {
    fn load(ck: &Checkpoint, prefix: &str) -> Result<Self, DiffusionError> {
        Ok(Self {
            blocks: [
                DenseBlock::load(ck, &format!("{prefix}.rdb1"))?,
                DenseBlock::load(ck, &format!("{prefix}.rdb2"))?,
                DenseBlock::load(ck, &format!("{prefix}.rdb3"))?,
            ],
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut out = x.clone();
        for block in &self.blocks {
            out = block.forward(out);
        }
        out * RESIDUAL + x
    }
}

/// An RRDBNet upscaler.
pub struct RrdbNet {
    conv_first: Conv2d,
    body: Vec<Rrdb>,
    conv_body: Conv2d,
    conv_up1: Conv2d,
    conv_up2: Conv2d,
    conv_hr: Conv2d,
    conv_last: Conv2d,
    /// 4, 2 or 1 (the input is pixel-unshuffled by 4 / scale first).
    scale: usize,
    device: Device,
}

/// `[b, c, h, w]` → `[b, c·r², h/r, w/r]` (PyTorch's `pixel_unshuffle`).
pub fn pixel_unshuffle(x: Tensor<4>, r: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b * c, h / r, r, w / r, r])
        .permute([0, 2, 4, 1, 3])
        .reshape([b, c * r * r, h / r, w / r])
}

impl RrdbNet {
    /// Loads the network from one safetensors file, in f32 on `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, DiffusionError> {
        let ck = Checkpoint::open_files(&[path.to_path_buf()], device)?.with_prefix("params_ema.");
        Self::from_checkpoint(&ck, device)
    }

    /// The network in `ck` (names with or without the `params_ema.` prefix when `ck` has it).
    pub fn from_checkpoint(ck: &Checkpoint, device: &Device) -> Result<Self, DiffusionError> {
        let first = "conv_first.weight";
        let in_channels = ck
            .shape(first)
            .and_then(|s| s.get(1).copied())
            .ok_or_else(|| DiffusionError::Missing(first.into()))?;
        let scale = match in_channels {
            3 => 4,
            12 => 2,
            48 => 1,
            n => {
                return Err(DiffusionError::Invalid(format!(
                    "conv_first takes {n} channels: not an RRDBNet of scale 1, 2 or 4"
                )))
            }
        };
        let blocks = (0..).take_while(|i| ck.contains(&format!("body.{i}.rdb1.conv1.weight"))).count();
        if blocks == 0 {
            return Err(DiffusionError::Missing("body.0.rdb1.conv1.weight".into()));
        }
        Ok(Self {
            conv_first: Conv2d::load(ck, "conv_first", 1, 1)?,
            body: (0..blocks)
                .map(|i| Rrdb::load(ck, &format!("body.{i}")))
                .collect::<Result<_, _>>()?,
            conv_body: Conv2d::load(ck, "conv_body", 1, 1)?,
            conv_up1: Conv2d::load(ck, "conv_up1", 1, 1)?,
            conv_up2: Conv2d::load(ck, "conv_up2", 1, 1)?,
            conv_hr: Conv2d::load(ck, "conv_hr", 1, 1)?,
            conv_last: Conv2d::load(ck, "conv_last", 1, 1)?,
            scale,
            device: device.clone(),
        })
    }

    /// How many times wider and taller the output is.
    pub fn scale(&self) -> usize {
        self.scale
    }

    /// The network on `[b, 3, h, w]` in [0, 1] (h and w multiples of 4 / scale); the output is
    /// not clamped.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match self.scale {
            4 => x,
            s => pixel_unshuffle(x, 4 / s),
        };
        let feat = self.conv_first.forward(x);
        let mut body = feat.clone();
        for block in &self.body {
            body = block.forward(body);
        }
        let feat = feat + self.conv_body.forward(body);
        let feat = leaky_relu(self.conv_up1.forward(upsample2x(feat)), SLOPE);
        let feat = leaky_relu(self.conv_up2.forward(upsample2x(feat)), SLOPE);
        self.conv_last.forward(leaky_relu(self.conv_hr.forward(feat), SLOPE))
    }

    /// The network's output on a region of `image` (`x0..x1`, `y0..y1`), as `[3, h·s, w·s]`
    /// values. A region whose sides are not multiples of 4 / scale is padded by repeating its
    /// edge, and the padding cropped from the output.
    fn run_region(&self, image: &RgbImage, (x0, x1): (usize, usize), (y0, y1): (usize, usize)) -> Result<(Vec<f32>, usize, usize), String> {
        let unit = 4 / self.scale;
        let (w, h) = (x1 - x0, y1 - y0);
        let (pw, ph) = (w.div_ceil(unit) * unit, h.div_ceil(unit) * unit);
        let mut input = vec![0f32; 3 * pw * ph];
        for c in 0..3 {
            for y in 0..ph {
                for x in 0..pw {
                    let (sx, sy) = (x0 + x.min(w - 1), y0 + y.min(h - 1));
                    input[(c * ph + y) * pw + x] = f32::from(image.pixels[(sy * image.width + sx) * 3 + c]) / 255.0;
                }
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, ph, pw]), &self.device);
        let out: Vec<f32> = self
            .forward(x)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| format!("the upscaler's output: {e:?}"))?;
        let s = self.scale;
        let (ow, oh) = (w * s, h * s);
        let mut cropped = Vec::with_capacity(3 * ow * oh);
        for c in 0..3 {
            for y in 0..oh {
                let row = (c * ph * s + y) * pw * s;
                cropped.extend_from_slice(&out[row..row + ow]);
            }
        }
        Ok((cropped, ow, oh))
    }

    /// The network's output for the whole image in `[3, H·s, W·s]` values, run tile by tile:
    /// `tile` input pixels a side, each with `pad` pixels of context that are cropped away.
    pub fn upscale_values(&self, image: &RgbImage, tile: usize, pad: usize) -> Result<Vec<f32>, String> {
        let s = self.scale;
        let (ow, oh) = (image.width * s, image.height * s);
        let mut out = vec![0f32; 3 * ow * oh];
        let tile = tile.max(1);
        for ty in (0..image.height).step_by(tile) {
            for tx in (0..image.width).step_by(tile) {
                let (tx1, ty1) = ((tx + tile).min(image.width), (ty + tile).min(image.height));
                let (px0, py0) = (tx.saturating_sub(pad), ty.saturating_sub(pad));
                let (px1, py1) = ((tx1 + pad).min(image.width), (ty1 + pad).min(image.height));
                let (values, rw, rh) = self.run_region(image, (px0, px1), (py0, py1))?;
                // The tile's own pixels inside the padded region's output.
                let (ox, oy) = ((tx - px0) * s, (ty - py0) * s);
                let (tw, th) = ((tx1 - tx) * s, (ty1 - ty) * s);
                for c in 0..3 {
                    for y in 0..th {
                        let src = (c * rh + oy + y) * rw + ox;
                        let dst = (c * oh + ty * s + y) * ow + tx * s;
                        out[dst..dst + tw].copy_from_slice(&values[src..src + tw]);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The upscaled image: the network's output clamped to [0, 1] and rounded to 8 bits, as
    /// Real-ESRGAN does.
    pub fn upscale(&self, image: &RgbImage) -> Result<RgbImage, String> {
        let s = self.scale;
        let (ow, oh) = (image.width * s, image.height * s);
        let values = self.upscale_values(image, TILE, TILE_PAD)?;
        let plane = ow * oh;
        let mut pixels = vec![0u8; 3 * plane];
        for (i, p) in pixels.iter_mut().enumerate() {
            let v = values[(i % 3) * plane + i / 3];
            *p = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
        Ok(RgbImage {
            width: ow,
            height: oh,
            pixels,
        })
    }
}

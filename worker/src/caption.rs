//! The `caption` form: an image described in a sentence by BLIP (`blip`), as the public horde's
//! alchemists answer it. The image is resized to the model's square (bicubic, as BLIP's image
//! processor), scaled to [0, 1] and normalized with CLIP's mean and deviation; the caption is
//! BLIP's greedy decoding, detokenized by the checkout's `tokenizer.json` without its special
//! tokens.

use std::path::Path;

use burn::prelude::*;
use tokenizers::Tokenizer;

use crate::blip::Blip;
use crate::diffusion::pipeline::RgbImage;
use crate::diffusion::DiffusionError;

/// Most tokens of a caption.
pub const MAX_CAPTION_TOKENS: usize = 30;
/// CLIP's mean and deviation, which BLIP's image processor normalizes with.
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// A BLIP model and its tokenizer.
pub struct Captioner {
    model: Blip,
    tokenizer: Tokenizer,
    device: Device,
}

impl Captioner {
    /// Loads a BLIP checkout directory: `config.json`, `*.safetensors`, `tokenizer.json`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, DiffusionError> {
        let model = Blip::load(dir, device)?;
        let path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&path).map_err(|e| DiffusionError::Invalid(format!("{}: {e}", path.display())))?;
        Ok(Self {
            model,
            tokenizer,
            device: device.clone(),
        })
    }

    pub fn model(&self) -> &Blip {
        &self.model
    }

    /// The caption of `image`.
    pub fn caption(&self, image: &RgbImage) -> Result<String, String> {
        let size = self.model.image_size();
        let pixels = Tensor::<4>::from_data(TensorData::new(normalized_pixels(image, size)?, [1, 3, size, size]), &self.device)
            .cast(self.model_dtype());
        let embeds = self.model.encode_image(pixels).map_err(|e| e.to_string())?;
        let ids = self.model.greedy(&embeds, MAX_CAPTION_TOKENS).map_err(|e| e.to_string())?;
        let text = self
            .tokenizer
            .decode(&ids, true)
            .map_err(|e| format!("the caption cannot be detokenized: {e}"))?;
        Ok(text.trim().to_string())
    }

    fn model_dtype(&self) -> burn::tensor::FloatDType {
        crate::diffusion::compute_dtype(&self.device)
    }
}

/// `image` resized to `size` × `size` (bicubic) as normalized planar RGB `[3, size, size]`.
pub fn normalized_pixels(image: &RgbImage, size: usize) -> Result<Vec<f32>, String> {
    let buffer = image::RgbImage::from_raw(image.width as u32, image.height as u32, image.pixels.clone())
        .ok_or("the image's pixels do not match its size")?;
    let resized = image::imageops::resize(&buffer, size as u32, size as u32, image::imageops::FilterType::CatmullRom);
    let mut out = vec![0f32; 3 * size * size];
    for (i, p) in resized.pixels().enumerate() {
        for c in 0..3 {
            out[c * size * size + i] = (f32::from(p[c]) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    Ok(out)
}

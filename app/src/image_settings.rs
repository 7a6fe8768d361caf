//! What the image studio asks for, kept in the browser, and the horde request it makes.

use horde_protocol::image::{GenerateImageRequest, ImageParamsInput};
use serde::{Deserialize, Serialize};

/// Size presets: (label, width, height).
pub const SIZES: [(&str, i64, i64); 5] = [
    ("Square 512", 512, 512),
    ("Portrait 512×768", 512, 768),
    ("Landscape 768×512", 768, 512),
    ("Square 1024 (SDXL)", 1024, 1024),
    ("Wide 1216×832 (SDXL)", 1216, 832),
];

/// Samplers the image workers know.
pub const SAMPLERS: [&str; 6] = ["k_euler_a", "k_euler", "k_dpmpp_2m", "k_dpmpp_sde", "k_heun", "DDIM"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageSettings {
    pub prompt: String,
    pub negative: String,
    /// Empty: any model.
    pub model: String,
    pub width: i64,
    pub height: i64,
    pub steps: i64,
    pub sampler: String,
    pub cfg_scale: f64,
    /// Empty: random.
    pub seed: String,
    pub n: i64,
    pub nsfw: bool,
    pub censor_nsfw: bool,
    /// Shared with the horde's ratings (rating them earns kudos).
    pub shared: bool,
    /// img2img: how much of the source image to change.
    pub denoising_strength: f64,
}

impl Default for ImageSettings {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative: String::new(),
            model: String::new(),
            width: 512,
            height: 512,
            steps: 30,
            sampler: SAMPLERS[0].into(),
            cfg_scale: 7.5,
            seed: String::new(),
            n: 1,
            nsfw: false,
            censor_nsfw: true,
            shared: false,
            denoising_strength: 0.6,
        }
    }
}

impl ImageSettings {
    /// The horde request. The negative prompt follows `###`, the horde's convention; a source
    /// image (base64) makes it img2img.
    pub fn request(&self, source_image: Option<String>) -> GenerateImageRequest {
        let prompt = if self.negative.trim().is_empty() {
            self.prompt.trim().to_string()
        } else {
            format!("{} ### {}", self.prompt.trim(), self.negative.trim())
        };
        let img2img = source_image.is_some();
        GenerateImageRequest {
            prompt: Some(prompt),
            params: Some(ImageParamsInput {
                width: Some(self.width),
                height: Some(self.height),
                steps: Some(self.steps),
                sampler_name: Some(self.sampler.clone()),
                cfg_scale: Some(self.cfg_scale),
                seed: (!self.seed.trim().is_empty()).then(|| self.seed.trim().to_string()),
                n: Some(self.n),
                denoising_strength: img2img.then_some(self.denoising_strength),
                ..ImageParamsInput::default()
            }),
            models: (!self.model.is_empty()).then(|| vec![self.model.clone()]),
            nsfw: Some(self.nsfw),
            censor_nsfw: Some(self.censor_nsfw),
            shared: Some(self.shared),
            source_image,
            source_processing: img2img.then(|| "img2img".to_string()),
            r2: Some(true),
            ..GenerateImageRequest::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_every_choice() {
        let s = ImageSettings {
            prompt: " a red fox ".into(),
            negative: "blurry".into(),
            model: "stable_diffusion".into(),
            seed: "42".into(),
            n: 2,
            ..ImageSettings::default()
        };
        let r = s.request(None);
        assert_eq!(r.prompt.as_deref(), Some("a red fox ### blurry"));
        assert_eq!(r.models, Some(vec!["stable_diffusion".to_string()]));
        let p = r.params.clone().expect("params");
        assert_eq!((p.width, p.height, p.steps, p.n), (Some(512), Some(512), Some(30), Some(2)));
        assert_eq!(p.seed.as_deref(), Some("42"));
        assert_eq!(p.denoising_strength, None);
        assert_eq!(r.source_processing, None);
        let r = ImageSettings::default().request(Some("AAAA".into()));
        assert_eq!(r.source_processing.as_deref(), Some("img2img"));
        assert_eq!(r.params.and_then(|p| p.denoising_strength), Some(0.6));
        assert_eq!(r.models, None);
    }
}

//! Turns a wire image request into an `ImageRequest` whose every bound has been checked once.
//! Defaults are the public horde's effective (parser) defaults.

use base64::Engine;
use horde_protocol::image::{GenerateImageRequest, ImagePayload};
use sha2::{Digest, Sha256};

use crate::config::HordeConfig;
use crate::request_checks::{check_f, check_i, wire_options, RequestOptions};
use crate::{HordeError, Result};

/// Samplers a request may name.
pub const SAMPLERS: &[&str] = &[
    "k_lms",
    "k_heun",
    "k_euler",
    "k_euler_a",
    "k_dpm_2",
    "k_dpm_2_a",
    "k_dpm_fast",
    "k_dpm_adaptive",
    "k_dpmpp_2s_a",
    "k_dpmpp_2m",
    "dpmsolver",
    "k_dpmpp_sde",
    "DDIM",
    "lcm",
];
/// Samplers that evaluate the model twice per step.
pub const SECOND_ORDER_SAMPLERS: &[&str] = &["k_heun", "k_dpm_2", "k_dpm_2_a", "k_dpmpp_2s_a", "k_dpmpp_sde"];
/// Upscalers (at most one per request).
pub const UPSCALERS: &[&str] = &[
    "RealESRGAN_x4plus",
    "RealESRGAN_x2plus",
    "RealESRGAN_x4plus_anime_6B",
    "NMKD_Siax",
    "4x_AnimeSharp",
    "4xNomos8kSC",
    "4xLSDIRplus",
    "4xNomosWebPhoto_RealPLKSR",
    "4xNomos2_realplksr_dysample",
    "4xNomos2_hq_dat2",
    "2xModernSpanimationV1",
];
/// Face fixers and other post-processors.
pub const OTHER_POST_PROCESSORS: &[&str] = &["GFPGAN", "GFPGANv1.3", "CodeFormers", "RestoreFormer", "strip_background"];
/// ControlNet types.
pub const CONTROL_TYPES: &[&str] = &[
    "canny",
    "hed",
    "depth",
    "normal",
    "openpose",
    "seg",
    "scribble",
    "fakescribbles",
    "hough",
];
/// How a source image is used.
pub const SOURCE_PROCESSING: &[&str] = &["img2img", "inpainting", "outpainting", "remix"];
/// Most words a prompt may have.
pub const MAX_PROMPT_WORDS: usize = 7500;
/// Largest side of a generated or source image.
pub const MAX_SIDE: i64 = 3072;

/// A source image (or mask) as received, already checked: base64 of at most the configured size,
/// an image of at most `MAX_SIDE` pixels a side.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceImage {
    pub base64: String,
    pub bytes: usize,
}

/// A validated image request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ImageRequest {
    /// The whole prompt: positive part, then `###` and the negative prompt if any.
    pub prompt: String,
    /// What a worker receives, without prompt and per-batch fields (filled at pop).
    pub payload: ImagePayload,
    /// What every kind of request may ask (`n`, models, workers, ...).
    pub options: RequestOptions,
    pub width: i64,
    pub height: i64,
    pub steps: i64,
    /// Model evaluations the sampler makes: steps, doubled for second-order samplers, 40 for
    /// `k_dpm_adaptive`.
    pub accurate_steps: i64,
    /// First job's seed; job `i` gets `seed + i × seed_variation` (mod 2^32).
    pub seed: u32,
    pub seed_variation: i64,
    pub source_image: Option<SourceImage>,
    pub source_mask: Option<SourceImage>,
    pub source_processing: String,
    pub nsfw: bool,
    pub censor_nsfw: bool,
    pub r2: bool,
    pub shared: bool,
    pub replacement_filter: bool,
}

impl std::ops::Deref for ImageRequest {
    type Target = RequestOptions;
    fn deref(&self) -> &RequestOptions {
        &self.options
    }
}

impl ImageRequest {
    pub fn pixels(&self) -> i64 {
        self.width * self.height
    }
    /// Shrinks the image to fit a `side`² area (keeping its shape; sides multiples of 64, at
    /// least 512) and its sampler evaluations to `max_accurate` (fewer steps; `k_dpm_adaptive`'s
    /// fixed 40 cannot shrink).
    pub fn shrink(&mut self, side: i64, max_accurate: i64) {
        let (area, pixels) = ((side * side) as f64, self.pixels() as f64);
        if pixels > area {
            let k = (area / pixels).sqrt();
            let fit = |v: i64| (((v as f64 * k) as i64) / 64 * 64).max(512).min(v);
            let (mut w, mut h) = (fit(self.width), fit(self.height));
            // A side held at 512 leaves the other to give up the rest.
            while w * h > side * side && w.max(h) > 512 {
                if w >= h {
                    w -= 64;
                } else {
                    h -= 64;
                }
            }
            (self.width, self.height) = (w, h);
            self.payload.width = self.width;
            self.payload.height = self.height;
        }
        if self.accurate_steps > max_accurate && self.payload.sampler_name != "k_dpm_adaptive" {
            let per_step = (self.accurate_steps / self.steps.max(1)).max(1);
            self.steps = (max_accurate / per_step).max(1);
            self.accurate_steps = self.steps * per_step;
            self.payload.ddim_steps = self.steps;
        }
    }
    /// Whether the worker is to run its NSFW censor on the results.
    pub fn use_nsfw_censor(&self) -> bool {
        !self.nsfw && self.censor_nsfw
    }
    pub fn is_img2img(&self) -> bool {
        self.source_image.is_some()
    }
    pub fn is_painting(&self) -> bool {
        self.source_image.is_some() && matches!(self.source_processing.as_str(), "inpainting" | "outpainting")
    }
    /// Bytes of source images held for this request.
    pub fn held_bytes(&self) -> usize {
        self.source_image.as_ref().map_or(0, |s| s.bytes) + self.source_mask.as_ref().map_or(0, |s| s.bytes)
    }
    /// Seed of the request's `index`-th job.
    pub fn seed_of(&self, index: u32) -> i64 {
        (self.seed as i64 + index as i64 * self.seed_variation).rem_euclid(1 << 32)
    }
}

fn bad(rc: &'static str, message: impl Into<String>) -> HordeError {
    HordeError::rejected(rc, message)
}

/// A seed string as a number below 2^32: numbers are taken modulo 2^32, other strings hashed.
pub fn seed_from_string(s: &str) -> u32 {
    let t = s.trim();
    if let Ok(n) = t.parse::<i64>() {
        return n.rem_euclid(1 << 32) as u32;
    }
    let digest = Sha256::digest(t.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Decodes and checks a base64 image: size limit, a known image format, at most `MAX_SIDE` a side.
pub fn check_source_image(field: &str, b64: &str, max_bytes: usize) -> Result<SourceImage> {
    let trimmed = b64.trim();
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return Err(bad(
            "SourceImageUrlUnsupported",
            format!("{field} must be base64 image data: this horde does not fetch images from URLs."),
        ));
    }
    let data = trimmed.split_once("base64,").map_or(trimmed, |(_, d)| d);
    if data.len() / 4 * 3 > max_bytes + 3 {
        return Err(bad(
            "SourceImageTooLarge",
            format!("{field} may be at most {} KiB.", max_bytes / 1024),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| bad("InvalidSourceImage", format!("{field} is not valid base64.")))?;
    if bytes.len() > max_bytes {
        return Err(bad(
            "SourceImageTooLarge",
            format!("{field} may be at most {} KiB.", max_bytes / 1024),
        ));
    }
    let (w, h) = image_dimensions(&bytes).ok_or_else(|| bad("InvalidSourceImage", format!("{field} is not a WebP, PNG or JPEG image.")))?;
    if w as i64 > MAX_SIDE || h as i64 > MAX_SIDE {
        return Err(bad(
            "SourceImageResolutionExceeded",
            format!("{field} may be at most {MAX_SIDE}x{MAX_SIDE} pixels, got {w}x{h}."),
        ));
    }
    Ok(SourceImage {
        base64: data.to_string(),
        bytes: data.len(),
    })
}

/// Width and height of a WebP, PNG or JPEG image, read from its header.
pub fn image_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

impl ImageRequest {
    pub fn parse(req: GenerateImageRequest, cfg: &HordeConfig) -> Result<Self> {
        let prompt = req.prompt.unwrap_or_default();
        if prompt.trim().is_empty() {
            return Err(HordeError::MissingPrompt);
        }
        if prompt.contains('\0') {
            return Err(HordeError::NulByteInPayload);
        }
        if prompt.split_whitespace().count() > MAX_PROMPT_WORDS {
            return Err(bad(
                "InvalidPromptSize",
                format!("The prompt may have at most {MAX_PROMPT_WORDS} words."),
            ));
        }
        let p = req.params.unwrap_or_default();
        check_i("n", p.n, 1, 20)?;
        check_i("steps", p.steps, 1, 500)?;
        check_i("width", p.width, 64, MAX_SIDE)?;
        check_i("height", p.height, 64, MAX_SIDE)?;
        check_f("cfg_scale", p.cfg_scale, 0.0, 100.0)?;
        check_f("denoising_strength", p.denoising_strength, 0.01, 1.0)?;
        check_f("hires_fix_denoising_strength", p.hires_fix_denoising_strength, 0.01, 1.0)?;
        check_f("facefixer_strength", p.facefixer_strength, 0.0, 1.0)?;
        check_i("clip_skip", p.clip_skip, 1, 12)?;
        check_i("seed_variation", p.seed_variation, 1, 1000)?;
        let width = p.width.unwrap_or(512);
        let height = p.height.unwrap_or(512);
        if width % 64 != 0 || height % 64 != 0 {
            return Err(bad(
                "InvalidSize",
                format!("width and height must be multiples of 64, got {width}x{height}."),
            ));
        }
        let cfg_scale = p.cfg_scale.unwrap_or(5.0);
        if ((cfg_scale * 100.0).round() - cfg_scale * 100.0).abs() > 1e-6 {
            return Err(bad("BadCFGDecimals", "cfg_scale may have at most 2 decimals."));
        }
        let sampler = p.sampler_name.clone().unwrap_or_else(|| "k_euler_a".into());
        if !SAMPLERS.contains(&sampler.as_str()) {
            return Err(HordeError::Validation(format!(
                "Unknown sampler '{}'.",
                sampler.chars().take(40).collect::<String>()
            )));
        }
        let post_processing = p.post_processing.clone().unwrap_or_default();
        for pp in &post_processing {
            if !UPSCALERS.contains(&pp.as_str()) && !OTHER_POST_PROCESSORS.contains(&pp.as_str()) {
                return Err(HordeError::Validation(format!(
                    "Unknown post-processor '{}'.",
                    pp.chars().take(40).collect::<String>()
                )));
            }
        }
        if post_processing.iter().filter(|pp| UPSCALERS.contains(&pp.as_str())).count() > 1 {
            return Err(bad("TooManyUpscalers", "At most one upscaler may be requested."));
        }
        let loras = p.loras.clone().unwrap_or_default();
        if loras.len() > 5 {
            return Err(bad("TooManyLoras", "At most 5 LoRAs may be requested."));
        }
        for l in &loras {
            if l.name.trim().is_empty() || l.name.len() > 255 || !(-5.0..=5.0).contains(&l.model) || !(-5.0..=5.0).contains(&l.clip) {
                return Err(HordeError::Validation(
                    "Each LoRA needs a name of at most 255 characters and model/clip strengths between -5 and 5.".into(),
                ));
            }
        }
        let tis = p.tis.clone().unwrap_or_default();
        if tis.len() > 20 {
            return Err(bad("TooManyTIs", "At most 20 textual inversions may be requested."));
        }
        let source_processing = req.source_processing.clone().unwrap_or_else(|| "img2img".into());
        if !SOURCE_PROCESSING.contains(&source_processing.as_str()) {
            return Err(HordeError::Validation(format!(
                "source_processing must be one of {}.",
                SOURCE_PROCESSING.join(", ")
            )));
        }
        let source_image = match req.source_image.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(check_source_image("source_image", s, cfg.max_source_image_bytes)?),
            None => None,
        };
        let source_mask = match req.source_mask.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(check_source_image("source_mask", s, cfg.max_source_image_bytes)?),
            None => None,
        };
        if source_image.is_none() && (source_mask.is_some() || source_processing != "img2img") {
            return Err(bad(
                "SourceImageMissing",
                "inpainting, outpainting, remix and source_mask need a source_image.",
            ));
        }
        if req.extra_source_images.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(bad(
                "ExtraSourceImagesUnsupported",
                "extra_source_images are not supported by this horde.",
            ));
        }
        let mut steps = p.steps.unwrap_or(30);
        if let Some(ct) = &p.control_type {
            if !CONTROL_TYPES.contains(&ct.as_str()) {
                return Err(HordeError::Validation(format!(
                    "Unknown control_type '{}'.",
                    ct.chars().take(40).collect::<String>()
                )));
            }
            if source_image.is_none() {
                return Err(bad("ControlNetSourceMissing", "control_type needs a source_image."));
            }
            if source_processing != "img2img" {
                return Err(bad("ControlNetInpaintingMismatch", "control_type cannot be used with inpainting."));
            }
            steps = steps.min(40);
        }
        let accurate_steps = if sampler == "k_dpm_adaptive" {
            40
        } else if SECOND_ORDER_SAMPLERS.contains(&sampler.as_str()) {
            steps * 2
        } else {
            steps
        };
        let seed = match p.seed.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(s) => seed_from_string(s),
            None => rand::random::<u32>(),
        };
        let options = RequestOptions::parse(wire_options!(req, p.n), &["stable_diffusion"])?;
        let payload = ImagePayload {
            sampler_name: sampler,
            cfg_scale,
            denoising_strength: source_image.as_ref().map(|_| p.denoising_strength.unwrap_or(0.75)),
            hires_fix_denoising_strength: p.hires_fix_denoising_strength,
            seed: seed.to_string(),
            seed_variation: p.seed_variation,
            height,
            width,
            post_processing,
            karras: p.karras.unwrap_or(true),
            tiling: p.tiling.unwrap_or(false),
            hires_fix: p.hires_fix.unwrap_or(false),
            clip_skip: p.clip_skip.unwrap_or(1),
            facefixer_strength: p.facefixer_strength,
            control_type: p.control_type.clone(),
            image_is_control: p.image_is_control,
            return_control_map: p.return_control_map,
            loras: (!loras.is_empty()).then_some(loras),
            tis: (!tis.is_empty()).then_some(tis),
            extra_texts: p.extra_texts.clone(),
            workflow: p.workflow.clone(),
            transparent: p.transparent,
            use_nsfw_censor: false,
            prompt: None,
            ddim_steps: steps,
            n_iter: 1,
        };
        Ok(ImageRequest {
            prompt,
            payload,
            options,
            width,
            height,
            steps,
            accurate_steps,
            seed,
            seed_variation: p.seed_variation.unwrap_or(1),
            source_image,
            source_mask,
            source_processing,
            nsfw: req.nsfw.unwrap_or(true),
            censor_nsfw: req.censor_nsfw.unwrap_or(true),
            r2: req.r2.unwrap_or(true),
            shared: req.shared.unwrap_or(false),
            replacement_filter: req.replacement_filter.unwrap_or(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<ImageRequest> {
        let r: GenerateImageRequest = serde_json::from_value(v).map_err(|e| HordeError::Validation(e.to_string()))?;
        ImageRequest::parse(r, &HordeConfig::default())
    }

    fn tiny_png() -> String {
        let mut bytes = Vec::new();
        let img = image::RgbImage::new(8, 4);
        img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .expect("png");
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn defaults_are_the_parser_defaults() {
        let r = parse(json!({"prompt": "a cat"})).expect("valid");
        assert_eq!((r.width, r.height, r.steps, r.n), (512, 512, 30, 1));
        assert_eq!(r.payload.sampler_name, "k_euler_a");
        assert_eq!(r.payload.cfg_scale, 5.0);
        assert!(r.payload.karras && r.nsfw && r.censor_nsfw && r.r2 && r.slow_workers);
        assert_eq!(r.models, vec!["stable_diffusion".to_string()]);
        let any = parse(json!({"prompt": "a cat", "models": []})).expect("valid");
        assert!(any.models.is_empty());
        assert!(!r.use_nsfw_censor());
        let sfw = parse(json!({"prompt": "a cat", "nsfw": false})).expect("valid");
        assert!(sfw.use_nsfw_censor());
    }

    #[test]
    fn bounds_and_codes() {
        let rc = |v| parse(v).err().map(|e| e.rc().to_string());
        assert_eq!(rc(json!({"prompt": ""})).as_deref(), Some("MissingPrompt"));
        assert_eq!(
            rc(json!({"prompt": "x", "params": {"width": 5000}})).as_deref(),
            Some("ValidationError")
        );
        assert_eq!(rc(json!({"prompt": "x", "params": {"width": 500}})).as_deref(), Some("InvalidSize"));
        assert_eq!(
            rc(json!({"prompt": "x", "params": {"width": 576, "height": 100}})).as_deref(),
            Some("InvalidSize")
        );
        assert_eq!(
            rc(json!({"prompt": "x", "params": {"cfg_scale": 7.555}})).as_deref(),
            Some("BadCFGDecimals")
        );
        assert_eq!(
            rc(json!({"prompt": "x", "params": {"steps": 501}})).as_deref(),
            Some("ValidationError")
        );
        assert_eq!(rc(json!({"prompt": "x", "params": {"n": 21}})).as_deref(), Some("ValidationError"));
        assert_eq!(
            rc(json!({"prompt": "x", "params": {"sampler_name": "nope"}})).as_deref(),
            Some("ValidationError")
        );
        let five: Vec<_> = (0..6).map(|i| json!({"name": format!("l{i}")})).collect();
        assert_eq!(
            rc(json!({"prompt": "x", "params": {"loras": five}})).as_deref(),
            Some("TooManyLoras")
        );
        assert_eq!(
            rc(json!({"prompt": "x", "params": {"post_processing": ["RealESRGAN_x4plus", "NMKD_Siax"]}})).as_deref(),
            Some("TooManyUpscalers")
        );
        assert_eq!(
            rc(json!({"prompt": "x", "params": {"control_type": "canny"}})).as_deref(),
            Some("ControlNetSourceMissing")
        );
        assert_eq!(
            rc(json!({"prompt": "x", "source_image": "https://example.com/a.png"})).as_deref(),
            Some("SourceImageUrlUnsupported")
        );
        assert_eq!(
            rc(json!({"prompt": "x", "source_image": "bm90IGFuIGltYWdl"})).as_deref(),
            Some("InvalidSourceImage")
        );
        assert_eq!(
            rc(json!({"prompt": "x", "source_processing": "inpainting"})).as_deref(),
            Some("SourceImageMissing")
        );
    }

    #[test]
    fn source_images_are_checked_and_sized() {
        let r = parse(json!({"prompt": "x", "source_image": tiny_png(), "params": {"denoising_strength": 0.5}})).expect("valid");
        assert!(r.is_img2img() && !r.is_painting());
        assert_eq!(r.payload.denoising_strength, Some(0.5));
        assert!(r.held_bytes() > 0);
        let cfg = HordeConfig {
            max_source_image_bytes: 10,
            ..HordeConfig::default()
        };
        let req: GenerateImageRequest = serde_json::from_value(json!({"prompt": "x", "source_image": tiny_png()})).expect("json");
        assert_eq!(ImageRequest::parse(req, &cfg).err().map(|e| e.rc()), Some("SourceImageTooLarge"));
    }

    #[test]
    fn seeds_and_steps() {
        assert_eq!(seed_from_string("42"), 42);
        assert_eq!(seed_from_string("-1"), u32::MAX);
        assert_eq!(seed_from_string("cat"), seed_from_string("cat"));
        let r = parse(json!({"prompt": "x", "params": {"seed": "10", "seed_variation": 3, "sampler_name": "k_heun", "steps": 20}}))
            .expect("valid");
        assert_eq!((r.seed_of(0), r.seed_of(2)), (10, 16));
        assert_eq!(r.accurate_steps, 40);
        let cn =
            parse(json!({"prompt": "x", "source_image": tiny_png(), "params": {"control_type": "canny", "steps": 80}})).expect("valid");
        assert_eq!(cn.steps, 40);
    }
}

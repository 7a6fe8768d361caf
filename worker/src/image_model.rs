//! Image jobs as this worker runs them: the horde's payload turned into pipeline requests (the
//! prompt's `###` negative part, one seed per image of the batch, img2img's source image), the
//! NSFW censor, and the results as lossless WebP.

use std::io::Cursor;
use std::path::Path;

use base64::Engine;
use horde_protocol::image::ImagePayload;
use horde_protocol::text::GenMetadata;

use crate::device::Compute;
use crate::diffusion::pipeline::{ImagePipeline, ImageRequest, RgbImage};
use crate::diffusion::sampler::SamplerKind;
use crate::diffusion::DiffusionError;

pub use crate::backend::{FinishedImage, ImageBackend, ImageJob};

/// Scores how likely an image is NSFW, in [0, 1].
pub trait NsfwClassifier: Send + Sync + 'static {
    fn nsfw_probability(&self, image: &RgbImage) -> Result<f32, String>;
}

/// The censor a job asks for: above `threshold`, the image is replaced by a black one.
pub struct Censor {
    pub classifier: Box<dyn NsfwClassifier>,
    pub threshold: f32,
}

pub use crate::config::DEFAULT_NSFW_THRESHOLD;

/// The positive and negative prompt of `positive ### negative`.
pub fn split_prompt(prompt: &str) -> (String, String) {
    match prompt.split_once("###") {
        Some((p, n)) => (p.trim().to_string(), n.trim().to_string()),
        None => (prompt.trim().to_string(), String::new()),
    }
}

/// Seed of image `index` of a batch: the first seed plus `index × seed_variation`, mod 2³².
pub fn seed_of(payload: &ImagePayload, index: usize) -> i64 {
    let first = payload.seed.trim().parse::<i64>().unwrap_or(0);
    (first + index as i64 * payload.seed_variation.unwrap_or(1)).rem_euclid(1 << 32)
}

/// Decodes a base64 source image (PNG, JPEG or WebP) and resizes it to `width` × `height`.
pub fn decode_source(b64: &str, width: usize, height: usize) -> Result<RgbImage, String> {
    let data = b64.split_once("base64,").map_or(b64, |(_, d)| d).trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "the source image is not valid base64".to_string())?;
    let decoded = image::load_from_memory(&bytes)
        .map_err(|e| format!("the source image cannot be decoded: {e}"))?
        .to_rgb8();
    let resized = if decoded.width() as usize == width && decoded.height() as usize == height {
        decoded
    } else {
        image::imageops::resize(&decoded, width as u32, height as u32, image::imageops::FilterType::Lanczos3)
    };
    Ok(RgbImage {
        width,
        height,
        pixels: resized.into_raw(),
    })
}

/// Lossless WebP of `image`.
pub fn encode_webp(image: &RgbImage) -> Result<Vec<u8>, String> {
    let mut out = Cursor::new(Vec::new());
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(
            &image.pixels,
            image.width as u32,
            image.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| format!("WebP encoding failed: {e}"))?;
    Ok(out.into_inner())
}

/// The pipeline request of image `index` of `job`.
pub fn request_of(job: &ImageJob, index: usize) -> Result<ImageRequest, String> {
    let p = &job.payload;
    let (prompt, negative_prompt) = split_prompt(p.prompt.as_deref().unwrap_or(""));
    let (width, height) = (
        usize::try_from(p.width).map_err(|_| "bad width")?,
        usize::try_from(p.height).map_err(|_| "bad height")?,
    );
    let source = match (&job.source_image, job.source_processing.as_deref()) {
        (None, _) => None,
        (Some(b64), None | Some("img2img")) => Some((decode_source(b64, width, height)?, p.denoising_strength.unwrap_or(0.75))),
        (Some(_), Some(other)) => return Err(format!("source_processing {other} is not supported by this worker")),
    };
    let (sampler, _) = SamplerKind::from_horde(&p.sampler_name);
    Ok(ImageRequest {
        prompt,
        negative_prompt,
        width,
        height,
        steps: usize::try_from(p.ddim_steps.max(1)).unwrap_or(1),
        cfg_scale: p.cfg_scale,
        sampler,
        karras: p.karras,
        seed: seed_of(p, index) as u64,
        clip_skip: usize::try_from(p.clip_skip.max(1)).unwrap_or(1),
        source,
    })
}

/// The image models this worker serves, by name.
pub struct ImageModels {
    models: Vec<(String, ImagePipeline)>,
    censor: Option<Censor>,
    max_pixels: i64,
    extra_slow: bool,
}

/// Default largest image: 512×512 on a GPU, 256×256 on the CPU (a 512×512 SD 1.5 image takes
/// minutes there; BENCHMARKS.md).
pub fn default_max_pixels(compute: &Compute) -> i64 {
    match compute {
        Compute::Burn(d) if *d != burn::prelude::Device::flex() => 512 * 512,
        _ => 256 * 256,
    }
}

impl ImageModels {
    /// Loads each `NAME=DIR` diffusers checkout.
    /// Loads each `NAME=DIR` diffusers checkout; `max_pixels` defaults by device.
    pub fn load(specs: &[(String, std::path::PathBuf)], compute: &Compute, max_pixels: Option<i64>) -> Result<Self, DiffusionError> {
        let device = match compute {
            Compute::Burn(d) => d.clone(),
            Compute::Host => burn::prelude::Device::flex(),
        };
        let models = specs
            .iter()
            .map(|(name, dir)| Ok((name.clone(), ImagePipeline::load(Path::new(dir), &device)?)))
            .collect::<Result<Vec<_>, DiffusionError>>()?;
        Ok(Self {
            models,
            censor: None,
            max_pixels: max_pixels.unwrap_or_else(|| default_max_pixels(compute)),
            extra_slow: false,
        })
    }

    pub fn extra_slow(mut self, on: bool) -> Self {
        self.extra_slow = on;
        self
    }

    pub fn with_censor(mut self, censor: Censor) -> Self {
        self.censor = Some(censor);
        self
    }

    fn pipeline(&self, name: &str) -> Option<&ImagePipeline> {
        self.models.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// Whether `image` must be replaced: the job asked for the censor and the classifier says
    /// NSFW (or cannot tell, or is missing: censoring fails closed).
    fn must_censor(&self, image: &RgbImage) -> bool {
        match &self.censor {
            Some(c) => c.classifier.nsfw_probability(image).map_or(true, |p| p > c.threshold),
            None => true,
        }
    }
}

impl ImageBackend for ImageModels {
    fn models(&self) -> Vec<String> {
        self.models.iter().map(|(n, _)| n.clone()).collect()
    }

    fn max_pixels(&self) -> i64 {
        self.max_pixels
    }

    fn extra_slow(&self) -> bool {
        self.extra_slow
    }

    fn generate(&self, job: &ImageJob, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<FinishedImage>, String> {
        let pipeline = self
            .pipeline(&job.model)
            .ok_or_else(|| format!("this worker has no image model {}", job.model))?;
        let images = job.ids.len();
        let mut out = Vec::with_capacity(images);
        for (index, id) in job.ids.iter().enumerate() {
            let request = request_of(job, index)?;
            let steps = request.steps;
            let mut image = pipeline
                .generate(&request, &mut |done, total| {
                    progress(index * steps + done * steps / total.max(1), images * steps)
                })
                .map_err(|e| e.to_string())?;
            let mut metadata = Vec::new();
            let censored = job.payload.use_nsfw_censor && self.must_censor(&image);
            if censored {
                image.pixels.fill(0);
                metadata.push(GenMetadata {
                    kind: "censorship".into(),
                    value: "nsfw".into(),
                    reference: None,
                });
            }
            let (_, exact) = SamplerKind::from_horde(&job.payload.sampler_name);
            if !exact {
                metadata.push(GenMetadata {
                    kind: "information".into(),
                    value: "see_ref".into(),
                    reference: Some(format!(
                        "sampler {} ran as {}",
                        job.payload.sampler_name,
                        request.sampler.horde_name()
                    )),
                });
            }
            out.push(FinishedImage {
                id: id.clone(),
                webp: encode_webp(&image)?,
                seed: request.seed as i64,
                censored,
                metadata,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(payload: ImagePayload) -> ImageJob {
        ImageJob {
            ids: vec!["a".into(), "b".into()],
            model: "m".into(),
            payload,
            source_image: None,
            source_processing: None,
        }
    }

    fn payload() -> ImagePayload {
        ImagePayload {
            sampler_name: "k_heun".into(),
            cfg_scale: 7.0,
            seed: "4294967295".into(),
            seed_variation: Some(2),
            height: 64,
            width: 128,
            karras: true,
            clip_skip: 2,
            prompt: Some(" a cat ### dogs, blur ".into()),
            ddim_steps: 12,
            n_iter: 2,
            ..ImagePayload::default()
        }
    }

    #[test]
    fn payloads_become_pipeline_requests() {
        assert_eq!(split_prompt("x"), ("x".into(), String::new()));
        assert_eq!(split_prompt("a ### b ### c"), ("a".into(), "b ### c".into()));
        let j = job(payload());
        // The seed wraps at 2³², one step of seed_variation per image.
        assert_eq!((seed_of(&j.payload, 0), seed_of(&j.payload, 1)), (4294967295, 1));
        let r = request_of(&j, 1).expect("valid");
        assert_eq!((r.prompt.as_str(), r.negative_prompt.as_str()), ("a cat", "dogs, blur"));
        assert_eq!(
            (r.width, r.height, r.steps, r.clip_skip, r.seed, r.karras),
            (128, 64, 12, 2, 1, true)
        );
        // k_heun is not one of ours: the nearest one runs.
        assert_eq!(r.sampler, SamplerKind::Euler);
        assert_eq!(SamplerKind::from_horde("k_dpmpp_2m"), (SamplerKind::DpmPp2M, true));
        assert_eq!(SamplerKind::from_horde("k_dpmpp_sde"), (SamplerKind::EulerAncestral, false));

        let mut painting = job(payload());
        painting.source_image = Some("aGVsbG8=".into());
        painting.source_processing = Some("inpainting".into());
        assert!(request_of(&painting, 0).is_err_and(|e| e.contains("inpainting")));
        painting.source_processing = None;
        assert!(request_of(&painting, 0).is_err_and(|e| e.contains("cannot be decoded")));
        painting.source_image = Some("%%%".into());
        assert!(request_of(&painting, 0).is_err_and(|e| e.contains("base64")));
    }

    #[test]
    fn sources_are_resized_and_webp_round_trips() {
        let mut png = Cursor::new(Vec::new());
        image::RgbImage::from_fn(10, 20, |x, _| image::Rgb([x as u8 * 20, 0, 255]))
            .write_to(&mut png, image::ImageFormat::Png)
            .expect("png");
        let b64 = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(png.get_ref())
        );
        let source = decode_source(&b64, 8, 8).expect("decodes");
        assert_eq!((source.width, source.height, source.pixels.len()), (8, 8, 8 * 8 * 3));
        let webp = encode_webp(&source).expect("encodes");
        let back = image::load_from_memory_with_format(&webp, image::ImageFormat::WebP)
            .expect("decodes")
            .to_rgb8();
        assert_eq!(back.into_raw(), source.pixels, "lossless");
    }
}

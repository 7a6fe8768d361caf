//! Image requests: the validated form of what a client sent, what the queue keeps of them, and the
//! in-memory store of their images.

pub mod lifecycle;
pub mod links;
pub mod matching;
pub mod rating;
pub mod request;
pub mod results;
pub mod store;

pub use lifecycle::ImageJobResult;
pub use links::{ImageLinks, LinkPurpose};
pub use request::ImageRequest;
pub use store::ImageStore;

use crate::scheduler::queue::{flags, QueueKind};

/// Image requests in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageKind;

/// What image matching needs of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageNeeds {
    /// Width × height of one image.
    pub pixels: i64,
    pub steps: i64,
    /// Capabilities a worker must allow (`caps::*`).
    pub caps: u8,
}

/// Capabilities an image request may need of a worker.
pub mod caps {
    pub const IMG2IMG: u8 = 1;
    pub const PAINTING: u8 = 2;
    pub const POST_PROCESSING: u8 = 4;
    pub const LORA: u8 = 8;
    pub const CONTROLNET: u8 = 16;
}

/// A finished image: where its bytes are kept, and whether the worker censored it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageOutput {
    /// Size of the WebP held in the `ImageStore` under the job's id.
    pub bytes: usize,
    pub censored: bool,
}

impl QueueKind for ImageKind {
    type Request = ImageRequest;
    type Needs = ImageNeeds;
    type Output = ImageOutput;
}

/// What image matching needs of a request, and the flags of its own (`flags::common` adds the
/// options every kind shares).
pub fn needs(r: &ImageRequest) -> (ImageNeeds, u8) {
    let f = if r.nsfw { flags::NSFW } else { 0 };
    let mut c = 0;
    if r.is_img2img() {
        c |= caps::IMG2IMG;
    }
    if r.is_painting() {
        c |= caps::PAINTING;
    }
    if !r.payload.post_processing.is_empty() {
        c |= caps::POST_PROCESSING;
    }
    if r.payload.loras.is_some() {
        c |= caps::LORA;
    }
    if r.payload.control_type.is_some() {
        c |= caps::CONTROLNET;
    }
    let needs = ImageNeeds {
        pixels: r.pixels(),
        steps: r.steps,
        caps: c,
    };
    (needs, f)
}

/// Seconds a worker has for a batch of `count` images before the job is taken back:
/// `max(150, 30 + accurate_steps × 2 × pixels / 512²)` per image, ×2 with ControlNet, ×3 for an
/// extra-slow worker; a batch has that for each image after the first too.
pub fn job_ttl_secs(r: &ImageRequest, count: u32, extra_slow_worker: bool) -> u64 {
    let per_image = 30.0 + r.accurate_steps as f64 * 2.0 * r.pixels() as f64 / (512.0 * 512.0);
    let mut ttl = per_image.max(150.0) + per_image * (count.max(1) - 1) as f64;
    if r.payload.control_type.is_some() {
        ttl *= 2.0;
    }
    if extra_slow_worker {
        ttl *= 3.0;
    }
    ttl.ceil() as u64
}

/// How many images of a request a worker gets in one pop: at most `amount`, the jobs left, and as
/// many as fit in the worker's `max_pixels` (post-processors count 40 % more each); always at least
/// one, and exactly one with `disable_batching`.
pub fn batch_size(r: &ImageRequest, remaining: u32, amount: u32, max_pixels: i64) -> u32 {
    if r.disable_batching {
        return 1;
    }
    let weight = r.pixels() as f64 * (1.0 + 0.4 * r.payload.post_processing.len() as f64);
    let fit = (max_pixels as f64 / weight.max(1.0)).floor() as u32;
    amount.min(remaining).min(fit).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HordeConfig;
    use horde_protocol::image::GenerateImageRequest;
    use serde_json::json;

    fn req(v: serde_json::Value) -> ImageRequest {
        let r: GenerateImageRequest = serde_json::from_value(v).expect("json");
        ImageRequest::parse(r, &HordeConfig::default()).expect("valid")
    }

    #[test]
    fn ttl_scales_with_size_and_steps() {
        let small = req(json!({"prompt": "x", "params": {"steps": 30}}));
        assert_eq!(job_ttl_secs(&small, 1, false), 150);
        let big = req(json!({"prompt": "x", "params": {"steps": 50, "width": 1024, "height": 1024}}));
        assert_eq!(job_ttl_secs(&big, 1, false), 430);
        assert_eq!(job_ttl_secs(&big, 2, false), 860);
        assert_eq!(job_ttl_secs(&big, 1, true), 1290);
        let heun = req(json!({"prompt": "x", "params": {"steps": 50, "width": 1024, "height": 1024, "sampler_name": "k_heun"}}));
        assert!(job_ttl_secs(&heun, 1, false) > job_ttl_secs(&big, 1, false));
    }

    #[test]
    fn batches_are_bounded_by_max_pixels() {
        let r = req(json!({"prompt": "x", "params": {"n": 8}}));
        assert_eq!(batch_size(&r, 8, 4, 512 * 512), 1);
        assert_eq!(batch_size(&r, 8, 4, 1024 * 1024), 4);
        assert_eq!(batch_size(&r, 8, 20, 1024 * 1024), 4);
        assert_eq!(batch_size(&r, 2, 4, 1024 * 1024), 2);
        assert_eq!(batch_size(&r, 8, 4, 100), 1);
        let pp = req(json!({"prompt": "x", "params": {"n": 8, "post_processing": ["GFPGAN"]}}));
        assert_eq!(batch_size(&pp, 8, 4, 1024 * 1024), 2);
        let single = req(json!({"prompt": "x", "params": {"n": 8}, "disable_batching": true}));
        assert_eq!(batch_size(&single, 8, 4, 1024 * 1024), 1);
    }
}

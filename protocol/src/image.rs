//! Image generation: async request, check/status, worker pop and submit, ratings.

use serde::{Deserialize, Serialize};

use crate::text::GenMetadata;

/// A LoRA a request asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lora {
    pub name: String,
    #[serde(default = "one")]
    pub model: f64,
    #[serde(default = "one")]
    pub clip: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_trigger: Option<String>,
    #[serde(default)]
    pub is_version: bool,
}

/// A textual inversion a request asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextualInversion {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_ti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<f64>,
}

/// A text a workflow (such as `qr_code`) places in the image.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExtraText {
    pub text: String,
    pub reference: String,
}

/// An extra image for `remix`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExtraSourceImage {
    pub image: String,
    #[serde(default = "one")]
    pub strength: f64,
}

fn one() -> f64 {
    1.0
}

/// `params` of an image request as clients send it: every field optional; the core validates
/// bounds and applies the defaults. Unknown keys are dropped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageParamsInput {
    #[serde(default)]
    pub sampler_name: Option<String>,
    #[serde(default)]
    pub cfg_scale: Option<f64>,
    #[serde(default)]
    pub denoising_strength: Option<f64>,
    #[serde(default)]
    pub hires_fix_denoising_strength: Option<f64>,
    /// A string on the wire; numbers are accepted too.
    #[serde(default, deserialize_with = "string_or_number")]
    pub seed: Option<String>,
    #[serde(default)]
    pub seed_variation: Option<i64>,
    #[serde(default)]
    pub height: Option<i64>,
    #[serde(default)]
    pub width: Option<i64>,
    #[serde(default)]
    pub post_processing: Option<Vec<String>>,
    #[serde(default)]
    pub post_processing_order: Option<String>,
    #[serde(default)]
    pub karras: Option<bool>,
    #[serde(default)]
    pub tiling: Option<bool>,
    #[serde(default)]
    pub hires_fix: Option<bool>,
    #[serde(default)]
    pub clip_skip: Option<i64>,
    #[serde(default)]
    pub facefixer_strength: Option<f64>,
    #[serde(default)]
    pub control_type: Option<String>,
    #[serde(default)]
    pub image_is_control: Option<bool>,
    #[serde(default)]
    pub return_control_map: Option<bool>,
    #[serde(default)]
    pub loras: Option<Vec<Lora>>,
    #[serde(default)]
    pub tis: Option<Vec<TextualInversion>>,
    #[serde(default)]
    pub extra_texts: Option<Vec<ExtraText>>,
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub transparent: Option<bool>,
    #[serde(default)]
    pub special: Option<serde_json::Value>,
    /// Also accepted as `ddim_steps`.
    #[serde(default, alias = "ddim_steps")]
    pub steps: Option<i64>,
    /// Also accepted as `n_iter`.
    #[serde(default, alias = "n_iter")]
    pub n: Option<i64>,
}

/// Deserializes a seed sent as a string or a number.
fn string_or_number<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrNum {
        Str(String),
        Int(i64),
        Float(f64),
    }
    Ok(match Option::<StrOrNum>::deserialize(deserializer)? {
        Some(StrOrNum::Str(s)) => Some(s),
        Some(StrOrNum::Int(i)) => Some(i.to_string()),
        Some(StrOrNum::Float(f)) => Some(format!("{f}")),
        None => None,
    })
}

/// `POST /api/v2/generate/async`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GenerateImageRequest {
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub params: Option<ImageParamsInput>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub nsfw: Option<bool>,
    #[serde(default)]
    pub censor_nsfw: Option<bool>,
    #[serde(default)]
    pub trusted_workers: Option<bool>,
    #[serde(default)]
    pub validated_backends: Option<bool>,
    #[serde(default)]
    pub slow_workers: Option<bool>,
    #[serde(default)]
    pub extra_slow_workers: Option<bool>,
    #[serde(default)]
    pub workers: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::bool_or_list")]
    pub worker_blacklist: Option<bool>,
    #[serde(default)]
    pub source_image: Option<String>,
    #[serde(default)]
    pub source_processing: Option<String>,
    #[serde(default)]
    pub source_mask: Option<String>,
    #[serde(default)]
    pub extra_source_images: Option<Vec<ExtraSourceImage>>,
    #[serde(default)]
    pub r2: Option<bool>,
    #[serde(default)]
    pub shared: Option<bool>,
    #[serde(default)]
    pub replacement_filter: Option<bool>,
    #[serde(default)]
    pub dry_run: Option<bool>,
    #[serde(default)]
    pub proxied_account: Option<String>,
    #[serde(default)]
    pub disable_batching: Option<bool>,
    #[serde(default)]
    pub allow_downgrade: Option<bool>,
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
}

/// `GET /api/v2/generate/check/{id}`: progress without results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageCheck {
    pub finished: i64,
    pub processing: i64,
    pub restarted: i64,
    pub waiting: i64,
    pub done: bool,
    pub faulted: bool,
    pub wait_time: i64,
    pub queue_position: i64,
    pub kudos: f64,
    pub is_possible: bool,
}

/// One finished image in a status answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageGeneration {
    /// Base64 WebP (request sent `r2: false`) or a short-lived URL on this horde.
    pub img: String,
    pub seed: String,
    pub worker_id: String,
    pub worker_name: String,
    pub model: String,
    pub id: String,
    pub censored: bool,
    pub state: String,
    pub gen_metadata: Vec<GenMetadata>,
}

/// `GET|DELETE /api/v2/generate/status/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageStatus {
    #[serde(flatten)]
    pub check: ImageCheck,
    pub generations: Vec<ImageGeneration>,
    pub shared: bool,
}

/// `POST /api/v2/generate/pop`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImagePopRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub priority_usernames: Option<Vec<String>>,
    #[serde(default)]
    pub nsfw: Option<bool>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub bridge_agent: Option<String>,
    #[serde(default)]
    pub bridge_version: Option<i64>,
    #[serde(default)]
    pub threads: Option<i64>,
    #[serde(default)]
    pub require_upfront_kudos: Option<bool>,
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub extra_slow_worker: Option<bool>,
    #[serde(default)]
    pub max_pixels: Option<i64>,
    #[serde(default)]
    pub blacklist: Option<Vec<String>>,
    #[serde(default)]
    pub allow_img2img: Option<bool>,
    #[serde(default)]
    pub allow_painting: Option<bool>,
    #[serde(default)]
    pub allow_unsafe_ipaddr: Option<bool>,
    #[serde(default)]
    pub allow_post_processing: Option<bool>,
    #[serde(default)]
    pub allow_controlnet: Option<bool>,
    #[serde(default)]
    pub allow_sdxl_controlnet: Option<bool>,
    #[serde(default)]
    pub allow_lora: Option<bool>,
    #[serde(default)]
    pub limit_max_steps: Option<bool>,
}

/// Why queued requests were not given to a popping image worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageSkipped {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub worker_id: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub performance: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nsfw: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blacklist: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub untrusted: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub models: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bridge_version: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kudos: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_pixels: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step_count: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unsafe_ip: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub img2img: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub painting: i64,
    #[serde(default, rename = "post-processing", skip_serializing_if = "is_zero")]
    pub post_processing: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lora: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub controlnet: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The job an image worker receives: the request's validated params, the positive and negative
/// prompt (`positive ### negative`), steps as `ddim_steps`, the batch size as `n_iter`, and a
/// numeric seed (as a string, which is how strict workers type it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImagePayload {
    pub sampler_name: String,
    pub cfg_scale: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denoising_strength: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hires_fix_denoising_strength: Option<f64>,
    pub seed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_variation: Option<i64>,
    pub height: i64,
    pub width: i64,
    pub post_processing: Vec<String>,
    pub karras: bool,
    pub tiling: bool,
    pub hires_fix: bool,
    pub clip_skip: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facefixer_strength: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_is_control: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_control_map: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loras: Option<Vec<Lora>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tis: Option<Vec<TextualInversion>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_texts: Option<Vec<ExtraText>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparent: Option<bool>,
    pub use_nsfw_censor: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    pub ddim_steps: i64,
    pub n_iter: i64,
}

/// Answer of an image pop: a batch of jobs of one request, or `id: null` with skip counters (and
/// an empty `payload` object).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImagePopResponse {
    #[serde(serialize_with = "payload_or_empty", deserialize_with = "empty_or_payload")]
    pub payload: Option<ImagePayload>,
    pub id: Option<String>,
    pub ids: Vec<String>,
    pub skipped: ImageSkipped,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_processing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_mask: Option<String>,
    /// Where to PUT the first job's WebP (then submit `generation: "R2"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2_upload: Option<String>,
    /// One upload URL per id, in the order of `ids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2_uploads: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

fn payload_or_empty<S: serde::Serializer>(p: &Option<ImagePayload>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    match p {
        Some(p) => p.serialize(s),
        None => s.serialize_map(Some(0))?.end(),
    }
}

fn empty_or_payload<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ImagePayload>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    if v.as_object().is_some_and(|o| o.is_empty()) || v.is_null() {
        return Ok(None);
    }
    serde_json::from_value(v).map(Some).map_err(serde::de::Error::custom)
}

/// `POST /api/v2/generate/submit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageSubmitRequest {
    #[serde(default)]
    pub id: Option<String>,
    /// Base64 WebP, or `"R2"` after a PUT to the job's upload URL.
    #[serde(default)]
    pub generation: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub censored: Option<bool>,
    #[serde(default)]
    pub gen_metadata: Option<Vec<GenMetadata>>,
}

/// One rating in `POST /api/v2/generate/rate/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageRating {
    pub id: String,
    pub rating: i64,
    #[serde(default)]
    pub artifacts: Option<i64>,
}

/// `POST /api/v2/generate/rate/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateRequest {
    #[serde(default)]
    pub best: Option<String>,
    #[serde(default)]
    pub ratings: Option<Vec<ImageRating>>,
}

/// Answer of a rating.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateResponse {
    pub reward: f64,
    pub message: String,
}

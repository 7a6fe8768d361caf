//! Text generation: async request, status, worker pop and submit.

use serde::{Deserialize, Serialize};

/// Sampler parameters of a text request. Every field is optional on the wire; the core validates
/// bounds and fills the defaults. Unknown keys are dropped, so they never reach strict workers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_context_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frmtadsnsp: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frmtrmblln: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frmtrmspch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frmttriminc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep_pen: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep_pen_range: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep_pen_slope: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singleline: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tfs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_a: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typical: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler_order: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_default_badwordsids: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequence: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing_factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynatemp_range: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynatemp_exponent: Option<f64>,
    /// Sampling seed (KoboldAI's name); the worker picks one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampler_seed: Option<i64>,
}

/// `POST /api/v2/generate/text/async`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GenerateTextRequest {
    #[serde(default)]
    pub prompt: Option<String>,
    #[serde(default)]
    pub params: Option<TextParams>,
    #[serde(default)]
    pub softprompt: Option<String>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
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
    pub dry_run: Option<bool>,
    #[serde(default)]
    pub nsfw: Option<bool>,
    #[serde(default)]
    pub proxied_account: Option<String>,
    #[serde(default)]
    pub disable_batching: Option<bool>,
    #[serde(default)]
    pub allow_downgrade: Option<bool>,
    /// A text style's id or name: its template, params and models replace the request's.
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub extra_source_images: Option<Vec<serde_json::Value>>,
}

/// A warning attached to an accepted request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Warning {
    pub code: String,
    pub message: String,
}

/// 202 answer of an async request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AsyncAccepted {
    pub id: String,
    pub kudos: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<Warning>>,
}

/// 200 answer of a `dry_run` request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DryRun {
    pub kudos: f64,
}

/// A `gen_metadata` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GenMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// One finished text generation in a status answer. (No job `id`: horde-sdk's strict model of a
/// text generation forbids it.)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextGeneration {
    pub text: String,
    pub seed: i64,
    pub worker_id: String,
    pub worker_name: String,
    pub model: String,
    pub state: String,
    pub gen_metadata: Vec<GenMetadata>,
}

/// `GET|DELETE /api/v2/generate/text/status/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextStatus {
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
    pub generations: Vec<TextGeneration>,
}

/// `POST /api/v2/generate/text/pop`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextPopRequest {
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
    pub threads: Option<i64>,
    #[serde(default)]
    pub require_upfront_kudos: Option<bool>,
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub extra_slow_worker: Option<bool>,
    #[serde(default)]
    pub max_length: Option<i64>,
    #[serde(default)]
    pub max_context_length: Option<i64>,
    #[serde(default)]
    pub softprompts: Option<Vec<String>>,
    /// Extensions of our horde this worker speaks (unknown to the public horde, which ignores
    /// them): `messages-v1` asks for chat requests' messages in the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<String>>,
}

/// Pop extension: the worker renders chat messages with its own chat template.
pub const EXTENSION_MESSAGES: &str = "messages-v1";

/// One message of a chat request (OpenAI-style roles: `system`, `user`, `assistant`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// Why queued requests were not given to a popping text worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextSkipped {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub worker_id: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub performance: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nsfw: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub untrusted: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub models: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bridge_version: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub kudos: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blacklist: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_context_length: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_length: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub matching_softprompt: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The job a text worker receives: the request's validated params plus its prompt.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextPayload {
    #[serde(flatten)]
    pub params: TextParams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// A chat request's messages, sent only to workers that declared `messages-v1`. `prompt`
    /// then holds the same conversation in a generic transcript format, for workers without a
    /// chat template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ChatMessage>>,
}

/// Answer of a text pop: a job, or `id: null` with the skip counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextPopResponse {
    pub payload: TextPayload,
    pub id: Option<String>,
    pub ids: Vec<String>,
    pub skipped: TextSkipped,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softprompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

/// `POST /api/v2/generate/text/submit`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextSubmitRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub generation: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub gen_metadata: Option<Vec<GenMetadata>>,
}

/// Answer of a submit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubmitResponse {
    pub reward: f64,
}

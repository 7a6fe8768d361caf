//! Token streaming, beyond the public horde's API (progress protocol version 1).
//!
//! A worker that supports it reports the text generated so far for a job it holds
//! (`POST /api/v2/generate/text/progress`); requesters follow a request as Server-Sent Events
//! (`GET /api/v2/generate/text/stream/{id}`). Workers that never report progress keep working:
//! their text then arrives in one piece when they submit.

use serde::{Deserialize, Serialize};

use crate::text::TextGeneration;

/// The progress protocol version this crate speaks.
pub const PROGRESS_VERSION: u32 = 1;

/// `POST /api/v2/generate/text/progress`: the whole text generated so far for job `id`. Each
/// report must extend the previous one (send only text that is final, holding back what a stop
/// sequence could still remove).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextProgressRequest {
    /// The job id from the pop.
    pub id: String,
    /// Everything generated so far.
    pub text: String,
    /// Progress protocol version; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// Answer to a progress report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TextProgressResponse {
    /// The requester cancelled: stop generating and submit what there is (it is paid for).
    pub cancelled: bool,
}

/// Stream event `status`: the request's standing, sent on connect and whenever it changes. The
/// same fields as the image check (`GET /generate/check/{id}`): counts, queue figures, kudos.
pub type StreamStatus = crate::image::ImageCheck;

/// Stream event `delta`: text appended to job `job`'s output. A job's deltas concatenate to its
/// final text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamDelta {
    pub job: String,
    pub text: String,
}

/// Stream event `reset`: the worker's final text does not extend what was streamed; replace the
/// job's text with `text`. Our worker never causes it.
pub type StreamReset = StreamDelta;

/// Stream event `generation`: job `job` finished; `generation` is as in the status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamGeneration {
    pub job: String,
    pub generation: TextGeneration,
}

/// Stream event `aborted`: job `job` failed or timed out; its text is dropped and the request's
/// job is handed out again (a new job streams from the start).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamAborted {
    pub job: String,
}

//! What runs jobs for each bridge, side by side: a `TextBackend` generates text, an
//! `ImageBackend` generates images (and an `AlchemyBackend`, in `alchemy`, runs interrogation
//! forms). Each is called from a blocking thread; `Err` is reported to the horde as a faulted job.

use horde_protocol::image::ImagePayload;
use horde_protocol::text::{GenMetadata, TextPayload};

/// One job as a backend sees it.
#[derive(Debug, Clone)]
pub struct TextJob {
    pub id: String,
    pub model: String,
    pub payload: TextPayload,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub text: String,
    pub tokens: usize,
    pub seed: i64,
}

/// A text generator. Called from a blocking thread; `Err` is reported to the horde as a faulted
/// job.
pub trait TextBackend: Send + Sync + 'static {
    /// Model names this backend serves (announced on every pop).
    fn models(&self) -> Vec<String>;
    /// Generates the job's text.
    fn generate(&self, job: &TextJob) -> Result<Generated, String>;
    /// Generates the job's text, calling `on_text` with the text that is final so far (each call
    /// extends the last); `on_text` returns `false` to stop early (the requester cancelled), and
    /// the text so far is the result. Backends that cannot stream just generate.
    fn generate_streaming(&self, job: &TextJob, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Generated, String> {
        let _ = on_text;
        self.generate(job)
    }
}

/// One pop's batch: one image per id, all of the same request.
#[derive(Debug, Clone)]
pub struct ImageJob {
    pub ids: Vec<String>,
    pub model: String,
    pub payload: ImagePayload,
    /// Base64 of the img2img source.
    pub source_image: Option<String>,
    pub source_processing: Option<String>,
}

/// One finished image.
#[derive(Debug, Clone)]
pub struct FinishedImage {
    pub id: String,
    pub webp: Vec<u8>,
    pub seed: i64,
    pub censored: bool,
    pub metadata: Vec<GenMetadata>,
}

/// What generates images for the image bridge. Called from a blocking thread.
pub trait ImageBackend: Send + Sync + 'static {
    /// Model names announced on every pop.
    fn models(&self) -> Vec<String>;
    /// The largest width × height this worker takes.
    fn max_pixels(&self) -> i64;
    /// Whether pops announce an extra-slow worker.
    fn extra_slow(&self) -> bool {
        false
    }
    /// Generates every image of the job; `progress(done, total)` after each step.
    fn generate(&self, job: &ImageJob, progress: &mut dyn FnMut(usize, usize)) -> Result<Vec<FinishedImage>, String>;
}

/// One popped alchemy form as an `AlchemyBackend` sees it.
#[derive(Debug, Clone)]
pub struct AlchemyJob {
    pub id: String,
    /// The form's name (`nsfw`, `RealESRGAN_x4plus`, …).
    pub form: String,
    /// The form's settings, as the requester sent them.
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// The source image as downloaded (PNG, JPEG or WebP).
    pub source: Vec<u8>,
}

/// What a form produced.
#[derive(Debug, Clone, PartialEq)]
pub enum FormResult {
    /// Data about the image (`nsfw`: a boolean, `caption`: a string), submitted as
    /// `{form: value}`.
    Value(serde_json::Value),
    /// A post-processed image as WebP, uploaded to the form's link and submitted as
    /// `{form: "R2"}`.
    Image(Vec<u8>),
}

/// Runs alchemy forms (interrogation and post-processing) for the alchemy bridge.
pub trait AlchemyBackend: Send + Sync + 'static {
    /// The forms this worker can run (announced on every pop).
    fn forms(&self) -> Vec<String>;
    /// The most 512×512 tiles a post-processed image may have.
    fn max_tiles(&self) -> i64;
    /// Runs one form on its source image.
    fn run(&self, job: &AlchemyJob) -> Result<FormResult, String>;
}

//! What generates text for the bridge.

use horde_protocol::text::TextPayload;

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

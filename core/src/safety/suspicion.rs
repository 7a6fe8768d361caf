//! Suspicion: signs that a worker or an account is abusing the horde. Each reason counts once,
//! except corrupt prompts and too many aborted jobs, which count each time. At
//! [`SUSPICION_THRESHOLD`] an untrusted worker is paused (it then serves only its owner) and an
//! untrusted account can no longer send or receive kudos transfers.

use std::collections::BTreeSet;

/// Suspicions that make a worker or an account suspicious.
pub const SUSPICION_THRESHOLD: u32 = 5;
/// A worker name longer than this is suspicious.
pub const LONG_WORKER_NAME: usize = 50;
/// Image workers declaring more pixels than this (3072²) are suspicious.
pub const EXTREME_MAX_PIXELS: i64 = 3072 * 3072;
/// Image speed no real GPU reaches, in megapixelsteps per second.
pub const MAX_IMAGE_MPS_PER_SEC: f64 = 20.0;
/// A username longer than this is suspicious.
pub const LONG_USERNAME: usize = 30;

/// Why a worker or account is suspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Suspicion {
    WorkerNameLong,
    ExtremeMaxPixels,
    UnreasonablyFast,
    UsernameLong,
    CorruptPrompt,
    TooManyJobsAborted,
}

impl Suspicion {
    /// Whether it counts every time, not once.
    fn repeats(self) -> bool {
        matches!(self, Suspicion::CorruptPrompt | Suspicion::TooManyJobsAborted)
    }
}

/// The suspicions held against one worker or account.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Suspicions {
    once: BTreeSet<Suspicion>,
    repeated: u32,
}

impl Suspicions {
    /// Adds `reason`; returns whether this crossed the threshold now.
    pub fn add(&mut self, reason: Suspicion) -> bool {
        let before = self.count();
        if reason.repeats() {
            self.repeated += 1;
        } else {
            self.once.insert(reason);
        }
        before < SUSPICION_THRESHOLD && self.count() >= SUSPICION_THRESHOLD
    }

    pub fn count(&self) -> u32 {
        self.once.len() as u32 + self.repeated
    }

    pub fn is_suspicious(&self) -> bool {
        self.count() >= SUSPICION_THRESHOLD
    }

    pub fn reasons(&self) -> impl Iterator<Item = Suspicion> + '_ {
        self.once.iter().copied()
    }
}

/// The fastest believable text speed, in tokens per second, of a model named `model`: the bigger
/// the model, the slower (mixtures of experts, "8x…", three times faster).
pub fn max_text_tokens_per_sec(model: &str) -> f64 {
    let params = crate::kudos::text_price::model_billions(model).unwrap_or(0.0);
    let base = if params >= 70.0 {
        30.0
    } else if params >= 14.0 {
        100.0
    } else {
        150.0
    };
    if model.to_ascii_lowercase().contains("8x") {
        base * 3.0
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_count_once_except_the_repeating_ones() {
        let mut s = Suspicions::default();
        assert!(!s.add(Suspicion::UnreasonablyFast));
        assert!(!s.add(Suspicion::UnreasonablyFast));
        assert_eq!(s.count(), 1);
        assert!(!s.add(Suspicion::CorruptPrompt));
        assert!(!s.add(Suspicion::CorruptPrompt));
        assert!(!s.add(Suspicion::WorkerNameLong));
        assert_eq!(s.count(), 4);
        assert!(!s.is_suspicious());
        assert!(s.add(Suspicion::TooManyJobsAborted), "the fifth crosses the threshold");
        assert!(!s.add(Suspicion::TooManyJobsAborted), "only once");
        assert!(s.is_suspicious());
    }

    #[test]
    fn bigger_models_have_lower_speed_limits() {
        assert_eq!(max_text_tokens_per_sec("Llama-3-70B"), 30.0);
        assert_eq!(max_text_tokens_per_sec("Qwen-14B"), 100.0);
        assert_eq!(max_text_tokens_per_sec("SmolLM2-135M"), 150.0);
        assert_eq!(max_text_tokens_per_sec("Mixtral-8x7B"), 300.0);
    }
}

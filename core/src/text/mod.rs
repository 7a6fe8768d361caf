//! Text requests: the validated form of what a client sent, and what the queue keeps of them.

pub mod lifecycle;
pub mod matching;
pub mod memory;
pub mod request;
pub mod stream;

pub use lifecycle::TextJobResult;
pub use request::TextRequest;
pub use stream::{StreamCursor, StreamEvent};

use crate::scheduler::queue::{flags, QueueKind};

/// Text requests in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextKind;

/// What text matching needs of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextNeeds {
    pub max_length: i64,
    pub max_context_length: i64,
}

impl QueueKind for TextKind {
    type Request = TextRequest;
    type Needs = TextNeeds;
    /// The generated text.
    type Output = String;
}

/// What text matching needs of a request, and the flags of its own (`flags::common` adds the
/// options every kind shares).
pub fn needs(r: &TextRequest) -> (TextNeeds, u8) {
    let mut f = 0;
    if r.validated_backends {
        f |= flags::VALIDATED_BACKENDS;
    }
    if r.softprompt.is_some() {
        f |= flags::NEEDS_DETAIL;
    }
    let needs = TextNeeds {
        max_length: r.max_length,
        max_context_length: r.max_context_length,
    };
    (needs, f)
}

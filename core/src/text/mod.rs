//! Text requests: the validated form of what a client sent, and what the queue keeps of them.

pub mod lifecycle;
pub mod matching;
pub mod memory;
pub mod request;
pub mod stream;

pub use lifecycle::TextJobResult;
pub use request::TextRequest;
pub use stream::{StreamCursor, StreamEvent};

use uuid::Uuid;

use crate::kudos::Centikudos;
use crate::scheduler::queue::{flags, Criteria, QueueKind};

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

/// The queue's matching data of a text request.
pub fn criteria(id: Uuid, user_id: i64, r: &TextRequest, job_estimate: Centikudos) -> Criteria<TextNeeds> {
    let mut f = flags::common(r);
    if r.validated_backends {
        f |= flags::VALIDATED_BACKENDS;
    }
    if r.softprompt.is_some() {
        f |= flags::NEEDS_DETAIL;
    }
    Criteria {
        id,
        user_id,
        needs: TextNeeds {
            max_length: r.max_length,
            max_context_length: r.max_context_length,
        },
        flags: f,
        job_estimate,
    }
}

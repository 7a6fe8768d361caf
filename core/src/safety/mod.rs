//! Safety: the two-context prompt filter, IP timeouts and suspicion.

pub mod filter;
pub mod ip_timeouts;
pub mod moderation;
pub mod profanity;
pub mod suspicion;

pub use filter::{FilterOutcome, FilterRule, PromptFilter};
pub use ip_timeouts::IpTimeouts;
pub use suspicion::{Suspicion, Suspicions};

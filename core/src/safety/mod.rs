//! Safety: the two-context prompt filter and IP timeouts.

pub mod filter;
pub mod ip_timeouts;

pub use filter::{FilterOutcome, FilterRule, PromptFilter};
pub use ip_timeouts::IpTimeouts;

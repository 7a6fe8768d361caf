//! The horde's domain: accounts, workers, waiting requests, jobs, the scheduler, kudos pricing and
//! ledger, and durable storage. It knows nothing of HTTP or HTML; the server is a thin adapter.

pub mod accounts;
pub mod alchemy;
pub mod clock;
pub mod config;
pub mod drain;
pub mod error;
pub mod generation_stats;
pub mod horde;
pub mod horde_ops;
pub mod image;
pub mod kudos;
pub mod lease;
pub mod lifecycle;
pub mod modes;
pub mod replication;
pub mod request_checks;
pub mod safety;
pub mod scheduler;
pub mod shared_keys;
pub mod state;
pub mod status;
pub mod store;
pub mod styles;
pub mod teams;
pub mod telemetry;
pub mod text;
pub mod webhooks;
pub mod worker_messages;
pub mod workers;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::HordeConfig;
pub use error::{ErrorClass, HordeError, Result};
pub use horde::{AccountSpec, Horde};
pub use lifecycle::{Accepted, RequestKind, Submission};
pub use state::State;
pub use store::Store;

/// Version of this server.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

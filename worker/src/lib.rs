//! `horde-worker`: joins any horde (ours or the public one), pops text jobs, generates them with a
//! `TextBackend` and submits the results.

pub mod backend;
pub mod batching;
pub mod bridge;
pub mod chat_template;
pub mod client;
pub mod config;
pub mod decoding;
pub mod device;
pub mod diffusion;
pub mod gguf;
pub mod gpu;
pub mod hf;
pub mod image_bridge;
pub mod image_model;
pub mod llama;
pub mod matvec;
pub mod nsfw;
pub mod quants;
pub mod sampling;
pub mod text_model;
pub mod tokenizer;
pub mod weight_bytes;

pub use backend::{Generated, TextBackend, TextJob};
pub use bridge::{Bridge, BridgeStats};
pub use client::HordeClient;
pub use config::WorkerConfig;

/// `bridge_agent` this worker announces.
pub fn bridge_agent() -> String {
    format!("horde-worker:{}:https://github.com/horde", env!("CARGO_PKG_VERSION"))
}

//! `horde-worker`: joins any horde (ours or the public one), pops text jobs, generates them with a
//! `TextBackend` and submits the results.
//!
//! Without the `burn` feature (on by default) the crate is the host CPU engine for text (GGUF
//! models, `llama` on the host, `matvec`, `quants`) and the bridge: what `horde serve
//! --local-worker` links. Burn devices, image generation and the NSFW censor need `burn`.

#[cfg(feature = "burn")]
pub mod alchemy;
#[cfg(feature = "burn")]
pub mod alchemy_bridge;
pub mod backend;
pub mod batching;
#[cfg(feature = "burn")]
pub mod blip;
pub mod bridge;
#[cfg(feature = "burn")]
pub mod caption;
pub mod chat_template;
pub mod client;
pub mod config;
pub mod decoding;
pub mod device;
#[cfg(feature = "burn")]
pub mod diffusion;
pub mod gguf;
#[cfg(feature = "burn")]
pub mod gpu;
pub mod hf;
#[cfg(feature = "burn")]
pub mod image_bridge;
#[cfg(feature = "burn")]
pub mod image_model;
pub mod job_loop;
pub mod llama;
// Some of its helpers serve only burn's partial offload.
#[cfg_attr(not(feature = "burn"), allow(dead_code))]
pub mod matvec;
#[cfg(feature = "burn")]
pub mod nsfw;
#[cfg(feature = "burn")]
pub mod post_processing;
pub mod quants;
pub mod sampling;
pub mod text_model;
pub mod tokenizer;
#[cfg(feature = "burn")]
pub mod u2net;
#[cfg(feature = "burn")]
pub mod upscale;
pub mod weight_bytes;

pub use backend::{AlchemyBackend, AlchemyJob, FinishedImage, FormResult, Generated, ImageBackend, ImageJob, TextBackend, TextJob};
pub use bridge::{Bridge, BridgeStats};
pub use client::HordeClient;
pub use config::WorkerConfig;

/// `bridge_agent` this worker announces.
pub fn bridge_agent() -> String {
    format!("horde-worker:{}:https://github.com/horde", env!("CARGO_PKG_VERSION"))
}

//! Image generation: a Stable-Diffusion-1.5-compatible pipeline on burn. It reads a diffusers
//! checkout (`tokenizer/`, `text_encoder/`, `unet/`, `vae/`) that the operator supplies: CLIP
//! text encoder, UNet2DCondition, the VAE's decoder and encoder, the horde's samplers, and
//! classifier-free guidance. Parity with diffusers is checked on tiny random models
//! (`compat/sd_fixtures.py`, `worker/tests/fixtures/tiny-sd`).

pub mod clip;
pub mod cpu_attention;
pub mod layers;
pub mod pipeline;
pub mod sampler;
pub mod tokenizer;
pub mod unet;
pub mod vae;
pub mod weights;

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("missing weight {0}")]
    Missing(String),
    #[error("weight {name} has shape {found:?}, expected {expected}")]
    Shape { name: String, expected: String, found: Vec<usize> },
    #[error("{0}")]
    Invalid(String),
}

impl DiffusionError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DiffusionError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

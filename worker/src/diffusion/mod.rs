//! Image generation: a Stable-Diffusion-1.5-compatible pipeline on burn. It reads a diffusers
//! checkout (`tokenizer/`, `text_encoder/`, `unet/`, `vae/`) that the operator supplies: CLIP
//! text encoder, UNet2DCondition, the VAE's decoder and encoder, the horde's samplers, and
//! classifier-free guidance. Parity with diffusers is checked on tiny random models
//! (`compat/sd_fixtures.py`, `worker/tests/fixtures/tiny-sd`).
//!
//! On a GPU (`wgpu`, `cuda`) the weights and activations are f16 (`compute_dtype`): norms compute
//! in f32, attention is burn's fused kernel (flash attention on cubecl, f32 accumulation). The
//! models take and return f32 tensors, so the samplers and the pipeline work in f32 everywhere.
//! On the CPU (burn's flex backend) everything stays f32.

pub mod clip;
pub mod cpu_attention;
pub mod layers;
pub mod pipeline;
pub mod random_unet;
pub mod sampler;
pub mod tokenizer;
pub mod unet;
pub mod vae;
pub mod weights;

use std::path::Path;

use burn::prelude::Device;
use burn::tensor::FloatDType;

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

/// The float type the image models compute in on `device`: f16 on a GPU that computes in it, f32
/// on burn's CPU backend (whose f32 path is the tested reference) and on GPUs without f16.
pub fn compute_dtype(device: &Device) -> FloatDType {
    if *device != Device::flex() && device.supports_dtype(FloatDType::F16) {
        FloatDType::F16
    } else {
        FloatDType::F32
    }
}

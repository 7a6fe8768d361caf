//! The image models on a wgpu device (in CI: Mesa's software Vulkan, lavapipe) against burn's
//! CPU backend, on the tiny random Stable-Diffusion-shaped checkout of the parity tests
//! (`tests/fixtures/tiny-sd`): in f16, as the worker runs them on GPUs, within f16's tolerance,
//! and in f32 within f32's, so that a difference beyond rounding shows as such.
//!
//! Without a wgpu adapter the tests say so and pass, unless HORDE_REQUIRE_GPU_SMOKE is set (CI),
//! which makes that a failure.
#![cfg(feature = "wgpu")]

use std::path::PathBuf;

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use horde_worker::diffusion::clip::{ClipConfig, ClipTextEncoder};
use horde_worker::diffusion::compute_dtype;
use horde_worker::diffusion::pipeline::{ImagePipeline, ImageRequest};
use horde_worker::diffusion::random_unet::UNetShape;
use horde_worker::diffusion::sampler::SamplerKind;
use horde_worker::diffusion::unet::{UNet, UNetConfig};
use horde_worker::diffusion::vae::{Vae, VaeConfig};
use horde_worker::diffusion::weights::{read_config, Checkpoint};

mod common;

use common::assert_close;

/// f16 keeps 11 significant bits (relative rounding 4.9e-4 per stored value; the matrix and
/// convolution kernels accumulate in f32). Measured on lavapipe, the largest difference is 0.1%
/// of the output's scale for CLIP and 1.1–1.5% for the UNets and the VAE, whose every one of
/// ~20–30 layers rounds its activations (the root mean square is about a quarter of that); the
/// bound is twice the worst. A bug (a wrong layout, a missing cast) moves outputs by their scale.
const F16_TOLERANCE: f32 = 3e-2;
/// f32 on another backend: other summation orders only.
const F32_TOLERANCE: f32 = 1e-4;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-sd")
}

/// The wgpu device, or `None` (with a message) where there is no adapter and the smoke test is
/// not required.
fn wgpu() -> Option<Device> {
    common::wgpu_device()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    assert_eq!(t.dtype(), DType::F32, "the models hand back f32");
    t.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

fn checkpoint(part: &str, device: &Device, dtype: FloatDType) -> Checkpoint {
    Checkpoint::open(&fixture().join(part), device)
        .expect("tiny checkout")
        .with_dtype(dtype)
}

fn unet(device: &Device, dtype: FloatDType) -> UNet {
    let config: UNetConfig = read_config(&fixture().join("unet")).expect("config");
    UNet::from_checkpoint(config, &checkpoint("unet", device, dtype)).expect("UNet")
}

fn vae(device: &Device, dtype: FloatDType) -> Vae {
    let config: VaeConfig = read_config(&fixture().join("vae")).expect("config");
    Vae::from_checkpoint(config, &checkpoint("vae", device, dtype)).expect("VAE")
}

fn clip(device: &Device, dtype: FloatDType) -> ClipTextEncoder {
    let config: ClipConfig = read_config(&fixture().join("text_encoder")).expect("config");
    let ck = checkpoint("text_encoder", device, dtype).with_prefix("text_model.");
    ClipTextEncoder::from_checkpoint(config, &ck).expect("CLIP")
}

/// Test inputs: the parity fixture's (made by diffusers), on `device`.
fn expected(name: &str, device: &Device) -> TensorData {
    let ck = Checkpoint::open(&fixture(), device).expect("expected.safetensors");
    let (values, shape) = ck.values(name).expect(name);
    TensorData::new(values, shape)
}

#[test]
fn gpus_compute_the_image_models_in_f16() {
    let Some(device) = wgpu() else { return };
    assert!(
        device.supports_dtype(FloatDType::F16),
        "lavapipe and every GPU the worker targets compute in f16"
    );
    assert_eq!(compute_dtype(&device), FloatDType::F16);
    assert_eq!(compute_dtype(&Device::flex()), FloatDType::F32, "the CPU path stays f32");
    let ck = Checkpoint::open(&fixture().join("unet"), &device).expect("tiny UNet");
    assert_eq!(ck.tensor::<4>("conv_in.weight").expect("weight").dtype(), DType::F16);
    assert_eq!(ck.tensor_f32::<1>("conv_norm_out.weight").expect("weight").dtype(), DType::F32);
    let pipe = ImagePipeline::load(&fixture(), &device).expect("pipeline");
    assert_eq!(pipe.unet().dtype(), FloatDType::F16);
}

#[test]
fn unet_on_wgpu_agrees_with_flex() {
    let Some(device) = wgpu() else { return };
    let cpu = Device::flex();
    let reference = unet(&cpu, FloatDType::F32);
    for t in [500.0, 17.0] {
        let run = |model: &UNet, device: &Device| {
            let sample = Tensor::<4>::from_data(expected("unet.sample", device), device);
            let context = Tensor::<3>::from_data(expected("unet.context", device), device);
            values(model.forward(sample, t, &context))
        };
        let want = run(&reference, &cpu);
        assert_close(
            &format!("UNet f16, t={t}"),
            &run(&unet(&device, FloatDType::F16), &device),
            &want,
            F16_TOLERANCE,
        );
        assert_close(
            &format!("UNet f32, t={t}"),
            &run(&unet(&device, FloatDType::F32), &device),
            &want,
            F32_TOLERANCE,
        );
    }
}

#[test]
fn vae_on_wgpu_agrees_with_flex() {
    let Some(device) = wgpu() else { return };
    let cpu = Device::flex();
    let reference = vae(&cpu, FloatDType::F32);
    let decode = |model: &Vae, device: &Device| values(model.decode(Tensor::from_data(expected("vae.latent", device), device)));
    let encode = |model: &Vae, device: &Device| {
        let (mean, std) = model
            .encode(Tensor::from_data(expected("vae.image", device), device))
            .expect("encoder");
        (values(mean), values(std))
    };
    let (want_decoded, (want_mean, want_std)) = (decode(&reference, &cpu), encode(&reference, &cpu));
    for (dtype, tol) in [(FloatDType::F16, F16_TOLERANCE), (FloatDType::F32, F32_TOLERANCE)] {
        let model = vae(&device, dtype);
        assert_close(&format!("VAE decode {dtype:?}"), &decode(&model, &device), &want_decoded, tol);
        let (mean, std) = encode(&model, &device);
        assert_close(&format!("VAE encode mean {dtype:?}"), &mean, &want_mean, tol);
        assert_close(&format!("VAE encode std {dtype:?}"), &std, &want_std, tol);
    }
}

#[test]
fn text_encoder_on_wgpu_agrees_with_flex() {
    let Some(device) = wgpu() else { return };
    let cpu = Device::flex();
    let tokens: Vec<u32> = expected("tokens.0", &cpu)
        .try_to_vec::<f32>()
        .expect("tokens")
        .iter()
        .map(|&v| v as u32)
        .collect();
    // Two sequences, so that the causal attention runs on a batch.
    let batch = [tokens.clone(), tokens.iter().rev().copied().collect()];
    for skip in [1, 2] {
        let want = values(clip(&cpu, FloatDType::F32).forward(&batch, skip).expect("CLIP"));
        for (dtype, tol) in [(FloatDType::F16, F16_TOLERANCE), (FloatDType::F32, F32_TOLERANCE)] {
            let got = values(clip(&device, dtype).forward(&batch, skip).expect("CLIP"));
            assert_close(&format!("CLIP {dtype:?}, clip skip {skip}"), &got, &want, tol);
        }
    }
}

#[test]
fn two_step_generation_on_wgpu_matches_flex() {
    let Some(device) = wgpu() else { return };
    let request = ImageRequest {
        prompt: "a red cube on a table".into(),
        negative_prompt: "blurry".into(),
        width: 32,
        height: 32,
        steps: 2,
        cfg_scale: 7.5,
        sampler: SamplerKind::Euler,
        karras: false,
        seed: 42,
        clip_skip: 1,
        source: None,
    };
    let generate = |device: &Device| {
        let pipe = ImagePipeline::load(&fixture(), device).expect("pipeline");
        pipe.generate(&request, &mut |_, _| {}).expect("image")
    };
    let (want, got) = (generate(&Device::flex()), generate(&device));
    assert_eq!((got.width, got.height), (want.width, want.height));
    let worst = got.pixels.iter().zip(&want.pixels).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
    let mean = got
        .pixels
        .iter()
        .zip(&want.pixels)
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / got.pixels.len() as f64;
    eprintln!("generation f16 on wgpu: largest pixel difference {worst} of 255, mean {mean:.2}");
    // Guidance at 7.5 multiplies the UNet's f16 differences (measured: 9 of 255 at most).
    assert!(
        worst <= 20 && mean <= 3.0,
        "pixels differ by up to {worst} of 255, {mean:.2} on average"
    );
}

#[test]
fn random_full_layout_unet_runs_on_wgpu_in_f16() {
    let Some(device) = wgpu() else { return };
    // The layout gpu_check times at Stable Diffusion 1.5's size, here at the tiny one's.
    let shape = UNetShape::tiny();
    let gpu = shape.random(3, &device).expect("random UNet");
    let cpu = shape.random(3, &Device::flex()).expect("random UNet");
    assert_eq!(gpu.dtype(), FloatDType::F16);
    let sample = TensorData::new(
        (0..2 * 4 * 8 * 8).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect::<Vec<f32>>(),
        [2, 4, 8, 8],
    );
    let context = TensorData::new(
        (0..2 * 7 * 32).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect::<Vec<f32>>(),
        [2, 7, 32],
    );
    let run = |model: &UNet, device: &Device| {
        values(model.forward(
            Tensor::from_data(sample.clone(), device),
            999.0,
            &Tensor::from_data(context.clone(), device),
        ))
    };
    assert_close(
        "random tiny UNet f16",
        &run(&gpu, &device),
        &run(&cpu, &Device::flex()),
        F16_TOLERANCE,
    );
}

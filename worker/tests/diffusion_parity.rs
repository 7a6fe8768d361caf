//! The image pipeline against diffusers + transformers on a tiny random Stable-Diffusion-shaped
//! model (`compat/sd_fixtures.py` wrote `tests/fixtures/tiny-sd`): tokenizer, text encoder, UNet,
//! VAE, every sampler's loop, and a full two-step generation.

use std::path::PathBuf;

use burn::prelude::*;
use horde_worker::diffusion::pipeline::ImagePipeline;
use horde_worker::diffusion::sampler::{NoiseSchedule, SamplerKind, Schedule};
use horde_worker::diffusion::weights::Checkpoint;
use rand::SeedableRng;

mod common;

use common::assert_close;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-sd")
}

struct Expected(Checkpoint);

impl Expected {
    fn load() -> Self {
        Expected(Checkpoint::open(&fixture(), &Device::flex()).expect("expected.safetensors"))
    }
    fn values(&self, name: &str) -> Vec<f32> {
        self.0.values(name).unwrap_or_else(|e| panic!("{name}: {e}")).0
    }
    fn tensor<const D: usize>(&self, name: &str) -> Tensor<D> {
        self.0.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

fn pipeline() -> ImagePipeline {
    ImagePipeline::load(&fixture(), &Device::flex()).expect("tiny pipeline loads")
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

#[test]
fn tokenizer_matches_transformers() {
    let pipe = pipeline();
    let expected = Expected::load();
    let prompts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(fixture().join("prompts.json")).unwrap()).unwrap();
    for (i, prompt) in prompts.iter().enumerate() {
        let want: Vec<u32> = expected.values(&format!("tokens.{i}")).iter().map(|&v| v as u32).collect();
        let (got, truncated) = pipe.tokenizer().encode_padded(prompt);
        assert_eq!(got, want, "prompt {prompt:?}");
        assert_eq!(truncated, i == 4, "only the 100-word prompt is cut");
    }
}

#[test]
fn text_encoder_matches_transformers() {
    let pipe = pipeline();
    let expected = Expected::load();
    let tokens: Vec<u32> = expected.values("tokens.0").iter().map(|&v| v as u32).collect();
    for (skip, name) in [(1, "text_encoder.last"), (2, "text_encoder.clip_skip_2")] {
        let out = pipe.text_encoder().forward(std::slice::from_ref(&tokens), skip).unwrap();
        assert_close(name, &values(out), &expected.values(name), 1e-4);
    }
}

#[test]
fn unet_matches_diffusers() {
    let pipe = pipeline();
    let expected = Expected::load();
    let sample = expected.tensor::<4>("unet.sample");
    let context = expected.tensor::<3>("unet.context");
    for t in [500, 17] {
        let out = pipe.unet().forward(sample.clone(), t as f32, &context);
        assert_close(
            &format!("unet t={t}"),
            &values(out),
            &expected.values(&format!("unet.out.t{t}")),
            1e-4,
        );
    }
}

#[test]
fn vae_matches_diffusers() {
    let pipe = pipeline();
    let expected = Expected::load();
    let decoded = pipe.vae().decode(expected.tensor("vae.latent"));
    assert_close("vae decode", &values(decoded), &expected.values("vae.decoded"), 1e-4);
    let (mean, std) = pipe.vae().encode(expected.tensor("vae.image")).unwrap();
    assert_close("vae encode mean", &values(mean), &expected.values("vae.encoded.mean"), 1e-4);
    assert_close("vae encode std", &values(std), &expected.values("vae.encoded.std"), 1e-4);
}

#[test]
fn samplers_match_diffusers() {
    let expected = Expected::load();
    let noise_schedule = NoiseSchedule::stable_diffusion();
    let cases = [
        ("euler", SamplerKind::Euler, false),
        ("euler_karras", SamplerKind::Euler, true),
        ("dpmpp_2m", SamplerKind::DpmPp2M, false),
        ("dpmpp_2m_karras", SamplerKind::DpmPp2M, true),
        ("ddim", SamplerKind::Ddim, false),
    ];
    for (name, kind, karras) in cases {
        for steps in [1, 7, 30] {
            let schedule = Schedule::new(kind, steps, karras, &noise_schedule);
            let timesteps: Vec<f32> = schedule.timesteps.iter().map(|&t| t as f32).collect();
            assert_close(
                &format!("{name} {steps} timesteps"),
                &timesteps,
                &expected.values(&format!("sampler.{name}.{steps}.timesteps")),
                1e-5,
            );
            let x = schedule.initial(expected.tensor("sampler.noise"));
            // The fixture's stand-in for a UNet: 0.8·tanh(x) + 0.001·t.
            let mut denoise = |x: Tensor<4>, t: f64| x.tanh().mul_scalar(0.8).add_scalar(0.001 * t);
            let mut no_noise = || -> Tensor<4> { unreachable!("deterministic samplers draw no noise") };
            let out = schedule.run(x, 0, &mut denoise, &mut no_noise, &mut |_| {});
            assert_close(
                &format!("{name} {steps} steps"),
                &values(out),
                &expected.values(&format!("sampler.{name}.{steps}.out")),
                1e-4,
            );
        }
    }
}

#[test]
fn euler_ancestral_matches_diffusers_given_its_noise() {
    let expected = Expected::load();
    for steps in [1, 7, 30] {
        let schedule = Schedule::new(SamplerKind::EulerAncestral, steps, false, &NoiseSchedule::stable_diffusion());
        let timesteps: Vec<f32> = schedule.timesteps.iter().map(|&t| t as f32).collect();
        assert_close(
            "euler_a timesteps",
            &timesteps,
            &expected.values(&format!("sampler.euler_a.{steps}.timesteps")),
            1e-5,
        );
        let draws: Tensor<5> = expected.tensor(&format!("sampler.euler_a.{steps}.draws"));
        let mut next = 0;
        let mut fresh = || {
            next += 1;
            draws.clone().narrow(0, next - 1, 1).squeeze_dim::<4>(0)
        };
        let x = schedule.initial(expected.tensor("sampler.noise"));
        let mut denoise = |x: Tensor<4>, t: f64| x.tanh().mul_scalar(0.8).add_scalar(0.001 * t);
        let out = schedule.run(x, 0, &mut denoise, &mut fresh, &mut |_| {});
        assert_close(
            &format!("euler_a {steps} steps"),
            &values(out),
            &expected.values(&format!("sampler.euler_a.{steps}.out")),
            1e-4,
        );
        // diffusers also draws (and multiplies by 0) at the last step, to σ = 0.
        assert_eq!(next, steps - 1, "one draw per step but the last");
    }
}

#[test]
fn two_step_pipeline_matches_diffusers() {
    let pipe = pipeline();
    let expected = Expected::load();
    let prompts: Vec<String> = serde_json::from_str(&std::fs::read_to_string(fixture().join("prompts.json")).unwrap()).unwrap();
    let context = pipe.encode_prompts(&prompts[0], "blurry, low quality", 1).unwrap();
    let schedule = Schedule::new(SamplerKind::Euler, 2, false, &NoiseSchedule::stable_diffusion());
    let x = schedule.initial(expected.tensor("pipeline.latents"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let latents = pipe.sample(&schedule, x, 0, &context, 7.5, &mut rng, &mut |_| {});
    // diffusers returns height × width × channels.
    let image = pipe.decode_to_unit(latents).permute([0, 2, 3, 1]);
    assert_close("pipeline image", &values(image), &expected.values("pipeline.image"), 2e-4);
}

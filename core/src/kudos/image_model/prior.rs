//! The analytic prior (see the module documentation of `image_model`), and the training set
//! drawn from it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::features::{PayloadFeatures, Timing};
use crate::image::request::{CONTROL_TYPES, SAMPLERS, SECOND_ORDER_SAMPLERS, UPSCALERS};

/// The analytic prior (see the module documentation).
pub fn prior_seconds(p: &PayloadFeatures) -> f64 {
    let px = (p.width * p.height) as f64 / (512.0 * 512.0);
    let img2img = p.source_processing != "txt2img";
    let denoise = if img2img { p.denoising_strength.clamp(0.01, 1.0) } else { 1.0 };
    let evals = if p.sampler == "k_dpm_adaptive" {
        40.0
    } else if SECOND_ORDER_SAMPLERS.contains(&p.sampler.as_str()) {
        2.0 * p.steps as f64 * denoise
    } else {
        p.steps as f64 * denoise
    };
    let mut per_eval = 0.11 * px.powf(1.2) * 1.03f64.powi(p.loras as i32);
    if !p.control_type.is_empty() {
        per_eval *= 1.4;
    }
    let mut sampling = evals * per_eval;
    if p.hires_fix {
        sampling *= 1.5;
    }
    let mut post = 0.0;
    for pp in &p.post_processing {
        post += if UPSCALERS.contains(&pp.as_str()) {
            1.5 * px
        } else if pp == "strip_background" {
            1.0
        } else {
            0.8
        };
    }
    0.5 + sampling + 0.25 * px + 0.3 * p.loras as f64 + 0.1 * p.tis as f64 + post
}

/// Random payloads spanning what clients send, timed by the prior: the initial training set.
pub fn prior_dataset(rows: usize, seed: u64) -> Vec<Timing> {
    let mut rng = StdRng::seed_from_u64(seed);
    let pps: Vec<&str> = PayloadFeatures::post_processors().collect();
    (0..rows)
        .map(|_| {
            // Mostly common sizes, sometimes anything up to 2048 a side.
            let side = |rng: &mut StdRng| {
                if rng.random_bool(0.7) {
                    64 * rng.random_range(6..=16)
                } else {
                    64 * rng.random_range(1..=32)
                }
            };
            let source_processing = match rng.random_range(0..10) {
                0..=5 => "txt2img",
                6..=7 => "img2img",
                8 => "inpainting",
                _ => "outpainting",
            };
            let control_type = if source_processing == "img2img" && rng.random_bool(0.3) {
                CONTROL_TYPES[rng.random_range(0..CONTROL_TYPES.len())].to_string()
            } else {
                String::new()
            };
            let mut post_processing = vec![];
            if rng.random_bool(0.2) {
                post_processing.push(pps[rng.random_range(0..pps.len())].to_string());
            }
            let steps = if rng.random_bool(0.8) {
                rng.random_range(10..=60)
            } else {
                rng.random_range(1..=150)
            };
            let payload = PayloadFeatures {
                width: side(&mut rng),
                height: side(&mut rng),
                steps,
                sampler: SAMPLERS[rng.random_range(0..SAMPLERS.len())].to_string(),
                cfg_scale: (rng.random_range(10..=300) as f64) / 20.0,
                denoising_strength: if source_processing == "txt2img" {
                    1.0
                } else {
                    rng.random_range(5..=100) as f64 / 100.0
                },
                karras: rng.random_bool(0.7),
                hires_fix: rng.random_bool(0.1),
                source_processing: source_processing.into(),
                control_type,
                post_processing,
                loras: if rng.random_bool(0.2) { rng.random_range(1..=5) } else { 0 },
                tis: if rng.random_bool(0.1) { rng.random_range(1..=5) } else { 0 },
            };
            let seconds = prior_seconds(&payload);
            Timing { payload, seconds }
        })
        .collect()
}

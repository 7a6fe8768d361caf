//! The time of a guided Stable Diffusion 1.5 UNet step on random weights.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use horde_worker::diffusion::random_unet::UNetShape;

use crate::Options;

/// Loads a random UNet (SD 1.5's shape, or the tiny one with `--small`) and times guided steps
/// (batch 2: negative and positive prompt) at the asked image size.
pub fn time_steps(options: &Options) -> Result<(), String> {
    let (shape, what) = if options.full_unet {
        (UNetShape::sd15(), "SD 1.5 UNet")
    } else {
        (UNetShape::tiny(), "tiny UNet (--small)")
    };
    let device = &options.device;
    let start = Instant::now();
    let unet = shape.random(0, device).map_err(|e| e.to_string())?;
    println!(
        "{what}: {:.1} M random parameters in {:?}, made and uploaded in {:.1} s",
        shape.parameters() as f64 / 1e6,
        unet.dtype(),
        start.elapsed().as_secs_f64()
    );
    let latent = options.image_size / 8;
    let sample = Tensor::<4>::random([2, shape.latent_channels, latent, latent], Distribution::Normal(0.0, 1.0), device);
    let context = Tensor::<3>::random([2, 77, shape.cross_attention_dim], Distribution::Normal(0.0, 1.0), device);
    let step = || {
        let start = Instant::now();
        // Reading the result back waits for the device.
        let out = unet.forward(sample.clone(), 999.0, &context).into_data();
        (start.elapsed().as_secs_f64(), out)
    };
    // The first step compiles and autotunes the kernels.
    let (first, _) = step();
    let runs = if options.full_unet { 5 } else { 2 };
    let mut times = Vec::new();
    let mut finite = true;
    for _ in 0..runs {
        let (t, out) = step();
        times.push(t);
        finite &= out.try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?.iter().all(|v| v.is_finite());
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let size = options.image_size;
    println!("guided {size}x{size} UNet step: {best:.3} s (best of {runs}; first, with compilation, {first:.1} s)");
    println!("{} steps: {:.2} s of UNet", options.steps, best * options.steps as f64);
    crate::card::print_memory(device, "the UNet");
    if !finite {
        // Timing holds all the same; a real checkpoint's activations are tamer than random ones.
        println!("note: the random UNet's output is not finite everywhere");
    }
    Ok(())
}

//! Seconds per guided UNet step at 512×512 (batch 2: negative and positive prompt, 64×64
//! latents) on burn's CPU backend, for a UNet with Stable Diffusion 1.5's shape. The weights come
//! from `compat/sd_unet_step.py DIR` (random, diffusers layout), which also times diffusers.
//!
//! `--random` instead of DIR builds the same shape in memory with random weights
//! (`diffusion::random_unet`), without Python. On GPUs the UNet computes in f16.
//!
//!     cargo bench -p horde-worker --bench unet_step -- DIR|--random [--runs N] [--device flex|wgpu|cuda] [--size 512]

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use horde_worker::device::{select, Compute};
use horde_worker::diffusion::random_unet::UNetShape;
use horde_worker::diffusion::unet::UNet;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let option = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let random = args.iter().any(|a| a == "--random");
    // The first argument that is neither an option nor an option's value.
    let takes_value = |a: &str| ["--runs", "--device", "--size"].contains(&a);
    let dir = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || !takes_value(&args[i - 1])))
        .map(|(_, a)| PathBuf::from(a));
    if dir.is_none() && !random {
        eprintln!("usage: cargo bench -p horde-worker --bench unet_step -- DIR|--random [--runs N] [--device D]");
        std::process::exit(2);
    }
    let runs: usize = option("--runs").and_then(|r| r.parse().ok()).unwrap_or(3);
    // Image side in pixels; the latents are an eighth of it.
    let size: usize = option("--size").and_then(|r| r.parse().ok()).filter(|s| s % 64 == 0).unwrap_or(512);
    let device = match select(&option("--device").unwrap_or_else(|| "flex".into())) {
        Ok(Compute::Burn(d)) => d,
        Ok(Compute::Host) => Device::flex(),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let loaded = match &dir {
        Some(dir) if !random => UNet::load(&dir.join("unet"), &device).map_err(|e| format!("cannot load {}: {e}", dir.display())),
        _ => UNetShape::sd15().random(0, &device).map_err(|e| e.to_string()),
    };
    let unet = loaded.unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    println!("loaded in {:.1} s", start.elapsed().as_secs_f64());
    let sample = Tensor::<4>::random([2, 4, size / 8, size / 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let context = Tensor::<3>::random([2, 77, 768], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let mut times = vec![];
    for _ in 0..=runs {
        let start = Instant::now();
        let out = unet.forward(sample.clone(), 999.0, &context);
        // Wait for the result (asynchronous backends).
        let _ = out.into_data();
        times.push(start.elapsed().as_secs_f64());
    }
    let measured = &times[1..];
    let best = measured.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "horde-worker (burn, {device:?}, {:?}, {} threads): guided {size}x{size} UNet step {best:.2} s (best of {runs}), all {:?}",
        unet.dtype(),
        rayon::current_num_threads(),
        measured.iter().map(|t| (t * 100.0).round() / 100.0).collect::<Vec<_>>()
    );
}

//! The GPU check (`scripts/gpu-check.sh` runs it): on one device, with no network,
//! - the first-token logits of SmolLM2-135M and Gemma 3 270M against the CPU engine's,
//! - their prefill and decode speed at batch 1 and 8 and the fraction of the card's peak memory
//!   bandwidth that decode reaches (bytes of weights per token × tokens/s ÷ peak),
//! - the time of one guided UNet step of a random-weight, full-size Stable Diffusion 1.5 UNet
//!   (f16 on GPUs) at 512×512, and 20 such steps,
//! - the device memory in use with each model loaded (burn's allocator; `nvidia-smi` where
//!   there is one).
//!
//! Exits 1 when a logits check fails, 2 on bad arguments.
//!
//! ```text
//! cargo run --release --features cuda --example gpu_check -- --device cuda
//! cargo run --features wgpu --example gpu_check -- --device wgpu --small   # lavapipe: small sizes
//! ```
//!
//! Options: `--device D` (`cuda[:N]`, `wgpu[:N]`, `flex`), `--small` (few tokens, a tiny UNet at
//! 64×64: for software Vulkan), `--smollm PATH`, `--gemma PATH` (default: the model cache of
//! `scripts/fetch-models.sh`), `--size PX`, `--steps N`, `--prompt-tokens N`, `--new-tokens N`,
//! `--peak-gbs GB/s` (the card's peak memory bandwidth when it is not in the table).

mod card;
mod llm;
mod unet;

use std::path::PathBuf;

use burn::prelude::Device;
use horde_worker::device::{select, Compute};

/// What the run measures, from the command line.
pub struct Options {
    pub device: Device,
    pub device_spec: String,
    pub models: Vec<(String, PathBuf)>,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub batch: usize,
    pub image_size: usize,
    pub steps: usize,
    pub full_unet: bool,
    pub peak_gbs: Option<f64>,
}

fn model_cache() -> PathBuf {
    std::env::var_os("HORDE_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/horde/models"))
}

fn parse() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let option = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let number = |name: &str, default: usize| -> Result<usize, String> {
        option(name).map_or(Ok(default), |v| v.parse().map_err(|_| format!("{name}: not a number: {v}")))
    };
    let small = args.iter().any(|a| a == "--small");
    let device_spec = option("--device").unwrap_or_else(|| "wgpu".into());
    let device = match select(&device_spec)? {
        Compute::Burn(d) => d,
        Compute::Host => return Err("--device must be a burn device (cuda, wgpu or flex)".into()),
    };
    let cache = model_cache();
    let models = vec![
        (
            "SmolLM2-135M Q4_1".to_string(),
            option("--smollm").map_or_else(|| cache.join("SmolLM2-135M-Instruct.Q4_1.gguf"), PathBuf::from),
        ),
        (
            "Gemma 3 270M Q4_K_M".to_string(),
            option("--gemma").map_or_else(|| cache.join("gemma-3-270m-q4_k_m.gguf"), PathBuf::from),
        ),
    ];
    let image_size = number("--size", if small { 64 } else { 512 })?;
    if image_size == 0 || !image_size.is_multiple_of(64) {
        return Err("--size must be a positive multiple of 64".into());
    }
    Ok(Options {
        device,
        device_spec,
        models,
        prompt_tokens: number("--prompt-tokens", if small { 16 } else { 128 })?.max(1),
        new_tokens: number("--new-tokens", if small { 4 } else { 64 })?.max(2),
        batch: 8,
        image_size,
        steps: number("--steps", 20)?.max(1),
        full_unet: !small,
        peak_gbs: option("--peak-gbs").and_then(|v| v.parse().ok()),
    })
}

/// Runs one part of the check; a failure or a panic (a kernel the backend cannot run, memory it
/// cannot allocate) is printed as FAIL and the other parts still run. Whether it passed.
fn report(part: impl FnOnce() -> Result<bool, String>) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(part)) {
        Ok(Ok(passed)) => passed,
        Ok(Err(e)) => {
            println!("FAIL: {e}");
            false
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            // burn's errors run to many lines; the first and the root cause say what failed.
            let lines: Vec<&str> = message.lines().filter(|l| !l.trim().is_empty()).collect();
            let root = lines.iter().rev().find(|l| !l.contains("backtrace") && !l.starts_with("Asked at"));
            println!("FAIL: panicked: {}", lines.first().unwrap_or(&""));
            if let Some(root) = root.filter(|r| Some(*r) != lines.first()) {
                println!("      root cause: {}", root.trim());
            }
            false
        }
    }
}

fn main() {
    let options = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("gpu_check: {e}");
            std::process::exit(2);
        }
    };
    let card = card::Card::detect(&options.device, options.peak_gbs);
    println!("device: {} ({})", options.device_spec, card.name);
    if let Some(adapter) = card.adapter.as_ref().filter(|a| **a != card.name) {
        println!("adapter: {adapter}");
        if adapter.contains("llvmpipe") {
            println!(
                "warning: wgpu chose Mesa's software Vulkan beside an NVIDIA GPU: install NVIDIA's Vulkan driver \
                 (or point VK_DRIVER_FILES at its nvidia_icd.json); these figures are the CPU's"
            );
        }
    }
    match card.peak_gbs {
        Some(p) => println!("peak memory bandwidth: {p:.0} GB/s ({})", card.peak_source),
        None => println!("peak memory bandwidth: unknown (pass --peak-gbs)"),
    }
    let mut failed = false;
    for (name, path) in &options.models {
        if !path.exists() {
            println!("\n== {name}: skipped, {} is missing (scripts/fetch-models.sh)", path.display());
            continue;
        }
        println!("\n== {name} ({})", path.display());
        failed |= !report(|| llm::check(path, &options, card.peak_gbs));
        // Give back what the model held, so that the next part's memory figures are its own.
        options.device.memory_cleanup();
    }
    println!("\n== UNet");
    failed |= !report(|| unet::time_steps(&options).map(|()| true));
    println!("\ngpu_check: {}", if failed { "FAILED" } else { "all checks passed" });
    if failed {
        std::process::exit(1);
    }
}

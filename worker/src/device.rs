//! What runs inference: the host engine's quantized kernels on the CPU (`llama::host`), or a burn
//! device: burn's pure-Rust `flex` CPU backend, GPUs when built with the `wgpu` or `cuda` feature.

use burn::prelude::Device;

use crate::matvec::Isa;

/// What computes a model.
#[derive(Debug, Clone)]
pub enum Compute {
    /// The CPU, with the weights in their file encoding and our kernels.
    Host,
    /// A burn device.
    Burn(Device),
}

impl Compute {
    /// The faster CPU engine here: the host engine where its SIMD kernels run (x86-64 with AVX2),
    /// else burn's flex backend (its portable kernels beat our scalar fallback).
    pub fn cpu() -> Self {
        if Isa::best() == Isa::Scalar {
            Compute::Burn(Device::flex())
        } else {
            Compute::Host
        }
    }
}

/// Parses `cpu` (the faster CPU engine), `host`, `flex` (burn's CPU backend), `wgpu[:N]` or
/// `cuda[:N]`.
pub fn select(spec: &str) -> Result<Compute, String> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (k, i.parse::<usize>().map_err(|_| format!("bad device index in '{spec}'"))?),
        None => (spec, 0),
    };
    match kind {
        "cpu" => Ok(Compute::cpu()),
        "host" => Ok(Compute::Host),
        "flex" => Ok(Compute::Burn(Device::flex())),
        "wgpu" => wgpu(index).map(Compute::Burn),
        "cuda" => cuda(index).map(Compute::Burn),
        other => Err(format!("unknown device '{other}': use cpu, host, flex, wgpu or cuda[:N]")),
    }
}

#[cfg_attr(all(feature = "wgpu", feature = "cuda"), allow(dead_code))]
fn missing(kind: &str) -> String {
    format!("this build has no {kind} backend: build horde-worker with `--features {kind}`")
}

#[cfg(feature = "wgpu")]
fn wgpu(index: usize) -> Result<Device, String> {
    use burn::tensor::DeviceKind;
    Ok(Device::wgpu(if index == 0 {
        DeviceKind::DefaultDevice
    } else {
        DeviceKind::DiscreteGpu(index)
    }))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu(_index: usize) -> Result<Device, String> {
    Err(missing("wgpu"))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device, String> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device, String> {
    Err(missing("cuda"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert!(select("cpu").is_ok());
        assert!(matches!(select("host"), Ok(Compute::Host)));
        assert!(matches!(select("flex"), Ok(Compute::Burn(_))));
        assert!(select("tpu").is_err());
        assert!(select("cuda:x").is_err());
        #[cfg(not(feature = "cuda"))]
        assert!(select("cuda:1").err().is_some_and(|e| e.contains("--features cuda")));
    }
}

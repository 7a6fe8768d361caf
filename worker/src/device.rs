//! What runs inference: the host engine's quantized kernels on the CPU (`llama::host`), or a burn
//! device: burn's pure-Rust `flex` CPU backend, GPUs when built with the `wgpu` or `cuda` feature.
//! Without the `burn` feature only the host engine exists.

#[cfg(feature = "burn")]
use burn::prelude::Device;

#[cfg(feature = "burn")]
use crate::matvec::Isa;

/// What computes a model.
#[derive(Debug, Clone)]
pub enum Compute {
    /// The CPU, with the weights in their file encoding and our kernels.
    Host,
    /// A burn device.
    #[cfg(feature = "burn")]
    Burn(Device),
}

impl Compute {
    /// The faster CPU engine here: the host engine where its SIMD kernels run (x86-64 with AVX2),
    /// else burn's flex backend (its portable kernels beat our scalar fallback). Without the
    /// `burn` feature, the host engine always.
    pub fn cpu() -> Self {
        #[cfg(feature = "burn")]
        if Isa::best() == Isa::Scalar {
            return Compute::Burn(Device::flex());
        }
        Compute::Host
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
        #[cfg(feature = "burn")]
        "flex" => Ok(Compute::Burn(Device::flex())),
        #[cfg(feature = "burn")]
        "wgpu" => wgpu(index).map(Compute::Burn),
        #[cfg(feature = "burn")]
        "cuda" => cuda(index).map(Compute::Burn),
        #[cfg(not(feature = "burn"))]
        "flex" | "wgpu" | "cuda" => {
            let _ = index;
            Err(format!(
                "this build has no burn engine (device '{kind}'): build horde-worker with its default features"
            ))
        }
        other => Err(format!("unknown device '{other}': use cpu, host, flex, wgpu or cuda[:N]")),
    }
}

#[cfg(feature = "burn")]
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

#[cfg(all(feature = "burn", not(feature = "wgpu")))]
fn wgpu(_index: usize) -> Result<Device, String> {
    Err(missing("wgpu"))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device, String> {
    Ok(Device::cuda(index))
}

#[cfg(all(feature = "burn", not(feature = "cuda")))]
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
        #[cfg(feature = "burn")]
        assert!(matches!(select("flex"), Ok(Compute::Burn(_))));
        #[cfg(not(feature = "burn"))]
        assert!(select("flex").is_err());
        assert!(select("tpu").is_err());
        assert!(select("cuda:x").is_err());
        #[cfg(all(feature = "burn", not(feature = "cuda")))]
        assert!(select("cuda:1").err().is_some_and(|e| e.contains("--features cuda")));
    }
}

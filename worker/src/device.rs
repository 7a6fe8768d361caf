//! Which burn device runs inference: the pure-Rust CPU backend by default, GPUs when built with
//! the `wgpu` or `cuda` feature.

use burn::prelude::Device;

/// Parses `cpu`, `wgpu[:N]` or `cuda[:N]`.
pub fn select(spec: &str) -> Result<Device, String> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (k, i.parse::<usize>().map_err(|_| format!("bad device index in '{spec}'"))?),
        None => (spec, 0),
    };
    match kind {
        "cpu" | "flex" => Ok(Device::flex()),
        "wgpu" => wgpu(index),
        "cuda" => cuda(index),
        other => Err(format!("unknown device '{other}': use cpu, wgpu or cuda[:N]")),
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
        assert!(select("tpu").is_err());
        assert!(select("cuda:x").is_err());
        #[cfg(not(feature = "cuda"))]
        assert!(select("cuda:1").err().is_some_and(|e| e.contains("--features cuda")));
    }
}

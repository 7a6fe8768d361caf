//! Which burn device runs inference: the pure-Rust CPU backend by default, GPUs when built with
//! the `wgpu` or `cuda` feature.

use burn::prelude::Device;

/// Parses `cpu`, `wgpu`, `cuda` or `cuda:N`.
pub fn select(spec: &str) -> Result<Device, String> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (k, i.parse::<usize>().map_err(|_| format!("bad device index in '{spec}'"))?),
        None => (spec, 0),
    };
    match kind {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(if index == 0 {
            Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
        } else {
            Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index))
        }),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index)),
        "wgpu" | "cuda" => {
            let _ = index;
            Err(format!(
                "this build has no {kind} backend: build horde-worker with `--features {kind}`"
            ))
        }
        other => Err(format!("unknown device '{other}': use cpu, wgpu or cuda[:N]")),
    }
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

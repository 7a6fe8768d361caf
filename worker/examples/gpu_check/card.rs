//! Which card this is, its peak memory bandwidth, and the memory in use on it.

use std::process::Command;

use burn::prelude::Device;

/// Peak memory bandwidth in GB/s of NVIDIA cards by a part of the name `nvidia-smi` gives
/// (vendors' data sheets). The first match wins, so longer names come first.
const PEAK_GBS: &[(&str, f64)] = &[
    ("GH200", 4000.0),
    ("H200", 4800.0),
    ("H100 NVL", 3900.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),
    ("L40S", 864.0),
    ("L40", 864.0),
    ("L4", 300.0),
    ("A10G", 600.0),
    ("A10", 600.0),
    ("A40", 696.0),
    ("A6000", 768.0),
    ("V100", 900.0),
    ("T4", 320.0),
    ("RTX 5090", 1792.0),
    ("RTX 4090", 1008.0),
    ("RTX 4080", 717.0),
    ("RTX 3090", 936.0),
    ("RTX 3080", 760.0),
];

/// The card a check runs on.
pub struct Card {
    pub name: String,
    /// The name the backend gives its device (wgpu's adapter: `llvmpipe` is Mesa's software one).
    pub adapter: Option<String>,
    pub peak_gbs: Option<f64>,
    pub peak_source: String,
}

impl Card {
    /// Names the card (`nvidia-smi`, else the device's own name) and finds its peak bandwidth:
    /// `given` (`--peak-gbs`), else the table.
    pub fn detect(device: &Device, given: Option<f64>) -> Card {
        let adapter = device_name(device);
        let name = nvidia_smi(&["name"])
            .and_then(|rows| rows.into_iter().next())
            .and_then(|row| row.into_iter().next())
            .or_else(|| adapter.clone())
            .unwrap_or_else(|| format!("{device:?}"));
        let (peak_gbs, peak_source) = match given {
            Some(p) => (Some(p), "--peak-gbs".to_string()),
            None => match PEAK_GBS.iter().find(|(part, _)| name.contains(part)) {
                Some((part, p)) => (Some(*p), format!("data sheet of {part}")),
                None => (None, String::new()),
            },
        };
        Card {
            name,
            adapter,
            peak_gbs,
            peak_source,
        }
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn device_name(device: &Device) -> Option<String> {
    if *device == Device::flex() {
        return None;
    }
    device.identity().map(|i| i.name)
}

#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
fn device_name(_device: &Device) -> Option<String> {
    None
}

/// `nvidia-smi --query-gpu=FIELDS`: one row per GPU, one string per field; `None` without
/// `nvidia-smi` (or a driver).
fn nvidia_smi(fields: &[&str]) -> Option<Vec<Vec<String>>> {
    let out = Command::new("nvidia-smi")
        .arg(format!("--query-gpu={}", fields.join(",")))
        .arg("--format=csv,noheader,nounits")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split(',').map(|f| f.trim().to_string()).collect())
            .collect(),
    )
}

const MIB: f64 = 1024.0 * 1024.0;

/// What burn's allocator holds on `device`, and what `nvidia-smi` says is used on each GPU,
/// with what is loaded (`with`).
pub fn print_memory(device: &Device, with: &str) {
    match device.memory_pool_usage() {
        Some(u) => println!(
            "memory with {with}: burn's allocator {:.1} MiB reserved, {:.1} MiB in {} live allocations",
            u.bytes_reserved as f64 / MIB,
            u.bytes_in_use as f64 / MIB,
            u.number_allocs
        ),
        None => println!("memory with {with}: not reported by this backend"),
    }
    if let Some(rows) = nvidia_smi(&["index", "memory.used", "memory.total"]) {
        for row in rows {
            if let [index, used, total] = &row[..] {
                println!("memory with {with}: nvidia-smi GPU {index}: {used} MiB used of {total} MiB");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_prefers_the_longer_name() {
        let find = |n: &str| PEAK_GBS.iter().find(|(p, _)| n.contains(p)).map(|(_, g)| *g);
        assert_eq!(find("NVIDIA H100 PCIe"), Some(2000.0));
        assert_eq!(find("NVIDIA H100 80GB HBM3"), Some(3350.0));
        assert_eq!(find("NVIDIA L40S"), Some(864.0));
        assert_eq!(find("NVIDIA H200"), Some(4800.0));
        assert_eq!(find("llvmpipe (LLVM 15.0.6, 256 bits)"), None);
    }
}

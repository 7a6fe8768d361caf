//! Our cubecl kernels over GGUF blocks (`horde_worker::gpu`) on burn's wgpu backend (software
//! Vulkan, Mesa's lavapipe, in CI): for every encoding with a kernel, random matrices multiplied
//! with random activations of 1, 3 and 8 tokens (one launch of the decode kernel), 11 (two) and
//! 40 (the prefill path: decoded to f16 on the device, then burn's matmul) equal the f32
//! product of the host's dequantized weights (`quants::dequantize_into`, ggml's values).
//!
//! Tolerance: the decode kernel decodes the same f32 weights as the host and accumulates in f32,
//! so it differs only by the order of the additions: within `1e-4 · Σ|w·x|` per output. The
//! prefill path rounds weights and activations to f16: within `4e-3 · Σ|w·x|`.
//!
//! Matrices are of two kinds: values encoded by our quantizer (`quants::encode`), and random bytes
//! with sane f16 scales, which reach every bit pattern of the quantized values and of the
//! sub-block scales (the quantizer never sets some, e.g. Q4_K's 6-bit scales above 31).
//!
//! Skips (saying so) only where no wgpu adapter exists, never with `HORDE_REQUIRE_GPU_SMOKE=1`.
#![cfg(feature = "wgpu")]

use burn::prelude::*;
use horde_worker::gguf::{dequantize_into, TensorType};
use horde_worker::gpu::DeviceMatrix;
use horde_worker::matvec::QuantMatrix;
use horde_worker::quants::{encode, f32_to_f16};

mod common;

/// Encodings with a device kernel.
const KINDS: [TensorType; 12] = [
    TensorType::Q4_0,
    TensorType::Q4_1,
    TensorType::Q5_0,
    TensorType::Q5_1,
    TensorType::Q8_0,
    TensorType::Q2_K,
    TensorType::Q3_K,
    TensorType::Q4_K,
    TensorType::Q5_K,
    TensorType::Q6_K,
    TensorType::F16,
    TensorType::BF16,
];

/// The wgpu device, or `None` (printed) where this machine has no adapter.
fn gpu() -> Option<Device> {
    common::wgpu_device()
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn floats(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.float()).collect()
    }
}

/// The byte offsets of a block's f16 scale fields (`d`, and `dmin` or `m` where there is one).
fn scale_fields(kind: TensorType) -> &'static [usize] {
    match kind {
        TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0 => &[0],
        TensorType::Q4_1 | TensorType::Q5_1 | TensorType::Q4_K | TensorType::Q5_K => &[0, 2],
        TensorType::Q2_K => &[80, 82],
        TensorType::Q3_K => &[108],
        TensorType::Q6_K => &[208],
        _ => &[],
    }
}

/// A `rows × cols` matrix of `kind` from random bytes, its f16 scales set to values in ±[0.01,
/// 0.1) (f16/bf16: random values in [-1, 1)).
fn random_blocks(kind: TensorType, rows: usize, cols: usize, r: &mut Random) -> Vec<u8> {
    if matches!(kind, TensorType::F16 | TensorType::BF16) {
        return encode(kind, &r.floats(rows * cols));
    }
    let (per, bytes) = kind.block();
    let mut data: Vec<u8> = (0..rows * cols / per * bytes).map(|_| r.next() as u8).collect();
    for block in data.chunks_exact_mut(bytes) {
        for &at in scale_fields(kind) {
            let scale = r.float() * 0.09;
            let scale = scale + 0.01 * scale.signum();
            block[at..at + 2].copy_from_slice(&f32_to_f16(scale).to_le_bytes());
        }
    }
    data
}

/// `x · wᵀ` in f64 from the host's f32 weights, with `Σ|w·x|` per output.
fn reference(kind: TensorType, data: &[u8], rows: usize, cols: usize, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut w = Vec::new();
    dequantize_into(kind, data, &mut w);
    assert_eq!(w.len(), rows * cols);
    let tokens = x.len() / cols;
    let mut out = Vec::with_capacity(tokens * rows);
    let mut magnitude = Vec::with_capacity(tokens * rows);
    for t in 0..tokens {
        let x = &x[t * cols..][..cols];
        for r in 0..rows {
            let w = &w[r * cols..][..cols];
            out.push(w.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() as f32);
            magnitude.push(w.iter().zip(x).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum::<f64>() as f32);
        }
    }
    (out, magnitude)
}

/// Uploads `data` and checks its products with `tokens` random tokens against the reference.
fn check(device: &Device, kind: TensorType, data: Vec<u8>, rows: usize, cols: usize, tokens: &[usize], r: &mut Random) {
    let m = QuantMatrix::new(kind, rows, cols, data.clone()).expect("matrix");
    let d = DeviceMatrix::upload(&m, device).expect("upload");
    assert!(d.is_encoded(), "{kind:?} was not kept in its encoding");
    assert_eq!((d.rows(), d.cols()), (rows, cols));
    assert_eq!(d.device_bytes(), data.len().next_multiple_of(4), "{kind:?}: device bytes");
    for &t in tokens {
        let x = r.floats(t * cols);
        let (expected, magnitude) = reference(kind, &data, rows, cols, &x);
        let input = Tensor::<2>::from_data(TensorData::new(x, [t, cols]), device);
        let got = d.matmul(input);
        assert_eq!(got.dims(), [t, rows]);
        let got = got.into_data().try_to_vec::<f32>().expect("f32 result");
        let tolerance = if t > horde_worker::gpu::FEW_TOKENS_LIMIT { 4e-3 } else { 1e-4 };
        for (i, ((g, e), m)) in got.iter().zip(&expected).zip(&magnitude).enumerate() {
            assert!(
                (g - e).abs() <= tolerance * (m + 1e-3),
                "{kind:?} {rows}x{cols}, {t} tokens, output {i} (token {}, row {}): {g} vs {e} (Σ|w·x| {m})",
                i / rows,
                i % rows
            );
        }
    }
}

#[test]
fn every_kernel_matches_the_host_on_random_blocks() {
    let Some(device) = gpu() else { return };
    let mut r = Random(0x9e37_79b9_7f4a_7c15);
    // 37 rows: not a multiple of a cube's rows; 512 columns: two K-quant super-blocks, 16 chunks
    // (fewer than a row's 32 lanes, so some lanes have none).
    let (rows, cols) = (37, 512);
    for kind in KINDS {
        let data = random_blocks(kind, rows, cols, &mut r);
        check(&device, kind, data, rows, cols, &[1, 3, 8, 11, 40], &mut r);
    }
}

#[test]
fn every_kernel_matches_the_host_on_quantized_values() {
    let Some(device) = gpu() else { return };
    let mut r = Random(0x2545_f491_4f6c_dd1d);
    // 2304 columns: 72 chunks, so lanes take two or three chunks each.
    let (rows, cols) = (19, 2304);
    for kind in KINDS {
        let data = encode(kind, &r.floats(rows * cols));
        check(&device, kind, data, rows, cols, &[1, 3, 8], &mut r);
    }
}

#[test]
fn f32_matrices_go_to_the_device_as_f16() {
    let Some(device) = gpu() else { return };
    let mut r = Random(7);
    let (rows, cols) = (9, 64);
    let values = r.floats(rows * cols);
    let m = QuantMatrix::from_f32(&values, rows, cols).expect("matrix");
    let d = DeviceMatrix::upload(&m, &device).expect("upload");
    assert!(d.is_encoded());
    assert_eq!(d.device_bytes(), rows * cols * 2);
    let f16 = encode(TensorType::F16, &values);
    let x = r.floats(2 * cols);
    let (expected, magnitude) = reference(TensorType::F16, &f16, rows, cols, &x);
    let got = d
        .matmul(Tensor::<2>::from_data(TensorData::new(x, [2, cols]), &device))
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 result");
    for ((g, e), m) in got.iter().zip(&expected).zip(&magnitude) {
        assert!((g - e).abs() <= 1e-4 * (m + 1e-3), "{g} vs {e}");
    }
}

#[test]
fn encodings_without_a_kernel_are_decoded_on_the_host() {
    let Some(device) = gpu() else { return };
    let mut r = Random(11);
    let (rows, cols) = (4, 256);
    let data = encode(TensorType::Q8_K, &r.floats(rows * cols));
    let m = QuantMatrix::new(TensorType::Q8_K, rows, cols, data.clone()).expect("matrix");
    let d = DeviceMatrix::upload(&m, &device).expect("upload");
    assert!(!d.is_encoded());
    let x = r.floats(cols);
    let (expected, magnitude) = reference(TensorType::Q8_K, &data, rows, cols, &x);
    let got = d
        .matmul(Tensor::<2>::from_data(TensorData::new(x, [1, cols]), &device))
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 result");
    for ((g, e), m) in got.iter().zip(&expected).zip(&magnitude) {
        assert!((g - e).abs() <= 4e-3 * (m + 1e-3), "{g} vs {e}");
    }
}

/// One matrix of every encoding in the real model files (the smallest of each), through the
/// device against the host's dequantized product: the layouts as llama.cpp writes them.
#[test]
fn real_model_matrices_match_the_host() {
    let Some(device) = gpu() else { return };
    let mut r = Random(3);
    for (file, var) in [
        ("gemma-3-270m-q4_k_m.gguf", "HORDE_GEMMA3_GGUF"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "HORDE_SMOLLM2_GGUF"),
    ] {
        let Some(path) = common::fetched_model(file, Some(var)) else {
            continue;
        };
        let g = horde_worker::gguf::Gguf::open(&path).expect("parses");
        let mut smallest: Vec<&horde_worker::gguf::TensorInfo> = Vec::new();
        for t in g.tensors.iter().filter(|t| t.dims.len() == 2 && t.dims[1] > 1) {
            match smallest.iter_mut().find(|s| s.kind == t.kind) {
                Some(s) if t.elements() < s.elements() => *s = t,
                Some(_) => {}
                None => smallest.push(t),
            }
        }
        for t in smallest {
            let [rows, cols] = [t.shape()[0], t.shape()[1]];
            let (_, bytes) = g.encoded(&t.name).expect("tensor");
            eprintln!("{file}: {} {:?} {rows}x{cols}", t.name, t.kind);
            if t.kind == TensorType::F32 || rows * cols > 1 << 24 {
                eprintln!("  (not checked: f32, or too large for the f64 reference)");
                continue;
            }
            check(&device, t.kind, bytes.to_vec(), rows, cols, &[1, 8], &mut r);
        }
    }
}

/// Not a check: the speed of the kernels on this machine's adapter, for a machine with a real
/// GPU (`cargo test --release -p horde-worker --features wgpu --test gpu_kernels -- --ignored
/// --nocapture`): time per product and the weight bytes read per second, for a 4096×4096 matrix
/// (an 8B model's attention projection) at 1 and 8 tokens, and the prefill path at 128.
#[test]
#[ignore]
fn kernel_speed() {
    let Some(device) = gpu() else { return };
    let mut r = Random(5);
    let (rows, cols) = (4096, 4096);
    for kind in [
        TensorType::Q4_K,
        TensorType::Q6_K,
        TensorType::Q8_0,
        TensorType::Q4_0,
        TensorType::F16,
    ] {
        let m = QuantMatrix::new(kind, rows, cols, random_blocks(kind, rows, cols, &mut r)).expect("matrix");
        let d = DeviceMatrix::upload(&m, &device).expect("upload");
        for tokens in [1, 8, 128] {
            let x = Tensor::<2>::from_data(TensorData::new(r.floats(tokens * cols), [tokens, cols]), &device);
            let run = |n: usize| {
                let start = std::time::Instant::now();
                for _ in 0..n {
                    let _ = d.matmul(x.clone());
                }
                device.sync().expect("device sync");
                start.elapsed().as_secs_f64() / n as f64
            };
            run(3);
            let seconds = run(20);
            eprintln!(
                "{kind:?} {rows}x{cols}, {tokens:>3} tokens: {:8.3} ms, {:7.1} GB/s of weights",
                seconds * 1e3,
                d.device_bytes() as f64 / seconds / 1e9
            );
        }
    }
}

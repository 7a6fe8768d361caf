//! Our fused attention kernel (`horde_worker::gpu::attention::fused_attention`) on burn's wgpu
//! backend (software Vulkan, Mesa's lavapipe, in CI) against a host reference,
//! `softmax(q·kᵀ·scale + mask)·v` in f64 over the same (f16-rounded) keys and values: decode (one
//! query) and prefill, grouped-query ratios 1 and 4, heads of 64 and 256 (Gemma 3 270M), causal
//! masks after earlier positions, sliding windows, and the unmasked f16 attention of the image
//! models (heads of 40).
//!
//! The caches are larger than the keys read, their unused positions filled with huge values, so
//! a kernel reading past `keys` fails.
//!
//! Skips (saying so) only where no wgpu adapter exists, never with `HORDE_REQUIRE_GPU_SMOKE=1`.
#![cfg(feature = "wgpu")]

use burn::prelude::*;
use burn::tensor::DType;
use horde_worker::gpu::attention::{fused_attention, AttentionMask};

mod common;

use common::{assert_close, Rng};

/// One attention problem (batch 1, except where `batch` says).
struct Case {
    name: &'static str,
    batch: usize,
    queries: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    value_dim: usize,
    keys: usize,
    capacity: usize,
    mask: AttentionMask,
    /// f16 queries and output (the image models) instead of f32.
    half: bool,
}

/// Rounds through f16 (what the device holds).
fn f16_round(values: &mut [f32]) {
    for v in values {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

/// `[batch][queries][heads][value_dim]` from `[batch][·][heads][·]` host arrays, in f64.
fn reference(c: &Case, q: &[f32], k: &[f32], v: &[f32], scale: f32) -> Vec<f32> {
    let group = c.heads / c.kv_heads;
    let mut out = vec![0f32; c.batch * c.queries * c.heads * c.value_dim];
    for b in 0..c.batch {
        for i in 0..c.queries {
            let (lo, hi) = match c.mask {
                AttentionMask::Full => (0, c.keys),
                AttentionMask::Causal { past, window } => {
                    let end = (past + i + 1).min(c.keys);
                    (window.map_or(0, |w| (past + i + 1).saturating_sub(w)), end)
                }
            };
            for h in 0..c.heads {
                let kh = h / group;
                let qv = &q[((b * c.queries + i) * c.heads + h) * c.head_dim..][..c.head_dim];
                let scores: Vec<f64> = (lo..hi)
                    .map(|j| {
                        let kv = &k[((b * c.capacity + j) * c.kv_heads + kh) * c.head_dim..][..c.head_dim];
                        qv.iter().zip(kv).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale as f64
                    })
                    .collect();
                let top = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
                let total: f64 = weights.iter().sum();
                let o = &mut out[((b * c.queries + i) * c.heads + h) * c.value_dim..][..c.value_dim];
                for (j, w) in (lo..hi).zip(&weights) {
                    let vv = &v[((b * c.capacity + j) * c.kv_heads + kh) * c.value_dim..][..c.value_dim];
                    for (o, x) in o.iter_mut().zip(vv) {
                        *o += (w / total * *x as f64) as f32;
                    }
                }
            }
        }
    }
    out
}

fn run(device: &Device, c: &Case, rng: &mut Rng) {
    let mut q = rng.values(c.batch * c.queries * c.heads * c.head_dim, 1.0);
    let kv_len = |d: usize| c.batch * c.capacity * c.kv_heads * d;
    let (mut k, mut v) = (rng.values(kv_len(c.head_dim), 1.0), rng.values(kv_len(c.value_dim), 1.0));
    // Positions past `keys` hold values that would swamp the result if read.
    for b in 0..c.batch {
        for j in c.keys..c.capacity {
            let at = |d: usize| (b * c.capacity + j) * c.kv_heads * d..(b * c.capacity + j + 1) * c.kv_heads * d;
            k[at(c.head_dim)].fill(1000.0);
            v[at(c.value_dim)].fill(1000.0);
        }
    }
    f16_round(&mut k);
    f16_round(&mut v);
    if c.half {
        f16_round(&mut q);
    }
    let scale = 1.0 / (c.head_dim as f32).sqrt();
    let want = reference(c, &q, &k, &v, scale);
    let io = if c.half { DType::F16 } else { DType::F32 };
    let tensor = |x: Vec<f32>, shape: [usize; 4], dtype: DType| {
        Tensor::<4>::from_data(TensorData::new(x, shape).convert_dtype(dtype), (device, dtype))
    };
    let q = tensor(q, [c.batch, c.queries, c.heads, c.head_dim], io);
    let k = tensor(k, [c.batch, c.capacity, c.kv_heads, c.head_dim], DType::F16);
    let v = tensor(v, [c.batch, c.capacity, c.kv_heads, c.value_dim], DType::F16);
    let out = fused_attention(q, k, v, c.keys, scale, c.mask, io).expect("the fused kernel runs on wgpu");
    assert_eq!(out.dims(), [c.batch, c.queries, c.heads, c.value_dim], "{}", c.name);
    let got = out.cast(DType::F32).into_data().try_to_vec::<f32>().expect("f32");
    // f32 accumulation over the same inputs: the order of the additions; f16 output: its rounding.
    assert_close(c.name, &got, &want, if c.half { 2e-3 } else { 2e-5 });
}

#[test]
fn fused_attention_matches_the_host_reference() {
    let Some(device) = common::wgpu_device() else { return };
    let mut rng = Rng(7);
    let causal = |past: usize, window: Option<usize>| AttentionMask::Causal { past, window };
    let cases = [
        // SmolLM2-like heads of 64, no grouping: one decode step after 37 positions.
        Case {
            name: "decode, group 1, head 64",
            batch: 1,
            queries: 1,
            heads: 3,
            kv_heads: 3,
            head_dim: 64,
            value_dim: 64,
            keys: 38,
            capacity: 48,
            mask: causal(37, None),
            half: false,
        },
        // A prompt of 19 tokens after 5 cached ones, 4 query heads per key/value head.
        Case {
            name: "prefill, group 4, head 64",
            batch: 1,
            queries: 19,
            heads: 8,
            kv_heads: 2,
            head_dim: 64,
            value_dim: 64,
            keys: 24,
            capacity: 40,
            mask: causal(5, None),
            half: false,
        },
        // Gemma 3 270M: 4 query heads on one key/value head of 256; a sliding-window layer.
        Case {
            name: "decode, group 4, head 256, window 16",
            batch: 1,
            queries: 1,
            heads: 4,
            kv_heads: 1,
            head_dim: 256,
            value_dim: 256,
            keys: 41,
            capacity: 64,
            mask: causal(40, Some(16)),
            half: false,
        },
        Case {
            name: "prefill, group 4, head 256, window 8",
            batch: 1,
            queries: 23,
            heads: 4,
            kv_heads: 1,
            head_dim: 256,
            value_dim: 256,
            keys: 26,
            capacity: 32,
            mask: causal(3, Some(8)),
            half: false,
        },
        // A global Gemma layer: a long prompt of several key tiles, causal from position 0.
        Case {
            name: "prefill, group 4, head 256, from 0",
            batch: 1,
            queries: 70,
            heads: 4,
            kv_heads: 1,
            head_dim: 256,
            value_dim: 256,
            keys: 70,
            capacity: 70,
            mask: causal(0, None),
            half: false,
        },
        // The UNet's first attention: heads of 40, f16, every key, two images.
        Case {
            name: "unmasked f16, head 40, batch 2",
            batch: 2,
            queries: 37,
            heads: 2,
            kv_heads: 2,
            head_dim: 40,
            value_dim: 40,
            keys: 45,
            capacity: 45,
            mask: AttentionMask::Full,
            half: true,
        },
    ];
    for case in &cases {
        run(&device, case, &mut rng);
    }
}

/// Milliseconds per call of the fused kernel and of burn's attention op (what the model used
/// before: the queries of a head group as rows of one problem, a causal mask uploaded), on
/// Gemma 3 270M's shape (4 query heads on one key/value head of 256): decode after 511
/// positions and a 512-token prompt. `cargo test --features wgpu --test gpu_attention --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn attention_speed() {
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use burn::tensor::Bool;
    let Some(device) = common::wgpu_device() else { return };
    let (heads, hd, keys) = (4usize, 256usize, 512usize);
    let mut rng = Rng(3);
    let random = |rng: &mut Rng, shape: [usize; 4], dtype: DType| {
        let n = shape.iter().product();
        Tensor::<4>::from_data(TensorData::new(rng.values(n, 1.0), shape).convert_dtype(dtype), (&device, dtype))
    };
    let k = random(&mut rng, [1, keys, 1, hd], DType::F16);
    let v = random(&mut rng, [1, keys, 1, hd], DType::F16);
    let time = |f: &dyn Fn() -> Tensor<4>| {
        let _ = f().into_data().try_to_vec::<f32>();
        let start = std::time::Instant::now();
        let runs = 5;
        for _ in 0..runs {
            let _ = f().into_data().try_to_vec::<f32>();
        }
        start.elapsed().as_secs_f64() * 1e3 / runs as f64
    };
    for queries in [1usize, keys] {
        let past = keys - queries;
        let q = random(&mut rng, [1, queries, heads, hd], DType::F32);
        let fused = time(&|| {
            let mask = AttentionMask::Causal { past, window: None };
            fused_attention(q.clone(), k.clone(), v.clone(), keys, 0.0625, mask, DType::F32).expect("fused")
        });
        let hidden: Vec<bool> = (0..heads * queries)
            .flat_map(|r| (0..keys).map(move |j| j > past + r / heads))
            .collect();
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(hidden, [1, 1, heads * queries, keys]), &device);
        let mask_rows = mask.clone();
        let burn = time(&|| {
            let rows = q.clone().reshape([1, 1, queries * heads, hd]);
            let (kk, vv) = (
                k.clone().cast(DType::F32).swap_dims(1, 2),
                v.clone().cast(DType::F32).swap_dims(1, 2),
            );
            attention(rows, kk, vv, Some(mask.clone()), None, AttentionModuleOptions::default())
        });
        println!("{queries} queries over {keys} keys, 4 heads of 256: fused {fused:.1} ms, burn's op {burn:.1} ms");
        let mask = AttentionMask::Causal { past, window: None };
        let fused = fused_attention(q.clone(), k.clone(), v.clone(), keys, 0.0625, mask, DType::F32).expect("fused");
        let rows = q.clone().mul_scalar(0.0625 * 16.0).reshape([1, 1, queries * heads, hd]);
        let (kk, vv) = (
            k.clone().cast(DType::F32).swap_dims(1, 2),
            v.clone().cast(DType::F32).swap_dims(1, 2),
        );
        let burn = attention(rows, kk, vv, Some(mask_rows.clone()), None, AttentionModuleOptions::default());
        let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
        let t0 = std::time::Instant::now();
        let once = values(fused.clone());
        println!(
            "one fused call read back: {:.1} ms, {} values",
            t0.elapsed().as_secs_f64() * 1e3,
            once.len()
        );
        assert_close(
            "fused against burn's op",
            &values(fused),
            &values(burn.reshape([1, queries, heads, hd])),
            1e-4,
        );
    }
}

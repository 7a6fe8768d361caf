//! Matrix-vector products of the decode step, per kernel and layout: Gemma 3 270M Q4_K_M's shapes
//! and encodings (and SmolLM2-135M's Q4_1 MLP) with random weights, one thread (or rayon's, with
//! RAYON_NUM_THREADS), GB/s of weights read. Rows are measured for the encodings that have row
//! kernels (the others fall back to dequantizing rows one by one). "hot": the same matrix 200 times (it stays in
//! the core's cache); "streamed": 128 MiB of copies in turn, as a decode step reads its weights
//! (from memory or a shared L3). Median of the runs after a warm-up.
//! `--tokens N` multiplies N activation vectors at once (a batch step; default 1), `--only NAME`
//! measures one shape.
//! Run: `cargo bench -p horde-worker --bench matvec`

use std::time::Instant;

use horde_worker::gguf::{writer::encode, TensorType};
use horde_worker::matvec::{Isa, Layout, QuantMatrix};

fn values(n: usize) -> Vec<f32> {
    let mut s = 7u64;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.2
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--test");
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let tokens: usize = flag("--tokens").and_then(|n| n.parse().ok()).unwrap_or(1).max(1);
    let only = flag("--only");
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    let shapes = [
        ("q", TensorType::Q5_0, 1024, 640),
        ("k", TensorType::Q5_0, 256, 640),
        ("v", TensorType::Q8_0, 256, 640),
        ("attn_out", TensorType::Q4_K, 640, 1024),
        ("gate", TensorType::Q5_0, 2048, 640),
        ("down", TensorType::Q6_K, 640, 2048),
        ("down_q4k", TensorType::Q4_K, 640, 2048),
        ("lm_head", TensorType::Q8_0, 262144, 640),
        ("smol_up", TensorType::Q4_1, 3072, 576),
    ];
    for (name, kind, rows, cols) in shapes {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let plain = QuantMatrix::new(kind, rows, cols, encode(kind, &values(rows * cols))).expect("matrix");
        let x = values(cols * tokens);
        let mut out = vec![0f32; rows * tokens];
        let has_rows_kernel = matches!(
            kind,
            TensorType::F32 | TensorType::F16 | TensorType::Q4_0 | TensorType::Q4_1 | TensorType::Q8_0
        );
        for (layout, m) in [(Layout::Rows, plain.clone()), (Layout::Tiles, plain.clone().tiled())] {
            if layout == Layout::Rows && !has_rows_kernel {
                continue;
            }
            let copies: Vec<QuantMatrix> = (0..(128 << 20) / m.bytes() + 1).map(|_| m.deep_copy()).collect();
            for isa in [Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni] {
                if !isa.available() {
                    continue;
                }
                let reps = if quick {
                    2
                } else if m.bytes() > 1 << 26 {
                    20
                } else {
                    200
                };
                let mut time = |pick: &dyn Fn(usize) -> usize| {
                    let mut times: Vec<f64> = (0..reps + 20)
                        .map(|i| {
                            let m = &copies[pick(i)];
                            let t = Instant::now();
                            pool.install(|| m.matmul_with(isa, &x, &mut out));
                            t.elapsed().as_secs_f64()
                        })
                        .skip(if quick { 0 } else { 20 })
                        .collect();
                    times.sort_by(|a, b| a.total_cmp(b));
                    times[times.len() / 2]
                };
                let hot = time(&|_| 0);
                let streamed = time(&|i| i % copies.len());
                let gbs = |t: f64| m.bytes() as f64 / t / 1e9;
                println!(
                    "{name:8} {kind:?} {rows}x{cols} ×{tokens} {layout:?} {isa:?}: hot {:.1} µs {:.1} GB/s, streamed {:.1} µs {:.1} GB/s",
                    hot * 1e6,
                    gbs(hot),
                    streamed * 1e6,
                    gbs(streamed)
                );
            }
        }
    }
}

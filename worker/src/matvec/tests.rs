use super::*;
use crate::gguf::writer::encode;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0
        })
        .collect()
}

/// The product of the dequantized matrix, in f64.
fn reference(m: &QuantMatrix, x: &[f32]) -> Vec<f32> {
    let mut w = vec![];
    dequantize_into(m.kind, &m.data, &mut w);
    w.chunks_exact(m.cols)
        .map(|row| row.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() as f32)
        .collect()
}

const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni];

const KINDS: [TensorType; 14] = TensorType::ALL;

/// Widths for a kind: whole blocks, one and several (K-quants: super-blocks of 256).
fn widths(kind: TensorType) -> [usize; 2] {
    if kind.block().0 == 256 {
        [256, 512]
    } else {
        [96, 64 + 32 * 5]
    }
}

#[test]
fn every_kernel_equals_the_dequantized_product() {
    // 7 rows: one group of 4 and 3 single rows; several blocks, and for f32/f16 a width
    // that is not a multiple of the vector width as well.
    for kind in KINDS {
        for cols in widths(kind) {
            let rows = 7;
            let m = QuantMatrix::new(kind, rows, cols, encode(kind, &values(rows * cols, 1))).expect("matrix");
            let x = values(cols, 2);
            let want = reference(&m, &x);
            for isa in ALL.into_iter().filter(|i| i.available()) {
                let mut got = vec![0f32; rows];
                m.matmul_with(isa, &x, &mut got);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-4 * (1.0 + w.abs()),
                        "{kind:?} {isa:?} {cols}: {got:?} vs {want:?}"
                    );
                }
            }
        }
    }
    for cols in [5usize, 17, 33] {
        for kind in [TensorType::F32, TensorType::F16, TensorType::BF16] {
            let m = QuantMatrix::new(kind, 5, cols, encode(kind, &values(5 * cols, 3))).expect("matrix");
            let x = values(cols, 4);
            let want = reference(&m, &x);
            for isa in ALL.into_iter().filter(|i| i.available()) {
                let mut got = vec![0f32; 5];
                m.matmul_with(isa, &x, &mut got);
                let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(err < 1e-5, "{kind:?} {isa:?} width {cols}: off by {err}");
            }
        }
    }
}

#[test]
fn tiled_kernels_stay_within_the_activation_rounding() {
    // 21 rows: one whole tile and one of 5 rows; every quantized encoding, two blocks of
    // the K-quants.
    for kind in KINDS.into_iter().filter(|k| tiles::shape(*k).is_some()) {
        let (rows, cols) = (21, 512);
        let plain = QuantMatrix::new(kind, rows, cols, encode(kind, &values(rows * cols, 13))).expect("matrix");
        let tiled = plain.clone().tiled();
        assert_eq!(tiled.layout(), Layout::Tiles);
        if kind.block().0 == 32 {
            // The legacy encodings' tiles hold the same bytes as their blocks.
            assert_eq!(tiled.bytes(), plain.bytes() / rows * 32);
        }
        for r in 0..rows {
            assert_eq!(tiled.row(r), plain.row(r), "{kind:?} row {r}");
        }
        let x = values(cols, 14);
        let exact = reference(&plain, &x);
        // Each activation moves by at most half its block's step: |error| <= Σ|w|·step/2.
        let q = tiles::QuantizedVector::new(&x);
        let bound: Vec<f32> = (0..rows)
            .map(|r| {
                let w = plain.row(r);
                w.iter().enumerate().map(|(i, w)| w.abs() * q.scale[i / 32] / 2.0).sum::<f32>() + 1e-5
            })
            .collect();
        let mut by_scalar = vec![0f32; rows];
        tiled.matmul_with(Isa::Scalar, &x, &mut by_scalar);
        for r in 0..rows {
            assert!(
                (by_scalar[r] - exact[r]).abs() <= bound[r],
                "{kind:?} row {r}: {} vs {}",
                by_scalar[r],
                exact[r]
            );
        }
        for isa in ALL.into_iter().filter(|i| i.available()) {
            let mut by_simd = vec![0f32; rows];
            tiled.matmul_with(isa, &x, &mut by_simd);
            for (a, b) in by_simd.iter().zip(&by_scalar) {
                assert!(
                    (a - b).abs() < 1e-5 * (1.0 + b.abs()),
                    "{kind:?} {isa:?}: {by_simd:?} vs {by_scalar:?}"
                );
            }
        }
    }
    // f32, f16 and bf16 have no tiles; they keep their rows.
    let f = QuantMatrix::from_f32(&values(64, 15), 2, 32).expect("f32").tiled();
    assert_eq!(f.layout(), Layout::Rows);
}

#[test]
fn large_products_split_over_threads_give_the_same_result() {
    let (rows, cols) = (1030, 256);
    let x = values(cols, 6);
    let pool = |n: usize| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("pool");
    let matrix = |kind| QuantMatrix::new(kind, rows, cols, encode(kind, &values(rows * cols, 5))).expect("matrix");
    let (q41, q6k) = (matrix(TensorType::Q4_1), matrix(TensorType::Q6_K));
    for m in [q41.clone(), q41.tiled(), q6k.tiled()] {
        let mut one = vec![0f32; rows];
        pool(1).install(|| m.matvec(&x, &mut one));
        let mut split = vec![0f32; rows];
        pool(3).install(|| m.matvec(&x, &mut split));
        assert_eq!(one, split, "{m:?}");
    }
}

#[test]
fn several_tokens_equal_one_at_a_time() {
    // 6 tokens (a group of four and two single ones), 37 tiles' rows plus 5 (a partial
    // tile), large enough to be split over threads.
    let (rows, cols, tokens) = (37 * 16 + 5, 256, 6);
    for kind in KINDS {
        let plain = QuantMatrix::new(kind, rows, cols, encode(kind, &values(rows * cols, 19))).expect("matrix");
        let x = values(tokens * cols, 20);
        for m in [plain.clone(), plain.tiled()] {
            for isa in ALL.into_iter().filter(|i| i.available()) {
                let mut one = vec![0f32; tokens * rows];
                for (x, o) in x.chunks_exact(cols).zip(one.chunks_exact_mut(rows)) {
                    m.matmul_with(isa, x, o);
                }
                for threads in [1, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
                    let mut all = vec![0f32; tokens * rows];
                    pool.install(|| m.matmul_with(isa, &x, &mut all));
                    let err = all.iter().zip(&one).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    assert!(err < 1e-4, "{m:?} {isa:?} {threads} threads: off by {err}");
                }
            }
        }
    }
}

#[test]
fn rows_stacking_and_f16() {
    let a = QuantMatrix::new(TensorType::Q8_0, 2, 32, encode(TensorType::Q8_0, &values(64, 7))).expect("a");
    let b = QuantMatrix::new(TensorType::Q8_0, 1, 32, encode(TensorType::Q8_0, &values(32, 8))).expect("b");
    let c = QuantMatrix::from_f32(&values(32, 9), 1, 32).expect("c");
    let same = QuantMatrix::stack(vec![a.clone(), b.clone()]).expect("stack");
    assert_eq!((same.kind(), same.rows()), (TensorType::Q8_0, 3));
    assert_eq!(same.row(2), b.row(0));
    let mixed = QuantMatrix::stack(vec![a.clone(), c.clone()]).expect("stack");
    assert_eq!((mixed.kind(), mixed.rows()), (TensorType::F32, 3));
    assert_eq!(mixed.row(1), a.row(1));
    assert_eq!(mixed.row(2), c.row(0));
    let half = c.clone().to_f16();
    assert_eq!((half.kind(), half.bytes()), (TensorType::F16, 64));
    assert!(half.row(0).iter().zip(c.row(0)).all(|(h, f)| (h - f).abs() < 1e-3));
    assert_eq!(a.clone().to_f16().kind(), TensorType::Q8_0);
    assert!(QuantMatrix::stack(vec![a.clone().tiled(), b]).is_err());
    assert!(QuantMatrix::new(TensorType::Q4_1, 1, 40, vec![0; 25]).is_err());
    assert!(QuantMatrix::new(TensorType::Q4_1, 2, 32, vec![0; 20]).is_err());
}

#[test]
fn attention_of_one_head() {
    // Three positions, two heads side by side (stride 2·hd), head 1 attended.
    let hd = 20;
    let (keys, vals) = (values(3 * 2 * hd, 16), values(3 * 2 * hd, 17));
    let q = values(hd, 18);
    let scale = 0.3;
    let mut want = vec![0f64; hd];
    let logits: Vec<f64> = (0..3)
        .map(|j| {
            q.iter()
                .zip(&keys[j * 2 * hd + hd..][..hd])
                .map(|(a, b)| (a * b) as f64)
                .sum::<f64>()
                * scale as f64
        })
        .collect();
    let total: f64 = logits.iter().map(|l| l.exp()).sum();
    for j in 0..3 {
        for i in 0..hd {
            want[i] += logits[j].exp() / total * vals[j * 2 * hd + hd + i] as f64;
        }
    }
    let mut scores = vec![0f32; 4];
    let mut out = vec![9f32; hd];
    attend(&q, &keys[hd..], &vals[hd..], 2 * hd, 3, scale, &mut scores, &mut out);
    assert!(
        out.iter().zip(&want).all(|(a, b)| (*a as f64 - b).abs() < 1e-5),
        "{out:?} vs {want:?}"
    );
    assert!((scores[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
}

#[test]
fn matrices_taller_than_a_tiling_chunk_tile_like_small_ones() {
    // Two chunks and a partial tile: every row decodes as before, products agree across the
    // chunk boundary, and the tiled bytes are whole tiles.
    let (rows, cols) = (TILE_CHUNK_ROWS + 40, 64);
    for kind in [TensorType::Q8_0, TensorType::Q4_K] {
        let cols = if kind.block().0 == 256 { 256 } else { cols };
        let plain = QuantMatrix::new(kind, rows, cols, encode(kind, &values(rows * cols, 31))).expect("matrix");
        let tiled = plain.clone().tiled();
        // The same bytes as regrouping the whole matrix at once.
        let whole = tiles::tile(kind, rows, cols / kind.block().0, &plain.data);
        assert!(tiled.data[..] == whole[..], "{kind:?}: chunked tiles differ");
        for r in [0, TILE_CHUNK_ROWS - 1, TILE_CHUNK_ROWS, TILE_CHUNK_ROWS + 17, rows - 1] {
            assert_eq!(tiled.row(r), plain.row(r), "{kind:?} row {r}");
        }
        let x = values(cols, 32);
        let exact = reference(&plain, &x);
        let mut got = vec![0f32; rows];
        tiled.matvec(&x, &mut got);
        let worst = got
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
            .fold(0f32, f32::max);
        assert!(worst < 1e-2, "{kind:?}: off by {worst}");
    }
}

//! Multi-head attention on the CPU for the image models' long sequences (4096 pixels attending to
//! each other at 512×512): per head and block of queries, `Q·Kᵀ` and `P·V` with the `gemm`
//! crate's kernels, between them a softmax with a vectorized exponential. burn's CPU backend runs
//! attention with scalar loops, which made it about half of a UNet step.

use rayon::prelude::*;

/// Query rows per task.
const BLOCK: usize = 64;

/// A pointer the tasks write disjoint parts through.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each task writes only its own rows × head columns of the output.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    fn at(&self, offset: usize) -> *mut f32 {
        // SAFETY (of callers): `offset` is inside the output.
        self.0.wrapping_add(offset)
    }
}

/// Sizes of an attention: `batch` sequences of `n` queries over `m` keys, `heads` of width `d`.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub n: usize,
    pub m: usize,
    pub heads: usize,
    pub d: usize,
}

/// `softmax(Q·Kᵀ / √d)·V` for each head. `q` is `[batch, n, heads·d]`, `k` and `v` are
/// `[batch, m, heads·d]`, all row-major; the result has `q`'s layout.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], shape: AttentionShape) -> Vec<f32> {
    let AttentionShape { batch, n, m, heads, d } = shape;
    let inner = heads * d;
    assert!(
        q.len() == batch * n * inner && k.len() == batch * m * inner && v.len() == batch * m * inner,
        "attention shapes"
    );
    let mut out = vec![0f32; batch * n * inner];
    let dst = Out(out.as_mut_ptr());
    let blocks = n.div_ceil(BLOCK);
    let scale = 1.0 / (d as f32).sqrt();
    (0..batch * heads * blocks).into_par_iter().for_each_init(
        || vec![0f32; BLOCK * m],
        |scores, task| {
            let (bh, block) = (task / blocks, task % blocks);
            let (b, h) = (bh / heads, bh % heads);
            let rows = BLOCK.min(n - block * BLOCK);
            let q0 = (b * n + block * BLOCK) * inner + h * d;
            let kv0 = b * m * inner + h * d;
            // SAFETY: the pointers and strides stay inside `q`, `k`, `v` (checked lengths above)
            // and this task's rows × head columns of `out`, which no other task writes.
            unsafe {
                gemm::gemm(
                    rows,
                    m,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    m as isize,
                    false,
                    q.as_ptr().add(q0),
                    1,
                    inner as isize,
                    k.as_ptr().add(kv0),
                    inner as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            softmax_rows(&mut scores[..rows * m], m);
            unsafe {
                gemm::gemm(
                    rows,
                    d,
                    m,
                    dst.at(q0),
                    1,
                    inner as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    m as isize,
                    v.as_ptr().add(kv0),
                    1,
                    inner as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        },
    );
    out
}

/// Softmax of each row of `len`, in place.
fn softmax_rows(values: &mut [f32], len: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512 F.
        unsafe { softmax_rows_avx512(values, len) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { softmax_rows_avx2(values, len) };
        return;
    }
    softmax_rows_portable(values, len);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_rows_avx512(values: &mut [f32], len: usize) {
    softmax_rows_portable(values, len);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(values: &mut [f32], len: usize) {
    softmax_rows_portable(values, len);
}

/// Lanes of the reductions, so that they vectorize (a single running sum would not).
const LANES: usize = 16;

#[inline(always)]
fn softmax_rows_portable(values: &mut [f32], len: usize) {
    for row in values.chunks_exact_mut(len) {
        let mut maxes = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                maxes[l] = maxes[l].max(c[l]);
            }
        }
        let max = chunks.remainder().iter().chain(&maxes).fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sums = [0f32; LANES];
        let mut chunks = row.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for l in 0..LANES {
                c[l] = exp(c[l] - max);
                sums[l] += c[l];
            }
        }
        let mut sum: f32 = sums.iter().sum();
        for x in chunks.into_remainder() {
            *x = exp(*x - max);
            sum += *x;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

/// eˣ for x ≤ 0, branch-free so that loops over it vectorize: 2^(x·log₂e) split into an
/// integer power, set in the exponent bits, and e^g for |g| ≤ ln2/2 by its Taylor polynomial of
/// degree 7 (error under 1e-8; the rounding of x·log₂e in f32 dominates far from 0).
#[inline(always)]
fn exp(x: f32) -> f32 {
    let t = (x * std::f32::consts::LOG2_E).max(-126.0);
    let i = (t + 0.5).floor();
    let g = (t - i) * std::f32::consts::LN_2;
    let p = 1.0
        + g * (1.0
            + g * (1.0 / 2.0)
                * (1.0
                    + g * (1.0 / 3.0)
                        * (1.0 + g * (1.0 / 4.0) * (1.0 + g * (1.0 / 5.0) * (1.0 + g * (1.0 / 6.0) * (1.0 + g * (1.0 / 7.0)))))));
    f32::from_bits((((i as i32) + 127) as u32) << 23) * p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_on_the_softmax_range() {
        for i in 0..=16000 {
            let x = -(i as f32) * 0.005;
            let (got, want) = (f64::from(exp(x)), f64::from(x).exp());
            // The polynomial's error, plus f32's rounding of x·log₂e (relative ~1.2e-7·|x| in eˣ).
            let bound = 3e-7 + 1.5e-7 * f64::from(x.abs());
            assert!((got - want).abs() <= bound * want, "exp({x}) = {got}, want {want}");
        }
    }

    #[test]
    fn matches_a_direct_computation() {
        let (batch, n, m, heads, d) = (2, 70, 45, 3, 5);
        let inner = heads * d;
        let gen = |len: usize, seed: u32| -> Vec<f32> {
            (0..len)
                .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 2000) as f32 / 500.0 - 2.0)
                .collect()
        };
        let (q, k, v) = (gen(batch * n * inner, 1), gen(batch * m * inner, 2), gen(batch * m * inner, 3));
        let got = attention(&q, &k, &v, AttentionShape { batch, n, m, heads, d });
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..n {
                    let qi = &q[(b * n + i) * inner + h * d..][..d];
                    let scores: Vec<f64> = (0..m)
                        .map(|j| {
                            qi.iter()
                                .zip(&k[(b * m + j) * inner + h * d..][..d])
                                .map(|(a, c)| f64::from(*a) * f64::from(*c))
                                .sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let total: f64 = weights.iter().sum();
                    for c in 0..d {
                        let want: f64 = (0..m)
                            .map(|j| weights[j] / total * f64::from(v[(b * m + j) * inner + h * d + c]))
                            .sum();
                        let g = f64::from(got[(b * n + i) * inner + h * d + c]);
                        assert!((g - want).abs() < 1e-5, "b{b} h{h} i{i} c{c}: {g} vs {want}");
                    }
                }
            }
        }
    }
}

//! The integer path for quantized matrices. The activations are quantized to 16 bits per block
//! of 32 (scale `max|x| / 32767`: a rounding error 256 times smaller than llama.cpp's 8-bit
//! activations, which measurably changed SmolLM2's greedy answers), and the weights are regrouped
//! in tiles of 16 rows, so one 32-byte load holds 2 bytes of each of 16 rows. Widened to 16-bit
//! lanes, `vpdpwssd` (AVX-512 VNNI; `vpmaddwd` + add without it) multiplies and sums one pair
//! per row, 16 rows at a time; the block scales are applied once per block of 32, in f32.
//!
//! Tile layout, for each tile of 16 rows and each block of 32 columns (the same bytes as the 16
//! GGUF blocks it replaces): the 16 rows' f16 scales `d` (and for Q4_1 the 16 minimums `m`), then
//! the quantized values in chunks of 32 bytes: chunk `c`, lane `r` = bytes `2c, 2c+1` of row
//! `r`'s block (in Q4 blocks, low nibbles are elements `2c, 2c+1` and high nibbles elements
//! `16+2c, 17+2c`). Rows past the end of the matrix are zero.

use crate::gguf::{f16_to_f32, TensorType};

/// Rows per tile.
pub(super) const TILE: usize = 16;

/// (f16 scalars before the values, bytes of values, value offset to remove) of a block.
pub(super) fn shape(kind: TensorType) -> Option<(usize, usize, i32)> {
    match kind {
        TensorType::Q4_0 => Some((1, 16, 8)),
        TensorType::Q4_1 => Some((2, 16, 0)),
        TensorType::Q8_0 => Some((1, 32, 0)),
        _ => None,
    }
}

/// Bytes of one tile-block: 16 GGUF blocks.
fn tile_block_bytes(kind: TensorType) -> usize {
    TILE * kind.block().1
}

/// Regroups row-major GGUF blocks (`rows` rows of `nb` blocks) into tiles.
pub(super) fn tile(kind: TensorType, rows: usize, nb: usize, data: &[u8]) -> Vec<u8> {
    let Some((head, qs, _)) = shape(kind) else {
        return data.to_vec();
    };
    let block = kind.block().1;
    let tiles = rows.div_ceil(TILE);
    let tbb = tile_block_bytes(kind);
    let mut out = vec![0u8; tiles * nb * tbb];
    for t in 0..tiles {
        for b in 0..nb {
            let dst = &mut out[(t * nb + b) * tbb..][..tbb];
            for lane in 0..TILE.min(rows - t * TILE) {
                let src = &data[((t * TILE + lane) * nb + b) * block..][..block];
                for h in 0..head {
                    dst[h * 2 * TILE + lane * 2..][..2].copy_from_slice(&src[h * 2..h * 2 + 2]);
                }
                for c in 0..qs / 2 {
                    dst[head * 2 * TILE + c * 32 + lane * 2..][..2].copy_from_slice(&src[head * 2 + c * 2..][..2]);
                }
            }
        }
    }
    out
}

/// Row `r` of a tiled matrix back in GGUF block encoding.
pub(super) fn untile_row(kind: TensorType, nb: usize, tiled: &[u8], r: usize) -> Vec<u8> {
    let Some((head, qs, _)) = shape(kind) else {
        return vec![];
    };
    let (t, lane) = (r / TILE, r % TILE);
    let tbb = tile_block_bytes(kind);
    let mut out = Vec::with_capacity(nb * kind.block().1);
    for b in 0..nb {
        let src = &tiled[(t * nb + b) * tbb..][..tbb];
        for h in 0..head {
            out.extend_from_slice(&src[h * 2 * TILE + lane * 2..][..2]);
        }
        for c in 0..qs / 2 {
            out.extend_from_slice(&src[head * 2 * TILE + c * 32 + lane * 2..][..2]);
        }
    }
    out
}

/// An activation vector quantized per block of 32: `x ≈ scale[b] · q[32b + i]`.
pub(super) struct QuantizedVector {
    pub q: Vec<i16>,
    pub scale: Vec<f32>,
    /// `Σ q` per block (for the offset of Q4_0 and Q8_0 values).
    pub qsum: Vec<i32>,
    /// `Σ x` per block, exact (for Q4_1's minimum).
    pub sum: Vec<f32>,
}

impl QuantizedVector {
    pub fn new(x: &[f32]) -> Self {
        let nb = x.len() / 32;
        let mut v = Self {
            q: Vec::with_capacity(nb * 32),
            scale: Vec::with_capacity(nb),
            qsum: Vec::with_capacity(nb),
            sum: Vec::with_capacity(nb),
        };
        for block in x.chunks_exact(32) {
            let amax = block.iter().fold(0f32, |a, x| a.max(x.abs()));
            let d = amax / 32767.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let start = v.q.len();
            v.q.extend(block.iter().map(|x| (x * inv).round() as i16));
            v.qsum.push(v.q[start..].iter().map(|q| *q as i32).sum());
            v.scale.push(d);
            v.sum.push(block.iter().sum());
        }
        v
    }
}

/// `out[t] = tiles · xs[t]` for every token (`out` is `[tokens][rows]`), portable: the reference
/// of the SIMD kernel (same integer sums).
pub(super) fn scalar(kind: TensorType, nb: usize, tiled: &[u8], xs: &[&QuantizedVector], out: &mut [f32]) {
    let rows = out.len() / xs.len().max(1);
    for (x, out) in xs.iter().zip(out.chunks_mut(rows.max(1))) {
        scalar_one(kind, nb, tiled, x, out);
    }
}

fn scalar_one(kind: TensorType, nb: usize, tiled: &[u8], x: &QuantizedVector, out: &mut [f32]) {
    let Some((head, qs, offset)) = shape(kind) else {
        return;
    };
    let tbb = tile_block_bytes(kind);
    for (t, out) in out.chunks_mut(TILE).enumerate() {
        for (lane, o) in out.iter_mut().enumerate() {
            let mut acc = 0f32;
            for b in 0..nb {
                let src = &tiled[(t * nb + b) * tbb..][..tbb];
                let xq = &x.q[b * 32..][..32];
                let mut dot = 0i32;
                for c in 0..qs / 2 {
                    for i in 0..2 {
                        let v = src[head * 2 * TILE + c * 32 + lane * 2 + i];
                        if qs == 16 {
                            dot += (v & 0x0f) as i32 * xq[c * 2 + i] as i32 + (v >> 4) as i32 * xq[16 + c * 2 + i] as i32;
                        } else {
                            dot += (v as i8) as i32 * xq[c * 2 + i] as i32;
                        }
                    }
                }
                let half = |h: usize| f16_to_f32(u16::from_le_bytes([src[h * 2 * TILE + lane * 2], src[h * 2 * TILE + lane * 2 + 1]]));
                acc += ((dot - offset * x.qsum[b]) as f32) * (half(0) * x.scale[b]);
                if kind == TensorType::Q4_1 {
                    acc += half(1) * x.sum[b];
                }
            }
            *o = acc;
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use simd::avx512;

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::{shape, tile_block_bytes, QuantizedVector, TILE};
    use crate::gguf::TensorType;

    /// How far ahead of the block being computed its successors are prefetched, in bytes.
    const AHEAD: usize = 4096;

    /// `out[t] = tiles · xs[t]` for every token `t` (`out` is `[tokens][rows]`), with AVX-512 BW,
    /// and VNNI's fused multiply-add of pairs when `vnni`. `tiled` holds `rows.div_ceil(16)` tiles
    /// of `nb` blocks. Tokens go four at a time through each tile, which is read from memory once
    /// for them and unpacked once.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW, F16C, and VNNI when `vnni` is set.
    pub(in crate::matvec) unsafe fn avx512(
        vnni: bool,
        kind: TensorType,
        nb: usize,
        tiled: &[u8],
        xs: &[&QuantizedVector],
        out: &mut [f32],
    ) {
        let rows = out.len() / xs.len().max(1);
        for (group, xs) in xs.chunks(4).enumerate() {
            let out = &mut out[group * 4 * rows..][..xs.len() * rows];
            macro_rules! run {
                ($g:literal) => {
                    match (vnni, kind) {
                        (true, TensorType::Q4_0) => with_vnni::<0, $g>(nb, tiled, xs, out),
                        (true, TensorType::Q4_1) => with_vnni::<1, $g>(nb, tiled, xs, out),
                        (true, TensorType::Q8_0) => with_vnni::<2, $g>(nb, tiled, xs, out),
                        (false, TensorType::Q4_0) => without_vnni::<0, $g>(nb, tiled, xs, out),
                        (false, TensorType::Q4_1) => without_vnni::<1, $g>(nb, tiled, xs, out),
                        (false, TensorType::Q8_0) => without_vnni::<2, $g>(nb, tiled, xs, out),
                        _ => {}
                    }
                };
            }
            match xs.len() {
                4 => run!(4),
                3 => run!(3),
                2 => run!(2),
                _ => run!(1),
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    unsafe fn with_vnni<const K: u8, const G: usize>(nb: usize, tiled: &[u8], xs: &[&QuantizedVector], out: &mut [f32]) {
        tiles::<K, G>(nb, tiled, xs, out, |acc, a, b| _mm512_dpwssd_epi32(acc, a, b));
    }

    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    unsafe fn without_vnni<const K: u8, const G: usize>(nb: usize, tiled: &[u8], xs: &[&QuantizedVector], out: &mut [f32]) {
        tiles::<K, G>(nb, tiled, xs, out, |acc, a, b| _mm512_add_epi32(acc, _mm512_madd_epi16(a, b)));
    }

    /// `K`: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0; `G` tokens (`xs.len()`), `out` is `[G][rows]`.
    /// `pairs(acc, w, x)` adds `w[2i]·x[2i] + w[2i+1]·x[2i+1]` to each 32-bit lane `i` of `acc`.
    #[inline(always)]
    unsafe fn tiles<const K: u8, const G: usize>(
        nb: usize,
        tiled: &[u8],
        xs: &[&QuantizedVector],
        out: &mut [f32],
        pairs: impl Fn(__m512i, __m512i, __m512i) -> __m512i,
    ) {
        let kind = [TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0][K as usize];
        let (head, qs, offset) = shape(kind).unwrap_or((1, 16, 0));
        let tbb = tile_block_bytes(kind);
        let rows = out.len() / G;
        // Independent running sums per token, so consecutive multiply-adds need not wait for
        // each other: four for one token, two each for several.
        let chains = if G == 1 { 4 } else { 2 };
        let nibble = _mm512_set1_epi16(0x0f);
        for t in 0..rows.div_ceil(TILE) {
            let mut acc = [_mm512_setzero_ps(); G];
            let mut acc_min = [_mm512_setzero_ps(); G];
            for b in 0..nb {
                let p = tiled.as_ptr().add((t * nb + b) * tbb);
                // The weights are read once, in order: ask for the bytes `AHEAD` further on now,
                // so they arrive while this block is computed.
                let ahead = p.wrapping_add(AHEAD);
                for line in (0..tbb).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
                }
                let values = p.add(head * 2 * TILE);
                // Elements i and i + 1 of token g's block, in every 32-bit lane.
                let pair = |g: usize, i: usize| _mm512_set1_epi32((xs[g].q.as_ptr().add(b * 32 + i) as *const i32).read_unaligned());
                let chunk = |c: usize| _mm256_loadu_si256(values.add(c * 32) as *const __m256i);
                let mut sums = [[_mm512_setzero_si512(); 4]; G];
                if qs == 16 {
                    for c in 0..8 {
                        let v = _mm512_cvtepu8_epi16(chunk(c));
                        let (lo, hi) = (_mm512_and_si512(v, nibble), _mm512_srli_epi16::<4>(v));
                        let (i, j) = (c % (chains / 2), chains / 2 + c % (chains / 2));
                        for (g, s) in sums.iter_mut().enumerate() {
                            s[i] = pairs(s[i], lo, pair(g, 2 * c));
                            s[j] = pairs(s[j], hi, pair(g, 16 + 2 * c));
                        }
                    }
                } else {
                    for c in 0..16 {
                        let v = _mm512_cvtepi8_epi16(chunk(c));
                        for (g, s) in sums.iter_mut().enumerate() {
                            s[c % chains] = pairs(s[c % chains], v, pair(g, 2 * c));
                        }
                    }
                }
                let d = _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
                let m = if K == 1 {
                    _mm512_cvtph_ps(_mm256_loadu_si256(p.add(2 * TILE) as *const __m256i))
                } else {
                    _mm512_setzero_ps()
                };
                for g in 0..G {
                    let s = &sums[g];
                    let mut dot = _mm512_add_epi32(_mm512_add_epi32(s[0], s[1]), _mm512_add_epi32(s[2], s[3]));
                    let x = &xs[g];
                    if offset != 0 {
                        dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(offset * *x.qsum.get_unchecked(b)));
                    }
                    let scale = _mm512_mul_ps(d, _mm512_set1_ps(*x.scale.get_unchecked(b)));
                    acc[g] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc[g]);
                    if K == 1 {
                        acc_min[g] = _mm512_fmadd_ps(m, _mm512_set1_ps(*x.sum.get_unchecked(b)), acc_min[g]);
                    }
                }
            }
            for g in 0..G {
                let mut lanes = [0f32; TILE];
                _mm512_storeu_ps(lanes.as_mut_ptr(), _mm512_add_ps(acc[g], acc_min[g]));
                let n = TILE.min(rows - t * TILE);
                out[g * rows + t * TILE..][..n].copy_from_slice(&lanes[..n]);
            }
        }
    }
}

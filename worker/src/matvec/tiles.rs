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
        TensorType::F32 | TensorType::F16 => None,
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

/// `out = tiles · x`, portable: the reference of the SIMD kernel (same integer sums).
pub(super) fn scalar(kind: TensorType, nb: usize, tiled: &[u8], x: &QuantizedVector, out: &mut [f32]) {
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

    /// `out = tiles · x` with AVX-512 BW, and VNNI's fused multiply-add of pairs when `vnni`.
    /// `tiled` holds `out.len().div_ceil(16)` tiles of `nb` blocks.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F and BW, F16C, and VNNI when `vnni` is set.
    pub(in crate::matvec) unsafe fn avx512(vnni: bool, kind: TensorType, nb: usize, tiled: &[u8], x: &QuantizedVector, out: &mut [f32]) {
        match (vnni, kind) {
            (true, TensorType::Q4_0) => with_vnni::<0>(nb, tiled, x, out),
            (true, TensorType::Q4_1) => with_vnni::<1>(nb, tiled, x, out),
            (true, TensorType::Q8_0) => with_vnni::<2>(nb, tiled, x, out),
            (false, TensorType::Q4_0) => without_vnni::<0>(nb, tiled, x, out),
            (false, TensorType::Q4_1) => without_vnni::<1>(nb, tiled, x, out),
            (false, TensorType::Q8_0) => without_vnni::<2>(nb, tiled, x, out),
            (_, TensorType::F32 | TensorType::F16) => {}
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    unsafe fn with_vnni<const K: u8>(nb: usize, tiled: &[u8], x: &QuantizedVector, out: &mut [f32]) {
        tiles::<K>(nb, tiled, x, out, |acc, a, b| _mm512_dpwssd_epi32(acc, a, b));
    }

    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    unsafe fn without_vnni<const K: u8>(nb: usize, tiled: &[u8], x: &QuantizedVector, out: &mut [f32]) {
        tiles::<K>(nb, tiled, x, out, |acc, a, b| _mm512_add_epi32(acc, _mm512_madd_epi16(a, b)));
    }

    /// `K`: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0. `pairs(acc, w, x)` adds `w[2i]·x[2i] + w[2i+1]·x[2i+1]`
    /// to each 32-bit lane `i` of `acc`.
    #[inline(always)]
    unsafe fn tiles<const K: u8>(
        nb: usize,
        tiled: &[u8],
        x: &QuantizedVector,
        out: &mut [f32],
        pairs: impl Fn(__m512i, __m512i, __m512i) -> __m512i,
    ) {
        let kind = [TensorType::Q4_0, TensorType::Q4_1, TensorType::Q8_0][K as usize];
        let (head, qs, offset) = shape(kind).unwrap_or((1, 16, 0));
        let tbb = tile_block_bytes(kind);
        let nibble = _mm512_set1_epi16(0x0f);
        for (t, out) in out.chunks_mut(TILE).enumerate() {
            let mut acc = _mm512_setzero_ps();
            let mut acc_min = _mm512_setzero_ps();
            for b in 0..nb {
                let p = tiled.as_ptr().add((t * nb + b) * tbb);
                // The weights are read once, in order: ask for the bytes `AHEAD` further on now,
                // so they arrive while this block is computed.
                let ahead = p.wrapping_add(AHEAD);
                for line in (0..tbb).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
                }
                let values = p.add(head * 2 * TILE);
                let xb = x.q.as_ptr().add(b * 32);
                // Elements i and i + 1 of the block's activations, in every 32-bit lane.
                let pair = |i: usize| _mm512_set1_epi32((xb.add(i) as *const i32).read_unaligned());
                let chunk = |c: usize| _mm256_loadu_si256(values.add(c * 32) as *const __m256i);
                // Four independent sums, so consecutive multiply-adds need not wait for each other.
                let mut sums = [_mm512_setzero_si512(); 4];
                if qs == 16 {
                    for c in 0..8 {
                        let v = _mm512_cvtepu8_epi16(chunk(c));
                        sums[c & 1] = pairs(sums[c & 1], _mm512_and_si512(v, nibble), pair(2 * c));
                        sums[2 + (c & 1)] = pairs(sums[2 + (c & 1)], _mm512_srli_epi16::<4>(v), pair(16 + 2 * c));
                    }
                } else {
                    for c in 0..16 {
                        sums[c & 3] = pairs(sums[c & 3], _mm512_cvtepi8_epi16(chunk(c)), pair(2 * c));
                    }
                }
                let mut dot = _mm512_add_epi32(_mm512_add_epi32(sums[0], sums[1]), _mm512_add_epi32(sums[2], sums[3]));
                if offset != 0 {
                    dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(offset * *x.qsum.get_unchecked(b)));
                }
                let d = _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
                let scale = _mm512_mul_ps(d, _mm512_set1_ps(*x.scale.get_unchecked(b)));
                acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, acc);
                if K == 1 {
                    let m = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(2 * TILE) as *const __m256i));
                    acc_min = _mm512_fmadd_ps(m, _mm512_set1_ps(*x.sum.get_unchecked(b)), acc_min);
                }
            }
            let mut lanes = [0f32; TILE];
            _mm512_storeu_ps(lanes.as_mut_ptr(), _mm512_add_ps(acc, acc_min));
            out.copy_from_slice(&lanes[..out.len()]);
        }
    }
}

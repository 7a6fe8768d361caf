//! The integer path for quantized matrices, every block encoding. The activations are quantized
//! to 16 bits per block of 32 (scale `max|x| / 32767`: a rounding error 256 times smaller than
//! llama.cpp's 8-bit activations, which measurably changed SmolLM2's greedy answers), and the
//! weights are regrouped in tiles of 16 rows, so one 32-byte load holds 2 values of each of 16
//! rows (fewer for 2-bit values). Widened to 16-bit lanes, `vpdpwssd` (AVX-512 VNNI; without it
//! `vpmaddwd` and an add, also on AVX2 for 8 rows at a time) multiplies and sums one pair per
//! row; the sub-block scales are applied once per 16 or 32 columns, in f32.
//!
//! Every encoding is tiled from its `Unpacked` blocks (see `crate::quants`): the values as
//! unsigned integers `u = q + offset` of `bits` bits, split in a low plane of 2, 4 or 8 bits and
//! 0 to 2 high bit planes. For each tile of 16 rows and each block of the encoding (a super-block
//! of 256 columns for the K-quants), in order:
//! - the 16 rows' `d` (f16, f32 for Q8_K), then for encodings with minimums the 16 `dmin` (f16);
//! - for K-quants, per sub-block the 16 rows' integer scales (one byte each), then per
//!   sub-block the 16 rows' integer minimums when the encoding has them;
//! - per 32 columns: the low plane in chunks of 32 bytes, chunk `c`'s lane `r` = 2 bytes of row
//!   `r` — 8 bits: elements `2c, 2c+1`; 4 bits: low nibbles elements `2c, 2c+1`, high nibbles
//!   `16+2c, 17+2c`; 2 bits: bits `2m, 2m+1` of each byte elements `2(c+4m), 2(c+4m)+1` —; then
//!   each high plane: 16 little-endian u32, row `r`'s bit `j` = the plane's bit of element `2j`,
//!   bit `16+j` of element `2j+1`.
//!
//! So element pairs `(2j, 2j+1)` come out of the planes together, pairs 0–7 being the first 16
//! elements. The same bytes as the GGUF blocks for the legacy encodings and Q2_K and Q6_K; the
//! unpacked 6-bit scales of Q3_K, Q4_K and Q5_K take 2–4 % more; Q8_K drops its sums. Rows past
//! the end of the matrix are zero.

use rayon::prelude::*;

use crate::gguf::TensorType;
use crate::quants::{self, geometry, Geometry, Unpacked};

#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(target_arch = "x86_64")]
mod simd;

#[cfg(target_arch = "x86_64")]
pub(super) use simd::{avx2, avx512};

/// Rows per tile.
pub(super) const TILE: usize = 16;

/// Where the parts of one tile-block (16 rows × one block of the encoding) lie.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub geo: Geometry,
    /// Bytes of one row's `d` (2, or 4 for Q8_K).
    pub d_bytes: usize,
    /// Offsets of the `dmin` row, the scales and the minimums (meaningful when present).
    pub dmin_at: usize,
    pub scales_at: usize,
    pub mins_at: usize,
    /// Where the first 32 columns' values start, and the bytes per 32 columns.
    pub values_at: usize,
    pub group_bytes: usize,
    /// Bits of the low plane and the number of high planes.
    pub low_bits: u32,
    pub high_planes: u32,
    /// Bytes of the whole tile-block.
    pub bytes: usize,
}

/// The tile shape of a block encoding (`None` for F32, F16 and BF16, which are not tiled).
pub(super) fn shape(kind: TensorType) -> Option<Shape> {
    let geo = geometry(kind)?;
    let d_bytes = if kind == TensorType::Q8_K { 4 } else { 2 };
    let subs = geo.elements / geo.sub;
    let dmin_at = TILE * d_bytes;
    let scales_at = dmin_at + if geo.mins { TILE * 2 } else { 0 };
    let mins_at = scales_at + if geo.scales { subs * TILE } else { 0 };
    let values_at = mins_at + if geo.scales && geo.mins { subs * TILE } else { 0 };
    let low_bits = match geo.bits {
        2 | 3 => 2,
        4..=6 => 4,
        _ => 8,
    };
    let high_planes = geo.bits.saturating_sub(low_bits);
    let group_bytes = TILE * 32 * (low_bits + high_planes) as usize / 8;
    Some(Shape {
        geo,
        d_bytes,
        dmin_at,
        scales_at,
        mins_at,
        values_at,
        group_bytes,
        low_bits,
        high_planes,
        bytes: values_at + geo.elements / 32 * group_bytes,
    })
}

/// Where element `e` (of 32) of row `lane` lies in a group's low plane: (byte, bit shift).
fn low_place(s: &Shape, lane: usize, e: usize) -> (usize, u32) {
    let (j, k) = (e / 2, e % 2);
    match s.low_bits {
        8 => (j * 32 + lane * 2 + k, 0),
        4 => ((j % 8) * 32 + lane * 2 + k, 4 * (j / 8) as u32),
        _ => ((j % 4) * 32 + lane * 2 + k, 2 * (j / 4) as u32),
    }
}

/// Where element `e` of row `lane` lies in high plane `h`: (byte, bit).
fn high_place(s: &Shape, h: u32, lane: usize, e: usize) -> (usize, u32) {
    let bit = (e / 2 + 16 * (e % 2)) as u32;
    (
        TILE * 32 * s.low_bits as usize / 8 + h as usize * TILE * 4 + lane * 4 + bit as usize / 8,
        bit % 8,
    )
}

/// Regroups row-major GGUF blocks (`rows` rows of `nb` blocks of `kind`) into tiles.
pub(super) fn tile(kind: TensorType, rows: usize, nb: usize, data: &[u8]) -> Vec<u8> {
    let Some(s) = shape(kind) else {
        return data.to_vec();
    };
    let block_bytes = kind.block().1;
    let tiles = rows.div_ceil(TILE);
    let mut out = vec![0u8; tiles * nb * s.bytes];
    // Tiles are independent: regrouped on rayon's threads (a model's load).
    out.par_chunks_mut((nb * s.bytes).max(1)).enumerate().for_each(|(t, tile)| {
        let mut block = Unpacked::zero();
        for (b, dst) in tile.chunks_exact_mut(s.bytes).enumerate() {
            for lane in 0..TILE.min(rows - t * TILE) {
                quants::unpack(kind, &data[((t * TILE + lane) * nb + b) * block_bytes..][..block_bytes], &mut block);
                write_lane(&s, &block, lane, dst);
            }
        }
    });
    out
}

/// Writes one row's block into its lane of a tile-block.
fn write_lane(s: &Shape, block: &Unpacked, lane: usize, dst: &mut [u8]) {
    let geo = s.geo;
    if s.d_bytes == 4 {
        dst[lane * 4..][..4].copy_from_slice(&block.d.to_le_bytes());
    } else {
        dst[lane * 2..][..2].copy_from_slice(&quants::f32_to_f16(block.d).to_le_bytes());
    }
    if geo.mins {
        dst[s.dmin_at + lane * 2..][..2].copy_from_slice(&quants::f32_to_f16(block.dmin).to_le_bytes());
    }
    for sub in 0..geo.elements / geo.sub {
        if geo.scales {
            dst[s.scales_at + sub * TILE + lane] = block.scales[sub] as u8;
            if geo.mins {
                dst[s.mins_at + sub * TILE + lane] = block.mins[sub] as u8;
            }
        }
    }
    for (g, values) in block.q[..geo.elements].chunks_exact(32).enumerate() {
        let group = &mut dst[s.values_at + g * s.group_bytes..][..s.group_bytes];
        for (e, q) in values.iter().enumerate() {
            let u = (*q as i32 + geo.offset) as u32;
            let low_mask = if s.low_bits == 8 { 0xff } else { (1 << s.low_bits) - 1 };
            let (byte, shift) = low_place(s, lane, e);
            group[byte] |= ((u & low_mask) << shift) as u8;
            for h in 0..s.high_planes {
                let (byte, bit) = high_place(s, h, lane, e);
                group[byte] |= (((u >> (s.low_bits + h)) & 1) << bit) as u8;
            }
        }
    }
}

/// Row `lane`'s block from a tile-block.
fn read_lane(s: &Shape, src: &[u8], lane: usize, block: &mut Unpacked) {
    let geo = s.geo;
    let half = |at: usize| crate::gguf::f16_to_f32(u16::from_le_bytes([src[at], src[at + 1]]));
    block.d = if s.d_bytes == 4 {
        f32::from_le_bytes([src[lane * 4], src[lane * 4 + 1], src[lane * 4 + 2], src[lane * 4 + 3]])
    } else {
        half(lane * 2)
    };
    block.dmin = if geo.mins { half(s.dmin_at + lane * 2) } else { 0.0 };
    block.scales = [1; 16];
    block.mins = [0; 16];
    if geo.mins && !geo.scales {
        block.mins[0] = -1;
    }
    for sub in 0..geo.elements / geo.sub {
        if geo.scales {
            block.scales[sub] = src[s.scales_at + sub * TILE + lane] as i8;
            if geo.mins {
                block.mins[sub] = src[s.mins_at + sub * TILE + lane] as i8;
            }
        }
    }
    for (g, values) in block.q[..geo.elements].chunks_exact_mut(32).enumerate() {
        let group = &src[s.values_at + g * s.group_bytes..][..s.group_bytes];
        for (e, q) in values.iter_mut().enumerate() {
            let (byte, shift) = low_place(s, lane, e);
            let low_mask = if s.low_bits == 8 { 0xff } else { (1 << s.low_bits) - 1 };
            let mut u = (group[byte] as u32 >> shift) & low_mask;
            for h in 0..s.high_planes {
                let (byte, bit) = high_place(s, h, lane, e);
                u |= ((group[byte] as u32 >> bit) & 1) << (s.low_bits + h);
            }
            *q = if s.low_bits == 8 {
                u as u8 as i8
            } else {
                (u as i32 - geo.offset) as i8
            };
        }
    }
}

/// Row `r` of a tiled matrix (`nb` blocks per row) back in GGUF block encoding.
pub(super) fn untile_row(kind: TensorType, nb: usize, tiled: &[u8], r: usize) -> Vec<u8> {
    let Some(s) = shape(kind) else {
        return vec![];
    };
    let (t, lane) = (r / TILE, r % TILE);
    let mut out = Vec::with_capacity(nb * kind.block().1);
    let mut block = Unpacked::zero();
    for b in 0..nb {
        read_lane(&s, &tiled[(t * nb + b) * s.bytes..][..s.bytes], lane, &mut block);
        quants::pack(kind, &block, &mut out);
    }
    out
}

/// An activation vector quantized per block of 32: `x ≈ scale[b] · q[32b + i]`.
pub(super) struct QuantizedVector {
    pub q: Vec<i16>,
    pub scale: Vec<f32>,
    /// `Σ q` per 16 values (for the offsets of unsigned values).
    pub qsum16: Vec<i32>,
    /// `Σ x` per 16 values, exact (for the minimums).
    pub sum16: Vec<f32>,
}

/// 1.5·2²³: a float this large has no fraction bits, so adding it rounds.
const ROUNDING: f32 = 12_582_912.0;

impl QuantizedVector {
    pub fn new(x: &[f32]) -> Self {
        let nb = x.len() / 32;
        let mut v = Self {
            q: Vec::with_capacity(nb * 32),
            scale: Vec::with_capacity(nb),
            qsum16: Vec::with_capacity(nb * 2),
            sum16: Vec::with_capacity(nb * 2),
        };
        for block in x.chunks_exact(32) {
            let amax = block.iter().fold(0f32, |a, x| a.max(x.abs()));
            let d = amax / 32767.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let start = v.q.len();
            // Rounded to the nearest integer, ties to even, by adding and taking away 1.5·2²³
            // (exact for |y| < 2²², and |y| ≤ 32767 here): `f32::round` is a call into libm on
            // x86-64's baseline, once per activation, where this is two vector additions.
            v.q.extend(block.iter().map(|x| ((x * inv + ROUNDING) - ROUNDING) as i16));
            for half in v.q[start..].chunks_exact(16) {
                v.qsum16.push(half.iter().map(|q| *q as i32).sum());
            }
            v.scale.push(d);
            v.sum16.extend(block.chunks_exact(16).map(|h| h.iter().sum::<f32>()));
        }
        v
    }
}

/// `out[t] = tiles · xs[t]` for every token (`out` is `[tokens][rows]`), portable: the reference
/// of the SIMD kernels (the same integer sums, scales applied in the same places).
pub(super) fn scalar(kind: TensorType, nb: usize, tiled: &[u8], xs: &[&QuantizedVector], out: &mut [f32]) {
    let Some(s) = shape(kind) else { return };
    let rows = out.len() / xs.len().max(1);
    let geo = s.geo;
    let mut block = Unpacked::zero();
    for (x, out) in xs.iter().zip(out.chunks_mut(rows.max(1))) {
        for (r, o) in out.iter_mut().enumerate() {
            let (t, lane) = (r / TILE, r % TILE);
            let mut acc = 0f32;
            for b in 0..nb {
                read_lane(&s, &tiled[(t * nb + b) * s.bytes..][..s.bytes], lane, &mut block);
                for (sub, q) in block.q[..geo.elements].chunks_exact(geo.sub).enumerate() {
                    let at = b * geo.elements + sub * geo.sub;
                    let xq = &x.q[at..][..geo.sub];
                    let dot: i32 = q.iter().zip(xq).map(|(q, x)| *q as i32 * *x as i32).sum();
                    let xsum: f32 = x.sum16[at / 16..][..geo.sub / 16].iter().sum();
                    acc += dot as f32 * (block.d * block.scales[sub] as f32 * x.scale[at / 32]);
                    acc -= block.dmin * block.mins[sub] as f32 * xsum;
                }
            }
            *o = acc;
        }
    }
}

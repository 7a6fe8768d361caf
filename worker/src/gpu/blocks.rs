//! ggml's block layouts read on the device: each `#[cube]` function here decodes one *chunk* (32
//! consecutive elements of a row) of one encoding from the matrix's bytes, held as little-endian
//! u32 words, into 32 f32 weights, with ggml's order of operations (`d · sc · q − dmin · m`), so
//! the values are exactly `crate::quants::dequantize_into`'s.
//!
//! A chunk is the unit every encoding shares: the 32-element blocks are one chunk, the K-quants'
//! 256-element super-blocks eight (with one scale per 32, or two per chunk for the 16-element
//! sub-blocks of Q2_K, Q3_K and Q6_K), and f16/bf16 rows 64 bytes per chunk. Blocks need not be
//! aligned to words (Q4_0 is 18 bytes, Q6_K 210): fields are read at byte offsets, four bytes at
//! a time where the layout keeps four consecutive elements in four consecutive bytes.

use cubecl::prelude::*;

use crate::gguf::TensorType;

/// Elements of a chunk.
pub const CHUNK: usize = 32;

/// `(chunks per block, bytes per block)` of an encoding with a device kernel; f16 and bf16 count
/// a chunk of 32 elements as their block. `None` for the others.
pub fn chunk_geometry(kind: TensorType) -> Option<(usize, usize)> {
    match kind {
        TensorType::F16 | TensorType::BF16 => Some((1, 2 * CHUNK)),
        TensorType::Q4_0
        | TensorType::Q4_1
        | TensorType::Q5_0
        | TensorType::Q5_1
        | TensorType::Q8_0
        | TensorType::Q2_K
        | TensorType::Q3_K
        | TensorType::Q4_K
        | TensorType::Q5_K
        | TensorType::Q6_K => {
            let (elements, bytes) = kind.block();
            Some((elements / CHUNK, bytes))
        }
        TensorType::F32 | TensorType::Q8_K => None,
    }
}

/// The byte at `at`.
#[cube]
fn byte_at(w: &[u32], at: usize) -> u32 {
    (w[at / 4] >> (u32::cast_from(at % 4) * 8)) & 0xff
}

/// The little-endian u16 at byte `at` (any alignment; never reads past `at + 1`'s word).
#[cube]
fn u16_at(w: &[u32], at: usize) -> u32 {
    let i = at / 4;
    let shift = u32::cast_from(at % 4) * 8;
    let mut v = w[i] >> shift;
    if shift == 24 {
        v |= w[i + 1] << 8;
    }
    v & 0xffff
}

/// The little-endian u32 at byte `at` (any alignment; never reads past `at + 3`'s word).
#[cube]
fn u32_at(w: &[u32], at: usize) -> u32 {
    let i = at / 4;
    let shift = u32::cast_from(at % 4) * 8;
    let mut v = w[i];
    if shift != 0 {
        v = (v >> shift) | (w[i + 1] << (32 - shift));
    }
    v
}

/// IEEE half precision bits (low 16 of `h`) → f32, subnormals included.
#[cube]
pub fn half_to_f32(h: u32) -> f32 {
    let exponent = (h >> 10) & 0x1f;
    let mantissa = h & 0x3ff;
    let mut v = f32::cast_from(mantissa) * 5.960_464_5e-8; // subnormal: m · 2^-24
    if exponent == 31 {
        v = f32::reinterpret(0x7f80_0000u32 | (mantissa << 13));
    } else if exponent != 0 {
        v = f32::reinterpret(((exponent + 112) << 23) | (mantissa << 13));
    }
    if (h >> 15) & 1 == 1 {
        v = -v;
    }
    v
}

/// The f16 at byte `at` as f32.
#[cube]
fn half_at(w: &[u32], at: usize) -> f32 {
    half_to_f32(u16_at(w, at))
}

/// A two's complement byte as f32.
#[cube]
fn signed_byte(b: u32) -> f32 {
    let mut v = f32::cast_from(b);
    if b >= 128 {
        v -= 256.0;
    }
    v
}

/// Byte `k` (0..4) of a word.
#[cube]
fn byte_of(word: u32, k: u32) -> u32 {
    (word >> (k * 8)) & 0xff
}

/// Decodes chunk `chunk` of the block at byte `block` into `out[0..32]`.
#[cube]
pub fn decode_chunk(w: &[u32], block: usize, chunk: usize, out: &mut Array<f32>, #[comptime] kind: TensorType) {
    match kind {
        TensorType::F16 => halves(w, block, out, false),
        TensorType::BF16 => halves(w, block, out, true),
        TensorType::Q4_0 => q4_legacy(w, block, out, false),
        TensorType::Q4_1 => q4_legacy(w, block, out, true),
        TensorType::Q5_0 => q5_legacy(w, block, out, false),
        TensorType::Q5_1 => q5_legacy(w, block, out, true),
        TensorType::Q8_0 => q8_0(w, block, out),
        TensorType::Q2_K => q2_k(w, block, chunk, out),
        TensorType::Q3_K => q3_k(w, block, chunk, out),
        TensorType::Q4_K => q45_k(w, block, chunk, out, false),
        TensorType::Q5_K => q45_k(w, block, chunk, out, true),
        TensorType::Q6_K => q6_k(w, block, chunk, out),
        _ => comptime!(panic!("no device kernel for {kind:?}")),
    }
}

/// 32 f16 (or bf16) values, 64 bytes at a word boundary (rows are an even number of values).
#[cube]
fn halves(w: &[u32], at: usize, out: &mut Array<f32>, #[comptime] brain: bool) {
    let first = at / 4;
    #[unroll]
    for i in 0..16usize {
        let word = w[first + i];
        if comptime!(brain) {
            out[2 * i] = f32::reinterpret(word << 16);
            out[2 * i + 1] = f32::reinterpret(word & 0xffff_0000);
        } else {
            out[2 * i] = half_to_f32(word & 0xffff);
            out[2 * i + 1] = half_to_f32(word >> 16);
        }
    }
}

/// Q4_0 (`d`, 16 bytes of nibbles: element j low nibble of byte j, j + 16 its high nibble, minus
/// 8) and Q4_1 (`d`, `m`, the nibbles unsigned, plus `m`).
#[cube]
fn q4_legacy(w: &[u32], at: usize, out: &mut Array<f32>, #[comptime] with_min: bool) {
    let d = half_at(w, at);
    let offset = comptime!(if with_min { 0.0f32 } else { 8.0f32 });
    let mut min = 0.0f32;
    let mut qs = at + 2;
    if comptime!(with_min) {
        min = half_at(w, at + 2);
        qs = at + 4;
    }
    #[unroll]
    for g in 0..4usize {
        let word = u32_at(w, qs + 4 * g);
        #[unroll]
        for k in 0..4u32 {
            let b = byte_of(word, k);
            let j = 4 * g + k as usize;
            out[j] = d * (f32::cast_from(b & 0xf) - offset) + min;
            out[j + 16] = d * (f32::cast_from(b >> 4) - offset) + min;
        }
    }
}

/// Q5_0 (`d`, 32 high bits, nibbles; minus 16) and Q5_1 (`d`, `m`, high bits, nibbles; plus `m`).
#[cube]
fn q5_legacy(w: &[u32], at: usize, out: &mut Array<f32>, #[comptime] with_min: bool) {
    let d = half_at(w, at);
    let offset = comptime!(if with_min { 0.0f32 } else { 16.0f32 });
    let mut min = 0.0f32;
    let mut high = at + 2;
    if comptime!(with_min) {
        min = half_at(w, at + 2);
        high = at + 4;
    }
    let qh = u32_at(w, high);
    #[unroll]
    for g in 0..4usize {
        let word = u32_at(w, high + 4 + 4 * g);
        #[unroll]
        for k in 0..4u32 {
            let b = byte_of(word, k);
            let j = 4 * g as u32 + k;
            let lo = (b & 0xf) | (((qh >> j) & 1) << 4);
            let hi = (b >> 4) | (((qh >> (j + 16)) & 1) << 4);
            out[j as usize] = d * (f32::cast_from(lo) - offset) + min;
            out[j as usize + 16] = d * (f32::cast_from(hi) - offset) + min;
        }
    }
}

/// Q8_0: `d`, 32 signed bytes.
#[cube]
fn q8_0(w: &[u32], at: usize, out: &mut Array<f32>) {
    let d = half_at(w, at);
    #[unroll]
    for g in 0..8usize {
        let word = u32_at(w, at + 2 + 4 * g);
        #[unroll]
        for k in 0..4u32 {
            out[4 * g + k as usize] = d * signed_byte(byte_of(word, k));
        }
    }
}

/// Scale and minimum (6 bits each) of sub-block `j` of a Q4_K/Q5_K block, packed in the 12 bytes
/// at `s`.
#[cube]
fn k4_scale_min(w: &[u32], s: usize, j: usize) -> (f32, f32) {
    // j < 4: the low 6 bits of bytes j and j + 4; else nibbles of byte j + 4 and the top 2 bits
    // of bytes j − 4 and j.
    let low = j < 4;
    let packed = byte_at(w, s + j + 4);
    let top_scale = byte_at(w, s + j - select(low, 0usize, 4usize));
    let top_min = byte_at(w, s + j);
    let scale = select(low, top_scale & 63, (packed & 0xf) | ((top_scale >> 6) << 4));
    let min = select(low, packed & 63, (packed >> 4) | ((top_min >> 6) << 4));
    (f32::cast_from(scale), f32::cast_from(min))
}

/// Q4_K (`d`, `dmin`, 12 bytes of scales, 128 of nibbles: sub-block 2i the low nibbles of bytes
/// 32i.., 2i + 1 their high ones) and Q5_K (the same with 32 bytes of high bits before the
/// nibbles: bit `s` of byte `l` for element `l` of sub-block `s`).
#[cube]
fn q45_k(w: &[u32], at: usize, chunk: usize, out: &mut Array<f32>, #[comptime] five: bool) {
    let d = half_at(w, at);
    let dmin = half_at(w, at + 2);
    let (sc, m) = k4_scale_min(w, at + 4, chunk);
    let scale = d * sc;
    let min = dmin * m;
    let mut ql = at + 16 + (chunk / 2) * 32;
    if comptime!(five) {
        ql += 32;
    }
    let shift = u32::cast_from(chunk % 2) * 4;
    let bit = u32::cast_from(chunk);
    #[unroll]
    for g in 0..8usize {
        let word = u32_at(w, ql + 4 * g);
        let mut high = 0u32;
        if comptime!(five) {
            high = u32_at(w, at + 16 + 4 * g);
        }
        #[unroll]
        for k in 0..4u32 {
            let mut q = (byte_of(word, k) >> shift) & 0xf;
            if comptime!(five) {
                q |= ((byte_of(high, k) >> bit) & 1) << 4;
            }
            out[4 * g + k as usize] = scale * f32::cast_from(q) - min;
        }
    }
}

/// Q6_K: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 signed scales (one per 16
/// elements), `d` last. Chunk `c` is group `c % 4` of half `c / 4`: nibbles of bytes
/// `64·half + 32·(group % 2)..`, low or high by `group / 2`, high bits `2·group` of bytes
/// `128 + 32·half..`.
#[cube]
fn q6_k(w: &[u32], at: usize, chunk: usize, out: &mut Array<f32>) {
    let d = half_at(w, at + 208);
    let half = chunk / 4;
    let group = chunk % 4;
    let ql = at + 64 * half + 32 * (group % 2);
    let qh = at + 128 + 32 * half;
    let nibble = u32::cast_from(group / 2) * 4;
    let pair = u32::cast_from(group) * 2;
    #[unroll]
    for s in 0..2usize {
        let scale = d * signed_byte(byte_at(w, at + 192 + 2 * chunk + s));
        #[unroll]
        for g in 0..4usize {
            let low = u32_at(w, ql + 16 * s + 4 * g);
            let high = u32_at(w, qh + 16 * s + 4 * g);
            #[unroll]
            for k in 0..4u32 {
                let q = ((byte_of(low, k) >> nibble) & 0xf) | (((byte_of(high, k) >> pair) & 3) << 4);
                out[16 * s + 4 * g + k as usize] = scale * (f32::cast_from(q) - 32.0);
            }
        }
    }
}

/// Q2_K: 16 bytes of 4-bit scale and minimum pairs (one per 16 elements), 64 bytes of 2-bit
/// values, `d`, `dmin`. Chunk `c`: bits `2·(c % 4)` of bytes `16 + 32·(c / 4)..`.
#[cube]
fn q2_k(w: &[u32], at: usize, chunk: usize, out: &mut Array<f32>) {
    let d = half_at(w, at + 80);
    let dmin = half_at(w, at + 82);
    let qs = at + 16 + 32 * (chunk / 4);
    let shift = u32::cast_from(chunk % 4) * 2;
    #[unroll]
    for s in 0..2usize {
        let packed = byte_at(w, at + 2 * chunk + s);
        let scale = d * f32::cast_from(packed & 0xf);
        let min = dmin * f32::cast_from(packed >> 4);
        #[unroll]
        for g in 0..4usize {
            let word = u32_at(w, qs + 16 * s + 4 * g);
            #[unroll]
            for k in 0..4u32 {
                let q = (byte_of(word, k) >> shift) & 3;
                out[16 * s + 4 * g + k as usize] = scale * f32::cast_from(q) - min;
            }
        }
    }
}

/// Q3_K: 32 bytes of high bits (bit `4·(c / 4) + c % 4` of byte `l`), 64 bytes of 2-bit values
/// (as Q2_K), 12 bytes of 6-bit scales (low nibbles in bytes 0..8, high pairs in 8..12; minus
/// 32), `d`. A value is `low + 4·high − 4`.
#[cube]
fn q3_k(w: &[u32], at: usize, chunk: usize, out: &mut Array<f32>) {
    let d = half_at(w, at + 108);
    let qs = at + 32 + 32 * (chunk / 4);
    let shift = u32::cast_from(chunk % 4) * 2;
    let bit = u32::cast_from((chunk / 4) * 4 + chunk % 4);
    #[unroll]
    for s in 0..2usize {
        let i = 2 * chunk + s;
        let low = (byte_at(w, at + 96 + i % 8) >> (u32::cast_from(i / 8) * 4)) & 0xf;
        let high = (byte_at(w, at + 104 + i % 4) >> (u32::cast_from(i / 4) * 2)) & 3;
        let scale = d * (f32::cast_from(low | (high << 4)) - 32.0);
        #[unroll]
        for g in 0..4usize {
            let word = u32_at(w, qs + 16 * s + 4 * g);
            let mask = u32_at(w, at + 16 * s + 4 * g);
            #[unroll]
            for k in 0..4u32 {
                let q = ((byte_of(word, k) >> shift) & 3) + 4 * ((byte_of(mask, k) >> bit) & 1);
                out[16 * s + 4 * g + k as usize] = scale * (f32::cast_from(q) - 4.0);
            }
        }
    }
}

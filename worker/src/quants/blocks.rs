//! ggml's block layouts (`ggml-common.h`), read into and written from `Unpacked` blocks. Each
//! function takes exactly one block of bytes of its kind.

use super::{f32_to_f16, Unpacked};
use crate::gguf::{f16_to_f32, TensorType};

fn half_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn push_half(out: &mut Vec<u8>, x: f32) {
    out.extend(f32_to_f16(x).to_le_bytes());
}

/// Reads one block of `kind` (`raw` is `kind.block().1` bytes) into `out`.
pub(crate) fn unpack(kind: TensorType, raw: &[u8], out: &mut Unpacked) {
    out.scales = [1; 16];
    out.mins = [0; 16];
    out.dmin = 0.0;
    let q = &mut out.q;
    match kind {
        TensorType::Q4_0 | TensorType::Q4_1 => {
            let with_min = kind == TensorType::Q4_1;
            out.d = half_at(raw, 0);
            let qs = if with_min {
                out.dmin = half_at(raw, 2);
                out.mins[0] = -1;
                &raw[4..20]
            } else {
                &raw[2..18]
            };
            let offset = if with_min { 0 } else { 8 };
            for (j, b) in qs.iter().enumerate() {
                q[j] = (b & 0x0f) as i8 - offset;
                q[j + 16] = (b >> 4) as i8 - offset;
            }
        }
        TensorType::Q5_0 | TensorType::Q5_1 => {
            let with_min = kind == TensorType::Q5_1;
            out.d = half_at(raw, 0);
            let at = if with_min {
                out.dmin = half_at(raw, 2);
                out.mins[0] = -1;
                4
            } else {
                2
            };
            let qh = u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
            let offset = if with_min { 0 } else { 16 };
            for (j, b) in raw[at + 4..at + 20].iter().enumerate() {
                let high = |i: usize| (((qh >> i) & 1) << 4) as u8;
                q[j] = ((b & 0x0f) | high(j)) as i8 - offset;
                q[j + 16] = ((b >> 4) | high(j + 16)) as i8 - offset;
            }
        }
        TensorType::Q8_0 => {
            out.d = half_at(raw, 0);
            raw[2..34].iter().zip(q.iter_mut()).for_each(|(b, q)| *q = *b as i8);
        }
        TensorType::Q8_K => {
            out.d = f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            raw[4..260].iter().zip(q.iter_mut()).for_each(|(b, q)| *q = *b as i8);
        }
        TensorType::Q2_K => {
            let (scales, qs) = (&raw[0..16], &raw[16..80]);
            out.d = half_at(raw, 80);
            out.dmin = half_at(raw, 82);
            for (s, b) in scales.iter().enumerate() {
                out.scales[s] = (b & 0x0f) as i8;
                out.mins[s] = (b >> 4) as i8;
            }
            for n in 0..2 {
                for j in 0..4 {
                    for l in 0..32 {
                        q[n * 128 + j * 32 + l] = ((qs[n * 32 + l] >> (2 * j)) & 3) as i8;
                    }
                }
            }
        }
        TensorType::Q3_K => {
            let (hmask, qs, scales) = (&raw[0..32], &raw[32..96], &raw[96..108]);
            out.d = half_at(raw, 108);
            for (i, s) in out.scales.iter_mut().enumerate() {
                let low = if i < 8 { scales[i] & 0x0f } else { scales[i - 8] >> 4 };
                let high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
                *s = (low | (high << 4)) as i8 - 32;
            }
            for n in 0..2 {
                for j in 0..4 {
                    for l in 0..32 {
                        let low = ((qs[n * 32 + l] >> (2 * j)) & 3) as i8;
                        let high = ((hmask[l] >> (n * 4 + j)) & 1) as i8;
                        q[n * 128 + j * 32 + l] = low + 4 * high - 4;
                    }
                }
            }
        }
        TensorType::Q4_K | TensorType::Q5_K => {
            out.d = half_at(raw, 0);
            out.dmin = half_at(raw, 2);
            let scales = &raw[4..16];
            for s in 0..8 {
                let (sc, m) = k4_scale_min(s, scales);
                out.scales[s] = sc as i8;
                out.mins[s] = m as i8;
            }
            let (qh, ql) = if kind == TensorType::Q5_K {
                (Some(&raw[16..48]), &raw[48..176])
            } else {
                (None, &raw[16..144])
            };
            for j in 0..4 {
                for l in 0..32 {
                    let high = |bit: usize| qh.map_or(0, |qh| ((qh[l] >> bit) & 1) << 4);
                    q[j * 64 + l] = ((ql[j * 32 + l] & 0x0f) | high(2 * j)) as i8;
                    q[j * 64 + 32 + l] = ((ql[j * 32 + l] >> 4) | high(2 * j + 1)) as i8;
                }
            }
        }
        TensorType::Q6_K => {
            let (ql, qh, scales) = (&raw[0..128], &raw[128..192], &raw[192..208]);
            out.d = half_at(raw, 208);
            scales.iter().zip(out.scales.iter_mut()).for_each(|(b, s)| *s = *b as i8);
            for n in 0..2 {
                for l in 0..32 {
                    let (lo, hi, h) = (ql[n * 64 + l], ql[n * 64 + 32 + l], qh[n * 32 + l]);
                    let v = |nibble: u8, shift: usize| (nibble | (((h >> shift) & 3) << 4)) as i8 - 32;
                    q[n * 128 + l] = v(lo & 0x0f, 0);
                    q[n * 128 + 32 + l] = v(hi & 0x0f, 2);
                    q[n * 128 + 64 + l] = v(lo >> 4, 4);
                    q[n * 128 + 96 + l] = v(hi >> 4, 6);
                }
            }
        }
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => {}
    }
}

/// Scale and minimum of sub-block `j` of a Q4_K/Q5_K block (6 bits each, packed in 12 bytes).
fn k4_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Writes one block of `kind` from `block` (values and scales in the kind's ranges) to `out`.
pub(crate) fn pack(kind: TensorType, block: &Unpacked, out: &mut Vec<u8>) {
    let q = |i: usize| block.q[i] as i32;
    match kind {
        TensorType::Q4_0 | TensorType::Q4_1 => {
            let with_min = kind == TensorType::Q4_1;
            push_half(out, block.d);
            if with_min {
                push_half(out, block.dmin);
            }
            let offset = if with_min { 0 } else { 8 };
            out.extend((0..16).map(|j| ((q(j) + offset) as u8 & 0x0f) | (((q(j + 16) + offset) as u8) << 4)));
        }
        TensorType::Q5_0 | TensorType::Q5_1 => {
            let with_min = kind == TensorType::Q5_1;
            push_half(out, block.d);
            if with_min {
                push_half(out, block.dmin);
            }
            let offset = if with_min { 0 } else { 16 };
            let u = |i: usize| (q(i) + offset) as u32 & 31;
            let qh = (0..32).fold(0u32, |h, i| h | ((u(i) >> 4) << i));
            out.extend(qh.to_le_bytes());
            out.extend((0..16).map(|j| (u(j) & 0x0f) as u8 | (((u(j + 16) & 0x0f) as u8) << 4)));
        }
        TensorType::Q8_0 => {
            push_half(out, block.d);
            out.extend(block.q[..32].iter().map(|q| *q as u8));
        }
        TensorType::Q8_K => {
            out.extend(block.d.to_le_bytes());
            out.extend(block.q.iter().map(|q| *q as u8));
            for sums in block.q.chunks_exact(16) {
                out.extend((sums.iter().map(|q| *q as i32).sum::<i32>() as i16).to_le_bytes());
            }
        }
        TensorType::Q2_K => {
            out.extend((0..16).map(|s| (block.scales[s] as u8 & 0x0f) | ((block.mins[s] as u8) << 4)));
            for n in 0..2 {
                out.extend((0..32).map(|l| (0..4).fold(0u8, |b, j| b | (((q(n * 128 + j * 32 + l) & 3) as u8) << (2 * j)))));
            }
            push_half(out, block.d);
            push_half(out, block.dmin);
        }
        TensorType::Q3_K => {
            let u = |i: usize| (q(i) + 4) as u8 & 7;
            out.extend((0..32).map(|l| (0..8).fold(0u8, |b, k| b | ((u((k / 4) * 128 + (k % 4) * 32 + l) >> 2) << k))));
            for n in 0..2 {
                out.extend((0..32).map(|l| (0..4).fold(0u8, |b, j| b | ((u(n * 128 + j * 32 + l) & 3) << (2 * j)))));
            }
            let mut scales = [0u8; 12];
            for i in 0..16 {
                let sc = (block.scales[i] as i32 + 32) as u8 & 63;
                if i < 8 {
                    scales[i] |= sc & 0x0f;
                } else {
                    scales[i - 8] |= (sc & 0x0f) << 4;
                }
                scales[8 + i % 4] |= (sc >> 4) << (2 * (i / 4));
            }
            out.extend(scales);
            push_half(out, block.d);
        }
        TensorType::Q4_K | TensorType::Q5_K => {
            push_half(out, block.d);
            push_half(out, block.dmin);
            let mut scales = [0u8; 12];
            for j in 0..8 {
                let (sc, m) = (block.scales[j] as u8 & 63, block.mins[j] as u8 & 63);
                if j < 4 {
                    scales[j] |= sc;
                    scales[j + 4] |= m;
                } else {
                    scales[j + 4] = (sc & 0x0f) | ((m & 0x0f) << 4);
                    scales[j - 4] |= (sc >> 4) << 6;
                    scales[j] |= (m >> 4) << 6;
                }
            }
            out.extend(scales);
            let u = |i: usize| q(i) as u8;
            if kind == TensorType::Q5_K {
                out.extend((0..32).map(|l| (0..8).fold(0u8, |b, k| b | (((u(k * 32 + l) >> 4) & 1) << k))));
            }
            for j in 0..4 {
                out.extend((0..32).map(|l| (u(j * 64 + l) & 0x0f) | ((u(j * 64 + 32 + l) & 0x0f) << 4)));
            }
        }
        TensorType::Q6_K => {
            let u = |i: usize| (q(i) + 32) as u8 & 63;
            for n in 0..2 {
                out.extend((0..32).map(|l| (u(n * 128 + l) & 0x0f) | ((u(n * 128 + 64 + l) & 0x0f) << 4)));
                out.extend((0..32).map(|l| (u(n * 128 + 32 + l) & 0x0f) | ((u(n * 128 + 96 + l) & 0x0f) << 4)));
            }
            for n in 0..2 {
                out.extend((0..32).map(|l| (0..4).fold(0u8, |b, k| b | ((u(n * 128 + k * 32 + l) >> 4) << (2 * k)))));
            }
            out.extend(block.scales.iter().map(|s| *s as u8));
            push_half(out, block.d);
        }
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => {}
    }
}

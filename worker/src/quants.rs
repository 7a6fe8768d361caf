//! The block encodings of GGUF tensors (ggml's quantization formats): their f32 values
//! (`dequantize_into`) and, for tests and tools, an encoder (`encode`).

use crate::gguf::{f16_to_f32, TensorType};

/// Appends the f32 values of `raw`, whole blocks of `kind`, to `out`.
pub fn dequantize_into(kind: TensorType, raw: &[u8], out: &mut Vec<f32>) {
    match kind {
        TensorType::F32 => out.extend(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        TensorType::F16 => out.extend(raw.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))),
        TensorType::Q8_0 => {
            for block in raw.chunks_exact(34) {
                let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
                out.extend(block[2..].iter().map(|q| d * (*q as i8) as f32));
            }
        }
        TensorType::Q4_0 => {
            for block in raw.chunks_exact(18) {
                let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
                let qs = &block[2..];
                out.extend(qs.iter().map(|b| d * ((b & 0x0f) as i32 - 8) as f32));
                out.extend(qs.iter().map(|b| d * ((b >> 4) as i32 - 8) as f32));
            }
        }
        TensorType::Q4_1 => {
            for block in raw.chunks_exact(20) {
                let d = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
                let m = f16_to_f32(u16::from_le_bytes([block[2], block[3]]));
                let qs = &block[4..];
                out.extend(qs.iter().map(|b| d * (b & 0x0f) as f32 + m));
                out.extend(qs.iter().map(|b| d * (b >> 4) as f32 + m));
            }
        }
        other => unimplemented!("{other:?} blocks are not decoded yet"),
    }
}

/// Single → half precision, rounding to nearest.
pub fn f32_to_f16(x: f32) -> u16 {
    // Round-to-nearest conversion, enough for test data in the normal range.
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let frac = bits & 0x7f_ffff;
    if x == 0.0 {
        return sign;
    }
    if exp <= 0 {
        let shifted = (frac | 0x80_0000) >> (1 - exp + 13).min(31);
        return sign | shifted as u16;
    }
    if exp >= 0x1f {
        return sign | 0x7c00;
    }
    let mut h = sign as u32 | ((exp as u32) << 10) | (frac >> 13);
    if frac & 0x1000 != 0 {
        h += 1;
    }
    h as u16
}

/// Encodes `data` (row-major) in `kind`.
pub fn encode(kind: TensorType, data: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    match kind {
        TensorType::F32 => data.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorType::F16 => data.iter().for_each(|x| out.extend(f32_to_f16(*x).to_le_bytes())),
        TensorType::Q8_0 => {
            for block in data.chunks(32) {
                let amax = block.iter().fold(0f32, |a, x| a.max(x.abs()));
                let d = amax / 127.0;
                out.extend(f32_to_f16(d).to_le_bytes());
                let dq = f16_to_f32(f32_to_f16(d));
                for i in 0..32 {
                    let x = block.get(i).copied().unwrap_or(0.0);
                    let q = if dq > 0.0 { (x / dq).round().clamp(-127.0, 127.0) } else { 0.0 };
                    out.push(q as i8 as u8);
                }
            }
        }
        TensorType::Q4_1 | TensorType::Q4_0 => {
            for block in data.chunks(32) {
                let min = block.iter().fold(f32::INFINITY, |a, x| a.min(*x));
                let max = block.iter().fold(f32::NEG_INFINITY, |a, x| a.max(*x));
                let (d, m) = if kind == TensorType::Q4_1 {
                    ((max - min) / 15.0, min)
                } else {
                    (max.abs().max(min.abs()) / 7.0, 0.0)
                };
                let (dq, mq) = (f16_to_f32(f32_to_f16(d)), f16_to_f32(f32_to_f16(m)));
                out.extend(f32_to_f16(d).to_le_bytes());
                if kind == TensorType::Q4_1 {
                    out.extend(f32_to_f16(m).to_le_bytes());
                }
                let q = |i: usize| {
                    let x = block.get(i).copied().unwrap_or(min);
                    let v = if dq > 0.0 { ((x - mq) / dq).round() } else { 0.0 };
                    if kind == TensorType::Q4_1 {
                        v.clamp(0.0, 15.0) as u8
                    } else {
                        (v + 8.0).clamp(0.0, 15.0) as u8
                    }
                };
                for j in 0..16 {
                    out.push(q(j) | (q(j + 16) << 4));
                }
            }
        }
        other => unimplemented!("{other:?} blocks are not encoded yet"),
    }
    out
}

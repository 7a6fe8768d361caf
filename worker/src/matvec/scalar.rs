//! Portable kernels: the reference the SIMD ones are tested against, and the fallback on CPUs
//! without them.

use super::Rows;
use crate::gguf::{f16_to_f32, TensorType};

fn half(b: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// `out[i] = row i · x`; `sums` holds the sums of `x` per 32 values (for Q4 encodings).
pub(super) fn rows(m: &Rows<'_>, x: &[f32], sums: &[f32], out: &mut [f32]) {
    for (row, o) in m.data.chunks_exact(m.row_bytes).zip(out.iter_mut()) {
        *o = match m.kind {
            TensorType::F32 => row
                .chunks_exact(4)
                .zip(x)
                .map(|(b, x)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * x)
                .sum(),
            TensorType::F16 => row.chunks_exact(2).zip(x).map(|(b, x)| half(b) * x).sum(),
            TensorType::BF16 => row
                .chunks_exact(2)
                .zip(x)
                .map(|(b, x)| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) * x)
                .sum(),
            TensorType::Q8_0 => row
                .chunks_exact(34)
                .zip(x.chunks_exact(32))
                .map(|(b, x)| half(b) * b[2..].iter().zip(x).map(|(q, x)| (*q as i8) as f32 * x).sum::<f32>())
                .sum(),
            TensorType::Q4_0 | TensorType::Q4_1 => {
                let q41 = m.kind == TensorType::Q4_1;
                let (qs_at, block) = if q41 { (4, 20) } else { (2, 18) };
                row.chunks_exact(block)
                    .zip(x.chunks_exact(32))
                    .zip(sums)
                    .map(|((b, x), s)| {
                        let d = half(b);
                        let offset = if q41 { half(&b[2..]) } else { -8.0 * d };
                        let qs = &b[qs_at..];
                        let q: f32 = qs
                            .iter()
                            .zip(&x[..16])
                            .zip(&x[16..])
                            .map(|((q, lo), hi)| (q & 0x0f) as f32 * lo + (q >> 4) as f32 * hi)
                            .sum();
                        d * q + offset * s
                    })
                    .sum()
            }
            // Any other encoding: its values, one row at a time.
            kind => {
                let mut w = Vec::with_capacity(m.cols);
                crate::gguf::dequantize_into(kind, row, &mut w);
                w.iter().zip(x).map(|(w, x)| w * x).sum()
            }
        };
    }
}

//! The block encodings of GGUF tensors (ggml's quantization formats): their f32 values
//! (`dequantize_into`) and, for tests and tools, an encoder (`encode`).
//!
//! Every block encoding is read through one form, `Unpacked`: a block's values as small signed
//! integers with the integer scales and minimums of its sub-blocks, so that element `i` is
//! `(d · scales[i / sub]) · q[i] − dmin · mins[i / sub]` — ggml's own order of operations, so the
//! f32 values are exactly ggml's. `blocks` moves between that form and the file's bytes,
//! `quantize` finds it for f32 values. The tiled matrices of `matvec` are built from it too.

mod blocks;
mod quantize;

pub(crate) use blocks::{pack, unpack};

use crate::gguf::{f16_to_f32, TensorType};

/// Elements of the largest block (the K-quants' super-blocks).
pub(crate) const MAX_BLOCK: usize = 256;

/// One block's values as small integers (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unpacked {
    /// The values, `q[i]` for element `i` (the first `elements` of the kind are used).
    pub q: [i8; MAX_BLOCK],
    /// The block's scale (f16 in the file, f32 for Q8_K).
    pub d: f32,
    /// The scale of the minimums (f16; Q4_1 and Q5_1 keep their minimum here, with `mins` −1).
    pub dmin: f32,
    /// Integer scale per sub-block (1 for encodings without them).
    pub scales: [i8; 16],
    /// Integer minimum per sub-block (0 for encodings without them).
    pub mins: [i8; 16],
}

impl Unpacked {
    pub(crate) fn zero() -> Self {
        Self {
            q: [0; MAX_BLOCK],
            d: 0.0,
            dmin: 0.0,
            scales: [1; 16],
            mins: [0; 16],
        }
    }

    /// Appends the block's f32 values (`elements` of them, sub-blocks of `sub`) to `out`.
    fn values_into(&self, elements: usize, sub: usize, out: &mut Vec<f32>) {
        for (s, q) in self.q[..elements].chunks_exact(sub).enumerate() {
            let scale = self.d * self.scales[s] as f32;
            let min = self.dmin * self.mins[s] as f32;
            out.extend(q.iter().map(|q| scale * *q as f32 - min));
        }
    }
}

/// How a block encoding is laid out, for the code that reads `Unpacked` blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Elements per block.
    pub elements: usize,
    /// Elements per sub-block (one integer scale and minimum each).
    pub sub: usize,
    /// Added to `q` to get the unsigned value the file stores (0 for signed 8-bit values).
    pub offset: i32,
    /// Bits of a stored value.
    pub bits: u32,
    /// Whether the sub-blocks have integer scales (K-quants) and minimums.
    pub scales: bool,
    pub mins: bool,
}

/// The geometry of a block encoding (`None` for F32, F16 and BF16).
pub(crate) fn geometry(kind: TensorType) -> Option<Geometry> {
    let g = |elements, sub, offset, bits, scales, mins| {
        Some(Geometry {
            elements,
            sub,
            offset,
            bits,
            scales,
            mins,
        })
    };
    match kind {
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => None,
        TensorType::Q4_0 => g(32, 32, 8, 4, false, false),
        TensorType::Q4_1 => g(32, 32, 0, 4, false, true),
        TensorType::Q5_0 => g(32, 32, 16, 5, false, false),
        TensorType::Q5_1 => g(32, 32, 0, 5, false, true),
        TensorType::Q8_0 => g(32, 32, 0, 8, false, false),
        TensorType::Q2_K => g(256, 16, 0, 2, true, true),
        TensorType::Q3_K => g(256, 16, 4, 3, true, false),
        TensorType::Q4_K => g(256, 32, 0, 4, true, true),
        TensorType::Q5_K => g(256, 32, 0, 5, true, true),
        TensorType::Q6_K => g(256, 16, 32, 6, true, false),
        TensorType::Q8_K => g(256, 32, 0, 8, false, false),
    }
}

/// Appends the f32 values of `raw`, whole blocks of `kind`, to `out` (a partial block at the
/// end is ignored).
pub fn dequantize_into(kind: TensorType, raw: &[u8], out: &mut Vec<f32>) {
    match kind {
        TensorType::F32 => out.extend(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        TensorType::F16 => out.extend(raw.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))),
        TensorType::BF16 => out.extend(
            raw.chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)),
        ),
        _ => {
            let Some(geo) = geometry(kind) else { return };
            let bytes = kind.block().1;
            out.reserve(raw.len() / bytes * geo.elements);
            let mut block = Unpacked::zero();
            for raw in raw.chunks_exact(bytes) {
                unpack(kind, raw, &mut block);
                block.values_into(geo.elements, geo.sub, out);
            }
        }
    }
}

/// Single → half precision, rounding to nearest even.
pub fn f32_to_f16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Single → bfloat16, rounding to nearest even (NaN stays NaN).
pub fn f32_to_bf16(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

/// Encodes `data` (row-major) in `kind`. The last block is padded with zeros when `data` is not
/// whole blocks. Quantized encodings round each value to its block's nearest step (a simple
/// quantizer, not llama.cpp's search for the best scales).
pub fn encode(kind: TensorType, data: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    match kind {
        TensorType::F32 => data.iter().for_each(|x| out.extend(x.to_le_bytes())),
        TensorType::F16 => data.iter().for_each(|x| out.extend(f32_to_f16(*x).to_le_bytes())),
        TensorType::BF16 => data.iter().for_each(|x| out.extend(f32_to_bf16(*x).to_le_bytes())),
        _ => {
            let Some(geo) = geometry(kind) else { return out };
            let mut padded = [0f32; MAX_BLOCK];
            for values in data.chunks(geo.elements) {
                padded[..values.len()].copy_from_slice(values);
                padded[values.len()..geo.elements].fill(0.0);
                let block = quantize::quantize(kind, geo, &padded[..geo.elements]);
                pack(kind, &block, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;

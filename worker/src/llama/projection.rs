//! Matrices applied to the same input with their outputs side by side (q, k and v; gate and up),
//! on the host. Parts in the same encoding are stacked into one matrix (one product for all);
//! parts in different encodings (llama.cpp mixes them: Q5_0 q and k with a Q8_0 v) stay apart in
//! their own encodings rather than being widened to f32.

use super::tensors::MatrixName;
use super::Weights;
use crate::gguf::GgufError;
use crate::matvec::QuantMatrix;

/// Loads a matrix in its file encoding and checks its shape.
pub(super) fn load_matrix(w: &dyn Weights, m: &MatrixName) -> Result<QuantMatrix, GgufError> {
    let q = w.matrix(&m.name)?.ok_or_else(|| GgufError::MissingTensor(m.name.clone()))?;
    m.check(q.rows(), q.cols())?;
    Ok(q)
}

pub(super) struct Projection {
    /// Each part's matrix, prepared for the fastest kernel.
    parts: Vec<QuantMatrix>,
    rows: usize,
}

impl Projection {
    /// The parts named, in order.
    pub(super) fn load(w: &dyn Weights, names: &[MatrixName]) -> Result<Self, GgufError> {
        let mut groups: Vec<Vec<QuantMatrix>> = vec![];
        for name in names {
            let m = load_matrix(w, name)?;
            match groups.last_mut() {
                Some(group) if group[0].kind() == m.kind() => group.push(m),
                _ => groups.push(vec![m]),
            }
        }
        let mut parts = Vec::with_capacity(groups.len());
        for mut group in groups {
            let m = if group.len() == 1 {
                group.remove(0)
            } else {
                QuantMatrix::stack(group)?
            };
            parts.push(m.prepared());
        }
        let rows = parts.iter().map(QuantMatrix::rows).sum();
        Ok(Self { parts, rows })
    }

    /// Bytes one product reads.
    pub(super) fn bytes(&self) -> usize {
        self.parts.iter().map(QuantMatrix::bytes).sum()
    }

    /// f32 parts become f16.
    pub(super) fn into_f16(self) -> Self {
        Self {
            parts: self.parts.into_iter().map(QuantMatrix::to_f16).collect(),
            ..self
        }
    }

    /// `out[t] = self · x[t]` for `x`: `[tokens][cols]`, `out`: `[tokens][rows]`.
    pub(super) fn apply(&self, x: &[f32], out: &mut [f32]) {
        if let [only] = &self.parts[..] {
            only.matmul(x, out);
            return;
        }
        let tokens = out.len() / self.rows.max(1);
        let mut offset = 0;
        let mut part_out = vec![];
        for part in &self.parts {
            let rows = part.rows();
            if tokens == 1 {
                part.matmul(x, &mut out[offset..offset + rows]);
            } else {
                part_out.resize(tokens * rows, 0.0);
                part.matmul(x, &mut part_out);
                for (dst, src) in out.chunks_exact_mut(self.rows).zip(part_out.chunks_exact(rows)) {
                    dst[offset..offset + rows].copy_from_slice(src);
                }
            }
            offset += rows;
        }
    }
}

//! Moving a model's matrices onto a burn device, one matrix at a time, and counting what went
//! there: each matrix in its file encoding where our kernels read it (`crate::gpu`), else decoded
//! on the host to the model's matrix precision before the upload, so the device never holds an
//! f32 copy of a quantized or f16 model; norms and biases in f32. The embedding stays on the host
//! (`super::BurnModel::embed`).

use burn::prelude::*;
use burn::tensor::DType;

use super::super::tensors::MatrixName;
use super::super::Weights;
use crate::gguf::GgufError;
use crate::gpu::DeviceMatrix;
use crate::matvec::QuantMatrix;

/// Largest part a matrix is uploaded as: a larger matrix is stored as several blocks of whole
/// rows (Vulkan drivers bind a limited range of a storage buffer: lavapipe 128 MiB, and Gemma 3's
/// 262,144-row LM head is 137 MB in Q6_K, 335 MB in f16).
pub(super) const MAX_PART_BYTES: usize = 64 << 20;

/// A weight matrix `[out][in]` on the device, as blocks of whole rows, each a `DeviceMatrix` in
/// the file's encoding (decoded by our kernels as they multiply) or, without a kernel, decoded
/// on the host. Matrices stacked side by side (q, k, v) are consecutive blocks; blocks of the
/// same encoding are one block where they fit.
pub(super) struct Matrix {
    parts: Vec<DeviceMatrix>,
}

impl Matrix {
    /// Bytes on the device.
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(DeviceMatrix::device_bytes).sum()
    }
}

/// Bytes uploaded to a device while loading a model, by element type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadedBytes {
    pub f32: usize,
    pub f16: usize,
    /// Matrices kept in their file encoding (GGUF blocks).
    pub encoded: usize,
    /// Other types (bf16, integers).
    pub other: usize,
}

impl UploadedBytes {
    /// All bytes.
    pub fn total(&self) -> usize {
        self.f32 + self.f16 + self.encoded + self.other
    }

    fn count(&mut self, dtype: DType, bytes: usize) {
        match dtype {
            DType::F32 => self.f32 += bytes,
            DType::F16 => self.f16 += bytes,
            _ => self.other += bytes,
        }
    }

    fn count_matrix(&mut self, m: &DeviceMatrix) {
        match m.dense_dtype() {
            Some(dtype) => self.count(dtype, m.device_bytes()),
            None => self.encoded += m.device_bytes(),
        }
    }
}

/// Uploads tensors to one device, counting the bytes.
pub(super) struct Uploader<'a> {
    pub device: &'a Device,
    /// Precision of matrices decoded on the host (those without a kernel, and all on burn's CPU
    /// backend).
    pub matrices: DType,
    pub uploaded: UploadedBytes,
    /// Largest block of a matrix (`MAX_PART_BYTES`; smaller in tests).
    pub max_part_bytes: usize,
}

impl Uploader<'_> {
    /// A vector in f32.
    pub fn vector(&mut self, data: Vec<f32>) -> Tensor<1> {
        let n = data.len();
        let data = TensorData::new(data, [n]);
        self.uploaded.count(DType::F32, data.as_bytes().len());
        Tensor::from_data(data, (self.device, DType::F32))
    }

    /// A matrix in its file encoding, in blocks of at most `max_part_bytes`.
    fn upload(&mut self, m: QuantMatrix, parts: &mut Vec<DeviceMatrix>) -> Result<(), GgufError> {
        let row_bytes = (m.bytes() / m.rows().max(1)).max(1);
        let block = (self.max_part_bytes / row_bytes).max(1);
        let mut first = 0;
        while first < m.rows() {
            let rows = first..(first + block).min(m.rows());
            let part = m
                .row_range(rows.clone())
                .ok_or_else(|| GgufError::Invalid(format!("{m:?}: rows {rows:?}")))?;
            let uploaded = DeviceMatrix::upload_with(&part, self.device, self.matrices)?;
            self.uploaded.count_matrix(&uploaded);
            parts.push(uploaded);
            first = rows.end;
        }
        Ok(())
    }

    /// A matrix stored `[out][in]` (`m.rows`, `m.cols`).
    pub fn matrix(&mut self, w: &dyn Weights, m: &MatrixName) -> Result<Matrix, GgufError> {
        self.matrices(w, std::slice::from_ref(m))
    }

    /// Several matrices stacked (`[Σ out][in]`: their outputs side by side); consecutive ones in
    /// the same encoding become one block.
    pub fn matrices(&mut self, w: &dyn Weights, names: &[MatrixName]) -> Result<Matrix, GgufError> {
        let mut groups: Vec<Vec<QuantMatrix>> = vec![];
        for name in names {
            let m = w.matrix(&name.name)?.ok_or_else(|| GgufError::MissingTensor(name.name.clone()))?;
            name.check(m.rows(), m.cols())?;
            match groups.last_mut() {
                Some(group) if group[0].kind() == m.kind() && group[0].cols() == m.cols() => group.push(m),
                _ => groups.push(vec![m]),
            }
        }
        let mut parts = vec![];
        for mut group in groups {
            let m = if group.len() == 1 {
                group.remove(0)
            } else {
                QuantMatrix::stack(group)?
            };
            self.upload(m, &mut parts)?;
        }
        Ok(Matrix { parts })
    }
}

/// `x · wᵀ` (`x`: `[rows, in]` f32, the result `[rows, out]` f32).
pub(super) fn apply(x: Tensor<2>, w: &Matrix) -> Tensor<2> {
    let mut outs: Vec<Tensor<2>> = w.parts.iter().map(|p| p.matmul(x.clone())).collect();
    if outs.len() == 1 {
        outs.pop().unwrap_or(x)
    } else {
        Tensor::cat(outs, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_in_blocks_multiplies_like_one() {
        let device = Device::flex();
        let (rows, cols) = (10usize, 32usize);
        let data: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let upload = |max_part_bytes: usize| {
            let mut up = Uploader {
                device: &device,
                matrices: DType::F32,
                uploaded: UploadedBytes::default(),
                max_part_bytes,
            };
            let mut parts = vec![];
            let m = QuantMatrix::from_f32(&data, rows, cols).expect("matrix");
            up.upload(m, &mut parts).expect("upload");
            (Matrix { parts }, up.uploaded)
        };
        let (whole, whole_bytes) = upload(MAX_PART_BYTES);
        // Blocks of 3 rows: 3, 3, 3 and 1.
        let (blocks, block_bytes) = upload(3 * cols * 4);
        assert_eq!((whole.parts.len(), blocks.parts.len()), (1, 4));
        assert_eq!((whole_bytes, whole.bytes()), (block_bytes, blocks.bytes()));
        assert_eq!(whole_bytes.f32, rows * cols * 4);
        let x: Vec<f32> = (0..2 * cols).map(|i| (i as f32 * 0.11).cos()).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [2, cols]), &device);
        let a = apply(x.clone(), &whole).into_data().try_to_vec::<f32>().expect("f32");
        let b = apply(x, &blocks).into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(a.len(), 2 * rows);
        assert_eq!(a, b);
    }
}

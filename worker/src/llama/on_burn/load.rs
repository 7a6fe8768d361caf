//! Moving a model's tensors onto a burn device, one tensor at a time, and counting what went
//! there: matrices (the embedding, projections, feed-forward and LM head) in the model's matrix
//! precision, converted on the host before the upload, so an f16 model never has an f32 copy on
//! the device; norms and biases in f32.

use burn::prelude::*;
use burn::tensor::DType;

use super::super::tensors::MatrixName;
use super::super::{required, Weights};
use crate::gguf::GgufError;

/// Largest tensor a matrix is uploaded as: a larger matrix is stored as several blocks of whole
/// rows (Vulkan drivers bind a limited range of a storage buffer: lavapipe 128 MiB, so Gemma 3's
/// 335 MB f16 embedding would not load as one tensor).
pub(super) const MAX_PART_BYTES: usize = 64 << 20;

/// A weight matrix `[out][in]` on the device, as blocks of whole rows `[rows_i, in]` (one block
/// unless it is larger than `MAX_PART_BYTES`), applied by `apply`. (Where quantized device
/// matrices replace it, only this type, `Uploader::upload_rows` and `apply` change.)
#[derive(Clone)]
pub(super) struct Matrix {
    parts: Vec<Tensor<2>>,
}

impl Matrix {
    /// Bytes on the device.
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.shape().num_elements() * p.dtype().size()).sum()
    }

    /// The same matrix in `dtype`.
    pub fn cast(self, dtype: DType) -> Self {
        Self {
            parts: self.parts.into_iter().map(|p| p.cast(dtype)).collect(),
        }
    }

    /// Rows `ids` (each below the row count), `[ids.len(), in]`, in the matrix's precision.
    pub fn select_rows(&self, ids: &[usize], device: &Device) -> Tensor<2> {
        let index = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        if let [only] = &self.parts[..] {
            return only.clone().select(0, index(ids.iter().map(|&i| i as i64).collect()));
        }
        // Gathered block by block, then put back in the order asked.
        let (mut pieces, mut order) = (Vec::new(), Vec::with_capacity(ids.len()));
        let mut first = 0;
        for part in &self.parts {
            let rows = part.dims()[0];
            let (local, positions): (Vec<i64>, Vec<usize>) = ids
                .iter()
                .enumerate()
                .filter(|(_, &id)| (first..first + rows).contains(&id))
                .map(|(at, &id)| ((id - first) as i64, at))
                .unzip();
            if !local.is_empty() {
                pieces.push(part.clone().select(0, index(local)));
                order.extend(positions);
            }
            first += rows;
        }
        let mut inverse = vec![0i64; order.len()];
        for (gathered, &at) in order.iter().enumerate() {
            inverse[at] = gathered as i64;
        }
        Tensor::cat(pieces, 0).select(0, index(inverse))
    }
}

/// Bytes uploaded to a device while loading a model, by element type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadedBytes {
    pub f32: usize,
    pub f16: usize,
    /// Other types (bf16, integers).
    pub other: usize,
}

impl UploadedBytes {
    /// All bytes.
    pub fn total(&self) -> usize {
        self.f32 + self.f16 + self.other
    }

    fn count(&mut self, dtype: DType, bytes: usize) {
        match dtype {
            DType::F32 => self.f32 += bytes,
            DType::F16 => self.f16 += bytes,
            _ => self.other += bytes,
        }
    }
}

/// Uploads tensors to one device in one matrix precision, counting the bytes.
pub(super) struct Uploader<'a> {
    pub device: &'a Device,
    pub matrices: DType,
    pub uploaded: UploadedBytes,
    /// Largest block of a matrix (`MAX_PART_BYTES`; smaller in tests).
    pub max_part_bytes: usize,
}

impl Uploader<'_> {
    /// `data` (`shape`) as a tensor of `dtype`, converted on the host.
    fn upload<const D: usize>(&mut self, data: Vec<f32>, shape: [usize; D], dtype: DType) -> Tensor<D> {
        let data = TensorData::new(data, shape);
        let data = if dtype == DType::F32 { data } else { data.convert_dtype(dtype) };
        self.uploaded.count(dtype, data.as_bytes().len());
        Tensor::from_data(data, (self.device, dtype))
    }

    /// A vector in f32.
    pub fn vector(&mut self, data: Vec<f32>) -> Tensor<1> {
        let n = data.len();
        self.upload(data, [n], DType::F32)
    }

    /// `rows × cols` values (row-major) as a matrix in the matrix precision, in blocks of at
    /// most `MAX_PART_BYTES`.
    fn upload_rows(&mut self, data: Vec<f32>, rows: usize, cols: usize) -> Matrix {
        let block = (self.max_part_bytes / (cols * self.matrices.size()).max(1)).max(1);
        if rows <= block {
            return Matrix {
                parts: vec![self.upload(data, [rows, cols], self.matrices)],
            };
        }
        let parts = data
            .chunks(block * cols)
            .map(|chunk| self.upload(chunk.to_vec(), [chunk.len() / cols, cols], self.matrices))
            .collect();
        Matrix { parts }
    }

    /// A matrix stored `[out][in]` (`m.rows`, `m.cols`).
    pub fn matrix(&mut self, w: &dyn Weights, m: &MatrixName) -> Result<Matrix, GgufError> {
        let (data, shape) = required(w, &m.name)?;
        m.check_shape(&shape)?;
        Ok(self.upload_rows(data, m.rows, m.cols))
    }

    /// Several matrices stacked (`[Σ out][in]`: their outputs side by side).
    pub fn matrices(&mut self, w: &dyn Weights, parts: &[MatrixName]) -> Result<Matrix, GgufError> {
        let cols = parts.first().map_or(0, |m| m.cols);
        let mut rows = 0;
        let mut data = Vec::new();
        for m in parts {
            let (part, shape) = required(w, &m.name)?;
            m.check_shape(&shape)?;
            if m.cols != cols {
                return Err(GgufError::Invalid(format!("{} has {} columns, expected {cols}", m.name, m.cols)));
            }
            data.extend(part);
            rows += m.rows;
        }
        Ok(self.upload_rows(data, rows, cols))
    }
}

/// `x · wᵀ` (`x`: `[rows, in]`, the result `[rows, out]`) in the weight's precision, result in
/// f32.
pub(super) fn apply(x: Tensor<2>, w: &Matrix) -> Tensor<2> {
    let dtype = w.parts.first().map_or(DType::F32, |p| p.dtype());
    let x = if dtype == DType::F32 { x } else { x.cast(dtype) };
    let mut outs: Vec<Tensor<2>> = w.parts.iter().map(|p| x.clone().matmul(p.clone().transpose())).collect();
    let out = if outs.len() == 1 {
        outs.pop().unwrap_or(x)
    } else {
        Tensor::cat(outs, 1)
    };
    if dtype == DType::F32 {
        out
    } else {
        out.cast(DType::F32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matrix_in_blocks_selects_and_multiplies_like_one_tensor() {
        let device = Device::flex();
        let (rows, cols) = (10usize, 4usize);
        let data: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let upload = |max_part_bytes: usize| {
            let mut up = Uploader {
                device: &device,
                matrices: DType::F32,
                uploaded: UploadedBytes::default(),
                max_part_bytes,
            };
            (up.upload_rows(data.clone(), rows, cols), up.uploaded)
        };
        let (whole, whole_bytes) = upload(MAX_PART_BYTES);
        // Blocks of 3 rows: 3, 3, 3 and 1.
        let (blocks, block_bytes) = upload(3 * cols * 4);
        assert_eq!((whole.parts.len(), blocks.parts.len()), (1, 4));
        assert_eq!((whole_bytes, whole.bytes()), (block_bytes, blocks.bytes()));
        let ids = [9usize, 0, 4, 4, 7, 2];
        let a = whole.select_rows(&ids, &device).into_data().try_to_vec::<f32>().expect("f32");
        let b = blocks.select_rows(&ids, &device).into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(a, b);
        assert_eq!(&a[..cols], &data[9 * cols..10 * cols]);
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![0.5f32, -1.0, 2.0, 0.25, 1.0, 1.0, 0.0, -3.0], [2, cols]),
            &device,
        );
        let a = apply(x.clone(), &whole).into_data().try_to_vec::<f32>().expect("f32");
        let b = apply(x, &blocks).into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(a.len(), 2 * rows);
        assert_eq!(a, b);
    }
}

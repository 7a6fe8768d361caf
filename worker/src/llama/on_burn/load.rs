//! Moving a model's tensors onto a burn device, one tensor at a time, and counting what went
//! there: matrices (the embedding, projections, feed-forward and LM head) in the model's matrix
//! precision, converted on the host before the upload, so an f16 model never has an f32 copy on
//! the device; norms and biases in f32.

use burn::prelude::*;
use burn::tensor::DType;

use super::super::tensors::MatrixName;
use super::super::{required, Weights};
use crate::gguf::GgufError;

/// A weight matrix on the device, `[in, out]`, applied by `apply`. (Where quantized device
/// matrices replace it, only this alias, `upload_matrix` and `apply` change.)
pub(super) type Matrix = Tensor<2>;

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

    /// A matrix stored `[out][in]` (`m.rows`, `m.cols`), as it is (`[out, in]`), in the matrix
    /// precision.
    pub fn rows(&mut self, w: &dyn Weights, m: &MatrixName) -> Result<Tensor<2>, GgufError> {
        let (data, shape) = required(w, &m.name)?;
        m.check_shape(&shape)?;
        Ok(self.upload(data, [m.rows, m.cols], self.matrices))
    }

    /// A matrix stored `[out][in]` as `[in, out]`, so `apply(x, w)` applies it.
    pub fn matrix(&mut self, w: &dyn Weights, m: &MatrixName) -> Result<Matrix, GgufError> {
        Ok(self.rows(w, m)?.transpose())
    }

    /// Several matrices side by side (`[in, Σ out]`): stacked on the host, uploaded once.
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
        Ok(self.upload(data, [rows, cols], self.matrices).transpose())
    }
}

/// `x · w` in the weight's precision, result in f32.
pub(super) fn apply(x: Tensor<2>, w: &Matrix) -> Tensor<2> {
    let dtype = w.dtype();
    if dtype == DType::F32 {
        x.matmul(w.clone())
    } else {
        x.cast(dtype).matmul(w.clone()).cast(DType::F32)
    }
}

/// Bytes of a matrix on the device.
pub(super) fn matrix_bytes(w: &Matrix) -> usize {
    w.shape().num_elements() * w.dtype().size()
}

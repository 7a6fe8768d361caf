//! Weight matrices on a burn device in their file encoding, multiplied by our own cubecl kernels
//! that decode the GGUF blocks as they read them (`blocks`, `kernels`): a Q4_K matrix occupies
//! 0.56 bytes per weight on the device, not the 2 of an f16 copy or the 4 of an f32 one.
//!
//! On a cubecl device (burn's `wgpu` and `cuda` backends) a matrix in Q4_0, Q4_1, Q5_0, Q5_1,
//! Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, F16 or BF16 is uploaded byte for byte (padded to whole
//! u32 words); f32 matrices are rounded to f16 on the host and use the f16 kernel. Products:
//! - up to `kernels::MAX_TOKENS` tokens (decode, small batches): one launch of `matmul_few`,
//!   which reads every weight once and multiplies it with all the tokens;
//! - up to `FEW_TOKENS_LIMIT` tokens: `matmul_few` per group of `MAX_TOKENS`;
//! - more (prefill): the matrix is decoded to f16 on the device (`dequantize`; f32 where the
//!   device has no f16), multiplied with burn's matmul, and the decoded copy dropped: one
//!   matrix's f16 copy exists at a time, only during the call.
//!
//! Activations stay f32 in `matmul_few` and accumulation is f32, so its result is the
//! dequantized product up to the order of the additions; the prefill path rounds activations
//! and weights' products to f16 inputs (f32 accumulation inside burn's matmul).
//!
//! Attention has its own fused kernel (`attention::fused_attention`, kernel in `flash`).
//!
//! Elsewhere (burn's flex CPU backend, encodings without a kernel such as Q8_K, rows that are
//! not whole chunks of 32) the matrix is dequantized on the host, one matrix at a time, to f32
//! on flex and f16 on a GPU, and multiplied with burn's matmul.

pub mod attention;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod blocks;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod flash;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod kernels;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod launch;

use burn::prelude::*;
use burn::tensor::DType;

use crate::gguf::{dequantize_into, GgufError};
use crate::matvec::QuantMatrix;

/// The most tokens multiplied with a matrix in its encoding before the product goes through a
/// decoded f16 copy instead (a launch of `matmul_few` per `kernels::MAX_TOKENS` tokens reads the
/// matrix once each; decoding it writes and reads 2 bytes per weight).
pub const FEW_TOKENS_LIMIT: usize = 32;

/// A weight matrix `[rows][cols]` on a burn device, in its file encoding. Clones share the
/// device buffer.
#[derive(Clone)]
pub struct DeviceMatrix {
    rows: usize,
    cols: usize,
    storage: Storage,
}

// One per weight matrix, a few hundred per model: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Storage {
    /// Decoded on the host: `[rows, cols]` in f16 (GPUs) or f32 (flex).
    Dense(Tensor<2>),
    /// The file's blocks in a device buffer.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    Encoded(launch::EncodedMatrix),
}

impl std::fmt::Debug for DeviceMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &self.storage {
            Storage::Dense(t) => format!("dense {:?}", t.dtype()),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            Storage::Encoded(e) => format!("{:?} blocks", e.kind()),
        };
        write!(f, "DeviceMatrix({}x{}, {how})", self.rows, self.cols)
    }
}

impl DeviceMatrix {
    /// Uploads the raw file bytes of a matrix (`kind`, `rows` × `cols`, rows whole blocks, as
    /// `Weights::matrix` / `QuantMatrix` hold them before tiling). Encodings without a kernel, and
    /// devices without cubecl (burn flex), are dequantized to f16 (or f32 on flex) on the host,
    /// one matrix at a time.
    pub fn upload(m: &QuantMatrix, device: &Device) -> Result<Self, GgufError> {
        Self::upload_with(m, device, dense_dtype(device))
    }

    /// `upload`, with matrices that are decoded on the host in `dense` (f32 or f16).
    pub fn upload_with(m: &QuantMatrix, device: &Device, dense: DType) -> Result<Self, GgufError> {
        let bytes = m
            .encoded_rows()
            .ok_or_else(|| GgufError::Invalid(format!("{m:?} is tiled: upload the matrix before `prepared`")))?;
        let (rows, cols) = (m.rows(), m.cols());
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if let Some(encoded) = launch::EncodedMatrix::upload(m.kind(), rows, cols, bytes, device) {
            return Ok(Self {
                rows,
                cols,
                storage: Storage::Encoded(encoded),
            });
        }
        let mut values = Vec::with_capacity(rows * cols);
        dequantize_into(m.kind(), bytes, &mut values);
        if values.len() != rows * cols {
            return Err(GgufError::Invalid(format!("{m:?} decodes to {} values", values.len())));
        }
        let dtype = dense;
        let data = TensorData::new(values, [rows, cols]);
        let data = if dtype == DType::F32 { data } else { data.convert_dtype(dtype) };
        Ok(Self {
            rows,
            cols,
            storage: Storage::Dense(Tensor::<2>::from_data(data, (device, dtype))),
        })
    }

    /// `x · selfᵀ`: x is `[tokens, cols]` f32 → `[tokens, rows]` f32 (activations may be rounded to
    /// f16 inside, accumulation f32).
    pub fn matmul(&self, x: Tensor<2>) -> Tensor<2> {
        match &self.storage {
            Storage::Dense(w) => dense_matmul(x, w),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            Storage::Encoded(e) => e.matmul(x, self.rows, self.cols),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes this matrix occupies on the device.
    pub fn device_bytes(&self) -> usize {
        match &self.storage {
            Storage::Dense(t) => t.shape().num_elements() * t.dtype().size(),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            Storage::Encoded(e) => e.device_bytes(),
        }
    }

    /// The element type of a matrix decoded on the host (`None` when it kept its encoding).
    pub fn dense_dtype(&self) -> Option<DType> {
        match &self.storage {
            Storage::Dense(t) => Some(t.dtype()),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            Storage::Encoded(_) => None,
        }
    }

    /// Whether the matrix kept its file encoding on the device (else it was decoded on the host).
    pub fn is_encoded(&self) -> bool {
        match &self.storage {
            Storage::Dense(_) => false,
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            Storage::Encoded(_) => true,
        }
    }
}

/// The precision of a matrix decoded on the host: f16 where burn's backend has a GPU, f32 on its
/// CPU backend.
fn dense_dtype(device: &Device) -> DType {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if launch::is_cube(device) && device.supports_dtype(DType::F16) {
        return DType::F16;
    }
    let _ = device;
    DType::F32
}

/// `x · wᵀ` with `w` `[rows, cols]` in its own precision, result f32.
fn dense_matmul(x: Tensor<2>, w: &Tensor<2>) -> Tensor<2> {
    let x = x.to_device(&w.device());
    let dtype = w.dtype();
    if dtype == DType::F32 {
        x.matmul(w.clone().transpose())
    } else {
        x.cast(dtype).matmul(w.clone().transpose()).cast(DType::F32)
    }
}

#[cfg(test)]
mod tests;

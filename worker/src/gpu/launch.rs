//! From burn's tensors to our kernels and back: a burn `Device` whose dispatch variant is `Cube`
//! (the wgpu and cuda backends) names a cubecl device and so a cubecl `Client`; a float tensor
//! on it is a `CubeTensor` (`try_into_primitive::<Cube>`; burn is built without fusion, so the
//! primitive is the plain tensor) whose buffer handle a kernel takes as an argument; a buffer the
//! kernel wrote becomes a burn tensor again through `CubeTensor::new_contiguous` and
//! `Tensor::from_primitive::<Cube>`.

use burn::backend::{Cube, DispatchDevice};
use burn::prelude::*;
use burn::tensor::{DType, Shape};
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeDevice;
use cubecl::client::Client;
use cubecl::prelude::{BufferArg, CubeCount, CubeDim};
use cubecl::server::Handle;

use super::blocks::{chunk_geometry, CHUNK};
use super::kernels::{self, DEQUANTIZE_UNITS, LANES, MAX_TOKENS, ROWS_PER_CUBE};
use super::FEW_TOKENS_LIMIT;
use crate::gguf::{dequantize_into, TensorType};
use crate::quants::f32_to_f16;

/// The largest count of cubes along one grid dimension every backend accepts.
const MAX_GRID: usize = 65_535;

/// The cubecl device behind a burn device (`None` on flex).
pub(super) fn cube_device(device: &Device) -> Option<CubeDevice> {
    match device.as_dispatch() {
        DispatchDevice::Cube(d) => Some(d.clone()),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Whether the burn device runs cubecl kernels.
pub(super) fn is_cube(device: &Device) -> bool {
    cube_device(device).is_some()
}

/// `cubes` cubes as a grid: one row of up to `MAX_GRID`, more rows when needed (kernels find
/// their index with `cube_index` and skip what lies past the work).
fn grid(cubes: usize) -> CubeCount {
    let cubes = cubes.max(1);
    let x = cubes.min(MAX_GRID);
    CubeCount::Static(x as u32, cubes.div_ceil(x) as u32, 1)
}

/// A matrix's blocks in a device buffer.
#[derive(Clone)]
pub(super) struct EncodedMatrix {
    kind: TensorType,
    client: Client,
    cube: CubeDevice,
    device: Device,
    weights: Handle,
    bytes: usize,
}

impl EncodedMatrix {
    /// The matrix's bytes in a buffer of whole words, when `device` is a cubecl device and a
    /// kernel reads `kind` (f32 is rounded to f16 first); `None` otherwise.
    pub fn upload(kind: TensorType, rows: usize, cols: usize, bytes: &[u8], device: &Device) -> Option<Self> {
        let cube = cube_device(device)?;
        if !cols.is_multiple_of(CHUNK) || rows == 0 || rows > u32::MAX as usize || cols > u32::MAX as usize {
            return None;
        }
        let (kind, mut words) = match kind {
            TensorType::F32 => {
                let mut values = Vec::with_capacity(rows * cols);
                dequantize_into(kind, bytes, &mut values);
                (TensorType::F16, values.iter().flat_map(|v| f32_to_f16(*v).to_le_bytes()).collect())
            }
            _ => {
                chunk_geometry(kind)?;
                (kind, bytes.to_vec())
            }
        };
        words.resize(words.len().next_multiple_of(4), 0);
        let client = cube.client();
        let weights = client.create_from_slice(&words);
        Some(Self {
            kind,
            client,
            cube,
            device: device.clone(),
            weights,
            bytes: words.len(),
        })
    }

    pub fn kind(&self) -> TensorType {
        self.kind
    }

    pub fn device_bytes(&self) -> usize {
        self.bytes
    }

    /// `x · selfᵀ` (see `DeviceMatrix::matmul`).
    pub fn matmul(&self, x: Tensor<2>, rows: usize, cols: usize) -> Tensor<2> {
        let [tokens, width] = x.dims();
        assert_eq!(width, cols, "matmul of a {rows}x{cols} matrix with {tokens}x{width} activations");
        let x = x.to_device(&self.device);
        if tokens == 0 {
            return Tensor::zeros([0, rows], &self.device);
        }
        if tokens > FEW_TOKENS_LIMIT {
            return self.dequantized_matmul(x, rows, cols);
        }
        if tokens <= MAX_TOKENS {
            return self.matmul_few(x, rows, cols);
        }
        let parts = (0..tokens)
            .step_by(MAX_TOKENS)
            .map(|first| self.matmul_few(x.clone().narrow(0, first, MAX_TOKENS.min(tokens - first)), rows, cols))
            .collect();
        Tensor::cat(parts, 0)
    }

    /// One launch of `matmul_few` for `x`'s tokens (at most `MAX_TOKENS`).
    fn matmul_few(&self, x: Tensor<2>, rows: usize, cols: usize) -> Tensor<2> {
        let tokens = x.dims()[0];
        let x = self.primitive(x.cast(DType::F32));
        let out = self.client.empty(tokens * rows * size_of::<f32>());
        // SAFETY: the lengths are those of the buffers: the matrix's words, `x`'s `tokens × cols`
        // contiguous f32 values (in vectors of 4: `cols` is whole chunks of 32) and the
        // `tokens × rows` f32 values just reserved.
        unsafe {
            kernels::matmul_few::launch(
                &self.client,
                grid(rows.div_ceil(ROWS_PER_CUBE)),
                CubeDim::new_2d(LANES as u32, ROWS_PER_CUBE as u32),
                BufferArg::from_raw_parts(self.weights.clone(), self.bytes / 4),
                BufferArg::from_raw_parts(x.handle.clone(), tokens * cols / 4),
                BufferArg::from_raw_parts(out.clone(), tokens * rows),
                rows as u32,
                cols as u32,
                self.kind,
                tokens,
            );
        }
        self.tensor(out, [tokens, rows], DType::F32)
    }

    /// The matrix decoded to f16 (f32 where the device has no f16) and multiplied by burn.
    fn dequantized_matmul(&self, x: Tensor<2>, rows: usize, cols: usize) -> Tensor<2> {
        let half = self.device.supports_dtype(DType::F16);
        let dtype = if half { DType::F16 } else { DType::F32 };
        let out = self.client.empty(rows * cols * dtype.size());
        let units = rows * (cols / CHUNK);
        let count = grid(units.div_ceil(DEQUANTIZE_UNITS));
        let dim = CubeDim::new_1d(DEQUANTIZE_UNITS as u32);
        // SAFETY: the lengths are those of the buffers: the matrix's words and `rows × cols`
        // values of the output's type.
        unsafe {
            let weights = BufferArg::from_raw_parts(self.weights.clone(), self.bytes / 4);
            let decoded = BufferArg::from_raw_parts(out.clone(), rows * cols);
            if half {
                kernels::dequantize::launch::<half::f16>(&self.client, count, dim, weights, decoded, rows as u32, cols as u32, self.kind);
            } else {
                kernels::dequantize::launch::<f32>(&self.client, count, dim, weights, decoded, rows as u32, cols as u32, self.kind);
            }
        }
        let w = self.tensor(out, [rows, cols], dtype);
        x.cast(dtype).matmul(w.transpose()).cast(DType::F32)
    }

    /// The contiguous cubecl tensor of `x` (on this matrix's device).
    fn primitive(&self, x: Tensor<2>) -> CubeTensor {
        match x.try_into_primitive::<Cube>() {
            Ok(t) => burn_cubecl::kernel::into_contiguous(t),
            // `x` was moved to this matrix's device, a cubecl one.
            Err(e) => unreachable!("activations on a cubecl device are cubecl tensors: {e:?}"),
        }
    }

    /// A burn tensor over a buffer a kernel filled.
    fn tensor(&self, handle: Handle, shape: [usize; 2], dtype: DType) -> Tensor<2> {
        let t = CubeTensor::new_contiguous(self.client.clone(), self.cube.clone(), Shape::new(shape), handle, dtype);
        Tensor::from_primitive::<Cube>(t)
    }
}

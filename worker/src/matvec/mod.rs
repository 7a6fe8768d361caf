//! Matrices kept in their file encoding (every GGUF encoding of `TensorType`) and multiplied
//! with f32 vectors block by block, without ever dequantizing the whole matrix.
//!
//! This is the decode step's hot loop on the CPU: one new token multiplies every weight once, so
//! the speed is set by how many bytes of weights are read per token, and by how few instructions
//! it takes to use them. A Q4_K matrix reads 0.58 bytes per weight (tiled), against 4 for the
//! dequantized f32 copy.
//!
//! Two ways to multiply, chosen per matrix by `prepared`:
//! - **Rows** (`Layout::Rows`, the file's own layout): each block is widened to f32 in registers
//!   and multiplied with the f32 activations, so the result is the dequantized product up to the
//!   order of the additions. Kernels: AVX-512F, AVX2+FMA, portable scalar, for f32, f16, bf16,
//!   Q4_0, Q4_1 and Q8_0; other encodings have their rows dequantized one at a time (slow: they
//!   are tiled on CPUs with AVX2). f32, f16 and bf16 matrices always go this way.
//! - **Tiles** (`Layout::Tiles`, quantized matrices on CPUs with AVX2 or AVX-512): every
//!   quantized encoding is regrouped in tiles of 16 rows, the activations are quantized to 16 bits
//!   per block of 32 and integer dot products run on 16 rows at once (8 with AVX2; see `tiles`).
//!   Several times fewer instructions per weight; the result differs from the exact product by
//!   the activations' rounding: at most `Σ|w| · max|x| / 65534` over each block of 32 columns.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::gguf::{dequantize_into, GgufError, TensorType};
use crate::weight_bytes::WeightBytes;

mod scalar;
mod tiles;
#[cfg(target_arch = "x86_64")]
mod x86;

/// The instruction sets a kernel can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    Avx2,
    /// AVX-512 F and BW.
    Avx512,
    /// AVX-512 with VNNI's fused pair multiply-add (faster tiles).
    Avx512Vnni,
}

/// How a matrix's bytes are arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// GGUF blocks, row after row.
    Rows,
    /// Tiles of 16 rows for the integer kernel (`tiles`).
    Tiles,
}

impl Isa {
    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Isa::Avx2.available() && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Isa::Avx512.available() && is_x86_feature_detected!("avx512vnni"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest one this CPU runs (looked up once).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            [Isa::Avx512Vnni, Isa::Avx512, Isa::Avx2]
                .into_iter()
                .find(|i| i.available())
                .unwrap_or(Isa::Scalar)
        })
    }
}

/// A `[rows, cols]` matrix in one of the GGUF encodings, rows stored one after another.
#[derive(Clone)]
pub struct QuantMatrix {
    kind: TensorType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    layout: Layout,
    data: WeightBytes,
}

impl std::fmt::Debug for QuantMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuantMatrix({:?}, {}x{}, {:?})", self.kind, self.rows, self.cols, self.layout)
    }
}

/// Rows regrouped into tiles at a time at load (a multiple of the tile height).
const TILE_CHUNK_ROWS: usize = 256 * tiles::TILE;

/// The work one parallel task takes at least (multiply-adds), so small products stay on one thread.
const MIN_TASK: usize = 1 << 16;

impl QuantMatrix {
    /// A matrix from its encoded bytes (`rows` rows of `cols` elements).
    pub fn new(kind: TensorType, rows: usize, cols: usize, data: impl Into<WeightBytes>) -> Result<Self, GgufError> {
        let data = data.into();
        let (per, bytes) = kind.block();
        if !cols.is_multiple_of(per) {
            return Err(GgufError::Invalid(format!(
                "a {kind:?} row of {cols} elements is not whole blocks of {per}"
            )));
        }
        let row_bytes = cols / per * bytes;
        if data.len() != rows * row_bytes {
            return Err(GgufError::Invalid(format!(
                "{} bytes for a {rows}x{cols} {kind:?} matrix",
                data.len()
            )));
        }
        Ok(Self {
            kind,
            rows,
            cols,
            row_bytes,
            layout: Layout::Rows,
            data,
        })
    }

    /// An f32 matrix from row-major values.
    pub fn from_f32(values: &[f32], rows: usize, cols: usize) -> Result<Self, GgufError> {
        Self::new(
            TensorType::F32,
            rows,
            cols,
            values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        )
    }

    pub fn kind(&self) -> TensorType {
        self.kind
    }
    pub fn layout(&self) -> Layout {
        self.layout
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Blocks of the encoding in one row.
    fn blocks_per_row(&self) -> usize {
        self.cols / self.kind.block().0
    }

    /// The same matrix with bytes of its own (a clone shares them): benchmarks stream distinct
    /// copies, as a decode step streams distinct matrices.
    pub fn deep_copy(&self) -> Self {
        Self {
            data: WeightBytes::from(self.data.to_vec()),
            ..self.clone()
        }
    }

    /// The encoded bytes, rows one after another, as the file has them (`None` once tiled).
    pub(crate) fn encoded_rows(&self) -> Option<&[u8]> {
        (self.layout == Layout::Rows).then_some(&self.data[..])
    }

    /// Rows `range` of an untiled matrix, sharing its bytes (`None` once tiled or out of range).
    pub(crate) fn row_range(&self, range: std::ops::Range<usize>) -> Option<Self> {
        if self.layout != Layout::Rows || range.end > self.rows || range.start > range.end {
            return None;
        }
        let data = self.data.slice(range.start * self.row_bytes..range.end * self.row_bytes)?;
        Some(Self {
            rows: range.len(),
            data,
            ..self.clone()
        })
    }

    /// Bytes read by one product.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The matrix in the layout of the fastest kernel this CPU has for it: tiles for quantized
    /// matrices when it has AVX2 or AVX-512, else as it is.
    pub fn prepared(self) -> Self {
        if Isa::best() != Isa::Scalar {
            self.tiled()
        } else {
            self
        }
    }

    /// The matrix in tiles (quantized matrices only; others are returned as they are).
    pub fn tiled(self) -> Self {
        if self.layout == Layout::Tiles || tiles::shape(self.kind).is_none() {
            return self;
        }
        let nb = self.blocks_per_row();
        // A chunk of whole tiles at a time, each chunk's source bytes released once regrouped:
        // the file's copy is not read again, and a large matrix (an LM head) is never resident
        // twice, so loading peaks at about the file's size.
        let mut tiled = Vec::with_capacity(self.rows.div_ceil(tiles::TILE) * tiles::TILE * self.row_bytes);
        for first in (0..self.rows).step_by(TILE_CHUNK_ROWS) {
            let rows = TILE_CHUNK_ROWS.min(self.rows - first);
            let range = first * self.row_bytes..(first + rows) * self.row_bytes;
            tiled.extend(tiles::tile(self.kind, rows, nb, &self.data[range.clone()]));
            if let Some(source) = self.data.slice(range) {
                source.release_pages();
            }
        }
        Self {
            data: tiled.into(),
            layout: Layout::Tiles,
            ..self
        }
    }

    /// The same values in f16 when the matrix is f32 (half the bytes per product); quantized
    /// matrices are already smaller and stay as they are.
    pub fn to_f16(self) -> Self {
        if self.kind != TensorType::F32 {
            return self;
        }
        let data: Vec<u8> = self
            .data
            .chunks_exact(4)
            .flat_map(|b| half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes())
            .collect();
        self.data.release_pages();
        let data = data.into();
        Self {
            kind: TensorType::F16,
            row_bytes: self.cols * 2,
            data,
            ..self
        }
    }

    /// All rows of `parts`, one matrix after another (e.g. q, k and v projections, one product for
    /// the three). Parts in different encodings are stacked as f32. Parts must be in rows.
    pub fn stack(parts: Vec<QuantMatrix>) -> Result<Self, GgufError> {
        let first = parts.first().ok_or_else(|| GgufError::Invalid("nothing to stack".into()))?;
        let (kind, cols) = (first.kind, first.cols);
        if parts.iter().any(|p| p.layout != Layout::Rows) {
            return Err(GgufError::Invalid("only matrices in rows can be stacked".into()));
        }
        if parts.iter().any(|p| p.cols != cols) {
            return Err(GgufError::Invalid("stacked matrices differ in width".into()));
        }
        let rows = parts.iter().map(|p| p.rows).sum();
        if parts.iter().all(|p| p.kind == kind) {
            let data: Vec<u8> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
            parts.iter().for_each(|p| p.data.release_pages());
            return Self::new(kind, rows, cols, data);
        }
        let mut values = Vec::with_capacity(rows * cols);
        for p in &parts {
            dequantize_into(p.kind, &p.data, &mut values);
            p.data.release_pages();
        }
        Self::from_f32(&values, rows, cols)
    }

    /// Row `r` as f32 (an embedding lookup).
    pub fn row(&self, r: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.cols);
        if r < self.rows {
            match self.layout {
                Layout::Rows => dequantize_into(self.kind, &self.data[r * self.row_bytes..(r + 1) * self.row_bytes], &mut out),
                Layout::Tiles => dequantize_into(
                    self.kind,
                    &tiles::untile_row(self.kind, self.blocks_per_row(), &self.data, r),
                    &mut out,
                ),
            }
        }
        out
    }

    /// `out = self · x`, with the fastest kernel this CPU has, rows split over rayon's threads
    /// when the product is large enough to pay for it.
    pub fn matvec(&self, x: &[f32], out: &mut [f32]) {
        self.matmul_with(Isa::best(), x, out);
    }

    /// `out[t] = self · x[t]` for several vectors side by side (`x` is `[tokens][cols]`, `out`
    /// `[tokens][rows]`): a prompt's tokens. Tiled matrices are read once for four tokens.
    pub fn matmul(&self, x: &[f32], out: &mut [f32]) {
        self.matmul_with(Isa::best(), x, out);
    }

    /// `matmul` with the given kernel (tests compare them); `isa` must be available and read this
    /// layout.
    pub fn matmul_with(&self, isa: Isa, x: &[f32], out: &mut [f32]) {
        assert!(isa.available(), "{isa:?} cannot multiply {self:?} here");
        let tokens = x.len() / self.cols.max(1);
        assert_eq!(x.len(), tokens * self.cols, "input length");
        assert_eq!(out.len(), tokens * self.rows, "output length");
        if tokens == 0 {
            return;
        }
        let inputs: Vec<Input<'_>> = x
            .chunks_exact(self.cols)
            .map(|x| match self.layout {
                // Q4 blocks add an offset times the sum of the block's activations: summed once here.
                Layout::Rows => Input::Floats(
                    x,
                    match self.kind {
                        TensorType::Q4_0 | TensorType::Q4_1 => x.chunks_exact(32).map(|c| c.iter().sum()).collect(),
                        _ => vec![],
                    },
                ),
                Layout::Tiles => Input::Quantized(tiles::QuantizedVector::new(x)),
            })
            .collect();
        // Rows a task takes together: a tile, or a group of four rows.
        let (unit, unit_bytes) = match self.layout {
            Layout::Rows => (4, 4 * self.row_bytes),
            Layout::Tiles => (tiles::TILE, tiles::shape(self.kind).map_or(0, |s| s.bytes) * self.blocks_per_row()),
        };
        let threads = rayon::current_num_threads();
        let work = self.rows * self.cols * tokens;
        if threads <= 1 || work < 2 * MIN_TASK {
            self.kernel(isa, &self.data, &inputs, out);
            return;
        }
        // A few tasks per thread, so a thread that is descheduled does not hold up the product.
        let tasks = (threads * 4).min(work / MIN_TASK).max(1);
        let units = self.rows.div_ceil(unit).div_ceil(tasks);
        let span = units * unit;
        let rows_of = |i: usize| &self.data[i * units * unit_bytes..((i + 1) * units * unit_bytes).min(self.data.len())];
        if tokens == 1 {
            out.par_chunks_mut(span)
                .enumerate()
                .for_each(|(i, o)| self.kernel(isa, rows_of(i), &inputs, o));
            return;
        }
        // Several tokens: each task's rows are strided in `out`; tasks fill their own
        // `[tokens][rows of the task]` and the results are put in place after.
        let parts: Vec<Vec<f32>> = (0..self.rows.div_ceil(span))
            .into_par_iter()
            .map(|i| {
                let n = span.min(self.rows - i * span);
                let mut part = vec![0f32; tokens * n];
                self.kernel(isa, rows_of(i), &inputs, &mut part);
                part
            })
            .collect();
        for (i, part) in parts.iter().enumerate() {
            let n = part.len() / tokens;
            for (t, values) in part.chunks_exact(n).enumerate() {
                out[t * self.rows + i * span..][..n].copy_from_slice(values);
            }
        }
    }

    /// Runs one kernel over whole rows (`data`) for every input; `out` is `[inputs][rows]`.
    fn kernel(&self, isa: Isa, data: &[u8], inputs: &[Input<'_>], out: &mut [f32]) {
        let nb = self.blocks_per_row();
        let rows = out.len() / inputs.len();
        if self.layout == Layout::Tiles {
            let xs: Vec<&tiles::QuantizedVector> = inputs
                .iter()
                .filter_map(|i| match i {
                    Input::Quantized(q) => Some(q),
                    Input::Floats(..) => None,
                })
                .collect();
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `matmul_with` checked the CPU; `data` holds the tiles of `out`'s rows.
                Isa::Avx512 | Isa::Avx512Vnni => unsafe { tiles::avx512(isa == Isa::Avx512Vnni, self.kind, nb, data, &xs, out) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx2 => unsafe { tiles::avx2(self.kind, nb, data, &xs, out) },
                _ => tiles::scalar(self.kind, nb, data, &xs, out),
            }
            return;
        }
        let m = Rows {
            kind: self.kind,
            data,
            row_bytes: self.row_bytes,
            cols: self.cols,
        };
        for (input, out) in inputs.iter().zip(out.chunks_exact_mut(rows)) {
            let Input::Floats(x, sums) = input else { continue };
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `matmul_with` checked that the CPU has the instructions; `Rows` holds
                // whole rows of this encoding, `x` has `cols` values and `sums` one per 32.
                Isa::Avx512 | Isa::Avx512Vnni => unsafe { x86::avx512(&m, x, sums, out) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above.
                Isa::Avx2 => unsafe { x86::avx2(&m, x, sums, out) },
                _ => scalar::rows(&m, x, sums, out),
            }
        }
    }
}

/// The activations as a kernel takes them.
enum Input<'a> {
    /// f32 values and, for Q4 encodings, their sums per block of 32.
    Floats(&'a [f32], Vec<f32>),
    /// Quantized to 8 bits per block (tiled matrices).
    Quantized(tiles::QuantizedVector),
}

/// Whole encoded rows, the input of a kernel.
struct Rows<'a> {
    kind: TensorType,
    data: &'a [u8],
    row_bytes: usize,
    cols: usize,
}

/// One attention head over `n` cached positions: `out = softmax(scale · K·q) · V`, where key `j`
/// is `keys[j·stride..][..q.len()]` and value `j` is `values[j·stride..][..q.len()]` (the heads of
/// a position lie side by side). `scores` is scratch space of at least `n` values.
#[allow(clippy::too_many_arguments)]
pub fn attend(q: &[f32], keys: &[f32], values: &[f32], stride: usize, n: usize, scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let hd = q.len();
    assert!(n == 0 || (keys.len() >= (n - 1) * stride + hd && values.len() >= (n - 1) * stride + hd));
    assert!(scores.len() >= n && out.len() == hd);
    match Isa::best() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (`best` checked); the bounds were checked above.
        Isa::Avx2 | Isa::Avx512 | Isa::Avx512Vnni => unsafe { x86::attend(q, keys, values, stride, n, scale, scores, out) },
        _ => {
            for (j, s) in scores[..n].iter_mut().enumerate() {
                *s = q.iter().zip(&keys[j * stride..][..hd]).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            softmax(&mut scores[..n]);
            out.fill(0.0);
            for (j, s) in scores[..n].iter().enumerate() {
                out.iter_mut().zip(&values[j * stride..][..hd]).for_each(|(o, v)| *o += s * v);
            }
        }
    }
}

/// `v = exp(v - max) / Σ exp(v - max)`, in place.
pub fn softmax(v: &mut [f32]) {
    let max = v.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b));
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

#[cfg(test)]
mod tests;

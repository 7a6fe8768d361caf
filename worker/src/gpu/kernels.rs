//! The two kernels over a matrix in its file encoding (`blocks` decodes it):
//!
//! - `matmul_few`: `out[t][r] = Σ_c w[r][c] · x[t][c]` for up to `MAX_TOKENS` tokens (decode, and
//!   small batches). A cube is `ROWS_PER_CUBE` rows × 32 units: the 32 units of a row take its
//!   32-element chunks in turn (unit `l` chunks `l, l + 32, …`, so neighbours read neighbouring
//!   bytes), decode each chunk once into registers and multiply it with every token's
//!   activations, accumulating in f32. The 32 partial sums of a row are added through shared
//!   memory. Every weight is read once per launch, whatever the number of tokens.
//! - `dequantize`: the matrix decoded to `[rows][cols]` floats (f16 or f32), one chunk per unit,
//!   for long prompts: the caller multiplies that with burn's tiled matmul.

use cubecl::prelude::*;

use super::blocks::{chunk_geometry, decode_chunk, CHUNK};
use crate::gguf::TensorType;

/// The most tokens `matmul_few` takes in one launch.
pub const MAX_TOKENS: usize = 8;
/// Units per row in `matmul_few` (and chunks a unit skips between two of its own).
pub const LANES: usize = 32;
/// Rows of one cube of `matmul_few`.
pub const ROWS_PER_CUBE: usize = 8;
/// Units of one cube of `dequantize`.
pub const DEQUANTIZE_UNITS: usize = 256;

/// `(chunks per block, bytes per block)` for the kernels (only called for encodings with one).
fn geometry(kind: TensorType) -> (usize, usize) {
    chunk_geometry(kind).unwrap_or((1, 0))
}

/// This cube's index among all cubes (the grid may be two-dimensional when there are many).
#[cube]
fn cube_index() -> usize {
    (CUBE_POS_Y as usize) * (CUBE_COUNT_X as usize) + CUBE_POS_X as usize
}

/// `out` is `[tokens][rows]` f32, `x` `[tokens][cols]` f32 in vectors of 4, `weights` the
/// matrix's bytes as words.
#[cube(launch)]
pub fn matmul_few(
    weights: &[u32],
    x: &[Vector<f32, Const<4>>],
    out: &mut [f32],
    rows: u32,
    cols: u32,
    #[comptime] kind: TensorType,
    #[comptime] tokens: usize,
) {
    let (chunks_per_block, block_bytes) = comptime!(geometry(kind));
    let lane = UNIT_POS_X as usize;
    let local_row = UNIT_POS_Y as usize;
    let row = cube_index() * ROWS_PER_CUBE + local_row;
    let rows = rows as usize;
    let cols = cols as usize;
    let mut acc = Array::<f32>::new(tokens);
    #[unroll]
    for t in 0..tokens {
        acc[t] = 0.0;
    }
    if row < rows {
        let chunks = cols / CHUNK;
        let row_at = row * (chunks / chunks_per_block) * block_bytes;
        let mut w = Array::<f32>::new(CHUNK);
        let mut c = lane;
        while c < chunks {
            let block = row_at + (c / chunks_per_block) * block_bytes;
            decode_chunk(weights, block, c % chunks_per_block, &mut w, kind);
            #[unroll]
            for t in 0..tokens {
                // Activations four at a time (a chunk starts at a multiple of 32 values).
                let at = (t * cols + c * CHUNK) / 4;
                let mut sum = 0.0f32;
                #[unroll]
                for g in 0..CHUNK / 4 {
                    let v = x[at + g];
                    sum += w[4 * g] * v.extract(0usize)
                        + w[4 * g + 1] * v.extract(1usize)
                        + w[4 * g + 2] * v.extract(2usize)
                        + w[4 * g + 3] * v.extract(3usize);
                }
                acc[t] += sum;
            }
            c += LANES;
        }
    }
    let mut partial = Shared::<[f32]>::new_slice(ROWS_PER_CUBE * LANES * tokens);
    let mine = (local_row * LANES + lane) * tokens;
    #[unroll]
    for t in 0..tokens {
        partial[mine + t] = acc[t];
    }
    sync_cube();
    if lane < tokens && row < rows {
        let mut sum = 0.0f32;
        for l in 0..LANES {
            sum += partial[(local_row * LANES + l) * tokens + lane];
        }
        out[lane * rows + row] = sum;
    }
}

/// `out` is `[rows][cols]` of `F`: the matrix decoded.
#[cube(launch)]
pub fn dequantize<F: Float>(weights: &[u32], out: &mut [F], rows: u32, cols: u32, #[comptime] kind: TensorType) {
    let (chunks_per_block, block_bytes) = comptime!(geometry(kind));
    let chunks = cols as usize / CHUNK;
    let id = cube_index() * DEQUANTIZE_UNITS + UNIT_POS as usize;
    if id < rows as usize * chunks {
        let row = id / chunks;
        let c = id % chunks;
        let block = row * (chunks / chunks_per_block) * block_bytes + (c / chunks_per_block) * block_bytes;
        let mut w = Array::<f32>::new(CHUNK);
        decode_chunk(weights, block, c % chunks_per_block, &mut w, kind);
        #[unroll]
        for i in 0..CHUNK {
            out[id * CHUNK + i] = F::cast_from(w[i]);
        }
    }
}

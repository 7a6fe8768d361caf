//! The fused attention kernel (flash-style): `softmax(q·kᵀ·scale + mask)·v` for a block of query
//! rows against a key/value head, with the scores of one tile of keys at a time in shared memory
//! and a running maximum and sum per row (online softmax, f32), so no score matrix is ever
//! written to global memory.
//!
//! A cube is `rows` query rows × `LANES` units, for one key/value head of one batch item. Its rows
//! are the `group` query heads that share the key/value head times the queries, query-major (row
//! `r` is query `r / group` of head `kv_head · group + r % group`): grouped-query attention reads
//! each key and value once per cube, and a decode step (one query) still fills `group` rows.
//! Per tile of `tile` keys:
//! 1. the cube copies the keys (as f32) into shared memory; the row's query, scaled, is there too;
//!    unit `lane` of a row computes the dot product of key `lane % tile` over slice
//!    `lane / tile` of the head (`32 / tile` slices: every lane works when a tile has fewer than
//!    32 keys) and writes it out;
//! 2. every unit of the row adds the slices of the row's scores, masks them, and finds the new
//!    maximum and the factor `exp(m_old − m_new)` the earlier sums are rescaled by; unit
//!    `lane < tile` writes `exp(s − m_new)` for key `lane`;
//! 3. the cube copies the values into the same shared buffer; unit `lane` of a row owns output
//!    vectors `lane, lane + 32, …` (four elements each) and adds `Σ_j p_j · v_j` to them.
//!
//! Everything is read, staged and written four elements at a time (`Vector<_, 4>`).
//!
//! Masks: keys `≥ keys` do not exist; with `causal`, query `i` sees keys `≤ past + i`; with a
//! window `w > 0` also only keys `> past + i − w`. The cube visits only the tiles between its
//! first row's first visible key and its last row's last.

use cubecl::prelude::*;

/// Units per query row (and the most keys per tile).
pub const LANES: usize = 32;
/// The score of a hidden key (finite, so that `exp(MASKED − MASKED)` is 1, not NaN).
const MASKED: f32 = -3.0e38;
/// Scores at or below this are hidden keys.
const HIDDEN: f32 = -1.0e38;

/// Element strides of an operand laid out `[batch][token][head][element]` (the element stride is
/// one).
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub struct Strides {
    pub batch: u32,
    pub token: u32,
    pub head: u32,
}

/// Sizes and mask of one launch.
#[derive(CubeType, CubeLaunch, Clone, Copy)]
pub struct Problem {
    /// Queries per batch item.
    pub queries: u32,
    /// Keys that exist (the valid length of the cache).
    pub keys: u32,
    /// Query heads per key/value head.
    pub group: u32,
    /// Position of the first query (causal masks only).
    pub past: u32,
    /// Sliding window (0: none).
    pub window: u32,
    /// Scores are `q·k · scale`.
    pub scale: f32,
}

/// First key row `i` may see (inclusive) and the key after its last.
#[cube]
fn visible(i: usize, problem: &Problem, #[comptime] causal: bool) -> (usize, usize) {
    let keys = problem.keys as usize;
    let end_at = problem.past as usize + i + 1;
    let mut hi = keys;
    let mut lo = 0usize;
    if causal {
        if end_at < keys {
            hi = end_at;
        }
        let window = problem.window as usize;
        if window > 0 && end_at > window {
            lo = end_at - window;
        }
    }
    (lo, hi)
}

/// Four f32.
type F4 = Vector<f32, Const<4>>;

/// `out[b][i][h][e]` = attention of query `i` of head `h` (`q[b][i][h][..head_dim]`) over keys
/// `k[b][j][h / group][..head_dim]` and values `v[b][j][h / group][..value_dim]`, `j < keys`.
/// Every operand is read and written four elements at a time: dims and strides are counted in
/// vectors of four (`head_dim`, `value_dim` multiples of four).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub fn flash_attention<QF: Float, KF: Float, OF: Float>(
    q: &[Vector<QF, Const<4>>],
    k: &[Vector<KF, Const<4>>],
    v: &[Vector<KF, Const<4>>],
    out: &mut [Vector<OF, Const<4>>],
    problem: Problem,
    q_at: Strides,
    k_at: Strides,
    v_at: Strides,
    out_at: Strides,
    #[comptime] rows: usize,
    #[comptime] tile: usize,
    #[comptime] head_dim: usize,
    #[comptime] value_dim: usize,
    #[comptime] causal: bool,
) {
    let head4 = comptime!(head_dim / 4);
    let value4 = comptime!(value_dim / 4);
    let lane = UNIT_POS_X as usize;
    let local = UNIT_POS_Y as usize;
    let unit = local * LANES + lane;
    let units = comptime!(rows * LANES);
    let kv_head = CUBE_POS_Y as usize;
    let batch = CUBE_POS_Z as usize;
    let group = problem.group as usize;
    let total_rows = problem.queries as usize * group;
    let first_row = CUBE_POS_X as usize * rows;
    let row = first_row + local;
    let row_valid = row < total_rows;
    let query = row / group;
    let head = kv_head * group + row % group;

    // The cube's keys: from its first row's first visible one to its last row's last.
    let mut last_row = first_row + rows - 1;
    if last_row >= total_rows {
        last_row = total_rows - 1;
    }
    let (lo, _) = visible(first_row / group, &problem, causal);
    let (_, hi) = visible(last_row / group, &problem, causal);
    let (my_lo, my_hi) = visible(query, &problem, causal);

    // The block's queries, scaled, as f32.
    let mut queries = Shared::<[F4]>::new_slice(rows * head4);
    let q_base = batch * q_at.batch as usize;
    let mut at = unit;
    while at < comptime!(rows * head4) {
        let r = first_row + at / head4;
        let mut value = F4::empty().fill(0.0f32);
        if r < total_rows {
            let h = kv_head * group + r % group;
            let from = q_base + (r / group) * q_at.token as usize + h * q_at.head as usize + at % head4;
            value = F4::cast_from(q[from]) * F4::empty().fill(problem.scale);
        }
        queries[at] = value;
        at += units;
    }

    // One tile of keys (rows of `head4 + 1` vectors: the pad spreads a score's reads over the
    // banks), then of values (rows of `value4`).
    let key_row = comptime!(head4 + 1);
    let mut staged = Shared::<[F4]>::new_slice(tile * comptime!(std::cmp::max(head4 + 1, value4)));
    let splits = comptime!(LANES / tile);
    let slice = comptime!(head4.div_ceil(LANES / tile));
    let mut weights = Shared::<[f32]>::new_slice(rows * LANES);
    let per_lane = comptime!(value4.div_ceil(LANES));
    let mut acc = Array::<F4>::new(per_lane);
    #[unroll]
    for e in 0..per_lane {
        acc[e] = F4::empty().fill(0.0f32);
    }
    let mut running_max = f32::new(MASKED);
    let mut running_sum = 0.0f32;
    let k_base = batch * k_at.batch as usize + kv_head * k_at.head as usize;
    let v_base = batch * v_at.batch as usize + kv_head * v_at.head as usize;
    let mine = local * LANES;
    sync_cube();

    let mut start = lo;
    while start < hi {
        let mut at = unit;
        while at < comptime!(tile * head4) {
            let j = at / head4;
            let d = at % head4;
            let mut value = F4::empty().fill(0.0f32);
            if start + j < hi {
                value = F4::cast_from(k[k_base + (start + j) * k_at.token as usize + d]);
            }
            staged[j * key_row + d] = value;
            at += units;
        }
        sync_cube();
        // `splits` lanes share a key's score, each over a slice of the head; the partial dots
        // of key `j` are at `mine + split · tile + j`.
        if lane < comptime!(tile * splits) {
            let key_lane = lane % tile;
            let split = lane / tile;
            let mut dot = F4::empty().fill(0.0f32);
            let q_row = local * head4;
            let k_row = key_lane * key_row;
            let mut d = split * slice;
            let stop = min(d + slice, head4);
            while d < stop {
                dot += queries[q_row + d] * staged[k_row + d];
                d += 1;
            }
            weights[mine + lane] = dot.extract(0usize) + dot.extract(1usize) + dot.extract(2usize) + dot.extract(3usize);
        }
        sync_cube();
        let mut tile_max = f32::new(MASKED);
        let mut score = f32::new(MASKED);
        #[unroll]
        for j in 0..tile {
            let key = start + j;
            let mut s = f32::new(MASKED);
            if row_valid && key >= my_lo && key < my_hi {
                s = 0.0f32;
                #[unroll]
                for split in 0..splits {
                    s += weights[mine + split * tile + j];
                }
            }
            tile_max = max(tile_max, s);
            if j == lane {
                score = s;
            }
        }
        let new_max = max(running_max, tile_max);
        let rescale = (running_max - new_max).exp();
        running_max = new_max;
        sync_cube();
        if lane < tile {
            weights[mine + lane] = select(score > HIDDEN, (score - new_max).exp(), 0.0f32);
        }
        let mut at = unit;
        while at < comptime!(tile * value4) {
            let j = at / value4;
            let mut value = F4::empty().fill(0.0f32);
            if start + j < hi {
                value = F4::cast_from(v[v_base + (start + j) * v_at.token as usize + at % value4]);
            }
            staged[at] = value;
            at += units;
        }
        sync_cube();
        let mut tile_sum = 0.0f32;
        #[unroll]
        for j in 0..tile {
            tile_sum += weights[mine + j];
        }
        running_sum = running_sum * rescale + tile_sum;
        let rescale4 = F4::empty().fill(rescale);
        #[unroll]
        for e in 0..per_lane {
            let d = e * LANES + lane;
            let mut sum = F4::empty().fill(0.0f32);
            if d < value4 {
                #[unroll]
                for j in 0..tile {
                    sum += F4::empty().fill(weights[mine + j]) * staged[j * value4 + d];
                }
            }
            acc[e] = acc[e] * rescale4 + sum;
        }
        sync_cube();
        start += tile;
    }

    if row_valid {
        let inverse = F4::empty().fill(select(running_sum > 0.0, 1.0 / running_sum, 0.0f32));
        let o_base = batch * out_at.batch as usize + query * out_at.token as usize + head * out_at.head as usize;
        #[unroll]
        for e in 0..per_lane {
            let d = e * LANES + lane;
            if d < value4 {
                out[o_base + d] = Vector::<OF, Const<4>>::cast_from(acc[e] * inverse);
            }
        }
    }
}

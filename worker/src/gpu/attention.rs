//! Fused attention on burn tensors: one launch of our flash-style kernel (`flash`) per call, on
//! cubecl devices (burn's wgpu and cuda backends). Elsewhere, or for shapes the kernel does not
//! take, `fused_attention` answers `None` and the caller uses its own path.

use burn::prelude::*;
use burn::tensor::DType;

/// Which keys each query sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionMask {
    /// Every query sees every key (`0..keys`).
    Full,
    /// Query `i` sees keys `≤ past + i` (its position in a cache whose first `past` positions are
    /// earlier tokens), and with `window = Some(w)` only the last `w` of them (keys
    /// `> past + i − w`).
    Causal { past: usize, window: Option<usize> },
}

/// `softmax(q·kᵀ·scale + mask)·v` per head in one kernel, without a score matrix in memory.
///
/// - `q`: `[batch, queries, heads, head_dim]` (f32 or f16; other types are cast to f32);
/// - `k`: `[batch, capacity, kv_heads, head_dim]`, `v`: `[batch, capacity, kv_heads, value_dim]`
///   (the same type, f32 or f16), of which the first `keys` positions are read: a preallocated
///   cache need not be sliced. `heads` is a multiple of `kv_heads`: query head `h` reads
///   key/value head `h / (heads / kv_heads)` (grouped-query attention, nothing repeated);
/// - result: `[batch, queries, heads, value_dim]` in `out` (f32 or f16), contiguous.
///
/// Any strides are accepted as long as the last dimension's is one (else the operand is made
/// contiguous first). `None` where the device is not a cubecl one, a type is not served, or the
/// shapes do not fit the kernel (heads not a multiple of `kv_heads`, `keys > capacity`, a head
/// wider than the shared memory allows).
pub fn fused_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    keys: usize,
    scale: f32,
    mask: AttentionMask,
    out: DType,
) -> Option<Tensor<4>> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        cube::fused_attention(q, k, v, keys, scale, mask, out)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = (q, k, v, keys, scale, mask, out);
        None
    }
}

/// Whether `fused_attention` runs on `device` at all (a cubecl device).
pub fn has_fused_attention(device: &Device) -> bool {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        super::launch::is_cube(device)
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = device;
        false
    }
}

/// Units per query row of the kernel.
const LANES: usize = 32;

/// The most query rows of one cube.
pub const MAX_ROWS: usize = 8;

/// `(rows, tile)` of a launch: query rows per cube (a power of two up to `MAX_ROWS`, no more than
/// the rows there are) and keys per tile (a power of two up to 32), such that the cube's shared
/// memory (the scaled queries, one tile of keys or values, the tile's weights) fits in
/// `shared_bytes`. `None` when not even one row and one key fit.
pub fn launch_shape(total_rows: usize, head_dim: usize, value_dim: usize, shared_bytes: usize) -> Option<(usize, usize)> {
    let mut rows = total_rows.clamp(1, MAX_ROWS).next_power_of_two();
    let width = (head_dim + 4).max(value_dim);
    loop {
        let fixed = rows * head_dim * 4 + rows * LANES * 4;
        let fitting = shared_bytes.checked_sub(fixed).map_or(0, |left| left / 4 / width);
        if fitting >= 16 || (rows == 1 && fitting >= 1) {
            return Some((rows, prev_power_of_two(fitting.min(32))));
        }
        if rows == 1 {
            return None;
        }
        rows /= 2;
    }
}

fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube {
    use burn::backend::Cube;
    use burn::prelude::*;
    use burn::tensor::{DType, Shape};
    use burn_cubecl::tensor::CubeTensor;
    use cubecl::prelude::{BufferArg, CubeCount, CubeDim, Float};

    use super::super::flash::{self, ProblemLaunch, StridesLaunch, LANES};
    use super::super::launch::cube_device;
    use super::{launch_shape, AttentionMask};

    /// The most cubes along one grid dimension every backend accepts.
    const MAX_GRID: usize = 65_535;
    /// Shared memory the kernel may use at most (devices with more still get this much: larger
    /// tiles than 32 keys would not help), less a margin for what a compiler adds.
    const SHARED_BUDGET: usize = (32 << 10) - 512;

    /// A float tensor's cubecl primitive, rows laid out plainly, last dimension of stride one.
    fn primitive(x: Tensor<4>) -> Option<CubeTensor> {
        let t = x.try_into_primitive::<Cube>().ok()?;
        let t = burn_cubecl::kernel::untile(t);
        if t.meta.strides()[3] == 1 || t.meta.shape()[3] == 1 {
            Some(t)
        } else {
            Some(burn_cubecl::kernel::into_contiguous(t))
        }
    }

    /// Batch, token and head strides in vectors of four (`None` unless each is whole vectors).
    fn strides(t: &CubeTensor) -> Option<[u32; 3]> {
        let s = t.meta.strides();
        let n = |i: usize| s[i].is_multiple_of(4).then(|| u32::try_from(s[i] / 4).ok()).flatten();
        Some([n(0)?, n(1)?, n(2)?])
    }

    /// The tensor's buffer and the vectors of four its elements span.
    fn vectors(t: CubeTensor) -> (cubecl::server::Handle, usize) {
        let (shape, strides) = (t.meta.shape(), t.meta.strides());
        let span = (0..4).map(|i| (shape[i] - 1) * strides[i]).sum::<usize>() + 1;
        (t.handle, span.div_ceil(4))
    }

    pub(super) fn fused_attention(
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        keys: usize,
        scale: f32,
        mask: AttentionMask,
        out: DType,
    ) -> Option<Tensor<4>> {
        let device = q.device();
        cube_device(&device)?;
        let [batch, queries, heads, head_dim] = q.dims();
        let [kb, capacity, kv_heads, kd] = k.dims();
        let [vb, vc, vh, value_dim] = v.dims();
        let kv_type = k.dtype();
        let shapes_fit = kb == batch
            && vb == batch
            && vc == capacity
            && vh == kv_heads
            && kd == head_dim
            && head_dim.is_multiple_of(4)
            && value_dim.is_multiple_of(4)
            && kv_heads > 0
            && heads.is_multiple_of(kv_heads)
            && keys <= capacity
            && v.dtype() == kv_type
            && matches!(kv_type, DType::F32 | DType::F16)
            && matches!(out, DType::F32 | DType::F16)
            && batch <= MAX_GRID
            && kv_heads <= MAX_GRID;
        if !shapes_fit {
            return None;
        }
        if batch * queries * heads * value_dim == 0 {
            return Some(Tensor::zeros([batch, queries, heads, value_dim], (&device, out)));
        }
        let q = if q.dtype() == DType::F16 { q } else { q.cast(DType::F32) };
        let group = heads / kv_heads;
        let total_rows = queries * group;
        let (q, k, v) = (primitive(q)?, primitive(k)?, primitive(v)?);
        let client = q.client.clone();
        let shared = client
            .properties()
            .hardware
            .max_shared_memory_size
            .saturating_sub(512)
            .min(SHARED_BUDGET);
        let (rows, tile) = launch_shape(total_rows, head_dim, value_dim, shared)?;
        let blocks = total_rows.div_ceil(rows);
        if blocks > MAX_GRID {
            return None;
        }
        let (causal, past, window) = match mask {
            AttentionMask::Full => (false, 0, 0),
            AttentionMask::Causal { past, window } => (true, past, window.unwrap_or(0)),
        };
        let small = |n: usize| u32::try_from(n).ok();
        let problem = ProblemLaunch::new(small(queries)?, small(keys)?, small(group)?, small(past)?, small(window)?, scale);
        let (qs, ks, vs) = (strides(&q)?, strides(&k)?, strides(&v)?);
        let o = [queries * heads * value_dim, heads * value_dim, value_dim].map(|n| (n / 4) as u32);
        small(batch * queries * heads * value_dim)?;
        let handle = client.empty(batch * queries * heads * value_dim * out.size());
        let count = CubeCount::Static(blocks as u32, kv_heads as u32, batch as u32);
        let dim = CubeDim::new_2d(LANES as u32, rows as u32);
        let launch = Launch {
            count,
            dim,
            rows,
            tile,
            head_dim,
            value_dim,
            causal,
        };
        let (qt, kt) = (q.dtype, k.dtype);
        let args = Args {
            q,
            k,
            v,
            out: handle.clone(),
            out_len: batch * queries * heads * value_dim / 4,
            problem,
            strides: [qs, ks, vs, o],
        };
        match (qt, kt, out) {
            (DType::F32, DType::F32, DType::F32) => launch.run::<f32, f32, f32>(args),
            (DType::F32, DType::F16, DType::F32) => launch.run::<f32, half::f16, f32>(args),
            (DType::F32, DType::F32, DType::F16) => launch.run::<f32, f32, half::f16>(args),
            (DType::F32, DType::F16, DType::F16) => launch.run::<f32, half::f16, half::f16>(args),
            (DType::F16, DType::F32, DType::F32) => launch.run::<half::f16, f32, f32>(args),
            (DType::F16, DType::F16, DType::F32) => launch.run::<half::f16, half::f16, f32>(args),
            (DType::F16, DType::F32, DType::F16) => launch.run::<half::f16, f32, half::f16>(args),
            (DType::F16, DType::F16, DType::F16) => launch.run::<half::f16, half::f16, half::f16>(args),
            _ => return None,
        }
        let cube = cube_device(&device)?;
        let t = CubeTensor::new_contiguous(client, cube, Shape::new([batch, queries, heads, value_dim]), handle, out);
        Some(Tensor::from_primitive::<Cube>(t))
    }

    /// The operands of one launch.
    struct Args {
        q: CubeTensor,
        k: CubeTensor,
        v: CubeTensor,
        out: cubecl::server::Handle,
        /// In vectors of four.
        out_len: usize,
        problem: ProblemLaunch,
        /// q, k, v and out: batch, token and head strides.
        strides: [[u32; 3]; 4],
    }

    /// The grid and compile-time shape of one launch.
    struct Launch {
        count: CubeCount,
        dim: CubeDim,
        rows: usize,
        tile: usize,
        head_dim: usize,
        value_dim: usize,
        causal: bool,
    }

    impl Launch {
        fn run<QF: Float, KF: Float, OF: Float>(self, a: Args) {
            let client = a.q.client.clone();
            let s = |i: usize| StridesLaunch::new(a.strides[i][0], a.strides[i][1], a.strides[i][2]);
            let (q_at, k_at, v_at, out_at) = (s(0), s(1), s(2), s(3));
            let (q, k, v) = (vectors(a.q), vectors(a.k), vectors(a.v));
            // SAFETY: q, k and v are burn tensors' buffers, each as the vectors its elements span
            // (from the handle's offset); the kernel reads q at `[b][i][h][..]` within its shape
            // and strides, k and v at positions below `keys ≤ capacity`; `out` is `out_len`
            // vectors of `OF`.
            unsafe {
                flash::flash_attention::launch::<QF, KF, OF>(
                    &client,
                    self.count,
                    self.dim,
                    BufferArg::from_raw_parts(q.0, q.1),
                    BufferArg::from_raw_parts(k.0, k.1),
                    BufferArg::from_raw_parts(v.0, v.1),
                    BufferArg::from_raw_parts(a.out, a.out_len),
                    a.problem,
                    q_at,
                    k_at,
                    v_at,
                    out_at,
                    self.rows,
                    self.tile,
                    self.head_dim,
                    self.value_dim,
                    self.causal,
                );
            }
        }
    }
}

//! The KV cache on a burn device and grouped-query attention over it.
//!
//! A sequence's cache is allocated once, `[capacity, kv_heads, head_dim]` keys and
//! `[capacity, kv_heads, value_dim]` values per layer in the model's matrix precision (f16 for an
//! f16 model), and each step writes its positions in place (`slice_assign` on the only handle to
//! the buffer); nothing is concatenated. Attention reads positions `[first, len)`: all of them
//! on a global layer, the last `window` on a sliding-window one.
//!
//! Grouped-query attention reads each key/value head once: the `group = heads / kv_heads` query
//! heads that share a key/value head become rows of one attention problem,
//! `[kv_heads, group · tokens, head_dim]` against `[kv_heads, positions, head_dim]`, so no key or
//! value is repeated. burn's attention op (`burn::tensor::module::attention`) computes it in f32.

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType};

use super::super::config::LlamaConfig;

/// One layer's keys `[capacity, kv_heads, head_dim]` and values `[capacity, kv_heads, value_dim]`.
struct LayerKv {
    keys: Tensor<3>,
    values: Tensor<3>,
}

/// Keys and values of one sequence on a burn device, per layer, preallocated.
pub(in crate::llama) struct BurnKv {
    /// `None` only while a step writes the layer (the tensors are moved out so the write is the
    /// buffer's only handle and happens in place).
    layers: Vec<Option<LayerKv>>,
    capacity: usize,
}

/// Shape of a cache: what each layer's tensors hold.
#[derive(Debug, Clone, Copy)]
pub(in crate::llama) struct KvShape {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub value_dim: usize,
    pub dtype: DType,
}

impl KvShape {
    pub fn of(c: &LlamaConfig, layers: usize, dtype: DType) -> Self {
        Self {
            layers,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            value_dim: c.value_dim,
            dtype,
        }
    }

    /// Device bytes of a cache of `capacity` positions.
    pub fn bytes(&self, capacity: usize) -> usize {
        self.layers * capacity * self.kv_heads * (self.head_dim + self.value_dim) * self.dtype.size()
    }

    fn layer(&self, capacity: usize, device: &Device) -> LayerKv {
        LayerKv {
            keys: Tensor::zeros([capacity, self.kv_heads, self.head_dim], (device, self.dtype)),
            values: Tensor::zeros([capacity, self.kv_heads, self.value_dim], (device, self.dtype)),
        }
    }
}

impl BurnKv {
    /// A cache of `capacity` positions (at least one) for every layer of `shape`.
    pub fn new(shape: KvShape, capacity: usize, device: &Device) -> Self {
        let capacity = capacity.max(1);
        Self {
            layers: (0..shape.layers).map(|_| Some(shape.layer(capacity, device))).collect(),
            capacity,
        }
    }

    /// Positions the cache holds without growing.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Makes room for `needed` positions: a cache that is too small is copied once into one
    /// twice as large (or `needed`, if more), so a longer sequence than planned still runs.
    pub fn reserve(&mut self, needed: usize, shape: KvShape, device: &Device) {
        if needed <= self.capacity {
            return;
        }
        let capacity = needed.max(2 * self.capacity);
        for slot in &mut self.layers {
            let bigger = shape.layer(capacity, device);
            *slot = Some(match slot.take() {
                Some(old) => {
                    let n = old.keys.dims()[0];
                    LayerKv {
                        keys: bigger.keys.slice_assign(0..n, old.keys),
                        values: bigger.values.slice_assign(0..n, old.values),
                    }
                }
                None => bigger,
            });
        }
        self.capacity = capacity;
    }
}

/// The positions a step attends to, and which of them each query row may not see.
pub(super) struct AttentionSpan {
    /// First position read from the cache.
    first: usize,
    /// `[1, kv_heads, group · tokens, positions]`, `true` where hidden; `None` when every row
    /// sees every position read.
    mask: Option<Tensor<4, Bool>>,
}

impl AttentionSpan {
    /// The span of `tokens` queries at positions `start..`, with `group` query heads per
    /// key/value head, on a layer with `window` (or none).
    pub fn new(start: usize, tokens: usize, window: Option<usize>, group: usize, kv_heads: usize, device: &Device) -> Self {
        let seen = start + tokens;
        // The first query's window starts earliest.
        let first = window.map_or(0, |w| (start + 1).saturating_sub(w));
        let read = seen - first;
        let hidden = |row: usize, j: usize| {
            let query = start + row % tokens;
            let key = first + j;
            key > query || window.is_some_and(|w| query - key >= w)
        };
        let rows = group * tokens;
        let one: Vec<bool> = (0..rows).flat_map(|r| (0..read).map(move |j| hidden(r, j))).collect();
        let mask = one.contains(&true).then(|| {
            let all: Vec<bool> = (0..kv_heads).flat_map(|_| one.iter().copied()).collect();
            Tensor::<4, Bool>::from_data(TensorData::new(all, [1, kv_heads, rows, read]), device)
        });
        Self { first, mask }
    }
}

/// Writes the step's keys `[t, kv_heads, head_dim]` and values `[t, kv_heads, value_dim]` (f32)
/// at positions `start..` of `layer` in `cache`, and returns the attention of the queries
/// `[t, heads, head_dim]` (f32, rotated) over the span: `[t, heads · value_dim]` in f32.
#[allow(clippy::too_many_arguments)]
pub(super) fn attend(
    c: &LlamaConfig,
    cache: &mut BurnKv,
    layer: usize,
    start: usize,
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    span: &AttentionSpan,
) -> Tensor<2> {
    let [t, heads, hd] = q.dims();
    let (kv_heads, vd) = (c.kv_heads, c.value_dim);
    let group = heads / kv_heads;
    let seen = start + t;
    let slot = &mut cache.layers[layer];
    let Some(old) = slot.take() else {
        // Unreachable: a layer is only empty during its own write below.
        return Tensor::zeros([t, heads * vd], &q.device());
    };
    let dtype = old.keys.dtype();
    let written = LayerKv {
        keys: old.keys.slice_assign(start..seen, k.cast(dtype)),
        values: old.values.slice_assign(start..seen, v.cast(dtype)),
    };
    let read = |x: &Tensor<3>| {
        x.clone()
            .slice(span.first..seen)
            .cast(DType::F32)
            .swap_dims(0, 1)
            .unsqueeze_dim::<4>(0)
    };
    let (keys, values) = (read(&written.keys), read(&written.values)); // [1, kv_heads, n, _]
    *slot = Some(written);
    // Query head h = kv_head · group + g; row g · t + i of its key/value head's problem.
    let q = q
        .reshape([t, kv_heads, group, hd])
        .permute([1, 2, 0, 3])
        .reshape([1, kv_heads, group * t, hd])
        // burn's op scales by 1/√head_dim; folding the model's scale into q keeps its fused
        // kernels eligible (a custom scale falls back to separate kernels on cubecl).
        .mul_scalar(c.attention_scale as f64 * (hd as f64).sqrt());
    let out = attention(q, keys, values, span.mask.clone(), None, AttentionModuleOptions::default());
    out.reshape([kv_heads, group, t, vd]).permute([2, 0, 1, 3]).reshape([t, heads * vd])
}

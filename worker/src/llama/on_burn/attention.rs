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
//! value is repeated.
//!
//! On cubecl devices (wgpu, cuda) one launch of our fused kernel
//! (`gpu::attention::fused_attention`, flash-style: online softmax over tiles of keys in shared
//! memory, no score matrix) computes a layer's attention for a sequence's step, decode or
//! prefill, reading the cache in place up to its valid length. Elsewhere (burn's flex CPU
//! backend, and any shape the kernel refuses) burn's attention op computes it in f32, in blocks
//! of queries whose scores stay within a budget.

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType};

use super::super::config::LlamaConfig;
use crate::gpu::attention::{fused_attention, has_fused_attention, AttentionMask};

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

/// Bytes of attention scores one block of a sequence's queries may take (`[heads, rows,
/// positions]` f32): a long prompt's queries go through attention in blocks of rows, so neither
/// the scores nor the mask need a buffer larger than this (lavapipe binds 128 MiB at most).
pub(super) const SCORE_BUDGET_BYTES: usize = 32 << 20;

/// One block of a sequence's queries: rows `row..row + rows` of the step, the positions they
/// read, and which of those each may not see.
struct QueryBlock {
    row: usize,
    rows: usize,
    /// First position read from the cache (the block reads up to its last query's position).
    first: usize,
    /// `[1, kv_heads, group · rows, positions]` (one `[group · rows, positions]` mask uploaded,
    /// broadcast over the key/value heads), `true` where hidden; `None` when every query of the
    /// block sees every position read.
    mask: Option<Tensor<4, Bool>>,
}

/// The positions a sequence's step attends to: for the fused kernel its first position and
/// window; for burn's op its blocks of queries.
pub(super) struct AttentionSpan {
    start: usize,
    window: Option<usize>,
    /// Whether the device runs the fused kernel (then `blocks` is empty until it refuses a case).
    fused: bool,
    blocks: Vec<QueryBlock>,
    /// What `new` was given, to make the blocks if the fused kernel refuses.
    tokens: usize,
    heads: (usize, usize),
    score_budget: usize,
}

impl AttentionSpan {
    /// The span of `tokens` queries at positions `start..`, with `group` query heads per
    /// key/value head, on a layer with `window` (or none); blocks of queries keep their scores
    /// within `score_budget` bytes.
    pub fn new(
        start: usize,
        tokens: usize,
        window: Option<usize>,
        (group, kv_heads): (usize, usize),
        score_budget: usize,
        device: &Device,
    ) -> Self {
        let fused = has_fused_attention(device);
        Self {
            start,
            window,
            fused,
            blocks: if fused {
                vec![]
            } else {
                Self::blocks(start, tokens, window, (group, kv_heads), score_budget, device)
            },
            tokens,
            heads: (group, kv_heads),
            score_budget,
        }
    }

    /// Blocks of queries for burn's attention op, with their masks.
    fn blocks(
        start: usize,
        tokens: usize,
        window: Option<usize>,
        (group, kv_heads): (usize, usize),
        score_budget: usize,
        device: &Device,
    ) -> Vec<QueryBlock> {
        let heads = group * kv_heads;
        let mut blocks = Vec::new();
        let mut row = 0;
        while row < tokens {
            let seen_max = start + tokens;
            let rows = (score_budget / (heads * seen_max * 4).max(1)).clamp(1, tokens - row);
            let (begin, end) = (start + row, start + row + rows);
            // The block's first query's window starts earliest.
            let first = window.map_or(0, |w| (begin + 1).saturating_sub(w));
            let read = end - first;
            let hidden = |r: usize, j: usize| {
                let query = begin + r % rows;
                let key = first + j;
                key > query || window.is_some_and(|w| query - key >= w)
            };
            let mask: Vec<bool> = (0..group * rows).flat_map(|r| (0..read).map(move |j| hidden(r, j))).collect();
            let mask = mask.contains(&true).then(|| {
                Tensor::<4, Bool>::from_data(TensorData::new(mask, [1, 1, group * rows, read]), device).expand([
                    1,
                    kv_heads,
                    group * rows,
                    read,
                ])
            });
            blocks.push(QueryBlock { row, rows, first, mask });
            row += rows;
        }
        blocks
    }

    /// Blocks the queries go through attention in.
    #[cfg(test)]
    pub fn block_count(&self) -> usize {
        self.blocks.len()
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
    let slot = &mut cache.layers[layer];
    let Some(old) = slot.take() else {
        // Unreachable: a layer is only empty during its own write below.
        return Tensor::zeros([t, heads * vd], &q.device());
    };
    let dtype = old.keys.dtype();
    let written = LayerKv {
        keys: old.keys.slice_assign(start..start + t, k.cast(dtype)),
        values: old.values.slice_assign(start..start + t, v.cast(dtype)),
    };
    if span.fused {
        let mask = AttentionMask::Causal {
            past: start,
            window: span.window,
        };
        let (keys, values) = (
            written.keys.clone().unsqueeze_dim::<4>(0),
            written.values.clone().unsqueeze_dim::<4>(0),
        );
        let fused = fused_attention(
            q.clone().unsqueeze_dim::<4>(0),
            keys,
            values,
            start + t,
            c.attention_scale,
            mask,
            DType::F32,
        );
        if let Some(out) = fused {
            *slot = Some(written);
            return out.reshape([t, heads * vd]);
        }
    }
    let unfused;
    let blocks = if span.fused {
        let (tokens, heads, budget) = (span.tokens, span.heads, span.score_budget);
        unfused = AttentionSpan::blocks(span.start, tokens, span.window, heads, budget, &q.device());
        &unfused
    } else {
        &span.blocks
    };
    // burn's op scales by 1/√head_dim; folding the model's scale into q keeps its fused kernels
    // eligible (a custom scale falls back to separate kernels on cubecl).
    let q = q.mul_scalar(c.attention_scale as f64 * (hd as f64).sqrt());
    let mut outputs = Vec::with_capacity(blocks.len());
    for block in blocks {
        let (rows, end) = (block.rows, start + block.row + block.rows);
        let read = |x: &Tensor<3>| {
            x.clone()
                .slice(block.first..end)
                .cast(DType::F32)
                .swap_dims(0, 1)
                .unsqueeze_dim::<4>(0)
        };
        let (keys, values) = (read(&written.keys), read(&written.values)); // [1, kv_heads, n, _]
                                                                           // Query head h = kv_head · group + g; row g · rows + i of its key/value head's problem.
        let q = q
            .clone()
            .narrow(0, block.row, rows)
            .reshape([rows, kv_heads, group, hd])
            .permute([1, 2, 0, 3])
            .reshape([1, kv_heads, group * rows, hd]);
        let out = attention(q, keys, values, block.mask.clone(), None, AttentionModuleOptions::default());
        outputs.push(
            out.reshape([kv_heads, group, rows, vd])
                .permute([2, 0, 1, 3])
                .reshape([rows, heads * vd]),
        );
    }
    *slot = Some(written);
    if outputs.len() == 1 {
        outputs.pop().unwrap_or_else(|| Tensor::zeros([t, heads * vd], &q.device()))
    } else {
        Tensor::cat(outputs, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_prompt_is_split_into_blocks_of_queries_within_the_budget() {
        let device = Device::flex();
        // 2 heads × 12 positions × 4 bytes = 96 bytes of scores per query row.
        let span = |budget: usize, window: Option<usize>| AttentionSpan::new(0, 12, window, (2, 1), budget, &device);
        assert_eq!(span(SCORE_BUDGET_BYTES, None).block_count(), 1);
        let blocks = span(3 * 96, Some(4));
        assert_eq!(blocks.block_count(), 4);
        let rows: Vec<(usize, usize, usize)> = blocks.blocks.iter().map(|b| (b.row, b.rows, b.first)).collect();
        // Each block reads from its first query's window on.
        assert_eq!(rows, [(0, 3, 0), (3, 3, 0), (6, 3, 3), (9, 3, 6)]);
        assert!(blocks.blocks.iter().all(|b| b.mask.is_some()));
        // One decode step sees its whole window: no block mask.
        let step = AttentionSpan::new(20, 1, Some(4), (2, 1), 96, &device);
        assert_eq!(
            (step.block_count(), step.blocks[0].first, step.blocks[0].mask.is_none()),
            (1, 17, true)
        );
    }
}

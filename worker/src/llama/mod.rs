//! A decoder for the Llama family of transformers: RMSNorm, rotary embeddings, grouped-query
//! attention with a KV cache, a gated feed-forward, tied or separate LM head.
//!
//! An architecture is a small description (`LlamaConfig`, read from the GGUF's `{arch}.*`
//! metadata: `llama` for Llama 2/3 and Mistral, `qwen2`, `gemma3`, `phi3`); the layer code is the
//! same for all and reads the optional parts (biases, QK-norm, sandwich norms, sliding windows)
//! from it. `Llama::from_gguf` maps GGUF tensor names (`blk.N.attn_q.weight`, …) onto the
//! model. Two engines run it, with the same results up to rounding (a test holds them together):
//! - **on burn** (`on_burn`): GPUs (`wgpu`, `cuda`), and the reference on the CPU. Weights are
//!   dequantized to f32 (or f16) at load, one tensor at a time; the KV cache is preallocated on
//!   the device.
//! - **on the host** (`host`), the CPU default: the weights stay in the file's encoding and
//!   hand-written kernels (`crate::matvec`) read them, 0.625 bytes per weight of a Q4_1 file
//!   instead of burn's 4 (2 in f16). A token's decode step reads every weight once, so this is
//!   what sets the speed; burn's CPU backend has no product of quantized matrices.
//! - **split** (partial offload, `Llama::load_with_gpu_layers`): the first layers on a burn
//!   device, the others and the LM head on the host; the hidden states cross once per step.

mod config;
mod host;
#[cfg(feature = "burn")]
mod on_burn;
mod projection;
mod rope;
mod tensors;
#[cfg(all(test, feature = "burn"))]
mod tests;

pub use config::{Activation, Architecture, LlamaConfig, Rope, Rotary, SlidingWindow};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::device::Compute;
use crate::gguf::{Gguf, GgufError};
use crate::matvec::QuantMatrix;
use host::{HostKv, HostModel, HostSequence};
#[cfg(feature = "burn")]
use on_burn::BurnModel;
#[cfg(feature = "burn")]
pub use on_burn::UploadedBytes;

/// Keys and values of the positions seen so far, per layer.
pub struct KvCache {
    store: KvStore,
    len: usize,
}

enum KvStore {
    /// burn tensors `[capacity, kv_heads, head_dim]` on the model's device.
    #[cfg(feature = "burn")]
    Burn(on_burn::BurnKv),
    /// Partial offload: the device layers' cache, then the host layers'.
    #[cfg(feature = "burn")]
    Split(on_burn::BurnKv, Vec<HostKv>),
    /// Host vectors `[positions][kv_heads · head_dim]` (all positions, also of sliding-window
    /// layers).
    Host(Vec<HostKv>),
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions a burn device's cache holds before it has to grow (`None` on the host, whose
    /// cache grows as it goes).
    pub fn device_capacity(&self) -> Option<usize> {
        match &self.store {
            #[cfg(feature = "burn")]
            KvStore::Burn(kv) | KvStore::Split(kv, _) => Some(kv.capacity()),
            KvStore::Host(_) => None,
        }
    }
}

/// Positions a device cache from `Llama::new_cache` holds before it grows (unless the model's
/// context is shorter).
pub const DEFAULT_DEVICE_CACHE: usize = 4096;

/// One sequence's part of a batched step (`Llama::forward_batch`): its new tokens, run at the
/// positions after its cache.
pub struct SequenceStep<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
}

/// Host keys and values of `layers` layers, room for `capacity` positions reserved.
fn host_cache(c: &LlamaConfig, layers: usize, capacity: usize) -> Vec<HostKv> {
    (0..layers)
        .map(|_| HostKv {
            keys: Vec::with_capacity(capacity * c.k_dim()),
            values: Vec::with_capacity(capacity * c.v_dim()),
        })
        .collect()
}

/// The model.
pub struct Llama {
    pub config: LlamaConfig,
    engine: Engine,
    /// Passes over the weights so far (see `weight_passes`).
    passes: AtomicU64,
}

enum Engine {
    #[cfg(feature = "burn")]
    Burn(Box<BurnModel>),
    Host(HostModel),
    /// The first layers on a burn device; the rest, and the LM head, on the host.
    #[cfg(feature = "burn")]
    Split(Box<BurnModel>, HostModel),
}

/// A tensor in host memory: row-major f32 elements and the shape.
pub type HostTensor = (Vec<f32>, Vec<usize>);

/// Where a model's tensors come from: named and laid out as in GGUF (`blk.N.attn_q.weight`,
/// matrices `[out][in]`, q/k rows of the `llama` architecture in interleaved rotary order), as
/// f32.
pub trait Weights {
    /// Whether the model has a tensor of that name.
    fn has(&self, name: &str) -> bool {
        self.tensor(name).is_ok_and(|t| t.is_some())
    }

    /// The tensor's elements (row-major) and shape, or `None` if the model has no such tensor.
    fn tensor(&self, name: &str) -> Result<Option<HostTensor>, GgufError>;

    /// A matrix in its stored encoding (quantized files keep their blocks); by default the f32
    /// values of `tensor`.
    fn matrix(&self, name: &str) -> Result<Option<QuantMatrix>, GgufError> {
        match self.tensor(name)? {
            Some((data, shape)) => match shape[..] {
                [rows, cols] => QuantMatrix::from_f32(&data, rows, cols).map(Some),
                _ => Err(GgufError::Invalid(format!("{name} is not a matrix"))),
            },
            None => Ok(None),
        }
    }
}

impl Weights for Gguf {
    fn has(&self, name: &str) -> bool {
        self.tensor_info(name).is_some()
    }

    fn tensor(&self, name: &str) -> Result<Option<HostTensor>, GgufError> {
        if self.tensor_info(name).is_none() {
            return Ok(None);
        }
        self.dequantize(name).map(Some)
    }

    fn matrix(&self, name: &str) -> Result<Option<QuantMatrix>, GgufError> {
        if self.tensor_info(name).is_none() {
            return Ok(None);
        }
        let (info, raw) = self.tensor_bytes(name)?;
        match info.shape()[..] {
            // Rows that are not whole blocks (not written by llama.cpp) are read as f32.
            [rows, cols] if cols.is_multiple_of(info.kind.block().0) => QuantMatrix::new(info.kind, rows, cols, raw).map(Some),
            [rows, cols] => QuantMatrix::from_f32(&self.dequantize(name)?.0, rows, cols).map(Some),
            _ => Err(GgufError::Invalid(format!("{name} is not a matrix"))),
        }
    }
}

impl Llama {
    /// Loads a GGUF model.
    pub fn from_gguf(g: &Gguf, compute: &Compute) -> Result<Self, GgufError> {
        Self::load(LlamaConfig::from_gguf(g)?, g, compute)
    }

    /// Loads a GGUF model, with f32 matrices in f16 if `f16_weights` (see `load_with`).
    pub fn from_gguf_with(g: &Gguf, compute: &Compute, f16_weights: bool) -> Result<Self, GgufError> {
        Self::load_with(LlamaConfig::from_gguf(g)?, g, compute, f16_weights)
    }

    /// Builds the model from any weight source.
    pub fn load(config: LlamaConfig, w: &dyn Weights, compute: &Compute) -> Result<Self, GgufError> {
        Self::load_with(config, w, compute, false)
    }

    /// Builds the model from any weight source. With `f16_weights`, burn devices receive each
    /// matrix already in f16 (never an f32 copy of the model), and the host engine keeps its f32
    /// matrices in f16.
    pub fn load_with(config: LlamaConfig, w: &dyn Weights, compute: &Compute, f16_weights: bool) -> Result<Self, GgufError> {
        config.check()?;
        let engine = match compute {
            Compute::Host => {
                let model = HostModel::load(&config, w)?;
                Engine::Host(if f16_weights { model.with_f16_weights() } else { model })
            }
            #[cfg(feature = "burn")]
            Compute::Burn(device) => {
                let matrices = if f16_weights {
                    burn::tensor::DType::F16
                } else {
                    burn::tensor::DType::F32
                };
                Engine::Burn(Box::new(BurnModel::load(&config, w, device, matrices)?))
            }
        };
        Ok(Self {
            config,
            engine,
            passes: AtomicU64::new(0),
        })
    }

    /// Like `load_with`, with only the first `gpu_layers` layers on a burn device (partial
    /// offload, for a device smaller than the model): the other layers and the LM head run on the
    /// host engine, and each step moves the hidden states from the device to the host once.
    /// `None`, or at least the model's layer count, puts all of it on the device; `Some(0)`
    /// none of it. On the host `gpu_layers` changes nothing.
    pub fn load_with_gpu_layers(
        config: LlamaConfig,
        w: &dyn Weights,
        compute: &Compute,
        f16_weights: bool,
        gpu_layers: Option<usize>,
    ) -> Result<Self, GgufError> {
        #[cfg(feature = "burn")]
        if let (Compute::Burn(device), Some(k)) = (compute, gpu_layers) {
            if k < config.layers {
                return Self::load_split(config, w, device, f16_weights, k);
            }
        }
        #[cfg(not(feature = "burn"))]
        let _ = gpu_layers;
        Self::load_with(config, w, compute, f16_weights)
    }

    /// The first `k` (fewer than all) layers on `device`, the rest on the host.
    #[cfg(feature = "burn")]
    fn load_split(
        config: LlamaConfig,
        w: &dyn Weights,
        device: &burn::prelude::Device,
        f16_weights: bool,
        k: usize,
    ) -> Result<Self, GgufError> {
        if k == 0 {
            return Self::load_with(config, w, &Compute::Host, f16_weights);
        }
        config.check()?;
        let matrices = if f16_weights {
            burn::tensor::DType::F16
        } else {
            burn::tensor::DType::F32
        };
        let on_device = BurnModel::load_layers(&config, w, device, matrices, k, false)?;
        let host = HostModel::load_from_layer(&config, w, k)?;
        let host = if f16_weights { host.with_f16_weights() } else { host };
        Ok(Self {
            config,
            engine: Engine::Split(Box::new(on_device), host),
            passes: AtomicU64::new(0),
        })
    }

    /// Bytes uploaded to a burn device while loading, by element type (`None` on the host).
    #[cfg(feature = "burn")]
    pub fn uploaded_bytes(&self) -> Option<UploadedBytes> {
        match &self.engine {
            Engine::Burn(b) | Engine::Split(b, _) => Some(b.uploaded()),
            Engine::Host(_) => None,
        }
    }

    /// Device bytes of a KV cache of `capacity` positions (0 on the host).
    #[cfg(feature = "burn")]
    pub fn device_cache_bytes(&self, capacity: usize) -> usize {
        match &self.engine {
            #[cfg(feature = "burn")]
            Engine::Burn(b) | Engine::Split(b, _) => b.kv_shape(&self.config).bytes(capacity),
            Engine::Host(_) => 0,
        }
    }

    /// Bytes of weights one token reads.
    pub fn weight_bytes(&self) -> usize {
        match &self.engine {
            #[cfg(feature = "burn")]
            Engine::Burn(b) => b.weight_bytes(),
            Engine::Host(h) => h.weight_bytes(),
            #[cfg(feature = "burn")]
            Engine::Split(b, h) => b.weight_bytes() + h.weight_bytes(),
        }
    }

    /// How many passes over the weights the model has made: one per `forward`, one per
    /// `forward_batch` however many sequences it holds (a batch that is not one pass counts each).
    pub fn weight_passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }

    /// A cache for a sequence; on a burn device it is allocated now for the model's context or
    /// `DEFAULT_DEVICE_CACHE` positions, whichever is fewer (a 128k-context model would otherwise
    /// take gigabytes per sequence), and grows if the sequence gets longer. A caller that knows
    /// how long its sequence may get uses `new_cache_with_capacity`.
    pub fn new_cache(&self) -> KvCache {
        match &self.engine {
            // The host's cache grows as it goes.
            Engine::Host(_) => self.new_cache_with_capacity(0),
            #[cfg(feature = "burn")]
            _ => self.new_cache_with_capacity(self.config.context.min(DEFAULT_DEVICE_CACHE)),
        }
    }

    /// A cache for a sequence of up to `capacity` positions (e.g. a job's prompt and
    /// `max_length`): on a burn device `[capacity, kv_heads, head_dim]` per layer, allocated
    /// now and written in place; a longer sequence still runs (the cache is copied into a
    /// larger one once). On the host the room is reserved, and a longer sequence grows it.
    pub fn new_cache_with_capacity(&self, capacity: usize) -> KvCache {
        let c = &self.config;
        KvCache {
            store: match &self.engine {
                #[cfg(feature = "burn")]
                Engine::Burn(b) => KvStore::Burn(b.new_cache(c, capacity)),
                Engine::Host(_) => KvStore::Host(host_cache(c, c.layers, capacity)),
                #[cfg(feature = "burn")]
                Engine::Split(b, h) => KvStore::Split(b.new_cache(c, capacity), host_cache(c, h.layer_count(), capacity)),
            },
            len: 0,
        }
    }

    /// Runs `tokens` at the positions after the cache and returns the logits of the last one.
    /// The cache must come from this model's `new_cache`.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Vec<f32> {
        if tokens.is_empty() {
            return vec![];
        }
        let start = cache.len;
        self.passes.fetch_add(1, Ordering::Relaxed);
        let logits = match (&self.engine, &mut cache.store) {
            (Engine::Host(h), KvStore::Host(layers)) => {
                // On one of rayon's threads: the matrix products then share their work with the
                // pool's other threads without waking the caller for each of them.
                let config = &self.config;
                rayon::scope(|_| h.forward(config, tokens, start, layers))
            }
            #[cfg(feature = "burn")]
            (Engine::Burn(b), KvStore::Burn(kv)) => b.forward(&self.config, tokens, start, kv),
            #[cfg(feature = "burn")]
            (Engine::Split(b, h), KvStore::Split(device_kv, host_kv)) => {
                let config = &self.config;
                let x = b.hidden_states(config, &mut [(tokens, start, device_kv)]);
                let mut batch = [HostSequence {
                    tokens,
                    start,
                    cache: host_kv,
                }];
                rayon::scope(|_| h.forward_batch_hidden(config, x, &mut batch))
                    .pop()
                    .unwrap_or_default()
            }
            #[cfg(feature = "burn")]
            _ => panic!("a KV cache of another model"),
        };
        cache.len += tokens.len();
        logits
    }

    /// Runs several sequences' new tokens in one pass and returns the logits of each one's last
    /// token, in order (empty for a sequence with no tokens). The sequences' rows go through
    /// each weight matrix together, so a step of N sequences reads the weights once, not N times;
    /// only attention is per sequence (on a burn device all logits also come back in one read).
    /// Each result equals what `forward` gives that sequence alone. The caches must come from
    /// this model's `new_cache`.
    pub fn forward_batch(&self, steps: &mut [SequenceStep<'_>]) -> Vec<Vec<f32>> {
        let config = &self.config;
        if steps.iter().any(|s| !s.tokens.is_empty()) {
            self.passes.fetch_add(1, Ordering::Relaxed);
        }
        let logits = match &self.engine {
            Engine::Host(h) => {
                let mut batch: Vec<HostSequence<'_>> = steps
                    .iter_mut()
                    .map(|s| HostSequence {
                        tokens: s.tokens,
                        start: s.cache.len,
                        cache: match &mut s.cache.store {
                            KvStore::Host(layers) => layers,
                            #[cfg(feature = "burn")]
                            _ => panic!("a KV cache of another model"),
                        },
                    })
                    .collect();
                rayon::scope(|_| h.forward_batch(config, &mut batch))
            }
            #[cfg(feature = "burn")]
            Engine::Burn(b) => {
                let mut batch = Vec::with_capacity(steps.len());
                for s in steps.iter_mut() {
                    let start = s.cache.len;
                    match &mut s.cache.store {
                        KvStore::Burn(kv) => batch.push((s.tokens, start, kv)),
                        _ => panic!("a KV cache of another model"),
                    }
                }
                b.forward_batch(config, &mut batch)
            }
            #[cfg(feature = "burn")]
            Engine::Split(b, h) => {
                let (mut on_device, mut on_host) = (Vec::with_capacity(steps.len()), Vec::with_capacity(steps.len()));
                for s in steps.iter_mut() {
                    let start = s.cache.len;
                    match &mut s.cache.store {
                        KvStore::Split(device_kv, host_kv) => {
                            on_device.push((s.tokens, start, device_kv));
                            on_host.push(HostSequence {
                                tokens: s.tokens,
                                start,
                                cache: host_kv,
                            });
                        }
                        _ => panic!("a KV cache of another model"),
                    }
                }
                let x = b.hidden_states(config, &mut on_device);
                rayon::scope(|_| h.forward_batch_hidden(config, x, &mut on_host))
            }
        };
        for s in steps.iter_mut() {
            s.cache.len += s.tokens.len();
        }
        logits
    }
}

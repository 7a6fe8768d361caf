//! The shape of a decoder and the few ways architectures differ, read from GGUF metadata
//! (`{arch}.*` keys). One `LlamaConfig` describes a Llama 2/3, Mistral, Qwen2, Gemma 3 or Phi-3
//! model; the layer code of both engines reads it and is otherwise the same for all of them.

use crate::gguf::{Gguf, GgufError};

/// The architectures the decoder runs (`general.architecture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2 and 3, Mistral, Mistral-Nemo, SmolLM2: the plain decoder.
    Llama,
    /// Qwen2 / Qwen2.5: q, k and v biases, rotate-half rotary.
    Qwen2,
    /// Gemma 3: scaled embeddings, QK-norm, norms after attention and feed-forward too, GeGLU,
    /// sliding-window attention on five layers of six.
    Gemma3,
    /// Phi-3: q, k and v in one matrix, gate and up in one matrix, rotate-half rotary.
    Phi3,
}

impl Architecture {
    /// Names as in `general.architecture`.
    pub const SUPPORTED: [&'static str; 4] = ["llama", "qwen2", "gemma3", "phi3"];

    /// The architecture of a `general.architecture` name.
    pub fn from_name(name: &str) -> Result<Self, GgufError> {
        Ok(match name {
            "llama" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            "gemma3" => Architecture::Gemma3,
            "phi3" => Architecture::Phi3,
            other => {
                return Err(GgufError::Invalid(format!(
                    "architecture '{other}' is not supported (this worker runs {})",
                    Self::SUPPORTED.join(", ")
                )))
            }
        })
    }

    /// The metadata prefix (`llama`, `gemma3`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Gemma3 => "gemma3",
            Architecture::Phi3 => "phi3",
        }
    }

    /// How the feed-forward gate is activated.
    pub fn activation(self) -> Activation {
        match self {
            Architecture::Gemma3 => Activation::GeluTanh,
            _ => Activation::Silu,
        }
    }

    /// Whether q and k are RMS-normed per head before rotary, and the outputs of attention and
    /// feed-forward normed before they are added (Gemma's QK-norm and sandwich norms).
    pub fn gemma_norms(self) -> bool {
        self == Architecture::Gemma3
    }
}

/// The feed-forward gate's activation: `act(gate) · up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU: `x · sigmoid(x)`.
    Silu,
    /// GeGLU with GELU's tanh approximation.
    GeluTanh,
}

impl Activation {
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::GeluTanh => {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
            }
        }
    }
}

/// Which elements of a head rotary embeddings rotate together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotary {
    /// Pairs `(2i, 2i+1)`: llama.cpp's "normal" mode; GGUF files of the `llama` architecture store
    /// q and k rows permuted for it.
    Interleaved,
    /// Pairs `(i, i + dims/2)` (NEOX, Hugging Face's rotate-half).
    RotateHalf,
}

/// Rotary position embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// `rope.freq_base` (of the global layers).
    pub base: f64,
    /// How many of a head's leading elements rotate (`rope.dimension_count`), even.
    pub dims: usize,
    pub style: Rotary,
    /// Linear scaling (`rope.scaling.type = linear`): positions are multiplied by this
    /// (1 / `rope.scaling.factor`) on the global layers.
    pub position_scale: f64,
}

/// Sliding-window attention: most layers see only the last `window` positions.
#[derive(Debug, Clone, PartialEq)]
pub struct SlidingWindow {
    /// Positions a local layer sees, its own included.
    pub window: usize,
    /// Layer `i` is global when `(i + 1) % period == 0`, local otherwise.
    pub period: usize,
    /// Rotary base of the local layers (unscaled).
    pub local_base: f64,
}

/// Shape and variant of a decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub arch: Architecture,
    pub layers: usize,
    /// Width of the residual stream (`embedding_length`).
    pub dim: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// Width of one head's query and key (`attention.key_length`, by default dim / heads).
    pub head_dim: usize,
    /// Width of one head's value (`attention.value_length`, by default `head_dim`).
    pub value_dim: usize,
    pub ffn_dim: usize,
    pub vocab: usize,
    pub rms_eps: f64,
    pub context: usize,
    pub rope: Rope,
    pub sliding_window: Option<SlidingWindow>,
    /// Attention scores are `q·k · attention_scale`.
    pub attention_scale: f32,
    /// Embeddings are multiplied by this (Gemma: sqrt(dim)).
    pub embedding_scale: f32,
    /// Logits become `cap · tanh(logits / cap)` (`final_logit_softcapping`).
    pub final_softcap: Option<f32>,
}

impl LlamaConfig {
    /// A plain Llama decoder (no architecture extras): interleaved rotary over whole heads,
    /// scale 1/sqrt(head_dim).
    #[allow(clippy::too_many_arguments)]
    pub fn llama(
        layers: usize,
        dim: usize,
        heads: usize,
        kv_heads: usize,
        ffn_dim: usize,
        vocab: usize,
        rms_eps: f64,
        rope_base: f64,
        context: usize,
    ) -> Self {
        let head_dim = dim / heads.max(1);
        Self {
            arch: Architecture::Llama,
            layers,
            dim,
            heads,
            kv_heads,
            head_dim,
            value_dim: head_dim,
            ffn_dim,
            vocab,
            rms_eps,
            context,
            rope: Rope {
                base: rope_base,
                dims: head_dim,
                style: Rotary::Interleaved,
                position_scale: 1.0,
            },
            sliding_window: None,
            attention_scale: 1.0 / (head_dim as f32).sqrt(),
            embedding_scale: 1.0,
            final_softcap: None,
        }
    }

    /// Width of all query heads.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }
    /// Width of all key heads.
    pub fn k_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    /// Width of all value heads.
    pub fn v_dim(&self) -> usize {
        self.kv_heads * self.value_dim
    }

    /// The window layer `layer` attends over, or `None` for all positions.
    pub fn window(&self, layer: usize) -> Option<usize> {
        self.sliding_window
            .as_ref()
            .filter(|s| !(layer + 1).is_multiple_of(s.period.max(1)))
            .map(|s| s.window)
    }

    /// Reads the `{arch}.*` metadata of a supported architecture.
    pub fn from_gguf(g: &Gguf) -> Result<Self, GgufError> {
        let arch = Architecture::from_name(g.get_str("general.architecture")?)?;
        let key = |k: &str| format!("{}.{k}", arch.name());
        let int = |k: &str| {
            let k = key(k);
            g.get_i64(&k)
                .and_then(|v| usize::try_from(v).map_err(|_| GgufError::MissingKey(k.clone())))
        };
        let float = |k: &str| g.get_f64(&key(k)).ok();
        let (dim, heads) = (int("embedding_length")?, int("attention.head_count")?);
        let head_dim = int("attention.key_length").unwrap_or(dim / heads.max(1));
        let vocab = g
            .tensor_info("token_embd.weight")
            .and_then(|t| t.shape().first().copied())
            .ok_or_else(|| GgufError::MissingTensor("token_embd.weight".into()))?;
        let layers = int("block_count")?;
        let mut context = int("context_length").unwrap_or(2048);
        let scaling = g.get_str(&key("rope.scaling.type")).unwrap_or("none");
        let position_scale = match (scaling, float("rope.scaling.factor")) {
            ("linear", Some(f)) if f > 0.0 => 1.0 / f,
            ("none", _) | ("linear", _) => 1.0,
            // Other scalings (YaRN) change only positions past the training context: the model
            // runs unscaled, up to that context.
            _ => {
                if let Ok(original) = int("rope.scaling.original_context_length") {
                    context = context.min(original);
                }
                1.0
            }
        };
        let gemma = arch == Architecture::Gemma3;
        let sliding_window = match int("attention.sliding_window") {
            Ok(window) if gemma && window > 0 => Some(SlidingWindow {
                window,
                period: 6,
                local_base: 10_000.0,
            }),
            _ => None,
        };
        let attention_scale = if gemma && layers == 62 {
            // As llama.cpp (after gemma_pytorch): the 27B model scales by dim / heads.
            1.0 / ((dim / heads.max(1)) as f32).sqrt()
        } else {
            1.0 / (head_dim as f32).sqrt()
        };
        let cfg = Self {
            arch,
            layers,
            dim,
            heads,
            kv_heads: int("attention.head_count_kv").unwrap_or(heads),
            head_dim,
            value_dim: int("attention.value_length").unwrap_or(head_dim),
            ffn_dim: int("feed_forward_length")?,
            vocab,
            rms_eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            context,
            rope: Rope {
                base: float("rope.freq_base").unwrap_or(10_000.0),
                dims: int("rope.dimension_count").unwrap_or(head_dim),
                style: if arch == Architecture::Llama {
                    Rotary::Interleaved
                } else {
                    Rotary::RotateHalf
                },
                position_scale,
            },
            sliding_window,
            attention_scale,
            embedding_scale: if gemma { (dim as f32).sqrt() } else { 1.0 },
            final_softcap: float("final_logit_softcapping").filter(|c| *c > 0.0).map(|c| c as f32),
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Refuses shapes the decoder cannot run.
    pub fn check(&self) -> Result<(), GgufError> {
        if self.heads == 0
            || self.kv_heads == 0
            || self.head_dim == 0
            || self.value_dim == 0
            || !self.heads.is_multiple_of(self.kv_heads)
            || !self.rope.dims.is_multiple_of(2)
            || self.rope.dims > self.head_dim
            || self.layers == 0
            || self.dim == 0
        {
            return Err(GgufError::Invalid(format!("inconsistent {} shape {self:?}", self.arch.name())));
        }
        Ok(())
    }
}

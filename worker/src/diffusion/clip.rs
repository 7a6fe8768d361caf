//! CLIP's text transformer (`CLIPTextModel`), as Stable Diffusion 1.x uses it: token and
//! position embeddings, pre-norm layers with causal self-attention and a quick-GELU MLP, a final
//! layer norm. `clip_skip` takes an earlier layer's output through the final norm.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::module::embedding;
use serde::Deserialize;

use super::layers::{multi_head_attention, LayerNorm, Linear};
use super::weights::{read_config, Checkpoint};
use super::DiffusionError;

#[derive(Debug, Clone, Deserialize)]
pub struct ClipConfig {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "quick_gelu".into()
}
fn default_positions() -> usize {
    77
}

struct Layer {
    norm1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct ClipTextEncoder {
    config: ClipConfig,
    token_embedding: Tensor<2>,
    position_embedding: Tensor<2>,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    quick_gelu: bool,
}

impl ClipTextEncoder {
    /// Loads `text_encoder/` of a diffusers checkout.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, DiffusionError> {
        let config: ClipConfig = read_config(dir)?;
        let ck = Checkpoint::open(dir, device)?.with_prefix("text_model.");
        Self::from_checkpoint(config, &ck)
    }

    pub fn from_checkpoint(config: ClipConfig, ck: &Checkpoint) -> Result<Self, DiffusionError> {
        let quick_gelu = match config.hidden_act.as_str() {
            "quick_gelu" => true,
            "gelu" => false,
            other => return Err(DiffusionError::Invalid(format!("CLIP activation {other} is not supported"))),
        };
        let eps = config.layer_norm_eps;
        let layers = (0..config.num_hidden_layers)
            .map(|l| {
                let p = |s: &str| format!("encoder.layers.{l}.{s}");
                Ok(Layer {
                    norm1: LayerNorm::load(ck, &p("layer_norm1"), eps)?,
                    q: Linear::load(ck, &p("self_attn.q_proj"))?,
                    k: Linear::load(ck, &p("self_attn.k_proj"))?,
                    v: Linear::load(ck, &p("self_attn.v_proj"))?,
                    out: Linear::load(ck, &p("self_attn.out_proj"))?,
                    norm2: LayerNorm::load(ck, &p("layer_norm2"), eps)?,
                    fc1: Linear::load(ck, &p("mlp.fc1"))?,
                    fc2: Linear::load(ck, &p("mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>, DiffusionError>>()?;
        let token_embedding = ck.tensor::<2>("embeddings.token_embedding.weight")?;
        if token_embedding.dims()[1] != config.hidden_size {
            return Err(DiffusionError::Shape {
                name: "embeddings.token_embedding.weight".into(),
                expected: format!("[vocab, {}]", config.hidden_size),
                found: token_embedding.dims().to_vec(),
            });
        }
        Ok(Self {
            position_embedding: ck.tensor("embeddings.position_embedding.weight")?,
            token_embedding,
            layers,
            final_norm: LayerNorm::load(ck, "final_layer_norm", eps)?,
            quick_gelu,
            config,
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    pub fn vocab_size(&self) -> usize {
        self.token_embedding.dims()[0]
    }

    /// Encodes a batch of token sequences of equal length (77 for Stable Diffusion) into
    /// `[batch, tokens, hidden]` f32. `clip_skip` 1 is the last layer, 2 the one before, and so on.
    pub fn forward(&self, tokens: &[Vec<u32>], clip_skip: usize) -> Result<Tensor<3>, DiffusionError> {
        let n = tokens.first().map_or(0, Vec::len);
        let vocab = self.vocab_size();
        if n == 0 || n > self.config.max_position_embeddings || tokens.iter().any(|t| t.len() != n) {
            return Err(DiffusionError::Invalid(format!(
                "CLIP input must be sequences of equal length 1..={}",
                self.config.max_position_embeddings
            )));
        }
        if tokens.iter().flatten().any(|&t| t as usize >= vocab) {
            return Err(DiffusionError::Invalid(format!("token id out of CLIP's vocabulary of {vocab}")));
        }
        let device = self.token_embedding.device();
        let ids: Vec<i64> = tokens.iter().flatten().map(|&t| i64::from(t)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [tokens.len(), n]), &device);
        let positions = self.position_embedding.clone().narrow(0, 0, n).unsqueeze::<3>();
        let mut x = embedding(self.token_embedding.clone(), ids) + positions;
        let heads = self.config.num_attention_heads;
        let keep = self.layers.len() + 1 - clip_skip.clamp(1, self.layers.len());
        for layer in &self.layers[..keep] {
            let h = layer.norm1.forward(x.clone());
            let attn = multi_head_attention(
                layer.q.forward(h.clone()),
                layer.k.forward(h.clone()),
                layer.v.forward(h),
                heads,
                true,
            );
            x = x + layer.out.forward(attn);
            let h = layer.fc1.forward(layer.norm2.forward(x.clone()));
            let h = if self.quick_gelu {
                h.clone() * sigmoid(h.mul_scalar(1.702))
            } else {
                gelu(h)
            };
            x = x + layer.fc2.forward(h);
        }
        Ok(self.final_norm.forward(x).cast(burn::tensor::FloatDType::F32))
    }
}

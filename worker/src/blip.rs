//! BLIP's captioning model (`BlipForConditionalGeneration`, e.g. Salesforce's
//! `blip-image-captioning-base`, which the public horde's alchemists run for `caption`), loaded
//! from a Hugging Face checkout's `config.json` and safetensors weights under their own names:
//! - the vision encoder, a ViT (`vision_model.`): a patch convolution, a class token and learnt
//!   positions, pre-norm layers (fused `qkv`, `projection`, a GELU MLP), a final layer norm;
//! - the text decoder, a BERT (`text_decoder.bert.`): word and position embeddings with a layer
//!   norm, post-norm layers of causal self-attention, cross-attention to the image and a GELU
//!   MLP, then the language-model head (`text_decoder.cls.predictions.`: dense, GELU, layer norm,
//!   decoder to the vocabulary).

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::gelu;
use burn::tensor::module::embedding;
use serde::Deserialize;

use crate::diffusion::layers::{multi_head_attention, Conv2d, LayerNorm, Linear};
use crate::diffusion::weights::{read_config, Checkpoint};
use crate::diffusion::DiffusionError;

/// `config.json` of a BLIP captioning checkout (what is read of it; defaults are those of
/// Hugging Face's `BlipConfig`).
#[derive(Debug, Clone, Deserialize)]
pub struct BlipConfig {
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
}

/// The text decoder's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    #[serde(default = "default_text_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_text_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_text_eps")]
    pub layer_norm_eps: f64,
    /// The token a caption starts with (`[DEC]`).
    #[serde(default = "default_bos")]
    pub bos_token_id: u32,
    /// The token that ends a caption (`[SEP]`).
    #[serde(default = "default_sep")]
    pub sep_token_id: u32,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
}

/// The vision encoder's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "default_vision_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "default_vision_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "default_vision_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    #[serde(default = "default_patch_size")]
    pub patch_size: usize,
}

fn default_text_heads() -> usize {
    8
}
fn default_text_layers() -> usize {
    12
}
fn default_text_eps() -> f64 {
    1e-12
}
fn default_bos() -> u32 {
    30522
}
fn default_sep() -> u32 {
    102
}
fn default_positions() -> usize {
    512
}
fn default_vision_heads() -> usize {
    12
}
fn default_vision_layers() -> usize {
    12
}
fn default_vision_eps() -> f64 {
    1e-5
}
fn default_image_size() -> usize {
    384
}
fn default_patch_size() -> usize {
    16
}

/// One pre-norm ViT layer.
struct VisionLayer {
    norm1: LayerNorm,
    qkv: Linear,
    projection: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// BLIP's ViT.
struct VisionEncoder {
    patch: Conv2d,
    class_embedding: Tensor<3>,
    position_embedding: Tensor<3>,
    layers: Vec<VisionLayer>,
    post_norm: LayerNorm,
    heads: usize,
    hidden: usize,
}

impl VisionEncoder {
    fn load(ck: &Checkpoint, config: &VisionConfig) -> Result<Self, DiffusionError> {
        let eps = config.layer_norm_eps;
        let layers = (0..config.num_hidden_layers)
            .map(|l| {
                let p = |s: &str| format!("vision_model.encoder.layers.{l}.{s}");
                Ok(VisionLayer {
                    norm1: LayerNorm::load(ck, &p("layer_norm1"), eps)?,
                    qkv: Linear::load(ck, &p("self_attn.qkv"))?,
                    projection: Linear::load(ck, &p("self_attn.projection"))?,
                    norm2: LayerNorm::load(ck, &p("layer_norm2"), eps)?,
                    fc1: Linear::load(ck, &p("mlp.fc1"))?,
                    fc2: Linear::load(ck, &p("mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>, DiffusionError>>()?;
        let patch_size = config.patch_size;
        let patch = Conv2d::load(ck, "vision_model.embeddings.patch_embedding", patch_size, 0)?;
        let hidden = patch.out_channels();
        let positions = (config.image_size / patch_size.max(1)).pow(2) + 1;
        let name = "vision_model.embeddings.position_embedding";
        let position_embedding = ck.tensor::<3>(name)?;
        if position_embedding.dims() != [1, positions, hidden] {
            return Err(DiffusionError::Shape {
                name: name.into(),
                expected: format!("[1, {positions}, {hidden}]"),
                found: position_embedding.dims().to_vec(),
            });
        }
        if config.num_attention_heads == 0 || hidden % config.num_attention_heads != 0 {
            return Err(DiffusionError::Invalid(format!(
                "BLIP vision: {hidden} features in {} heads",
                config.num_attention_heads
            )));
        }
        Ok(Self {
            patch,
            class_embedding: ck.tensor::<3>("vision_model.embeddings.class_embedding")?,
            position_embedding,
            layers,
            post_norm: LayerNorm::load(ck, "vision_model.post_layernorm", eps)?,
            heads: config.num_attention_heads,
            hidden,
        })
    }

    /// `[batch, 3, size, size]` normalized pixels to `[batch, patches + 1, hidden]`.
    fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let batch = pixels.dims()[0];
        let patches = self.patch.forward(pixels);
        let [_, d, h, w] = patches.dims();
        let patches = patches.reshape([batch, d, h * w]).swap_dims(1, 2);
        let class = self.class_embedding.clone().expand([batch, 1, d]);
        let mut x = Tensor::cat(vec![class, patches], 1) + self.position_embedding.clone();
        for layer in &self.layers {
            let h = layer.norm1.forward(x.clone());
            let qkv = layer.qkv.forward(h);
            let part = |i: usize| qkv.clone().narrow(2, i * self.hidden, self.hidden);
            let attn = multi_head_attention(part(0), part(1), part(2), self.heads, false);
            x = x + layer.projection.forward(attn);
            let h = layer.fc1.forward(layer.norm2.forward(x.clone()));
            x = x + layer.fc2.forward(gelu(h));
        }
        self.post_norm.forward(x)
    }
}

/// BERT's attention block: query, key, value, then `output.dense` and a post-norm over the
/// residual.
struct BertAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    norm: LayerNorm,
}

impl BertAttention {
    fn load(ck: &Checkpoint, prefix: &str, eps: f64) -> Result<Self, DiffusionError> {
        let p = |s: &str| format!("{prefix}.{s}");
        Ok(Self {
            query: Linear::load(ck, &p("self.query"))?,
            key: Linear::load(ck, &p("self.key"))?,
            value: Linear::load(ck, &p("self.value"))?,
            dense: Linear::load(ck, &p("output.dense"))?,
            norm: LayerNorm::load(ck, &p("output.LayerNorm"), eps)?,
        })
    }

    /// Attends from `x` to `keys` and `values` (already projected); causal when the queries are
    /// the keys' own positions.
    fn attend(&self, x: Tensor<3>, keys: Tensor<3>, values: Tensor<3>, heads: usize, causal: bool) -> Tensor<3> {
        let q = self.query.forward(x.clone());
        let out = multi_head_attention(q, keys, values, heads, causal);
        self.norm.forward(self.dense.forward(out) + x)
    }
}

/// One BERT decoder layer.
struct TextLayer {
    attention: BertAttention,
    cross: BertAttention,
    intermediate: Linear,
    output: Linear,
    norm: LayerNorm,
}

impl TextLayer {
    /// The layer after its attention blocks: the GELU MLP and its post-norm.
    fn feed_forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = gelu(self.intermediate.forward(x.clone()));
        self.norm.forward(self.output.forward(h) + x)
    }
}

/// What the decoder attends to of one image: each layer's cross-attention keys and values,
/// computed once per caption.
pub struct ImageEmbeddings {
    keys_values: Vec<(Tensor<3>, Tensor<3>)>,
}

/// Each layer's self-attention keys and values of the tokens decoded so far.
struct DecoderCache {
    keys_values: Vec<Option<(Tensor<3>, Tensor<3>)>>,
    len: usize,
}

/// BLIP's text decoder and its language-model head.
struct TextDecoder {
    word_embeddings: Tensor<2>,
    position_embeddings: Tensor<2>,
    embed_norm: LayerNorm,
    layers: Vec<TextLayer>,
    transform: Linear,
    transform_norm: LayerNorm,
    /// `[hidden, vocab]`.
    decoder: Tensor<2>,
    decoder_bias: Tensor<1>,
    heads: usize,
}

impl TextDecoder {
    fn load(ck: &Checkpoint, config: &TextConfig) -> Result<Self, DiffusionError> {
        let eps = config.layer_norm_eps;
        let layers = (0..config.num_hidden_layers)
            .map(|l| {
                let p = |s: &str| format!("text_decoder.bert.encoder.layer.{l}.{s}");
                Ok(TextLayer {
                    attention: BertAttention::load(ck, &p("attention"), eps)?,
                    cross: BertAttention::load(ck, &p("crossattention"), eps)?,
                    intermediate: Linear::load(ck, &p("intermediate.dense"))?,
                    output: Linear::load(ck, &p("output.dense"))?,
                    norm: LayerNorm::load(ck, &p("output.LayerNorm"), eps)?,
                })
            })
            .collect::<Result<Vec<_>, DiffusionError>>()?;
        let e = |s: &str| format!("text_decoder.bert.embeddings.{s}");
        let word_embeddings = ck.tensor::<2>(&e("word_embeddings.weight"))?;
        let hidden = word_embeddings.dims()[1];
        if config.num_attention_heads == 0 || hidden % config.num_attention_heads != 0 {
            return Err(DiffusionError::Invalid(format!(
                "BLIP text: {hidden} features in {} heads",
                config.num_attention_heads
            )));
        }
        // The head's decoder is tied to the word embeddings; checkpoints may keep either name,
        // and its bias under `decoder.bias` or `predictions.bias`.
        let head = "text_decoder.cls.predictions";
        let decoder = match ck.contains(&format!("{head}.decoder.weight")) {
            true => ck.tensor::<2>(&format!("{head}.decoder.weight"))?,
            false => word_embeddings.clone(),
        };
        let bias_name = [format!("{head}.bias"), format!("{head}.decoder.bias")]
            .into_iter()
            .find(|n| ck.contains(n))
            .ok_or_else(|| DiffusionError::Missing(format!("{head}.bias")))?;
        Ok(Self {
            position_embeddings: ck.tensor::<2>(&e("position_embeddings.weight"))?,
            embed_norm: LayerNorm::load(ck, &e("LayerNorm"), eps)?,
            word_embeddings,
            layers,
            transform: Linear::load(ck, &format!("{head}.transform.dense"))?,
            transform_norm: LayerNorm::load(ck, &format!("{head}.transform.LayerNorm"), eps)?,
            decoder: decoder.transpose(),
            decoder_bias: ck.tensor::<1>(&bias_name)?,
            heads: config.num_attention_heads,
        })
    }

    fn vocab_size(&self) -> usize {
        self.word_embeddings.dims()[0]
    }

    /// Each layer's cross-attention keys and values of `image` `[1, patches + 1, vision hidden]`.
    fn image_keys_values(&self, image: Tensor<3>) -> ImageEmbeddings {
        let keys_values = self
            .layers
            .iter()
            .map(|l| (l.cross.key.forward(image.clone()), l.cross.value.forward(image.clone())))
            .collect();
        ImageEmbeddings { keys_values }
    }

    /// Embeddings `[1, n, hidden]` of `tokens` at positions `start..`.
    fn embed(&self, tokens: &[u32], start: usize) -> Tensor<3> {
        let device = self.word_embeddings.device();
        let n = tokens.len();
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, n]), &device);
        let positions = self.position_embeddings.clone().narrow(0, start, n).unsqueeze::<3>();
        self.embed_norm.forward(embedding(self.word_embeddings.clone(), ids) + positions)
    }

    /// The language-model head: `[1, n, hidden]` to logits `[1, n, vocab]`.
    fn head(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.transform_norm.forward(gelu(self.transform.forward(x)));
        burn::tensor::module::linear(h, self.decoder.clone(), Some(self.decoder_bias.clone()))
    }

    /// Logits `[1, tokens, vocab]` of a whole sequence (causal self-attention, no cache).
    fn forward(&self, tokens: &[u32], image: &ImageEmbeddings) -> Tensor<3> {
        let mut x = self.embed(tokens, 0);
        for (layer, (ik, iv)) in self.layers.iter().zip(&image.keys_values) {
            let (k, v) = (layer.attention.key.forward(x.clone()), layer.attention.value.forward(x.clone()));
            x = layer.attention.attend(x, k, v, self.heads, true);
            x = layer.cross.attend(x, ik.clone(), iv.clone(), self.heads, false);
            x = layer.feed_forward(x);
        }
        self.head(x)
    }

    /// Logits `[1, 1, vocab]` of one more token after those in `cache`, which it joins.
    fn step(&self, token: u32, cache: &mut DecoderCache, image: &ImageEmbeddings) -> Tensor<3> {
        let mut x = self.embed(&[token], cache.len);
        for ((layer, (ik, iv)), past) in self.layers.iter().zip(&image.keys_values).zip(&mut cache.keys_values) {
            let (k, v) = (layer.attention.key.forward(x.clone()), layer.attention.value.forward(x.clone()));
            let (k, v) = match past.take() {
                Some((pk, pv)) => (Tensor::cat(vec![pk, k], 1), Tensor::cat(vec![pv, v], 1)),
                None => (k, v),
            };
            *past = Some((k.clone(), v.clone()));
            // One query at the newest position sees every key: no mask.
            x = layer.attention.attend(x, k, v, self.heads, false);
            x = layer.cross.attend(x, ik.clone(), iv.clone(), self.heads, false);
            x = layer.feed_forward(x);
        }
        cache.len += 1;
        self.head(x)
    }
}

/// A loaded BLIP captioning model.
pub struct Blip {
    config: BlipConfig,
    vision: VisionEncoder,
    text: TextDecoder,
}

impl Blip {
    /// Loads `config.json` and the `*.safetensors` weights of a checkout directory.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, DiffusionError> {
        let config: BlipConfig = read_config(dir)?;
        let ck = Checkpoint::open(dir, device)?;
        Self::from_checkpoint(config, &ck)
    }

    /// The model from weights already open.
    pub fn from_checkpoint(config: BlipConfig, ck: &Checkpoint) -> Result<Self, DiffusionError> {
        Ok(Self {
            vision: VisionEncoder::load(ck, &config.vision_config)?,
            text: TextDecoder::load(ck, &config.text_config)?,
            config,
        })
    }

    pub fn config(&self) -> &BlipConfig {
        &self.config
    }

    /// The side of the square images the vision encoder takes.
    pub fn image_size(&self) -> usize {
        self.config.vision_config.image_size
    }

    pub fn vocab_size(&self) -> usize {
        self.text.vocab_size()
    }

    /// Encodes normalized pixels `[1, 3, size, size]` into what the decoder attends to.
    pub fn encode_image(&self, pixels: Tensor<4>) -> Result<ImageEmbeddings, DiffusionError> {
        let size = self.image_size();
        if pixels.dims() != [1, 3, size, size] {
            return Err(DiffusionError::Invalid(format!(
                "BLIP takes pixels [1, 3, {size}, {size}], not {:?}",
                pixels.dims()
            )));
        }
        Ok(self.text.image_keys_values(self.vision.forward(pixels)))
    }

    /// The decoder's logits `[tokens, vocab]` (f32) of `tokens` given the image embeddings.
    pub fn logits(&self, tokens: &[u32], image: &ImageEmbeddings) -> Result<Tensor<2>, DiffusionError> {
        let n = tokens.len();
        let max = self
            .config
            .text_config
            .max_position_embeddings
            .min(self.text.position_embeddings.dims()[0]);
        if n == 0 || n > max {
            return Err(DiffusionError::Invalid(format!("BLIP decodes 1..={max} tokens, not {n}")));
        }
        let vocab = self.vocab_size();
        if tokens.iter().any(|&t| t as usize >= vocab) {
            return Err(DiffusionError::Invalid(format!("token id out of BLIP's vocabulary of {vocab}")));
        }
        let logits = self.text.forward(tokens, image);
        Ok(logits.reshape([n, vocab]).cast(burn::tensor::FloatDType::F32))
    }

    /// Greedy decoding from `[DEC]`, one token at a time over cached keys and values: the
    /// caption's token ids (without `[DEC]`), ending before `[SEP]` or after `max_tokens`
    /// tokens.
    pub fn greedy(&self, image: &ImageEmbeddings, max_tokens: usize) -> Result<Vec<u32>, DiffusionError> {
        let text = &self.config.text_config;
        let positions = text.max_position_embeddings.min(self.text.position_embeddings.dims()[0]);
        let limit = max_tokens.min(positions.saturating_sub(1));
        let mut cache = DecoderCache {
            keys_values: (0..self.text.layers.len()).map(|_| None).collect(),
            len: 0,
        };
        let mut tokens = vec![text.bos_token_id];
        while tokens.len() <= limit {
            let last = tokens[tokens.len() - 1];
            if last as usize >= self.vocab_size() {
                return Err(DiffusionError::Invalid(format!("token {last} out of BLIP's vocabulary")));
            }
            let logits = self.text.step(last, &mut cache, image).reshape([self.vocab_size()]);
            let values: Vec<f32> = logits
                .cast(burn::tensor::FloatDType::F32)
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| DiffusionError::Invalid(format!("BLIP logits: {e:?}")))?;
            let next = argmax(&values);
            if next == text.sep_token_id {
                break;
            }
            tokens.push(next);
        }
        Ok(tokens[1..].to_vec())
    }
}

/// The index of the largest value (the first of equals), as PyTorch's `argmax`.
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

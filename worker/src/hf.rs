//! Hugging Face Llama checkpoints: a directory with `config.json`, `model.safetensors` and
//! `tokenizer.json`.
//!
//! Tensor names are mapped onto the GGUF names the decoder uses. HF stores q/k projections for
//! "rotate-half" rotary embeddings (the two halves of each head are the pairs); the decoder, like
//! GGUF files, uses interleaved pairs `(2i, 2i+1)`, so q/k rows are permuted at load:
//! interleaved row `h·hd + 2i + j` = HF row `h·hd + j·hd/2 + i`.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use crate::gguf::{f16_to_f32, GgufError};
use crate::llama::{HostTensor, LlamaConfig, Weights};

/// The parts of `config.json` the decoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_positions() -> usize {
    2048
}

impl HfConfig {
    pub fn llama(&self) -> LlamaConfig {
        LlamaConfig::llama(
            self.num_hidden_layers,
            self.hidden_size,
            self.num_attention_heads,
            self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            self.intermediate_size,
            self.vocab_size,
            self.rms_norm_eps,
            self.rope_theta,
            self.max_position_embeddings,
        )
    }
}

/// A loaded `model.safetensors` with its config.
pub struct HfWeights {
    pub config: HfConfig,
    bytes: Vec<u8>,
}

fn invalid(e: impl std::fmt::Display) -> GgufError {
    GgufError::Invalid(e.to_string())
}

/// HF name of a GGUF-named tensor, and the head count to permute q/k rows for.
fn hf_name(name: &str, c: &HfConfig) -> Option<(String, Option<usize>)> {
    let kv = c.num_key_value_heads.unwrap_or(c.num_attention_heads);
    Some(match name {
        "token_embd.weight" => ("model.embed_tokens.weight".into(), None),
        "output_norm.weight" => ("model.norm.weight".into(), None),
        "output.weight" => ("lm_head.weight".into(), None),
        _ => {
            let rest = name.strip_prefix("blk.")?;
            let (layer, part) = rest.split_once('.')?;
            let (hf, heads) = match part {
                "attn_norm.weight" => ("input_layernorm.weight", None),
                "attn_q.weight" => ("self_attn.q_proj.weight", Some(c.num_attention_heads)),
                "attn_k.weight" => ("self_attn.k_proj.weight", Some(kv)),
                "attn_v.weight" => ("self_attn.v_proj.weight", None),
                "attn_output.weight" => ("self_attn.o_proj.weight", None),
                "ffn_norm.weight" => ("post_attention_layernorm.weight", None),
                "ffn_gate.weight" => ("mlp.gate_proj.weight", None),
                "ffn_up.weight" => ("mlp.up_proj.weight", None),
                "ffn_down.weight" => ("mlp.down_proj.weight", None),
                _ => return None,
            };
            (format!("model.layers.{layer}.{hf}"), heads)
        }
    })
}

/// Reorders the rows of a `[heads·hd, cols]` matrix from rotate-half to interleaved pairs.
pub fn rotate_half_to_interleaved(data: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    permute_pairs(data, heads, cols, false)
}

/// The inverse: interleaved pairs back to rotate-half (how an HF checkpoint stores q/k).
pub fn interleaved_to_rotate_half(data: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    permute_pairs(data, heads, cols, true)
}

fn permute_pairs(data: &[f32], heads: usize, cols: usize, inverse: bool) -> Vec<f32> {
    let rows = data.len() / cols.max(1);
    let hd = rows / heads.max(1);
    let half = hd / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let (interleaved, halves) = ((h * hd + 2 * i + j) * cols, (h * hd + j * half + i) * cols);
                let (dst, src) = if inverse { (halves, interleaved) } else { (interleaved, halves) };
                out[dst..dst + cols].copy_from_slice(&data[src..src + cols]);
            }
        }
    }
    out
}

impl HfWeights {
    /// Reads `dir/config.json` and `dir/model.safetensors`.
    pub fn open(dir: &Path) -> Result<Self, GgufError> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| GgufError::Io(cfg_path.display().to_string(), e))?;
        let config: HfConfig = serde_json::from_str(&text).map_err(|e| invalid(format!("{}: {e}", cfg_path.display())))?;
        let st_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&st_path).map_err(|e| GgufError::Io(st_path.display().to_string(), e))?;
        SafeTensors::deserialize(&bytes).map_err(invalid)?;
        Ok(Self { config, bytes })
    }
}

impl Weights for HfWeights {
    fn has(&self, name: &str) -> bool {
        let Some((hf, _)) = hf_name(name, &self.config) else {
            return false;
        };
        SafeTensors::deserialize(&self.bytes).is_ok_and(|st| st.tensor(&hf).is_ok())
    }

    fn tensor(&self, name: &str) -> Result<Option<HostTensor>, GgufError> {
        let Some((hf, permute_heads)) = hf_name(name, &self.config) else {
            return Ok(None);
        };
        let st = SafeTensors::deserialize(&self.bytes).map_err(invalid)?;
        let view = match st.tensor(&hf) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        };
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => raw.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            other => return Err(invalid(format!("{hf}: unsupported dtype {other:?}"))),
        };
        let shape = view.shape().to_vec();
        let data = match (permute_heads, shape.as_slice()) {
            (Some(heads), [_, cols]) => rotate_half_to_interleaved(&data, heads, *cols),
            _ => data,
        };
        Ok(Some((data, shape)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_moves_halves_into_pairs() {
        // One head of 4 rows (hd 4, half 2), 1 column: HF rows [a0, a1, b0, b1] → [a0, b0, a1, b1].
        assert_eq!(rotate_half_to_interleaved(&[0.0, 1.0, 2.0, 3.0], 1, 1), vec![0.0, 2.0, 1.0, 3.0]);
        // Two heads, 2 columns.
        let data: Vec<f32> = (0..16).map(|x| x as f32).collect();
        let out = rotate_half_to_interleaved(&data, 2, 2);
        assert_eq!(&out[..8], &[0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
        assert_eq!(&out[8..], &[8.0, 9.0, 12.0, 13.0, 10.0, 11.0, 14.0, 15.0]);
        assert_eq!(interleaved_to_rotate_half(&out, 2, 2), data);
    }
}

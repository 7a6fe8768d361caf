//! A GGUF text model as a `TextBackend`: tokenizer, Llama decoder on burn, sampler, stop sequences,
//! left truncation to the context budget.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use horde_protocol::text::TextParams;

use crate::backend::{Generated, TextBackend, TextJob};
use crate::batching::Batcher;
use crate::chat_template::ChatTemplate;
use crate::decoding::{Decoding, Vocabulary};
use crate::device::Compute;
use crate::gguf::{Gguf, GgufError};
use crate::hf::HfWeights;
use crate::llama::{Llama, LlamaConfig};
use crate::tokenizer::{self, SpecialTokens, Tokenizer, TokenizerError};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}: give a .gguf file or a directory with config.json, model.safetensors and tokenizer.json")]
    Format(String),
}

/// One loaded model.
pub struct TextModel {
    pub name: String,
    model: Llama,
    tokenizer: Tokenizer,
    special: SpecialTokens,
    /// The model's chat template, for jobs that carry chat messages.
    chat_template: Option<ChatTemplate>,
}

/// The name a model file is served under: its file name without `.gguf` and a quantization
/// suffix, written with a dot or a dash as llama.cpp's tools and KoboldCpp's users do
/// (`SmolLM2-135M-Instruct.Q4_1.gguf` → `SmolLM2-135M-Instruct`, `gemma-3-270m-q4_k_m.gguf` →
/// `gemma-3-270m`).
pub fn model_name_from_path(path: &Path) -> String {
    let stem = path
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .trim_end_matches(".gguf");
    match stem.rfind(['.', '-']) {
        Some(at) if at > 0 && is_quantization(&stem[at + 1..]) => stem[..at].to_string(),
        _ => stem.to_string(),
    }
}

/// Whether a file-name part names a GGUF encoding (`Q4_K_M`, `q8_0`, `IQ2_XS`, `F16`, `BF16`).
fn is_quantization(part: &str) -> bool {
    let p = part.to_ascii_uppercase();
    let rest = p
        .strip_prefix("IQ")
        .or_else(|| p.strip_prefix("TQ"))
        .or_else(|| p.strip_prefix('Q'))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    match rest {
        Some(r) => r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        None => matches!(p.as_str(), "F16" | "F32" | "BF16"),
    }
}

/// Where `scripts/fetch-models.sh` keeps models: `$HORDE_MODEL_CACHE`, else `~/.cache/horde/models`.
pub fn model_cache() -> PathBuf {
    std::env::var_os("HORDE_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/horde/models"))
}

/// A path as given if it exists; else a file in the model cache named like it (`SmolLM2-135M-Instruct`
/// finds `SmolLM2-135M-Instruct.Q4_1.gguf`).
pub fn resolve_model(spec: &str) -> PathBuf {
    let given = PathBuf::from(spec);
    if given.exists() || spec.contains('/') {
        return given;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(model_cache())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "gguf") && model_name_from_path(p) == spec)
        .collect();
    found.sort();
    found.into_iter().next().unwrap_or(given)
}

/// A stable seed for a job id (below 2³¹, safe for every client), so a job can be reproduced.
pub fn seed_for(job_id: &str) -> u64 {
    job_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
        % (1 << 31)
}

impl TextModel {
    /// Loads `[NAME=]PATH`: a `.gguf` file, or a Hugging Face directory (`config.json`,
    /// `model.safetensors`, `tokenizer.json`), or a model name found in the model cache.
    pub fn load(spec: &str, compute: &Compute, f16_weights: bool) -> Result<Self, ModelError> {
        Self::load_offloaded(spec, compute, f16_weights, None)
    }

    /// `load` with only the first `gpu_layers` layers on a burn device and the rest on the host
    /// engine (`--gpu-layers`, see `Llama::load_with_gpu_layers`); `None` puts all on `compute`.
    pub fn load_offloaded(spec: &str, compute: &Compute, f16_weights: bool, gpu_layers: Option<usize>) -> Result<Self, ModelError> {
        let (name, given) = match spec.split_once('=') {
            Some((n, p)) if !n.is_empty() => (Some(n.to_string()), p),
            _ => (None, spec),
        };
        let resolved = resolve_model(given);
        let path = resolved.as_path();
        if path.is_dir() {
            let weights = HfWeights::open(path)?;
            let tok_path = path.join("tokenizer.json");
            let tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
                .map(Tokenizer::from)
                .map_err(|e| TokenizerError::Build(format!("{}: {e}", tok_path.display())))?;
            let special = SpecialTokens::new(weights.config.bos_token_id, weights.config.eos_token_id, false, &[], &tokenizer);
            let model = Llama::load_with_gpu_layers(weights.config.llama(), &weights, compute, f16_weights, gpu_layers)?;
            let dir_name = path.file_name().and_then(|s| s.to_str()).unwrap_or("model").to_string();
            let template = std::fs::read_to_string(path.join("tokenizer_config.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["chat_template"].as_str().map(str::to_string));
            let chat_template = chat_template(template.as_deref(), &tokenizer, &special);
            return Ok(Self {
                name: name.unwrap_or(dir_name),
                model,
                tokenizer,
                special,
                chat_template,
            });
        }
        if path.extension().and_then(|e| e.to_str()) != Some("gguf") {
            return Err(ModelError::Format(path.display().to_string()));
        }
        let g = Gguf::open(path)?;
        let (tokenizer, special) = tokenizer::from_gguf(&g)?;
        let model = Llama::load_with_gpu_layers(LlamaConfig::from_gguf(&g)?, &g, compute, f16_weights, gpu_layers)?;
        let chat_template = chat_template(g.get_str("tokenizer.chat_template").ok(), &tokenizer, &special);
        Ok(Self {
            name: name.unwrap_or_else(|| model_name_from_path(path)),
            model,
            tokenizer,
            special,
            chat_template,
        })
    }

    /// Whether the model has a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// The prompt for a job: its chat messages in the model's template when both exist, else
    /// the prompt the horde sent (for chat requests, a plain transcript).
    pub fn prompt_for(&self, payload: &horde_protocol::text::TextPayload) -> Result<String, String> {
        match (&self.chat_template, &payload.messages) {
            (Some(t), Some(messages)) if !messages.is_empty() => t.render(messages),
            _ => Ok(payload.prompt.clone().unwrap_or_default()),
        }
    }

    /// Generates from a raw prompt with the payload's settings.
    pub fn generate(&self, prompt: &str, params: &TextParams, seed: u64) -> Result<Generated, String> {
        self.run(prompt, params, seed, None)
    }

    /// Generates, reporting the settled text after each token (see
    /// `TextBackend::generate_streaming`); stops early when `on_text` returns `false`.
    pub fn generate_streaming(
        &self,
        prompt: &str,
        params: &TextParams,
        seed: u64,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generated, String> {
        self.run(prompt, params, seed, Some(on_text))
    }

    /// The decoding state of a job on this model and its prompt's tokens.
    pub(crate) fn start(&self, prompt: &str, params: &TextParams, seed: u64, streaming: bool) -> Result<(Decoding, Vec<u32>), String> {
        Decoding::start(self.vocabulary(), prompt, params, seed, self.model.config.context, streaming)
    }

    pub(crate) fn vocabulary(&self) -> Vocabulary<'_> {
        Vocabulary {
            tokenizer: &self.tokenizer,
            special: &self.special,
        }
    }

    pub(crate) fn llama(&self) -> &Llama {
        &self.model
    }

    /// Passes over the model's weights so far (see `Llama::weight_passes`).
    pub fn weight_passes(&self) -> u64 {
        self.model.weight_passes()
    }

    /// The decode loop of a job run alone. The text is decoded after each token only when someone
    /// looks at it: stop sequences, or a listener.
    fn run(
        &self,
        prompt: &str,
        params: &TextParams,
        seed: u64,
        mut on_text: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<Generated, String> {
        let vocab = self.vocabulary();
        let (mut decoding, ids) = self.start(prompt, params, seed, on_text.is_some())?;
        let mut cache = self.model.new_cache_with_capacity(decoding.positions(ids.len()));
        let mut logits = self.model.forward(&ids, &mut cache);
        loop {
            let step = decoding.advance(vocab, &mut logits, cache.len())?;
            if let (Some(text), Some(on_text)) = (&step.text, on_text.as_mut()) {
                if !on_text(text) {
                    decoding.cancel(vocab)?;
                    break;
                }
            }
            match step.next {
                Some(next) => logits = self.model.forward(&[next], &mut cache),
                None => break,
            }
        }
        decoding.finish(vocab)
    }
}

/// The template of a model: its own if it has one that parses (one that does not is logged and
/// ignored), else a built-in one chosen by its vocabulary's marker tokens (see
/// `chat_template::builtin_for`).
fn chat_template(source: Option<&str>, tokenizer: &Tokenizer, special: &SpecialTokens) -> Option<ChatTemplate> {
    let token = |id: Option<u32>| id.and_then(|i| tokenizer.token_text(i)).unwrap_or_default();
    let (bos, eos) = (token(special.bos), token(special.eos));
    let own = source.and_then(|source| match ChatTemplate::new(source, &bos, &eos) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the model's chat template");
            None
        }
    });
    let template = own.or_else(|| {
        let (name, builtin) = crate::chat_template::builtin_for(|t| tokenizer.token_id(t).is_some())?;
        tracing::info!(template = name, "the model has no chat template: using a built-in one");
        ChatTemplate::new(builtin, &bos, &eos).ok()
    })?;
    Some(template.with_tokenizer_bos(special.add_bos && special.bos.is_some()))
}

/// The models a worker serves, each with its batch (see `crate::batching`): the jobs running
/// at the same time on a model share its forward passes.
pub struct TextModels {
    models: Vec<Arc<TextModel>>,
    batches: Vec<Batcher>,
}

impl TextModels {
    /// Serves `models`, up to `batch` jobs of a model in each forward pass (the worker's
    /// `--threads`).
    pub fn new(models: Vec<TextModel>, batch: usize) -> Self {
        let models: Vec<Arc<TextModel>> = models.into_iter().map(Arc::new).collect();
        let batches = models.iter().map(|m| Batcher::start(m.clone(), batch)).collect();
        Self { models, batches }
    }
}

impl TextBackend for TextModels {
    fn models(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }

    fn generate(&self, job: &TextJob) -> Result<Generated, String> {
        let (batch, prompt, seed) = self.prepare(job)?;
        batch.generate(&prompt, &job.payload.params, seed, None)
    }

    fn generate_streaming(&self, job: &TextJob, on_text: &mut dyn FnMut(&str) -> bool) -> Result<Generated, String> {
        let (batch, prompt, seed) = self.prepare(job)?;
        batch.generate(&prompt, &job.payload.params, seed, Some(on_text))
    }
}

impl TextModels {
    /// The batch of the job's model, its prompt (its messages in the model's template, when both
    /// exist) and seed.
    fn prepare(&self, job: &TextJob) -> Result<(&Batcher, String, u64), String> {
        let at = self.models.iter().position(|m| m.name == job.model).unwrap_or(0);
        let (model, batch) = self.models.get(at).zip(self.batches.get(at)).ok_or("no model loaded")?;
        let prompt = model.prompt_for(&job.payload)?;
        let seed = job
            .payload
            .params
            .sampler_seed
            .map_or_else(|| seed_for(&job.id), |s| s.unsigned_abs());
        Ok((batch, prompt, seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::writer::write;
    use crate::gguf::{TensorType, Value};

    /// A tiny Llama whose every answer is `<end_of_turn>` (id 5): its blocks add nothing, every
    /// embedding is all ones and only `<end_of_turn>`'s output row is not zero. The vocabulary is
    /// Gemma-like (SentencePiece, BOS added, no chat template in the file).
    fn answers_end_of_turn() -> PathBuf {
        let tokens = [
            "<pad>",
            "<eos>",
            "<bos>",
            "<unk>",
            "<start_of_turn>",
            "<end_of_turn>",
            "\n",
            "\u{2581}",
            "h",
            "i",
            "hi",
            "x",
        ];
        let types = [3, 3, 3, 3, 3, 3, 4, 1, 1, 1, 1, 1];
        let (vocab, d, ffn) = (tokens.len(), 32usize, 64usize);
        let mut output = vec![0.0f32; vocab * d];
        output[5 * d..6 * d].fill(1.0);
        let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
            ("token_embd.weight".into(), vec![vocab, d], vec![1.0; vocab * d]),
            ("output_norm.weight".into(), vec![d], vec![1.0; d]),
            ("output.weight".into(), vec![vocab, d], output),
        ];
        let p = |s: &str| format!("blk.0.{s}.weight");
        for (name, shape) in [
            ("attn_norm", vec![d]),
            ("ffn_norm", vec![d]),
            ("attn_q", vec![d, d]),
            ("attn_k", vec![d, d]),
            ("attn_v", vec![d, d]),
            ("attn_output", vec![d, d]),
            ("ffn_gate", vec![ffn, d]),
            ("ffn_up", vec![ffn, d]),
            ("ffn_down", vec![d, ffn]),
        ] {
            let fill = if name.ends_with("norm") { 1.0 } else { 0.0 };
            let n = shape.iter().product();
            tensors.push((p(name), shape, vec![fill; n]));
        }
        let refs: Vec<(&str, Vec<usize>, TensorType, Vec<f32>)> = tensors
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.clone(), TensorType::F32, v.clone()))
            .collect();
        let strings = |items: &[&str]| Value::Array(items.iter().map(|t| Value::String(t.to_string())).collect());
        let bytes = write(
            &[
                ("general.architecture", Value::String("llama".into())),
                ("llama.block_count", Value::U32(1)),
                ("llama.embedding_length", Value::U32(d as u32)),
                ("llama.attention.head_count", Value::U32(2)),
                ("llama.attention.head_count_kv", Value::U32(2)),
                ("llama.feed_forward_length", Value::U32(ffn as u32)),
                ("llama.context_length", Value::U32(64)),
                ("tokenizer.ggml.model", Value::String("llama".into())),
                ("tokenizer.ggml.tokens", strings(&tokens)),
                (
                    "tokenizer.ggml.token_type",
                    Value::Array(types.iter().map(|t| Value::I32(*t)).collect()),
                ),
                ("tokenizer.ggml.scores", Value::Array(vec![Value::F32(-1.0); vocab])),
                ("tokenizer.ggml.bos_token_id", Value::U32(2)),
                ("tokenizer.ggml.eos_token_id", Value::U32(1)),
                ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
                ("tokenizer.ggml.add_space_prefix", Value::Bool(false)),
            ],
            &refs,
        );
        let path = std::env::temp_dir().join(format!("hw-end-of-turn-{}.gguf", std::process::id()));
        std::fs::write(&path, bytes).expect("write the model");
        path
    }

    #[test]
    fn end_of_turn_stops_generation_and_gemma_vocabularies_get_gemma_chat() {
        let path = answers_end_of_turn();
        let model = TextModel::load(path.to_str().expect("utf-8 path"), &Compute::Host, false).expect("model");
        let _ = std::fs::remove_file(&path);
        assert!(model.special.ends_generation(5) && model.special.ends_generation(1));
        let params = TextParams {
            max_length: Some(8),
            top_k: Some(1),
            ..Default::default()
        };
        // <end_of_turn> is not EOS, yet it ends the answer before any token.
        let out = model.generate("hi", &params, 1).expect("generate");
        assert_eq!((out.tokens, out.text.as_str()), (0, ""));
        // The file has no chat template: Gemma's built-in one, without the BOS the tokenizer adds.
        assert!(model.has_chat_template());
        let payload = horde_protocol::text::TextPayload {
            messages: Some(vec![horde_protocol::text::ChatMessage {
                role: "user".into(),
                content: "hi".into(),
            }]),
            ..Default::default()
        };
        assert_eq!(
            model.prompt_for(&payload).expect("prompt"),
            "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn model_names_resolve_in_the_cache() {
        let dir = std::env::temp_dir().join(format!("hw-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("Tiny-1B.Q8_0.gguf"), b"x").expect("write");
        std::env::set_var("HORDE_MODEL_CACHE", &dir);
        assert_eq!(resolve_model("Tiny-1B"), dir.join("Tiny-1B.Q8_0.gguf"));
        assert_eq!(resolve_model("Other"), PathBuf::from("Other"));
        assert_eq!(resolve_model("./rel/x.gguf"), PathBuf::from("./rel/x.gguf"));
        std::env::remove_var("HORDE_MODEL_CACHE");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_and_seeds() {
        assert_eq!(
            model_name_from_path(Path::new("/m/SmolLM2-135M-Instruct.Q4_1.gguf")),
            "SmolLM2-135M-Instruct"
        );
        assert_eq!(model_name_from_path(Path::new("tiny.gguf")), "tiny");
        assert_eq!(model_name_from_path(Path::new("v1.5-model.F16.gguf")), "v1.5-model");
        assert_eq!(model_name_from_path(Path::new("gemma-3-270m-q4_k_m.gguf")), "gemma-3-270m");
        assert_eq!(
            model_name_from_path(Path::new("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf")),
            "Meta-Llama-3.1-8B-Instruct"
        );
        assert_eq!(model_name_from_path(Path::new("Mistral-Nemo-IQ2_XS.gguf")), "Mistral-Nemo");
        assert_eq!(
            model_name_from_path(Path::new("qwen2.5-7b-instruct-bf16.gguf")),
            "qwen2.5-7b-instruct"
        );
        // A name part that only looks numeric is kept.
        assert_eq!(model_name_from_path(Path::new("phi-3.gguf")), "phi-3");
        assert_eq!(model_name_from_path(Path::new("model-Qwen.gguf")), "model-Qwen");
        assert_eq!(seed_for("a"), seed_for("a"));
        assert_ne!(seed_for("a"), seed_for("b"));
    }
}

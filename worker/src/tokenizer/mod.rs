//! The tokenizer stored in a GGUF file's metadata (or a Hugging Face `tokenizer.json`).
//!
//! `tokenizer.ggml.model` names the algorithm:
//! - `llama`: SentencePiece ([`spm`]): `tokenizer.ggml.tokens`, `scores` and `token_type`
//!   (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), merged by score with
//!   byte fallback; `tokenizer.ggml.add_space_prefix` (default true) prefixes text with a space.
//! - `gpt2`: byte-level BPE ([`bpe`]) with `tokenizer.ggml.merges` and the pre-tokenizer named by
//!   `tokenizer.ggml.pre`.
//!
//! Both recognise control tokens written in the text (`<|im_start|>`, `<start_of_turn>`), and
//! decoding drops them. [`SpecialTokens`] holds BOS, whether prompts start with it, and every
//! token that ends generation.

pub mod bpe;
mod special;
pub mod spm;

pub use special::{SpecialTokens, END_OF_TURN_TEXTS};
pub use spm::SentencePiece;

use crate::gguf::{Gguf, GgufError, Value};

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unsupported tokenizer model '{0}' (tokenizer.ggml.model must be 'llama' (SentencePiece) or 'gpt2' (BPE))")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Build(String),
    #[error("encoding: {0}")]
    Encode(String),
    #[error("decoding: {0}")]
    Decode(String),
}

/// What a vocabulary entry is (GGUF `tokenizer.ggml.token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    /// The kind of a GGUF token type code; codes outside 2..=6 are normal tokens.
    pub fn from_code(code: i64) -> Self {
        match code {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }
}

/// A text tokenizer: SentencePiece, or one the `tokenizers` crate runs (GGUF BPE, HF files).
#[derive(Debug, Clone)]
pub struct Tokenizer(Inner);

#[derive(Debug, Clone)]
enum Inner {
    SentencePiece(Box<SentencePiece>),
    Hf(Box<tokenizers::Tokenizer>),
}

impl From<SentencePiece> for Tokenizer {
    fn from(t: SentencePiece) -> Self {
        Self(Inner::SentencePiece(Box::new(t)))
    }
}

impl From<tokenizers::Tokenizer> for Tokenizer {
    fn from(t: tokenizers::Tokenizer) -> Self {
        Self(Inner::Hf(Box::new(t)))
    }
}

impl Tokenizer {
    /// Token ids of `text`, without BOS; special tokens written in it are recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        match &self.0 {
            Inner::SentencePiece(t) => t.encode(text),
            Inner::Hf(t) => Ok(t
                .encode(text, false)
                .map_err(|e| TokenizerError::Encode(e.to_string()))?
                .get_ids()
                .to_vec()),
        }
    }

    /// The text of `ids`, control tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        match &self.0 {
            Inner::SentencePiece(t) => t.decode(ids),
            Inner::Hf(t) => t.decode(ids, true).map_err(|e| TokenizerError::Decode(e.to_string())),
        }
    }

    /// The vocabulary's text of `id` as stored (`▁Hello`, `ĠHello`, `<|im_start|>`).
    pub fn token_text(&self, id: u32) -> Option<String> {
        match &self.0 {
            Inner::SentencePiece(t) => t.piece(id).map(str::to_string),
            Inner::Hf(t) => t.id_to_token(id),
        }
    }

    /// The id of a token by its stored text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        match &self.0 {
            Inner::SentencePiece(t) => t.id(text),
            Inner::Hf(t) => t.token_to_id(text),
        }
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        match &self.0 {
            Inner::SentencePiece(t) => t.len(),
            Inner::Hf(t) => t.get_vocab_size(true),
        }
    }
}

/// Builds the tokenizer described by `g`'s metadata and its special tokens.
pub fn from_gguf(g: &Gguf) -> Result<(Tokenizer, SpecialTokens), TokenizerError> {
    let model = g.get_str("tokenizer.ggml.model")?;
    let tokens = || g.get_strings("tokenizer.ggml.tokens");
    let kinds = |n: usize| -> Vec<TokenKind> {
        let codes = g.get("tokenizer.ggml.token_type").and_then(Value::as_array).unwrap_or_default();
        (0..n)
            .map(|i| TokenKind::from_code(codes.get(i).and_then(Value::as_i64).unwrap_or(1)))
            .collect()
    };
    let flag = |key: &str| g.get(key).and_then(Value::as_bool);
    let id = |key: &str| g.get(key).and_then(Value::as_i64).and_then(|v| u32::try_from(v).ok());
    // llama.cpp's defaults where the file says nothing.
    let (tokenizer, default_bos, default_eos, default_add_bos) = match model {
        "llama" => {
            let tokens = tokens()?;
            let kinds = kinds(tokens.len());
            let scores: Vec<f32> = match g.get("tokenizer.ggml.scores").and_then(Value::as_array) {
                Some(s) => s.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect(),
                None => vec![0.0; tokens.len()],
            };
            let unknown =
                id("tokenizer.ggml.unknown_token_id").or_else(|| kinds.iter().position(|k| *k == TokenKind::Unknown).map(|i| i as u32));
            let spm = SentencePiece::new(
                tokens.iter().map(|t| t.to_string()).collect(),
                kinds,
                scores,
                unknown,
                flag("tokenizer.ggml.add_space_prefix").unwrap_or(true),
            )?;
            (Tokenizer::from(spm), Some(1), Some(2), true)
        }
        "gpt2" => {
            let tokens = tokens()?;
            let kinds = kinds(tokens.len());
            let merges = g.get_strings("tokenizer.ggml.merges")?;
            let pre = bpe::pre_tokenizer_named(g.get("tokenizer.ggml.pre").and_then(Value::as_str));
            let tk = bpe::build(&tokens, &kinds, &merges, pre)?;
            (Tokenizer::from(tk), None, None, pre.adds_bos())
        }
        other => return Err(TokenizerError::Unsupported(other.to_string())),
    };
    let special = SpecialTokens::new(
        id("tokenizer.ggml.bos_token_id").or(default_bos),
        id("tokenizer.ggml.eos_token_id").or(default_eos),
        flag("tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos),
        &[id("tokenizer.ggml.eot_token_id"), id("tokenizer.ggml.eom_token_id")],
        &tokenizer,
    );
    Ok((tokenizer, special))
}

/// Encodes text (control tokens written in the text are recognised), adding BOS if the model asks.
pub fn encode(tk: &Tokenizer, special: &SpecialTokens, text: &str) -> Result<Vec<u32>, TokenizerError> {
    let mut ids = Vec::with_capacity(text.len() / 3 + 2);
    if special.add_bos {
        ids.extend(special.bos);
    }
    ids.extend(tk.encode(text)?);
    Ok(ids)
}

/// Decodes ids to text, dropping control tokens.
pub fn decode(tk: &Tokenizer, ids: &[u32]) -> Result<String, TokenizerError> {
    tk.decode(ids)
}

#[cfg(test)]
mod tests;

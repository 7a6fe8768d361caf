//! The tokenizer stored in a GGUF file's metadata, rebuilt for the `tokenizers` crate.
//!
//! GGUF `gpt2` tokenizers are byte-level BPE: `tokenizer.ggml.tokens` (the vocabulary, ids in
//! order), `tokenizer.ggml.merges` ("a b" pairs by rank) and `tokenizer.ggml.token_type` (3 marks
//! control tokens such as `<|im_start|>`). The pre-tokenizer depends on `tokenizer.ggml.pre`:
//! `smollm` splits every digit on its own before the GPT-2 regex.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use crate::gguf::{Gguf, GgufError, Value};

/// GGUF token type of control tokens.
const CONTROL: i64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("unsupported tokenizer model '{0}' (only gpt2-style byte-level BPE)")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Build(String),
}

/// Special token ids and flags from the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
}

/// Builds the tokenizer described by `g`'s metadata.
pub fn from_gguf(g: &Gguf) -> Result<(Tokenizer, SpecialTokens), TokenizerError> {
    let model = g.get_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(TokenizerError::Unsupported(model.to_string()));
    }
    let tokens = g.get_strings("tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = g
        .get_strings("tokenizer.ggml.merges")?
        .into_iter()
        .filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    let mut tk = Tokenizer::new(bpe);
    let byte_level = PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true));
    let pre = match g.get("tokenizer.ggml.pre").and_then(Value::as_str) {
        Some("smollm") => PreTokenizerWrapper::Sequence(Sequence::new(vec![PreTokenizerWrapper::Digits(Digits::new(true)), byte_level])),
        _ => byte_level,
    };
    tk.with_pre_tokenizer(Some(pre));
    tk.with_decoder(Some(ByteLevelDecoder::default()));
    let types: Vec<i64> = g
        .get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|v| v.as_i64().unwrap_or(1)).collect())
        .unwrap_or_default();
    let specials: Vec<AddedToken> = tokens
        .iter()
        .zip(types.iter())
        .filter(|(_, ty)| **ty == CONTROL)
        .map(|(t, _)| AddedToken::from(t.to_string(), true))
        .collect();
    tk.add_special_tokens(specials).map_err(|e| TokenizerError::Build(e.to_string()))?;
    let id = |k: &str| g.get(k).and_then(Value::as_i64).and_then(|v| u32::try_from(v).ok());
    let special = SpecialTokens {
        bos: id("tokenizer.ggml.bos_token_id"),
        eos: id("tokenizer.ggml.eos_token_id"),
        add_bos: g.get("tokenizer.ggml.add_bos_token").and_then(Value::as_bool).unwrap_or(false),
    };
    Ok((tk, special))
}

/// Encodes text (control tokens written in the text are recognised), adding BOS if the model asks.
pub fn encode(tk: &Tokenizer, special: &SpecialTokens, text: &str) -> Result<Vec<u32>, TokenizerError> {
    let enc = tk.encode(text, false).map_err(|e| TokenizerError::Build(e.to_string()))?;
    let mut ids = Vec::with_capacity(enc.len() + 1);
    if special.add_bos {
        ids.extend(special.bos);
    }
    ids.extend_from_slice(enc.get_ids());
    Ok(ids)
}

/// Decodes ids to text, dropping control tokens.
pub fn decode(tk: &Tokenizer, ids: &[u32]) -> Result<String, TokenizerError> {
    tk.decode(ids, true).map_err(|e| TokenizerError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::writer::write;

    /// A tiny byte-level vocabulary: "Ġ" is the byte-level space.
    fn tiny() -> Gguf {
        let tokens = ["<|endoftext|>", "<|im_start|>", "h", "i", "Ġ", "1", "2", "hi", "Ġhi"];
        let types = [3, 3, 1, 1, 1, 1, 1, 1, 1];
        let bytes = write(
            &[
                ("tokenizer.ggml.model", Value::String("gpt2".into())),
                ("tokenizer.ggml.pre", Value::String("smollm".into())),
                (
                    "tokenizer.ggml.tokens",
                    Value::Array(tokens.iter().map(|t| Value::String(t.to_string())).collect()),
                ),
                (
                    "tokenizer.ggml.token_type",
                    Value::Array(types.iter().map(|t| Value::I32(*t)).collect()),
                ),
                (
                    "tokenizer.ggml.merges",
                    Value::Array(vec![Value::String("h i".into()), Value::String("Ġ hi".into())]),
                ),
                ("tokenizer.ggml.bos_token_id", Value::U32(1)),
                ("tokenizer.ggml.eos_token_id", Value::U32(0)),
            ],
            &[],
        );
        Gguf::parse(bytes).expect("gguf")
    }

    #[test]
    fn merges_digits_and_control_tokens() {
        let g = tiny();
        let (tk, special) = from_gguf(&g).expect("tokenizer");
        assert_eq!(
            special,
            SpecialTokens {
                bos: Some(1),
                eos: Some(0),
                add_bos: false
            }
        );
        // "hi hi" → hi, Ġhi; "12" → 1, 2 (digits split one by one); control tokens stay whole.
        assert_eq!(encode(&tk, &special, "hi hi").expect("encode"), vec![7, 8]);
        assert_eq!(encode(&tk, &special, "<|im_start|>hi12").expect("encode"), vec![1, 7, 5, 6]);
        assert_eq!(decode(&tk, &[1, 7, 8]).expect("decode"), "hi hi");
    }

    #[test]
    fn refuses_other_tokenizer_models() {
        let g = Gguf::parse(write(&[("tokenizer.ggml.model", Value::String("llama".into()))], &[])).expect("gguf");
        assert!(matches!(from_gguf(&g), Err(TokenizerError::Unsupported(_))));
    }
}

//! Byte-level BPE of GGUF `gpt2` vocabularies, built for the `tokenizers` crate: the vocabulary
//! (`tokenizer.ggml.tokens`, byte-level text such as `Ġthe`), `tokenizer.ggml.merges` ("a b"
//! pairs by rank) and the pre-tokenizer named by `tokenizer.ggml.pre`: the regular expressions
//! llama.cpp splits with for that name (each split isolating its matches), then the byte-level
//! mapping. Control tokens are matched whole as special tokens (dropped by decoding),
//! user-defined ones as added tokens (kept).

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::{TokenKind, TokenizerError};

/// GPT-2's split: contractions, letters, numbers, other symbols, each with one leading space.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

/// Llama 3's split (as in its `tokenizer.json`): numbers in groups of up to three.
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split: Llama 3's with every digit on its own.
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Mistral's Tekken split (Mistral Nemo): words split at case changes, single digits.
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A pre-tokenizer llama.cpp knows by the name in `tokenizer.ggml.pre`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    /// `gpt2`, `gpt-2`, `phi-2`, `roberta-bpe`, `mpt`, `olmo`, `jais`...: the GPT-2 split.
    Gpt2,
    /// `default` (and no name): llama.cpp's fallback, punctuation runs, the GPT-2 split,
    /// number runs, then groups of three digits.
    Default,
    /// `llama-bpe`, `llama3`, `llama-v3`, `falcon3`, `dbrx`, `smaug-bpe`, `chatglm-bpe`.
    Llama3,
    /// `qwen2`, `stablelm2`, `megrez`.
    Qwen2,
    /// `smollm`, `starcoder`, `refact`, `command-r`, `codeshell`, `exaone`, `minerva-7b`:
    /// every digit alone, then the GPT-2 split.
    SmolLm,
    /// `tekken` (Mistral Nemo).
    Tekken,
}

impl PreTokenizer {
    /// The pre-tokenizer of a `tokenizer.ggml.pre` name, if it is one we know.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "gpt2" | "gpt-2" | "phi-2" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "jina-es" | "jina-de" | "jina-v1-en" | "jina-v2-es"
            | "jina-v2-de" | "jina-v2-code" | "gigachat" => Self::Gpt2,
            "default" | "" => Self::Default,
            "llama-bpe" | "llama3" | "llama-v3" | "falcon3" | "dbrx" | "smaug-bpe" | "chatglm-bpe" => Self::Llama3,
            "qwen2" | "stablelm2" | "megrez" => Self::Qwen2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => Self::SmolLm,
            "tekken" => Self::Tekken,
            _ => return None,
        })
    }

    /// The regular expressions, applied one after the other, each isolating its matches.
    pub fn regexes(self) -> &'static [&'static str] {
        match self {
            Self::Gpt2 => &[GPT2],
            Self::Default => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
            Self::Llama3 => &[LLAMA3],
            Self::Qwen2 => &[QWEN2],
            Self::SmolLm => &[r"\p{N}", GPT2],
            Self::Tekken => &[TEKKEN],
        }
    }

    /// Whether a pre-token that is itself in the vocabulary is taken whole, without merges
    /// (llama.cpp's `ignore_merges`, for Llama 3 and Tekken).
    pub fn ignores_merges(self) -> bool {
        matches!(self, Self::Llama3 | Self::Tekken)
    }

    /// Whether llama.cpp starts prompts with BOS for this pre-tokenizer when the file does not say.
    pub fn adds_bos(self) -> bool {
        matches!(self, Self::Llama3 | Self::Tekken)
    }

    /// The regex splits, without the byte-level mapping.
    pub fn splits(self) -> Result<Vec<PreTokenizerWrapper>, TokenizerError> {
        self.regexes()
            .iter()
            .map(|r| {
                Split::new(SplitPattern::Regex((*r).to_string()), SplitDelimiterBehavior::Isolated, false)
                    .map(PreTokenizerWrapper::Split)
                    .map_err(|e| TokenizerError::Build(format!("pre-tokenizer {self:?}: {e}")))
            })
            .collect()
    }

    /// The whole pre-tokenizer: the splits, then the byte-level mapping.
    pub fn wrapper(self) -> Result<PreTokenizerWrapper, TokenizerError> {
        let mut steps = self.splits()?;
        steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)));
        Ok(PreTokenizerWrapper::Sequence(Sequence::new(steps)))
    }
}

/// The pre-tokenizer for `name`: unknown names fall back to GPT-2's, with a warning.
pub fn pre_tokenizer_named(name: Option<&str>) -> PreTokenizer {
    match name {
        None => PreTokenizer::Default,
        Some(name) => PreTokenizer::from_name(name).unwrap_or_else(|| {
            tracing::warn!(
                pre = name,
                "unknown tokenizer.ggml.pre, splitting like GPT-2: tokens may differ from the model's"
            );
            PreTokenizer::Gpt2
        }),
    }
}

/// A byte-level BPE tokenizer from the vocabulary, token kinds and merges.
pub fn build(tokens: &[&str], kinds: &[TokenKind], merges: &[&str], pre: PreTokenizer) -> Result<Tokenizer, TokenizerError> {
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    // A merge of pieces the vocabulary lacks is a broken file: refused here, since the
    // `tokenizers` crate would panic on it while encoding.
    let mut pairs = Vec::with_capacity(merges.len());
    for m in merges {
        let Some((a, b)) = m.split_once(' ') else { continue };
        if !vocab.contains_key(a) || !vocab.contains_key(b) || !vocab.contains_key(&format!("{a}{b}")) {
            return Err(TokenizerError::Build(format!(
                "merge '{m}' joins pieces that are not in the vocabulary"
            )));
        }
        pairs.push((a.to_string(), b.to_string()));
    }
    let merges = pairs;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(pre.ignores_merges())
        .build()
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    let mut tk = Tokenizer::new(bpe);
    tk.with_pre_tokenizer(Some(pre.wrapper()?));
    tk.with_decoder(Some(ByteLevelDecoder::default()));
    let added = |kind: TokenKind, special: bool| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(kinds)
            .filter(|(t, k)| **k == kind && !t.is_empty())
            .map(|(t, _)| AddedToken::from(t.to_string(), special))
            .collect()
    };
    tk.add_special_tokens(added(TokenKind::Control, true))
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    tk.add_tokens(added(TokenKind::UserDefined, false))
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    Ok(tk)
}

#[cfg(test)]
mod tests {
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer as _};

    use super::*;

    /// `text` cut by `pre`'s regexes (before the byte-level mapping).
    fn split(pre: PreTokenizer, text: &str) -> Vec<String> {
        let mut s = PreTokenizedString::from(text);
        for step in pre.splits().expect("splits") {
            step.pre_tokenize(&mut s).expect("pre-tokenize");
        }
        s.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(t, _, _)| t.to_string())
            .collect()
    }

    const TEXT: &str = "I'LL pay 12345 now!\n\n  HelloWorld";

    #[test]
    fn every_pre_tokenizer_splits_like_llama_cpp() {
        assert_eq!(
            split(PreTokenizer::Gpt2, TEXT),
            ["I", "'", "LL", " pay", " 12345", " now", "!", "\n\n ", " HelloWorld"]
        );
        assert_eq!(
            split(PreTokenizer::Llama3, TEXT),
            ["I", "'LL", " pay", " ", "123", "45", " now", "!\n\n", " ", " HelloWorld"]
        );
        assert_eq!(
            split(PreTokenizer::Qwen2, TEXT),
            [
                "I",
                "'LL",
                " pay",
                " ",
                "1",
                "2",
                "3",
                "4",
                "5",
                " now",
                "!\n\n",
                " ",
                " HelloWorld"
            ]
        );
        assert_eq!(
            split(PreTokenizer::SmolLm, TEXT),
            [
                "I",
                "'",
                "LL",
                " pay",
                " ",
                "1",
                "2",
                "3",
                "4",
                "5",
                " now",
                "!",
                "\n\n ",
                " HelloWorld"
            ]
        );
        assert_eq!(
            split(PreTokenizer::Tekken, TEXT),
            ["I", "'LL", " pay", " ", "1", "2", "3", "4", "5", " now", "!\n\n", " ", " Hello", "World"]
        );
        assert_eq!(
            split(PreTokenizer::Default, TEXT),
            ["I", "'", "LL", " pay", " ", "123", "45", " now", "!", "\n\n ", " HelloWorld"]
        );
    }

    #[test]
    fn names_map_to_pre_tokenizers_and_unknown_ones_fall_back_to_gpt2() {
        assert_eq!(pre_tokenizer_named(Some("llama-bpe")), PreTokenizer::Llama3);
        assert_eq!(pre_tokenizer_named(Some("qwen2")), PreTokenizer::Qwen2);
        assert_eq!(pre_tokenizer_named(Some("smollm")), PreTokenizer::SmolLm);
        assert_eq!(pre_tokenizer_named(Some("tekken")), PreTokenizer::Tekken);
        assert_eq!(pre_tokenizer_named(Some("gpt-2")), PreTokenizer::Gpt2);
        assert_eq!(pre_tokenizer_named(Some("default")), PreTokenizer::Default);
        assert_eq!(pre_tokenizer_named(None), PreTokenizer::Default);
        assert_eq!(pre_tokenizer_named(Some("no-such-pre")), PreTokenizer::Gpt2);
    }
}

//! Special tokens: BOS/EOS, the set of tokens that end generation, and cutting the control and
//! user-defined tokens written in a text out of it before the model's own algorithm runs.

use std::collections::{BTreeSet, HashMap};

use super::{Tokenizer, TokenizerError};

/// Texts of tokens that end a turn in the chat formats models use (found by text, as llama.cpp
/// does, because files rarely declare them all): Llama 3's `<|eot_id|>`/`<|eom_id|>`, ChatML's
/// `<|im_end|>`, Gemma's `<end_of_turn>`, Phi's `<|end|>`, GPT-style `<|endoftext|>`, Llama 2's
/// `</s>`, Llama 3 base's `<|end_of_text|>`, CodeLlama's `<EOT>`, DeepSeek's end of sentence.
pub const END_OF_TURN_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
    "</s>",
    "<|end_of_text|>",
    "<EOT>",
    "<｜end▁of▁sentence｜>",
];

/// Special token ids and flags from the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Whether encoding a prompt starts it with BOS.
    pub add_bos: bool,
    /// Every token that ends generation: EOS, the declared end-of-turn and end-of-message tokens
    /// (`tokenizer.ggml.eot_token_id`, `eom_token_id`) and the vocabulary's tokens whose text is
    /// one of [`END_OF_TURN_TEXTS`].
    pub end_of_generation: BTreeSet<u32>,
}

impl SpecialTokens {
    /// BOS, EOS and the BOS flag as given; the end-of-generation set is EOS, `declared_ends`
    /// (ids outside the vocabulary are ignored) and the end-of-turn tokens `tokenizer` has.
    pub fn new(bos: Option<u32>, eos: Option<u32>, add_bos: bool, declared_ends: &[Option<u32>], tokenizer: &Tokenizer) -> Self {
        let size = tokenizer.vocab_size();
        let in_vocab = |id: &u32| (*id as usize) < size;
        let end_of_generation = std::iter::once(eos)
            .chain(declared_ends.iter().copied())
            .flatten()
            .filter(in_vocab)
            .chain(END_OF_TURN_TEXTS.iter().filter_map(|t| tokenizer.token_id(t)))
            .collect();
        Self {
            bos,
            eos,
            add_bos,
            end_of_generation,
        }
    }

    /// Whether `id` ends generation.
    pub fn ends_generation(&self, id: u32) -> bool {
        self.end_of_generation.contains(&id)
    }
}

/// A piece of a text cut at the special tokens written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Token(u32),
}

/// Finds special tokens (control, user-defined, unknown) written in a text: at each place the
/// leftmost match, the longest token there.
#[derive(Debug, Clone)]
pub struct SpecialSplitter {
    /// An alternation of the tokens' texts, longest first, so the first alternative that matches
    /// is the longest.
    pattern: regex::Regex,
    ids: HashMap<String, u32>,
}

impl SpecialSplitter {
    /// A splitter for `(text, id)` pairs; `None` when there is none (empty texts are ignored).
    pub fn new<'a>(tokens: impl IntoIterator<Item = (&'a str, u32)>) -> Result<Option<Self>, TokenizerError> {
        let mut ids = HashMap::new();
        for (text, id) in tokens.into_iter().filter(|(t, _)| !t.is_empty()) {
            // The first id of a text wins, as in a vocabulary lookup.
            ids.entry(text.to_string()).or_insert(id);
        }
        if ids.is_empty() {
            return Ok(None);
        }
        let mut texts: Vec<&str> = ids.keys().map(String::as_str).collect();
        texts.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        let alternation = texts.iter().map(|t| regex::escape(t)).collect::<Vec<_>>().join("|");
        let pattern = regex::RegexBuilder::new(&alternation)
            .size_limit(1 << 28)
            .dfa_size_limit(1 << 26)
            .build()
            .map_err(|e| TokenizerError::Build(format!("special tokens: {e}")))?;
        Ok(Some(Self { pattern, ids }))
    }

    /// `text` cut into plain text and special tokens, in order.
    pub fn split<'a>(&self, text: &'a str) -> Vec<Piece<'a>> {
        let mut out = Vec::new();
        let mut start = 0;
        for m in self.pattern.find_iter(text) {
            let Some(&id) = self.ids.get(m.as_str()) else { continue };
            if m.start() > start {
                out.push(Piece::Text(&text[start..m.start()]));
            }
            out.push(Piece::Token(id));
            start = m.end();
        }
        if start < text.len() {
            out.push(Piece::Text(&text[start..]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_leftmost_longest_special_token() {
        let s = SpecialSplitter::new([("<a>", 1), ("<a><b>", 2), ("\n", 3), ("\n\n", 4), ("", 5)])
            .expect("builds")
            .expect("some tokens");
        assert_eq!(
            s.split("x<a><b>y\n\n\nz<a>"),
            vec![
                Piece::Text("x"),
                Piece::Token(2),
                Piece::Text("y"),
                Piece::Token(4),
                Piece::Token(3),
                Piece::Text("z"),
                Piece::Token(1)
            ]
        );
        assert_eq!(s.split("plain"), vec![Piece::Text("plain")]);
        assert_eq!(s.split(""), vec![]);
        assert!(SpecialSplitter::new([("", 1)]).expect("builds").is_none());
    }
}

//! CLIP's tokenizer: lower-cased words split by CLIP's pattern, byte-level BPE where the last
//! symbol of each word carries `</w>`, wrapped in `<|startoftext|>` … `<|endoftext|>` and padded
//! with `<|endoftext|>` to the text encoder's 77 positions (as Stable Diffusion 1.x pads).
//!
//! The vocabulary follows from the merges (`merges.txt` of a diffusers checkout, or CLIP's
//! `bpe_simple_vocab_16e6.txt`): the 256 byte symbols, the same with `</w>`, one token per merge,
//! then the two special tokens.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::DiffusionError;

/// Positions of the text encoder.
pub const CONTEXT: usize = 77;
/// Merges of CLIP's vocabulary (49408 tokens = 512 byte symbols + merges + 2 specials).
const MERGES: usize = 49152 - 256 - 2;

pub struct ClipTokenizer {
    encoder: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_symbol: [char; 256],
    pattern: Regex,
    pub bos: u32,
    pub eos: u32,
}

/// GPT-2's reversible map from bytes to printable characters.
fn byte_symbols() -> [char; 256] {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut out = ['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        out[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('?')
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('?')
        };
    }
    out
}

impl ClipTokenizer {
    /// Reads `merges.txt` (its first line is a `#version` header, as in CLIP's own file).
    pub fn from_merges_file(path: &Path) -> Result<Self, DiffusionError> {
        let text = std::fs::read_to_string(path).map_err(|e| DiffusionError::io(path, e))?;
        Self::from_merges(&text)
    }

    pub fn from_merges(text: &str) -> Result<Self, DiffusionError> {
        let merges: Vec<(String, String)> = text
            .lines()
            .filter(|l| !l.starts_with("#version"))
            .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
            .take(MERGES)
            .collect();
        if merges.len() < 100 {
            return Err(DiffusionError::Invalid(format!("CLIP merges: only {} merges", merges.len())));
        }
        let byte_symbol = byte_symbols();
        // GPT-2's order: the printable bytes, then the others.
        let printable = |c: char| (c as u32) < 256;
        let ordered: Vec<char> = byte_symbol
            .iter()
            .copied()
            .filter(|&c| printable(c))
            .chain(byte_symbol.iter().copied().filter(|&c| !printable(c)))
            .collect();
        let mut vocab: Vec<String> = ordered.iter().map(|c| c.to_string()).collect();
        vocab.extend(ordered.iter().map(|c| format!("{c}</w>")));
        vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push("<|startoftext|>".into());
        vocab.push("<|endoftext|>".into());
        let encoder: HashMap<String, u32> = vocab.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
        let ranks = merges.into_iter().enumerate().map(|(i, m)| (m, i)).collect();
        let pattern = Regex::new(r"(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")
            .map_err(|e| DiffusionError::Invalid(e.to_string()))?;
        let id = |t: &str| {
            encoder
                .get(t)
                .copied()
                .ok_or_else(|| DiffusionError::Invalid(format!("CLIP vocabulary lacks {t}")))
        };
        let (bos, eos) = (id("<|startoftext|>")?, id("<|endoftext|>")?);
        Ok(Self {
            encoder,
            ranks,
            byte_symbol,
            pattern,
            bos,
            eos,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.encoder.len()
    }

    /// The BPE tokens of `text`, without the special tokens.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let cleaned = text
            .nfc()
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mut ids = Vec::new();
        for word in self.pattern.find_iter(&cleaned) {
            let word = word.as_str();
            if let Some(&id) = self.encoder.get(word).filter(|_| word.starts_with("<|")) {
                ids.push(id);
                continue;
            }
            let symbols: String = word.bytes().map(|b| self.byte_symbol[b as usize]).collect();
            for piece in self.bpe(&symbols) {
                // Every piece is in the vocabulary: bytes and merge results are.
                if let Some(&id) = self.encoder.get(&piece) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// `text` as the text encoder reads it: start, at most 75 tokens, end, padded with the end
    /// token to 77. Returns whether tokens were cut.
    pub fn encode_padded(&self, text: &str) -> (Vec<u32>, bool) {
        let mut tokens = self.encode(text);
        let truncated = tokens.len() > CONTEXT - 2;
        tokens.truncate(CONTEXT - 2);
        let mut out = Vec::with_capacity(CONTEXT);
        out.push(self.bos);
        out.extend(tokens);
        out.resize(CONTEXT, self.eos);
        (out, truncated)
    }

    /// Byte-pair merges of one word (in byte symbols), lowest rank first.
    fn bpe(&self, word: &str) -> Vec<String> {
        let mut parts: Vec<String> = word.chars().map(String::from).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| self.ranks.get(&(w[0].clone(), w[1].clone())).map(|&r| (r, i)))
                .min();
            let Some((_, first)) = best else { break };
            let (a, b) = (parts[first].clone(), parts[first + 1].clone());
            let mut merged = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len() && parts[i] == a && parts[i + 1] == b {
                    merged.push(format!("{a}{b}"));
                    i += 2;
                } else {
                    merged.push(std::mem::take(&mut parts[i]));
                    i += 1;
                }
            }
            parts = merged;
        }
        parts
    }
}

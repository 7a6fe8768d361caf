//! SentencePiece tokenization of GGUF `llama` vocabularies, the algorithm llama.cpp and
//! SentencePiece's BPE model use: spaces become `▁` (U+2581), the text starts as one symbol per
//! character, and the adjacent pair whose concatenation is the vocabulary piece with the best
//! score is merged (leftmost first among equals) until no pair is a piece. A symbol that is no
//! piece falls back to its UTF-8 bytes as `<0xNN>` tokens (or the unknown token). Control,
//! user-defined and unknown tokens written in the text are cut out first and kept whole.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::special::{Piece, SpecialSplitter};
use super::{TokenKind, TokenizerError};

/// What SentencePiece writes for a space.
const SPACE: &str = "\u{2581}";

/// A SentencePiece vocabulary ready to encode and decode.
#[derive(Debug, Clone)]
pub struct SentencePiece {
    pieces: Vec<String>,
    kinds: Vec<TokenKind>,
    scores: Vec<f32>,
    /// Pieces plain text may merge into (normal, user-defined, unused ones), by text.
    mergeable: HashMap<String, u32>,
    /// `<0xNN>` tokens by byte.
    byte_tokens: Vec<Option<u32>>,
    unknown: Option<u32>,
    special: Option<SpecialSplitter>,
    /// Whether each run of plain text at the start or after a special token gets a leading space.
    add_space_prefix: bool,
}

/// Two adjacent symbols that may merge, ranked by the merged piece's score.
#[derive(Debug, Clone, Copy)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Bytes of the merged text; a bigram whose symbols changed since is stale.
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Higher score first, then the leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.left.cmp(&self.left))
    }
}

/// A symbol of the text being merged: a byte range, linked to its neighbours.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl SentencePiece {
    /// A vocabulary from its pieces, their kinds and scores (one each per id).
    pub fn new(
        pieces: Vec<String>,
        kinds: Vec<TokenKind>,
        scores: Vec<f32>,
        unknown: Option<u32>,
        add_space_prefix: bool,
    ) -> Result<Self, TokenizerError> {
        if kinds.len() != pieces.len() || scores.len() != pieces.len() {
            return Err(TokenizerError::Build(format!(
                "{} tokens but {} token types and {} scores",
                pieces.len(),
                kinds.len(),
                scores.len()
            )));
        }
        let mut mergeable = HashMap::with_capacity(pieces.len());
        let mut byte_tokens = vec![None; 256];
        for (id, (piece, kind)) in pieces.iter().zip(&kinds).enumerate() {
            let id = id as u32;
            match kind {
                TokenKind::Normal | TokenKind::UserDefined | TokenKind::Unused => {
                    mergeable.entry(piece.clone()).or_insert(id);
                }
                TokenKind::Byte => {
                    if let Some(b) = byte_of(piece) {
                        byte_tokens[b as usize].get_or_insert(id);
                    }
                }
                TokenKind::Control | TokenKind::Unknown => {}
            }
        }
        let special = SpecialSplitter::new(
            pieces
                .iter()
                .zip(&kinds)
                .enumerate()
                .filter(|(_, (_, k))| matches!(k, TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown))
                .map(|(id, (p, _))| (p.as_str(), id as u32)),
        )?;
        Ok(Self {
            pieces,
            kinds,
            scores,
            mergeable,
            byte_tokens,
            unknown,
            special,
            add_space_prefix,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The piece of `id` as stored.
    pub fn piece(&self, id: u32) -> Option<&str> {
        self.pieces.get(id as usize).map(String::as_str)
    }

    /// The id of a piece as stored (any kind).
    pub fn id(&self, piece: &str) -> Option<u32> {
        self.mergeable
            .get(piece)
            .copied()
            .or_else(|| {
                byte_of(piece)
                    .and_then(|b| self.byte_tokens[b as usize])
                    .filter(|&id| self.piece(id) == Some(piece))
            })
            .or_else(|| {
                self.special.as_ref().and_then(|s| match s.split(piece).as_slice() {
                    [Piece::Token(id)] => Some(*id),
                    _ => None,
                })
            })
    }

    /// Token ids of `text` (no BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let pieces = match &self.special {
            Some(s) => s.split(text),
            None if text.is_empty() => vec![],
            None => vec![Piece::Text(text)],
        };
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut after_special = true;
        for piece in pieces {
            match piece {
                Piece::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Piece::Text(t) => {
                    let prefix = if self.add_space_prefix && after_special { " " } else { "" };
                    let escaped = format!("{prefix}{t}").replace(' ', SPACE);
                    self.encode_plain(&escaped, &mut out)?;
                    after_special = false;
                }
            }
        }
        Ok(out)
    }

    /// Merges the symbols of `text` (spaces already escaped) by best piece score.
    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) -> Result<(), TokenizerError> {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (i, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: None,
            });
            if let Some(prev) = i.checked_sub(1) {
                symbols[prev].next = Some(i);
            }
        }
        if symbols.is_empty() {
            return Ok(());
        }
        let mut queue = BinaryHeap::new();
        // Where unused pieces were merged: (start, len) → length of the left part.
        let mut splits: HashMap<(usize, usize), usize> = HashMap::new();
        for i in 1..symbols.len() {
            self.push_bigram(text, &symbols, i - 1, i, &mut queue);
        }
        while let Some(b) = queue.pop() {
            let (left, right) = (symbols[b.left], symbols[b.right]);
            if left.len == 0 || right.len == 0 || left.len + right.len != b.len {
                continue;
            }
            if self.is_unused(&text[left.start..left.start + b.len]) {
                splits.insert((left.start, b.len), left.len);
            }
            symbols[b.left].len = b.len;
            symbols[b.left].next = right.next;
            symbols[b.right].len = 0;
            if let Some(next) = right.next {
                symbols[next].prev = Some(b.left);
            }
            if let Some(prev) = left.prev {
                self.push_bigram(text, &symbols, prev, b.left, &mut queue);
            }
            if let Some(next) = right.next {
                self.push_bigram(text, &symbols, b.left, next, &mut queue);
            }
        }
        let mut at = Some(0);
        while let Some(i) = at {
            self.resegment(text, symbols[i].start, symbols[i].len, &splits, out)?;
            at = symbols[i].next;
        }
        Ok(())
    }

    fn push_bigram(&self, text: &str, symbols: &[Symbol], left: usize, right: usize, queue: &mut BinaryHeap<Bigram>) {
        let len = symbols[left].len + symbols[right].len;
        let start = symbols[left].start;
        if let Some(&id) = self.mergeable.get(&text[start..start + len]) {
            queue.push(Bigram {
                score: self.scores[id as usize],
                left,
                right,
                len,
            });
        }
    }

    fn is_unused(&self, piece: &str) -> bool {
        self.mergeable
            .get(piece)
            .is_some_and(|&id| self.kinds[id as usize] == TokenKind::Unused)
    }

    /// Emits the symbol at `start..start + len`: its piece, or the parts an unused piece was
    /// merged from, or its bytes.
    fn resegment(
        &self,
        text: &str,
        start: usize,
        len: usize,
        splits: &HashMap<(usize, usize), usize>,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let piece = &text[start..start + len];
        if let Some(&id) = self.mergeable.get(piece) {
            if self.kinds[id as usize] != TokenKind::Unused {
                out.push(id);
                return Ok(());
            }
        }
        if let Some(&left) = splits.get(&(start, len)) {
            self.resegment(text, start, left, splits, out)?;
            return self.resegment(text, start + left, len - left, splits, out);
        }
        let bytes: Option<Vec<u32>> = piece.bytes().map(|b| self.byte_tokens[b as usize]).collect();
        match (bytes, self.unknown) {
            (Some(bytes), _) => out.extend(bytes),
            (None, Some(unknown)) => out.push(unknown),
            (None, None) => {
                return Err(TokenizerError::Encode(format!(
                    "no token for {piece:?}: the vocabulary has neither its bytes nor an unknown token"
                )))
            }
        }
        Ok(())
    }

    /// The text of `ids`: `▁` as spaces, byte tokens as their bytes, control and unknown tokens
    /// dropped. Without a space prefix a leading space is kept; with one, the first is removed
    /// (it was added by encoding).
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let (Some(piece), Some(kind)) = (self.pieces.get(id as usize), self.kinds.get(id as usize)) else {
                return Err(TokenizerError::Decode(format!(
                    "token id {id} is outside the vocabulary of {}",
                    self.len()
                )));
            };
            match kind {
                TokenKind::Normal | TokenKind::Unused => bytes.extend(piece.replace(SPACE, " ").bytes()),
                TokenKind::UserDefined => bytes.extend(piece.bytes()),
                TokenKind::Byte => match byte_of(piece) {
                    Some(b) => bytes.push(b),
                    None => bytes.extend(piece.bytes()),
                },
                TokenKind::Control | TokenKind::Unknown => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        Ok(match text.strip_prefix(' ').filter(|_| self.add_space_prefix) {
            Some(rest) => rest.to_string(),
            None => text.into_owned(),
        })
    }
}

/// The byte of a `<0xNN>` piece.
fn byte_of(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vocabulary of `(piece, kind, score)` with byte tokens for every byte appended.
    fn vocab(entries: &[(&str, TokenKind, f32)], add_space_prefix: bool) -> SentencePiece {
        let mut pieces: Vec<String> = entries.iter().map(|e| e.0.to_string()).collect();
        let mut kinds: Vec<TokenKind> = entries.iter().map(|e| e.1).collect();
        let mut scores: Vec<f32> = entries.iter().map(|e| e.2).collect();
        for b in 0..=255u8 {
            pieces.push(format!("<0x{b:02X}>"));
            kinds.push(TokenKind::Byte);
            scores.push(0.0);
        }
        SentencePiece::new(pieces, kinds, scores, Some(0), add_space_prefix).expect("vocabulary")
    }

    use TokenKind::*;

    fn small(add_space_prefix: bool) -> SentencePiece {
        vocab(
            &[
                ("<unk>", Unknown, 0.0),     // 0
                ("<turn>", Control, 0.0),    // 1
                ("\n", UserDefined, 0.0),    // 2
                ("a", Normal, -1.0),         // 3
                ("b", Normal, -1.0),         // 4
                ("c", Normal, -1.0),         // 5
                ("ab", Normal, -5.0),        // 6
                ("bc", Normal, -2.0),        // 7
                ("ca", Normal, -3.0),        // 8
                ("\u{2581}", Normal, -1.0),  // 9
                ("\u{2581}a", Normal, -1.5), // 10
                ("xy", Unused, -0.5),        // 11
                ("x", Normal, -1.0),         // 12
                ("y", Normal, -1.0),         // 13
            ],
            add_space_prefix,
        )
    }

    #[test]
    fn merges_the_best_scoring_pair_first() {
        let v = small(false);
        // "bc" (-2) beats "ab" (-5); then "a"+"bc" is no piece, so a, bc.
        assert_eq!(v.encode("abc").expect("encode"), vec![3, 7]);
        // "ca" (-3) beats "ab" (-5) although "ab" comes first.
        assert_eq!(v.encode("cab").expect("encode"), vec![8, 4]);
        // Spaces become ▁ and merge with what follows.
        assert_eq!(v.encode("c a").expect("encode"), vec![5, 10]);
        assert_eq!(v.decode(&[5, 10]).expect("decode"), "c a");
    }

    #[test]
    fn leftmost_pair_wins_among_equal_scores() {
        let v = vocab(&[("<unk>", Unknown, 0.0), ("a", Normal, -1.0), ("aa", Normal, -1.0)], false);
        assert_eq!(v.encode("aaa").expect("encode"), vec![2, 1]);
    }

    #[test]
    fn unknown_characters_fall_back_to_bytes() {
        let v = small(false);
        // 'é' is no piece: its two UTF-8 bytes; byte tokens decode back to the character.
        let ids = v.encode("aé").expect("encode");
        let byte = |piece: &str| v.id(piece).expect("byte token");
        assert_eq!(ids, vec![3, byte("<0xC3>"), byte("<0xA9>")]);
        assert_eq!(v.decode(&ids).expect("decode"), "aé");
        // Without byte tokens, the unknown token.
        let bare = SentencePiece::new(
            vec!["<unk>".into(), "a".into()],
            vec![Unknown, Normal],
            vec![0.0, 0.0],
            Some(0),
            false,
        )
        .expect("vocabulary");
        assert_eq!(bare.encode("aé").expect("encode"), vec![1, 0]);
    }

    #[test]
    fn special_tokens_in_text_stay_whole_and_control_tokens_decode_to_nothing() {
        let v = small(false);
        assert_eq!(v.encode("<turn>ab\nc").expect("encode"), vec![1, 6, 2, 5]);
        assert_eq!(v.decode(&[1, 6, 2, 5]).expect("decode"), "ab\nc");
        assert!(v.decode(&[9999]).is_err());
    }

    #[test]
    fn space_prefix_at_the_start_and_after_special_tokens() {
        let v = small(true);
        assert_eq!(v.encode("a<turn>a").expect("encode"), vec![10, 1, 10]);
        // Decoding removes the space encoding added.
        assert_eq!(v.decode(&[10, 1, 10]).expect("decode"), "a a");
        assert_eq!(v.encode("").expect("encode"), Vec::<u32>::new());
    }

    #[test]
    fn unused_pieces_are_split_back_into_their_parts() {
        let v = small(false);
        assert_eq!(v.encode("xy").expect("encode"), vec![12, 13]);
    }
}

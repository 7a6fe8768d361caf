//! Tokenizers built from tiny GGUF files written by the tests.

use super::*;
use crate::gguf::writer::write;

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|t| Value::String(t.to_string())).collect())
}

fn ints(items: &[i32]) -> Value {
    Value::Array(items.iter().map(|t| Value::I32(*t)).collect())
}

/// A tiny byte-level vocabulary: "Ġ" is the byte-level space.
fn tiny_bpe(pre: &str) -> Gguf {
    let tokens = [
        "<|endoftext|>",
        "<|im_start|>",
        "h",
        "i",
        "Ġ",
        "1",
        "2",
        "hi",
        "Ġhi",
        "<|im_end|>",
        "12",
        "<user>",
    ];
    let types = [3, 3, 1, 1, 1, 1, 1, 1, 1, 3, 1, 4];
    let bytes = write(
        &[
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String(pre.into())),
            ("tokenizer.ggml.tokens", strings(&tokens)),
            ("tokenizer.ggml.token_type", ints(&types)),
            ("tokenizer.ggml.merges", strings(&["h i", "Ġ hi", "1 2"])),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
            ("tokenizer.ggml.eos_token_id", Value::U32(9)),
        ],
        &[],
    );
    Gguf::parse(bytes).expect("gguf")
}

#[test]
fn bpe_merges_digits_and_control_tokens() {
    let g = tiny_bpe("smollm");
    let (tk, special) = from_gguf(&g).expect("tokenizer");
    assert_eq!((special.bos, special.eos, special.add_bos), (Some(1), Some(9), false));
    // EOS, and <|endoftext|> by its text.
    assert_eq!(special.end_of_generation.iter().copied().collect::<Vec<_>>(), vec![0, 9]);
    // "hi hi" → hi, Ġhi; "12" → 1, 2 (digits split one by one); control tokens stay whole.
    assert_eq!(encode(&tk, &special, "hi hi").expect("encode"), vec![7, 8]);
    assert_eq!(encode(&tk, &special, "<|im_start|>hi12").expect("encode"), vec![1, 7, 5, 6]);
    assert_eq!(decode(&tk, &[1, 7, 8]).expect("decode"), "hi hi");
    // User-defined tokens are matched whole and kept by decoding.
    assert_eq!(encode(&tk, &special, "<user>hi").expect("encode"), vec![11, 7]);
    assert_eq!(decode(&tk, &[11, 7]).expect("decode"), "<user>hi");
}

#[test]
fn bpe_pre_tokenizer_comes_from_the_file() {
    // Llama 3 keeps up to three digits together (and starts prompts with BOS); Qwen2 does not.
    let (tk, special) = from_gguf(&tiny_bpe("llama-bpe")).expect("tokenizer");
    assert!(special.add_bos);
    assert_eq!(encode(&tk, &special, "12").expect("encode"), vec![1, 10]);
    let (tk, special) = from_gguf(&tiny_bpe("qwen2")).expect("tokenizer");
    assert!(!special.add_bos);
    assert_eq!(encode(&tk, &special, "12").expect("encode"), vec![5, 6]);
    // An unknown pre-tokenizer works like GPT-2's (digit runs stay together).
    let (tk, special) = from_gguf(&tiny_bpe("something-new")).expect("tokenizer");
    assert_eq!(encode(&tk, &special, "12").expect("encode"), vec![10]);
}

/// A tiny SentencePiece vocabulary like Gemma's: control and user-defined tokens, byte tokens.
fn tiny_spm(add_space_prefix: Option<bool>) -> Gguf {
    let mut tokens = vec![
        "<pad>",
        "<eos>",
        "<bos>",
        "<unk>",
        "<start_of_turn>",
        "<end_of_turn>",
        "\n",
        "  ",
        "\u{2581}",
        "h",
        "i",
        "hi",
        "\u{2581}hi",
        "<|eom_id|>",
    ];
    let mut types = vec![3, 3, 3, 3, 3, 3, 4, 4, 1, 1, 1, 1, 1, 3];
    let mut scores = vec![0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -2.0, -3.0, 0.0];
    let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
    tokens.extend(bytes.iter().map(String::as_str));
    types.extend([6; 256]);
    scores.extend([0.0; 256]);
    let mut meta = vec![
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.pre", Value::String("default".into())),
        ("tokenizer.ggml.tokens", strings(&tokens)),
        ("tokenizer.ggml.token_type", ints(&types)),
        ("tokenizer.ggml.scores", Value::Array(scores.into_iter().map(Value::F32).collect())),
        ("tokenizer.ggml.bos_token_id", Value::U32(2)),
        ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(3)),
        ("tokenizer.ggml.eot_token_id", Value::U32(13)),
    ];
    if let Some(prefix) = add_space_prefix {
        meta.push(("tokenizer.ggml.add_space_prefix", Value::Bool(prefix)));
    }
    Gguf::parse(write(&meta, &[])).expect("gguf")
}

#[test]
fn sentencepiece_from_gguf() {
    let (tk, special) = from_gguf(&tiny_spm(Some(false))).expect("tokenizer");
    // SentencePiece files start prompts with BOS unless they say otherwise.
    assert_eq!((special.bos, special.eos, special.add_bos), (Some(2), Some(1), true));
    // EOS, the declared end of turn (<|eom_id|> here) and <end_of_turn> by its text.
    assert_eq!(special.end_of_generation.iter().copied().collect::<Vec<_>>(), vec![1, 5, 13]);
    assert!(special.ends_generation(5) && !special.ends_generation(4));
    let ids = encode(&tk, &special, "<start_of_turn>hi hi\n  é<end_of_turn>").expect("encode");
    let (c3, a9) = (14 + 0xC3, 14 + 0xA9);
    assert_eq!(ids, vec![2, 4, 11, 12, 6, 7, c3, a9, 5]);
    assert_eq!(decode(&tk, &ids).expect("decode"), "hi hi\n  é");
    assert_eq!(tk.token_text(12).as_deref(), Some("\u{2581}hi"));
    assert_eq!(tk.token_id("<end_of_turn>"), Some(5));
    assert_eq!(tk.token_id("<0xC3>"), Some(c3));
    assert_eq!(tk.vocab_size(), 14 + 256);
}

#[test]
fn sentencepiece_space_prefix_defaults_to_on() {
    let (tk, special) = from_gguf(&tiny_spm(None)).expect("tokenizer");
    assert_eq!(encode(&tk, &special, "hi").expect("encode"), vec![2, 12]);
    assert_eq!(decode(&tk, &[2, 12]).expect("decode"), "hi");
    let (tk, special) = from_gguf(&tiny_spm(Some(false))).expect("tokenizer");
    assert_eq!(encode(&tk, &special, "hi").expect("encode"), vec![2, 11]);
}

#[test]
fn a_merge_outside_the_vocabulary_is_an_error_not_a_panic() {
    let bytes = write(
        &[
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", strings(&["a", "b", "c"])),
            ("tokenizer.ggml.token_type", ints(&[1, 1, 1])),
            ("tokenizer.ggml.merges", strings(&["a b"])),
        ],
        &[],
    );
    let err = from_gguf(&Gguf::parse(bytes).expect("gguf")).err().map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains("'a b'")), "{err:?}");
}

#[test]
fn refuses_other_tokenizer_models() {
    let g = Gguf::parse(write(&[("tokenizer.ggml.model", Value::String("bert".into()))], &[])).expect("gguf");
    let err = from_gguf(&g).expect_err("unsupported");
    assert!(matches!(err, TokenizerError::Unsupported(ref m) if m == "bert"), "{err}");
    assert!(err.to_string().contains("'bert'"), "{err}");
}

//! The SentencePiece tokenizer on the real Gemma 3 270M file (fetched by `scripts/fetch-models.sh`)
//! against an independent implementation: `compat/spm_gguf_tokenize.py` rebuilds the
//! SentencePiece model from the same GGUF and encodes with the `sentencepiece` package, in a venv
//! this test creates. Without the file the tests skip with a message (a failure under
//! HORDE_REQUIRE_MODELS); without Python or PyPI the reference test skips (a failure under
//! HORDE_REQUIRE_COMPAT or HORDE_REQUIRE_MODELS).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
#[path = "../../compat/python_venv.rs"]
mod python_venv;

use horde_protocol::text::ChatMessage;
use horde_worker::chat_template::{builtin_for, ChatTemplate};
use horde_worker::gguf::Gguf;
use horde_worker::tokenizer;

fn gemma3() -> Option<PathBuf> {
    common::fetched_model("gemma-3-270m-q4_k_m.gguf", Some("HORDE_GEMMA3_GGUF"))
}

/// Texts that exercise the tokenizer: accents, CJK, emoji, Arabic, whitespace runs, tabs,
/// newlines, digits, code, and control and user-defined tokens written in the text. (Not a `▁`
/// written in the text next to another: the file stores Gemma's whitespace-run tokens with
/// spaces, which llama.cpp and we match in the raw text only, while the rebuilt SentencePiece
/// model, holding them as `▁▁`, also matches written `▁▁`.)
const TEXTS: &[&str] = &[
    "Hello world",
    "Write a short story about a cat.",
    "naïve café — ünïcödé, Ærøskøbing, Ελληνικά, Кириллица",
    "日本語のテキストと中文文本，还有한국어.",
    "emoji 🐈🐈‍⬛ 👩🏽‍💻 🇫🇷 and ZWJ\u{200d}",
    "مرحبا بالعالم، كيف حالك؟",
    "  leading spaces, trailing spaces   ",
    "tabs\tand\t\tmore\t\t\ttabs",
    "new\nlines\n\nand\n\n\nruns\r\nCRLF",
    "a   b    c     d      e",
    "In 2024, 3.14159 × 12 = 37.699; 1,000,000 and 0x7f",
    "def f(x):\n    return x**2  # comment\n",
    "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text<eos> <pad><unk>",
    "html <div class=\"x\"><span>hi</span></div> [multimodal]",
    "控制字符\u{1}\u{7f} and a lone é",
    "",
];

#[test]
fn gemma3_special_tokens_and_round_trip() {
    let Some(path) = gemma3() else { return };
    let g = Gguf::open(&path).expect("parses");
    let started = std::time::Instant::now();
    let (tk, special) = tokenizer::from_gguf(&g).expect("tokenizer");
    eprintln!("tokenizer built in {:?}", started.elapsed());
    assert_eq!((special.bos, special.eos, special.add_bos), (Some(2), Some(1), true));
    // EOS (<eos>) and <end_of_turn> end generation.
    assert_eq!(tk.token_id("<end_of_turn>"), Some(106));
    assert!(
        special.ends_generation(1) && special.ends_generation(106),
        "{:?}",
        special.end_of_generation
    );
    let ids = tokenizer::encode(&tk, &special, "<start_of_turn>user\nHi<end_of_turn>").expect("encode");
    assert_eq!(ids[..3], [2, 105, 2364]);
    assert_eq!(ids[ids.len() - 1], 106);
    // Decoding gives back the text, control tokens dropped (user-defined ones kept) and a `▁`
    // written in the text read as the space it stands for.
    let ids = tokenizer::encode(&tk, &special, "a\u{2581}b").expect("encode");
    assert_eq!(tokenizer::decode(&tk, &ids).expect("decode"), "a b");
    let controls = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>"];
    for text in TEXTS {
        let ids = tokenizer::encode(&tk, &special, text).expect("encode");
        let want = controls.iter().fold(text.replace('\u{2581}', " "), |t, c| t.replace(c, ""));
        assert_eq!(tokenizer::decode(&tk, &ids).expect("decode"), want, "{ids:?}");
    }
}

#[test]
fn gemma3_gets_the_builtin_gemma_chat_template() {
    let Some(path) = gemma3() else { return };
    let g = Gguf::open(&path).expect("parses");
    // The file has no template of its own; its vocabulary has <start_of_turn>.
    assert!(g.get("tokenizer.chat_template").is_none());
    let (tk, special) = tokenizer::from_gguf(&g).expect("tokenizer");
    let (name, source) = builtin_for(|t| tk.token_id(t).is_some()).expect("a built-in template");
    assert_eq!(name, "gemma");
    let template = ChatTemplate::new(source, "<bos>", "<eos>")
        .expect("parses")
        .with_tokenizer_bos(special.add_bos);
    let messages = [("system", "Be brief."), ("user", "Hi!")].map(|(role, content)| ChatMessage {
        role: role.into(),
        content: content.into(),
    });
    let prompt = template.render(&messages).expect("renders");
    assert_eq!(prompt, "<start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n<start_of_turn>model\n");
    // One BOS, the turn markers as single tokens, "\n" as Gemma's newline token.
    let ids = tokenizer::encode(&tk, &special, &prompt).expect("encode");
    assert_eq!(ids[..4], [2, 105, 2364, 107]);
    assert_eq!(ids[ids.len() - 5..], [106, 107, 105, tk.token_id("model").expect("model"), 107]);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 1);
}

/// A venv with the reference's dependencies, created on first use.
fn reference_python() -> Option<PathBuf> {
    python_venv::reference_python(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        "spm-reference-venv",
        &["gguf==0.17.1", "sentencepiece==0.2.0", "protobuf==5.29.3"],
    )
}

#[test]
fn gemma3_ids_equal_sentencepiece() {
    let Some(path) = gemma3() else { return };
    let Some(python) = reference_python() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/spm_gguf_tokenize.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the reference");
    let input = serde_json::to_vec(TEXTS).expect("json");
    child.stdin.take().expect("stdin").write_all(&input).expect("write the texts");
    let out = child.wait_with_output().expect("reference output");
    assert!(out.status.success(), "reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let want: Vec<Vec<u32>> = serde_json::from_slice(&out.stdout).expect("reference ids");
    let g = Gguf::open(&path).expect("parses");
    let (tk, _) = tokenizer::from_gguf(&g).expect("tokenizer");
    assert_eq!(want.len(), TEXTS.len());
    let started = std::time::Instant::now();
    for (text, want) in TEXTS.iter().zip(&want) {
        assert_eq!(&tk.encode(text).expect("encode"), want, "{text:?}");
    }
    eprintln!("{} texts encoded in {:?}", TEXTS.len(), started.elapsed());
}

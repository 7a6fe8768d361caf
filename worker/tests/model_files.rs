//! What a volunteer sees when the model file is wrong: `horde-worker --model FILE` stops before
//! contacting any horde with one clear error line and exit status 1, for a truncated download, an
//! architecture it does not run and an encoding it does not run.

use std::path::PathBuf;
use std::process::Command;

use horde_worker::gguf::writer::{write, write_encoded};
use horde_worker::gguf::{TensorType, Value};

/// A minimal byte-level vocabulary, so the file gets past the tokenizer.
fn tokenizer_metadata() -> Vec<(&'static str, Value)> {
    let tokens = ["a", "b", "c", "ab"];
    vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.iter().map(|t| Value::String(t.to_string())).collect()),
        ),
        ("tokenizer.ggml.token_type", Value::Array(vec![Value::I32(1); 4])),
        ("tokenizer.ggml.merges", Value::Array(vec![Value::String("a b".into())])),
    ]
}

fn llama_metadata(arch: &str) -> Vec<(String, Value)> {
    let mut m: Vec<(String, Value)> = vec![("general.architecture".into(), Value::String(arch.into()))];
    for (k, v) in [
        ("block_count", 1u32),
        ("embedding_length", 32),
        ("attention.head_count", 2),
        ("attention.head_count_kv", 2),
        ("feed_forward_length", 64),
        ("context_length", 64),
    ] {
        m.push((format!("{arch}.{k}"), Value::U32(v)));
    }
    m.extend(tokenizer_metadata().into_iter().map(|(k, v)| (k.to_string(), v)));
    m
}

/// The tensors of a one-layer llama model (vocabulary 4, width 32).
fn llama_tensors() -> Vec<(String, Vec<usize>, TensorType, Vec<f32>)> {
    let (d, ffn, vocab) = (32usize, 64usize, 4usize);
    let w = |n: usize| (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 20.0).collect::<Vec<_>>();
    let mut t = vec![
        ("token_embd.weight".to_string(), vec![vocab, d], TensorType::F32, w(vocab * d)),
        ("output_norm.weight".to_string(), vec![d], TensorType::F32, vec![1.0; d]),
    ];
    for (name, shape) in [
        ("attn_norm", vec![d]),
        ("attn_q", vec![d, d]),
        ("attn_k", vec![d, d]),
        ("attn_v", vec![d, d]),
        ("attn_output", vec![d, d]),
        ("ffn_norm", vec![d]),
        ("ffn_gate", vec![ffn, d]),
        ("ffn_up", vec![ffn, d]),
        ("ffn_down", vec![d, ffn]),
    ] {
        let n = shape.iter().product();
        t.push((format!("blk.0.{name}.weight"), shape, TensorType::F32, w(n)));
    }
    t
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("model-files");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

fn model_file(arch: &str, tensors: &[(String, Vec<usize>, TensorType, Vec<f32>)]) -> Vec<u8> {
    let meta = llama_metadata(arch);
    let meta: Vec<(&str, Value)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let tensors: Vec<(&str, Vec<usize>, TensorType, Vec<f32>)> =
        tensors.iter().map(|(n, s, k, d)| (n.as_str(), s.clone(), *k, d.clone())).collect();
    write(&meta, &tensors)
}

/// Runs the worker on `path` (its horde address answers nothing: the model must fail first) and
/// returns its exit code (`None` if it was still running, past loading, after 20 s) and its error
/// lines.
fn run_worker(path: &std::path::Path) -> (Option<i32>, Vec<String>) {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "model-files/{}.log",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("worker")
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_horde-worker"))
        .args([
            "--url",
            "http://127.0.0.1:9",
            "--api-key",
            "0000000000",
            "--name",
            "bad-file",
            "--model",
        ])
        .arg(path)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run the worker");
    let started = std::time::Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        if stderr.contains("loaded") || started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let errors = stderr
        .lines()
        .filter(|l| l.starts_with("horde-worker:"))
        .map(str::to_string)
        .collect();
    (code, errors)
}

#[test]
fn a_good_tiny_file_gets_past_loading() {
    // The control: the same file, whole, loads (the worker is stopped once it says so).
    let path = file("good.gguf", &model_file("llama", &llama_tensors()));
    let (code, errors) = run_worker(&path);
    assert_eq!((code, errors.len()), (None, 0), "the model loads: {errors:?}");
}

#[test]
fn a_truncated_file_is_one_clear_error() {
    let mut bytes = model_file("llama", &llama_tensors());
    bytes.truncate(bytes.len() - 1000);
    let path = file("truncated.gguf", &bytes);
    let (code, errors) = run_worker(&path);
    assert_eq!(code, Some(1), "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("truncated") && errors[0].contains("truncated.gguf"),
        "{errors:?}"
    );
}

#[test]
fn an_unknown_architecture_is_named() {
    let path = file("mamba.gguf", &model_file("mamba", &llama_tensors()));
    let (code, errors) = run_worker(&path);
    assert_eq!(code, Some(1), "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("mamba"), "{errors:?}");
}

#[test]
fn an_unsupported_encoding_is_named_with_its_tensor() {
    // blk.0.attn_k.weight in IQ2_XS (ggml type 17; 66 bytes per block of 256).
    let mut tensors: Vec<(String, Vec<usize>, u32, Vec<u8>)> = llama_tensors()
        .into_iter()
        .map(|(n, s, k, d)| (n, s, k.code(), horde_worker::gguf::writer::encode(k, &d)))
        .collect();
    for t in tensors.iter_mut().filter(|t| t.0 == "blk.0.attn_k.weight") {
        t.1 = vec![256, 256];
        t.2 = 17;
        t.3 = vec![0; 256 * 66];
    }
    let meta = llama_metadata("llama");
    let meta: Vec<(&str, Value)> = meta.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let tensors: Vec<(&str, Vec<usize>, u32, Vec<u8>)> =
        tensors.iter().map(|(n, s, k, b)| (n.as_str(), s.clone(), *k, b.clone())).collect();
    let path = file("iq2.gguf", &write_encoded(&meta, &tensors));
    let (code, errors) = run_worker(&path);
    assert_eq!(code, Some(1), "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("IQ2_XS") && errors[0].contains("blk.0.attn_k.weight") && !errors[0].contains("type 17"),
        "{errors:?}"
    );
}

#[test]
fn not_a_gguf_file_is_one_clear_error() {
    let path = file("notes.gguf", b"this is not a model");
    let (code, errors) = run_worker(&path);
    assert_eq!(code, Some(1), "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("not a GGUF file"), "{errors:?}");
}

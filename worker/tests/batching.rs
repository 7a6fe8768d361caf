//! Continuous batching on the real default model (SmolLM2-135M-Instruct): jobs of different
//! lengths that join and leave a batch get exactly the tokens they get alone, one job's
//! cancellation leaves the others as they were, and a batch reads the weights once per step.
//! Skips without the model file unless HORDE_REQUIRE_MODELS=1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

mod common;

use horde_protocol::text::TextParams;
use horde_worker::batching::Batcher;
use horde_worker::device::Compute;
use horde_worker::text_model::TextModel;

fn model() -> Option<TextModel> {
    let path = common::fetched_model("SmolLM2-135M-Instruct.Q4_1.gguf", Some("HORDE_SMOLLM2_GGUF"))?;
    Some(TextModel::load(path.to_str().expect("utf-8 path"), &Compute::Host, false).expect("model"))
}

fn greedy(max_length: i64) -> TextParams {
    TextParams {
        max_length: Some(max_length),
        temperature: Some(0.0),
        ..Default::default()
    }
}

/// Prompts of different lengths with different numbers of tokens to generate.
const JOBS: [(&str, i64); 5] = [
    ("The capital of France is", 6),
    (
        "Once upon a time, in a small village by the sea, there lived an old fisherman who",
        24,
    ),
    ("1, 2, 3, 4,", 12),
    ("<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n", 30),
    ("def fibonacci(n):", 9),
];

#[test]
fn jobs_joining_and_leaving_a_batch_get_the_tokens_they_get_alone() {
    let Some(model) = model() else { return };
    let alone: Vec<_> = JOBS
        .iter()
        .map(|(prompt, n)| model.generate(prompt, &greedy(*n), 1).expect("alone"))
        .collect();
    let tokens_alone: usize = alone.iter().map(|g| g.tokens).sum();
    let model = Arc::new(model);
    let passes = model.weight_passes();
    // Three places for five jobs: the last two join as the first ones leave.
    let batch = Arc::new(Batcher::start(model.clone(), 3));
    let start = Arc::new(Barrier::new(JOBS.len()));
    let threads: Vec<_> = JOBS
        .iter()
        .enumerate()
        .map(|(i, (prompt, n))| {
            let (batch, start) = (batch.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                // Later jobs arrive while earlier ones run.
                std::thread::sleep(std::time::Duration::from_millis(20 * i as u64));
                batch.generate(prompt, &greedy(*n), 1, None).expect("batched")
            })
        })
        .collect();
    for ((thread, expected), (prompt, _)) in threads.into_iter().zip(&alone).zip(JOBS) {
        assert_eq!(&thread.join().expect("job thread"), expected, "{prompt:?}");
    }
    // Steps took several jobs at once: far fewer passes than tokens (one pass per token alone).
    let batched_passes = model.weight_passes() - passes;
    assert!(
        (batched_passes as usize) < tokens_alone * 3 / 4,
        "{batched_passes} passes over the weights for {tokens_alone} tokens"
    );
}

#[test]
fn cancelling_one_job_leaves_the_others_as_they_are() {
    let Some(model) = model() else { return };
    let (prompt, n) = JOBS[1];
    let expected = model.generate(prompt, &greedy(n), 1).expect("alone");
    let model = Arc::new(model);
    let batch = Arc::new(Batcher::start(model, 4));
    let start = Arc::new(Barrier::new(3));
    let heard = Arc::new(AtomicUsize::new(0));
    let cancelled = {
        let (batch, start, heard) = (batch.clone(), start.clone(), heard.clone());
        std::thread::spawn(move || {
            start.wait();
            let mut on_text = |_: &str| heard.fetch_add(1, Ordering::Relaxed) < 2;
            batch
                .generate(JOBS[3].0, &greedy(200), 7, Some(&mut on_text))
                .expect("cancelled job")
        })
    };
    let others: Vec<_> = (0..2)
        .map(|_| {
            let (batch, start) = (batch.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut texts = vec![];
                let mut on_text = |t: &str| {
                    texts.push(t.to_string());
                    true
                };
                let g = batch.generate(prompt, &greedy(n), 1, Some(&mut on_text)).expect("job");
                (g, texts)
            })
        })
        .collect();
    let stopped = cancelled.join().expect("cancelled thread");
    assert!(stopped.tokens < 20, "the cancelled job stopped early: {} tokens", stopped.tokens);
    for other in others {
        let (g, texts) = other.join().expect("job thread");
        assert_eq!(g, expected);
        // Each job heard its own text grow, ending with its result.
        assert!(texts.windows(2).all(|w| w[1].starts_with(&w[0])), "{texts:?}");
        assert_eq!(texts.last().map(|t| t.trim_end()), Some(expected.text.trim_end()));
    }
}

//! Several text jobs at once on the CPU, as a worker with `--threads N` runs them: N greedy jobs
//! of 64 tokens on different prompts, started together, timed (a) as independent decode loops,
//! one thread each (the worker before continuous batching), and (b) in one batch
//! (`horde_worker::batching`, what the worker runs now). Prints, for N = 1, 4 and 8, the wall
//! time, the aggregate tok/s (all jobs' tokens ÷ wall time) and the mean per-job tok/s.
//! SmolLM2-135M-Instruct Q4_1 by default; `--model PATH` for another (Gemma 3 270M Q4_K_M).
//! `--jobs N` times only N jobs, `--batch-only` only the batch (for profiling).
//! Threads of the matrix kernels follow RAYON_NUM_THREADS. Run:
//!   cargo bench -p horde-worker --bench concurrent_jobs
//!   cargo bench -p horde-worker --bench concurrent_jobs -- --model ~/.cache/horde/models/gemma-3-270m-q4_k_m.gguf

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use horde_protocol::text::TextParams;
use horde_worker::backend::Generated;
use horde_worker::batching::Batcher;
use horde_worker::device::Compute;
use horde_worker::text_model::TextModel;

const SUBJECTS: [&str; 8] = [
    "a cat",
    "a lighthouse keeper who finds a message in a bottle",
    "the first day of spring",
    "a robot learning to paint",
    "two friends lost in a forest at night",
    "a dragon",
    "an old clock that runs backwards",
    "a baker's secret recipe",
];

fn prompt(gemma: bool, i: usize) -> String {
    let ask = format!("Write a short story about {}.", SUBJECTS[i % SUBJECTS.len()]);
    if gemma {
        format!("<start_of_turn>user\n{ask}<end_of_turn>\n<start_of_turn>model\n")
    } else {
        format!("<|im_start|>user\n{ask}<|im_end|>\n<|im_start|>assistant\n")
    }
}

/// Runs `jobs` jobs at once through `run`; returns the wall time and each job's (tokens, seconds).
fn time_jobs(jobs: usize, run: impl Fn(usize) -> Generated + Send + Sync + 'static) -> (f64, Vec<(usize, f64)>) {
    let run = Arc::new(run);
    let start = Arc::new(Barrier::new(jobs + 1));
    let threads: Vec<_> = (0..jobs)
        .map(|i| {
            let (run, start) = (run.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let t = Instant::now();
                let g = run(i);
                (g.tokens, t.elapsed().as_secs_f64())
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    let per_job: Vec<_> = threads.into_iter().map(|t| t.join().expect("job")).collect();
    (t.elapsed().as_secs_f64(), per_job)
}

fn report(label: &str, jobs: usize, (wall, per_job): (f64, Vec<(usize, f64)>)) {
    let tokens: usize = per_job.iter().map(|(n, _)| n).sum();
    let per_job_rate = per_job.iter().map(|(n, s)| *n as f64 / s).sum::<f64>() / jobs as f64;
    println!(
        "{jobs} jobs, {label:<18} {wall:>6.2} s  {tokens:>4} tokens  aggregate {:>6.1} tok/s  per job {per_job_rate:>5.1} tok/s",
        tokens as f64 / wall
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| horde_worker::text_model::model_cache().join("SmolLM2-135M-Instruct.Q4_1.gguf"));
    if !path.exists() {
        println!("skipping: {} is missing (run scripts/fetch-models.sh)", path.display());
        return;
    }
    let quick = args.iter().any(|a| a == "--test");
    let model = Arc::new(TextModel::load(path.to_str().expect("utf-8 path"), &Compute::Host, true).expect("model"));
    let gemma = path.to_string_lossy().contains("gemma");
    let params = TextParams {
        max_length: Some(if quick { 4 } else { 64 }),
        temperature: Some(0.0),
        ..Default::default()
    };
    println!(
        "{} on the host engine, {} kernel threads, greedy {} tokens per job",
        model.name,
        rayon::current_num_threads(),
        params.max_length.unwrap_or(0)
    );
    // Warm-up: page the weights in.
    model.generate(&prompt(gemma, 0), &params, 1).expect("warm-up");
    let only: Option<usize> = args
        .iter()
        .position(|a| a == "--jobs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    let batch_only = args.iter().any(|a| a == "--batch-only");
    let counts: Vec<usize> = match only {
        Some(n) => vec![n],
        None if quick => vec![2],
        None => vec![1, 4, 8],
    };
    for jobs in counts {
        if !batch_only {
            let (m, p) = (model.clone(), params.clone());
            report(
                "independent loops",
                jobs,
                time_jobs(jobs, move |i| m.generate(&prompt(gemma, i), &p, 1).expect("job")),
            );
        }
        let batch = Batcher::start(model.clone(), jobs);
        let p = params.clone();
        report(
            "one batch",
            jobs,
            time_jobs(jobs, move |i| batch.generate(&prompt(gemma, i), &p, 1, None).expect("job")),
        );
    }
}

//! Continuous batching: the jobs a worker runs at the same time on one model share each forward
//! pass. One thread per model owns the running jobs; every step it runs one token of each
//! decoding job and a chunk of each new job's prompt through `Llama::forward_batch` (so the
//! weights are read once per step, not once per job), then samples each job's next token. A job
//! that finishes leaves at once; a new one joins at the next step. Each job's tokens are those it
//! gets alone (the same `Decoding`, and rows that do not affect each other).
//!
//! The thread that asked for a job waits for its events: the settled text as it grows, then the
//! result. A listener that returns `false` cancels only its own job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};

use horde_protocol::text::TextParams;
use rayon::prelude::*;

use crate::backend::Generated;
use crate::decoding::Decoding;
use crate::llama::{KvCache, SequenceStep};
use crate::text_model::TextModel;

/// Prompt tokens a new job runs per step: a long prompt is taken in chunks, so the jobs already
/// decoding keep getting a token at every step.
pub const PROMPT_CHUNK: usize = 256;

/// A job on its way to the batch.
struct Admission {
    decoding: Decoding,
    prompt: Vec<u32>,
    events: Sender<Event>,
    cancelled: Arc<AtomicBool>,
}

/// What the batch tells a waiting job.
enum Event {
    /// The settled text so far.
    Text(String),
    /// The result; nothing follows.
    Done(Result<Generated, String>),
}

/// A running job.
struct Running {
    decoding: Decoding,
    cache: KvCache,
    /// Tokens to run next: the rest of the prompt, or the last sampled token.
    pending: Vec<u32>,
    events: Sender<Event>,
    cancelled: Arc<AtomicBool>,
}

/// The batch of one model: up to `capacity` jobs in each forward pass.
pub struct Batcher {
    model: Arc<TextModel>,
    admissions: Mutex<Sender<Admission>>,
}

impl Batcher {
    /// Starts the model's batch thread. It ends when the `Batcher` is dropped and its jobs are done.
    pub fn start(model: Arc<TextModel>, capacity: usize) -> Self {
        let (admit, admissions) = mpsc::channel();
        let running = model.clone();
        std::thread::Builder::new()
            .name(format!("batch {}", model.name))
            .spawn(move || run_batches(&running, capacity.max(1), &admissions))
            .map_err(|e| tracing::error!(error = %e, "could not start the batch thread"))
            .ok();
        Self {
            model,
            admissions: Mutex::new(admit),
        }
    }

    /// Generates a job's text in the batch; `on_text` (when given) hears the settled text as it
    /// grows and returns `false` to stop the job with the text so far.
    pub fn generate(
        &self,
        prompt: &str,
        params: &TextParams,
        seed: u64,
        mut on_text: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<Generated, String> {
        let (decoding, prompt) = self.model.start(prompt, params, seed, on_text.is_some())?;
        let (events, received) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let admission = Admission {
            decoding,
            prompt,
            events,
            cancelled: cancelled.clone(),
        };
        self.admissions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(admission)
            .map_err(|_| "the model's batch thread has stopped".to_string())?;
        loop {
            match received.recv() {
                Ok(Event::Text(text)) => {
                    if let Some(on_text) = on_text.as_mut() {
                        if !on_text(&text) {
                            cancelled.store(true, Ordering::Relaxed);
                        }
                    }
                }
                Ok(Event::Done(result)) => return result,
                Err(_) => return Err("generation crashed".into()),
            }
        }
    }
}

/// The batch thread: admits jobs while there is room, steps them together, lets finished ones go.
fn run_batches(model: &TextModel, capacity: usize, admissions: &Receiver<Admission>) {
    let mut running: Vec<Running> = Vec::with_capacity(capacity);
    let mut open = true;
    while open || !running.is_empty() {
        // Wait for work when there is none; else take whatever has arrived, up to capacity.
        if running.is_empty() {
            match admissions.recv() {
                Ok(a) => running.push(admit(model, a)),
                Err(_) => return,
            }
        }
        while open && running.len() < capacity {
            match admissions.try_recv() {
                Ok(a) => running.push(admit(model, a)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        // Cancelled jobs end before the step, with their text so far.
        let vocab = model.vocabulary();
        let mut i = 0;
        while i < running.len() {
            if running[i].cancelled.load(Ordering::Relaxed) {
                let mut job = running.swap_remove(i);
                let result = job.decoding.cancel(vocab).and_then(|()| job.decoding.finish(vocab));
                let _ = job.events.send(Event::Done(result));
            } else {
                i += 1;
            }
        }
        if running.is_empty() {
            continue;
        }
        step(model, &mut running);
    }
}

fn admit(model: &TextModel, a: Admission) -> Running {
    Running {
        cache: model.llama().new_cache_with_capacity(a.decoding.positions(a.prompt.len())),
        decoding: a.decoding,
        pending: a.prompt,
        events: a.events,
        cancelled: a.cancelled,
    }
}

/// One forward pass for all running jobs, then each job's next token.
fn step(model: &TextModel, running: &mut Vec<Running>) {
    let llama = model.llama();
    let taken: Vec<usize> = running.iter().map(|job| job.pending.len().min(PROMPT_CHUNK)).collect();
    let logits = {
        let mut steps: Vec<SequenceStep<'_>> = running
            .iter_mut()
            .zip(&taken)
            .map(|(job, &n)| SequenceStep {
                tokens: &job.pending[..n],
                cache: &mut job.cache,
            })
            .collect();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| llama.forward_batch(&mut steps)))
    };
    let Ok(mut logits) = logits else {
        for job in running.drain(..) {
            let _ = job.events.send(Event::Done(Err("generation crashed".into())));
        }
        return;
    };
    // Each job samples its token on its own thread: a large vocabulary takes a while to rank.
    let vocab = model.vocabulary();
    let outcomes: Vec<Outcome> = running
        .par_iter_mut()
        .zip(logits.par_iter_mut())
        .zip(taken)
        .map(|((job, logits), n)| {
            job.pending.drain(..n);
            if !job.pending.is_empty() {
                return Outcome::Running; // more of the prompt to run before a token is sampled
            }
            match job.decoding.advance(vocab, logits, job.cache.len()) {
                Ok(advance) => {
                    if let Some(text) = advance.text {
                        if job.events.send(Event::Text(text)).is_err() {
                            job.cancelled.store(true, Ordering::Relaxed); // nobody waits for it
                        }
                    }
                    match advance.next {
                        Some(token) => {
                            job.pending.push(token);
                            Outcome::Running
                        }
                        None => Outcome::Finished,
                    }
                }
                Err(e) => Outcome::Failed(e),
            }
        })
        .collect();
    for (i, outcome) in outcomes.into_iter().enumerate().rev() {
        let result = match outcome {
            Outcome::Running => continue,
            Outcome::Finished => None,
            Outcome::Failed(e) => Some(Err(e)),
        };
        let job = running.swap_remove(i);
        let result = result.unwrap_or_else(|| job.decoding.finish(vocab));
        let _ = job.events.send(Event::Done(result));
    }
}

/// What became of a job in a step.
enum Outcome {
    Running,
    Finished,
    Failed(String),
}

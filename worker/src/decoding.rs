//! One job's generation as it goes, independent of how its forward passes are run: the prompt's
//! tokens (cut to the context budget), the sampler, the tokens so far, stop sequences and the
//! text settled so far. A job run alone (`TextModel::generate`) and a job in a batch
//! (`crate::batching`) step through the same `Decoding`, so both give the same tokens.

use horde_protocol::text::TextParams;

use crate::backend::Generated;
use crate::sampling::{cut_at_stop, settled_len, Sampler, SamplerSettings};
use crate::tokenizer::{self, SpecialTokens, Tokenizer};

/// What the tokenizer of a job's model is.
#[derive(Clone, Copy)]
pub struct Vocabulary<'a> {
    pub tokenizer: &'a Tokenizer,
    pub special: &'a SpecialTokens,
}

/// A job's decoding state.
pub struct Decoding {
    sampler: Sampler,
    /// The prompt and the tokens generated, for the repetition penalty.
    history: Vec<u32>,
    /// The tokens generated.
    out: Vec<u32>,
    stops: Vec<String>,
    max_length: usize,
    /// Positions the model may hold.
    context: usize,
    /// Whether the text is decoded after each token for a listener.
    streaming: bool,
    /// Bytes of settled text reported so far.
    reported: usize,
    /// The final text, once a stop sequence cut it or the job was cancelled.
    stopped: Option<String>,
    /// Whether the model ended its answer (an end-of-generation token).
    ended: bool,
    seed: u64,
}

/// What a step of decoding gives.
#[derive(Debug, Default, PartialEq)]
pub struct Advance {
    /// The token to run next; `None` when the job is finished.
    pub next: Option<u32>,
    /// The settled text, when it grew (streaming jobs only).
    pub text: Option<String>,
}

impl Decoding {
    /// The job's decoding state and the prompt's tokens to run first: the end of the prompt, so
    /// that `max_length` new tokens fit in `min(max_context_length, model_context)`.
    pub fn start(
        vocab: Vocabulary<'_>,
        prompt: &str,
        params: &TextParams,
        seed: u64,
        model_context: usize,
        streaming: bool,
    ) -> Result<(Self, Vec<u32>), String> {
        let max_length = params.max_length.unwrap_or(80).max(1) as usize;
        let context = (params.max_context_length.unwrap_or(2048).max(2) as usize).min(model_context);
        let mut ids = tokenizer::encode(vocab.tokenizer, vocab.special, prompt).map_err(|e| e.to_string())?;
        let budget = context.saturating_sub(max_length).max(1);
        if ids.len() > budget {
            ids.drain(..ids.len() - budget);
        }
        if ids.is_empty() {
            ids.extend(vocab.special.bos);
        }
        let decoding = Self {
            sampler: Sampler::new(SamplerSettings::from_params(params), seed),
            history: ids.clone(),
            out: vec![],
            stops: params.stop_sequence.clone().unwrap_or_default(),
            max_length,
            context: model_context,
            streaming,
            reported: 0,
            stopped: None,
            ended: false,
            seed,
        };
        Ok((decoding, ids))
    }

    /// Positions a job whose prompt has `prompt` tokens may fill: the size of its KV cache.
    pub fn positions(&self, prompt: usize) -> usize {
        (prompt + self.max_length).min(self.context)
    }

    /// Takes the logits after the last token run (`positions` now in the job's cache): samples
    /// the next token, and says whether to run it.
    pub fn advance(&mut self, vocab: Vocabulary<'_>, logits: &mut [f32], positions: usize) -> Result<Advance, String> {
        if self.is_finished() || self.out.len() >= self.max_length || positions >= self.context {
            return Ok(Advance::default());
        }
        let next = self.sampler.sample(logits, &self.history);
        if vocab.special.ends_generation(next) {
            self.ended = true;
            return Ok(Advance::default());
        }
        self.out.push(next);
        self.history.push(next);
        let mut text = None;
        if !self.stops.is_empty() || self.streaming {
            let mut decoded = tokenizer::decode(vocab.tokenizer, &self.out).map_err(|e| e.to_string())?;
            if cut_at_stop(&mut decoded, &self.stops) {
                self.stopped = Some(decoded);
                return Ok(Advance::default());
            }
            let settled = settled_len(&decoded, &self.stops);
            if self.streaming && settled > self.reported {
                self.reported = settled;
                decoded.truncate(settled);
                text = Some(decoded);
            }
        }
        let next = (self.out.len() < self.max_length).then_some(next);
        Ok(Advance { next, text })
    }

    /// Stops the job where it is (the requester cancelled): its result is the text so far.
    pub fn cancel(&mut self, vocab: Vocabulary<'_>) -> Result<(), String> {
        if self.stopped.is_none() {
            let text = tokenizer::decode(vocab.tokenizer, &self.out).map_err(|e| e.to_string())?;
            self.stopped = Some(text.trim_end_matches('\u{FFFD}').to_string());
        }
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.ended || self.stopped.is_some()
    }

    /// The job's result.
    pub fn finish(self, vocab: Vocabulary<'_>) -> Result<Generated, String> {
        let text = match self.stopped {
            Some(text) => text,
            None => tokenizer::decode(vocab.tokenizer, &self.out).map_err(|e| e.to_string())?,
        };
        Ok(Generated {
            text,
            tokens: self.out.len(),
            seed: self.seed as i64 & i64::MAX,
        })
    }
}

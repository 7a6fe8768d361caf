//! What text requests bring to the lifecycle (`crate::lifecycle`): their price, the memory they
//! hold, the batch and payload a worker gets, and what a finished job counts (tokens).

use horde_protocol::image::ImageCheck;
use horde_protocol::text::{GenMetadata, TextGeneration, TextPayload, TextPopResponse, TextSkipped, TextStatus};
use uuid::Uuid;

use super::{memory, TextKind, TextNeeds, TextRequest};
use crate::accounts::{UserRecords, Users};
use crate::config::HordeConfig;
use crate::generation_stats::GenerationKind;
use crate::kudos::text_price;
use crate::kudos::Centikudos;
use crate::lifecycle::{upfront, JobLinks, JobReport, RequestKind, Settled, Work};
use crate::safety::suspicion;
use crate::scheduler::{FinishedJob, Job, Queue, WaitingRequest};
use crate::state::{add_records, State};
use crate::workers::{Worker, Workers};
use crate::{HordeError, Result};

/// What a worker sends back for a text job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TextJobResult {
    pub job_id: String,
    pub generation: String,
    pub state: String,
    pub seed: i64,
    pub gen_metadata: Vec<GenMetadata>,
}

impl JobReport for TextJobResult {
    fn job_id(&self) -> &str {
        &self.job_id
    }
    fn state(&self) -> &str {
        &self.state
    }
    fn seed(&self) -> i64 {
        self.seed
    }
    fn gen_metadata(&self) -> &[GenMetadata] {
        &self.gen_metadata
    }
}

/// Size (billions) a request is priced at: its largest requested model, or 13B for none.
fn request_billions(req: &TextRequest) -> f64 {
    if req.models.is_empty() {
        text_price::DEFAULT_MODEL_BILLIONS
    } else {
        req.models.iter().map(|m| text_price::pricing_billions(m)).fold(0.0, f64::max)
    }
}

/// Expected charge of one job of `req` (the full `max_length` at full context).
pub fn estimate_job(req: &TextRequest) -> Centikudos {
    let reward = text_price::job_reward(request_billions(req), req.max_length, req.max_context_length);
    text_price::job_charge(reward, req.slow_workers, req.worker_blacklist)
}

/// A finished text job as clients see it.
pub(crate) fn text_generation(g: &FinishedJob<String>) -> TextGeneration {
    TextGeneration {
        text: g.output.clone(),
        seed: g.seed,
        worker_id: g.worker_id.to_string(),
        worker_name: g.worker_name.clone(),
        model: g.model.clone(),
        state: g.state.clone(),
        gen_metadata: g.gen_metadata.clone(),
    }
}

impl RequestKind for TextKind {
    type Pop = TextPopResponse;
    type Report = TextJobResult;
    type Status = TextStatus;

    fn queue(s: &State) -> &Queue<Self> {
        &s.queue
    }
    fn queue_mut(s: &mut State) -> &mut Queue<Self> {
        &mut s.queue
    }
    fn queue_beside_workers(s: &mut State) -> (&mut Queue<Self>, &Workers, &Users) {
        (&mut s.queue, &s.workers, &s.users)
    }

    fn job_estimate(_s: &State, r: &TextRequest) -> Centikudos {
        estimate_job(r)
    }
    fn figures(_r: &TextRequest, work: &Work) -> Option<(GenerationKind, i64)> {
        Some((GenerationKind::Text, work.things))
    }
    /// `slow_workers: false`, or more tokens than the horde's free allowance now.
    fn upfront_reason(s: &State, r: &TextRequest, now_ms: u64) -> Option<String> {
        if !r.slow_workers {
            return Some("slow_workers is false".into());
        }
        if r.max_length <= upfront::FREE_MIN_TOKENS {
            return None;
        }
        let free = s.free_max_tokens(now_ms);
        (r.max_length > free).then(|| format!("max_length {} is over the {free} tokens served without them now", r.max_length))
    }
    /// Any workers, and at most the free allowance of tokens.
    fn downgrade(s: &State, r: &mut TextRequest, now_ms: u64) -> bool {
        r.options.slow_workers = true;
        let free = s.free_max_tokens(now_ms);
        if r.max_length > free {
            r.max_length = free;
            r.params.max_length = Some(free);
        }
        true
    }
    /// The caps on client text held in memory (`text::memory`).
    fn check_room(s: &State, user_id: i64, r: &TextRequest) -> Result<()> {
        memory::check_request(s, user_id, r)
    }
    fn hold(s: &mut State, user_id: i64, r: &TextRequest) -> Result<usize> {
        memory::check_request(s, user_id, r)?;
        Ok(memory::held_bytes(r))
    }
    fn count_request(records: &mut UserRecords, _r: &TextRequest) {
        records.requests_text += 1;
    }
    fn needs(r: &TextRequest) -> (TextNeeds, u8) {
        super::needs(r)
    }

    /// As many jobs as asked and left (one with `disable_batching`), each with
    /// `30 + max_length / 4` seconds, within the configured bounds.
    fn batch(cfg: &HordeConfig, _w: &Worker, req: &WaitingRequest<Self>, amount: u32) -> (u32, u64) {
        let min_ttl = cfg.min_text_job_ttl_secs;
        let max_ttl = cfg.request_expiry_secs.saturating_sub(60).max(min_ttl);
        let count = if req.request.disable_batching {
            1
        } else {
            amount.min(req.remaining).max(1)
        };
        let ttl = (30 + (req.request.max_length as u64).div_ceil(4)).clamp(min_ttl, max_ttl);
        (count, ttl)
    }
    /// The prompt and parameters; chat messages only to workers that asked for them.
    fn handout(w: &Worker, req: &WaitingRequest<Self>, jobs: &[Job], model: String, _links: JobLinks) -> TextPopResponse {
        let r = &req.request;
        let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
        TextPopResponse {
            payload: TextPayload {
                params: r.params.clone(),
                prompt: Some(r.prompt.clone()),
                messages: r.messages.clone().filter(|_| w.wants_messages),
            },
            id: ids.first().cloned(),
            ids,
            skipped: TextSkipped::default(),
            softprompt: Some(r.softprompt.clone().unwrap_or_default()),
            model: Some(model),
            ttl: jobs.first().map(|j| j.ttl_secs as i64),
        }
    }
    fn idle(skipped: TextSkipped) -> TextPopResponse {
        TextPopResponse {
            payload: TextPayload::default(),
            id: None,
            ids: vec![],
            skipped,
            softprompt: None,
            model: None,
            ttl: None,
        }
    }

    fn check_result(_s: &mut State, _job: &Job, report: &TextJobResult) -> Result<()> {
        if report.generation.contains('\0') {
            return Err(HordeError::NulByteInPayload);
        }
        Ok(())
    }
    /// Tokens billed (the text's, at most `max_length`), priced at the job's model and the
    /// prompt's context; the speed is tokens per second of the job.
    fn work(_s: &State, req: &WaitingRequest<Self>, job: &Job, report: &TextJobResult, now_ms: u64) -> Work {
        let r = &req.request;
        let context_tokens = ((r.prompt.chars().count() as i64 + 3) / 4).min(r.max_context_length);
        let tokens = text_price::billed_tokens(&report.generation, r.max_length);
        let reward = text_price::job_reward(text_price::pricing_billions(&job.model), tokens, context_tokens);
        let elapsed = (now_ms.saturating_sub(job.started_ms) as f64 / 1000.0).max(0.001);
        Work {
            reward,
            charge: text_price::job_charge(reward, r.slow_workers, r.worker_blacklist),
            things: tokens,
            speed: tokens as f64 / elapsed,
            max_speed: suspicion::max_text_tokens_per_sec(&job.model),
        }
    }
    /// Tokens used and contributed; the streamed text the result kept; a result longer than the
    /// room reserved for it counts against the memory caps too.
    fn count_work(s: &mut State, done: &Settled, report: TextJobResult) -> String {
        let (job, tokens) = (done.job, done.work.things);
        add_records(&mut s.pending, &mut s.users, done.requester, |r| r.usage_tokens += tokens);
        add_records(&mut s.pending, &mut s.users, done.owner, |r| {
            r.contribution_tokens += tokens;
            r.fulfilled_text += 1;
        });
        if let Some(w) = s.workers.get_mut(&job.worker_id) {
            w.tokens_generated += tokens;
        }
        s.queue.keep_progress(&job.id, &report.generation);
        let room = s.queue.get(&job.request_id).map_or(0, |r| memory::result_room(&r.request));
        s.queue.hold_more(&job.request_id, report.generation.len().saturating_sub(room));
        s.recent_tokens.push_back((done.now_ms, tokens));
        report.generation
    }
    fn announce(g: &FinishedJob<String>, _r: &TextRequest, body: &mut serde_json::Map<String, serde_json::Value>) -> Option<(Uuid, bool)> {
        body.insert("text".into(), g.output.clone().into());
        body.insert("seed".into(), g.seed.into());
        None
    }

    fn status(_s: &State, c: ImageCheck, req: &WaitingRequest<Self>, _links: JobLinks) -> TextStatus {
        TextStatus {
            finished: c.finished,
            processing: c.processing,
            restarted: c.restarted,
            waiting: c.waiting,
            done: c.done,
            faulted: c.faulted,
            wait_time: c.wait_time,
            queue_position: c.queue_position,
            kudos: c.kudos,
            is_possible: c.is_possible,
            generations: req.generations.iter().map(text_generation).collect(),
        }
    }
}

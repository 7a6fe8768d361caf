//! What a streaming client is sent: the request's standing when it changes, each job's text as
//! it grows, each finished generation, and the final status. A `StreamCursor` remembers what one
//! client has been sent (a length per job), so a client that connects late gets everything it
//! missed, and a slow one gets the text it fell behind on in one delta: how fast a client reads
//! never affects the worker or anyone else.

use horde_protocol::stream::{StreamAborted, StreamDelta, StreamGeneration, StreamStatus};
use horde_protocol::text::TextStatus;
use tokio::sync::watch;
use uuid::Uuid;

use crate::lifecycle::no_links;
use crate::scheduler::JobState;
use crate::state::State;
use crate::text::lifecycle::text_generation;
use crate::text::TextKind;
use crate::{HordeError, Result};

/// One event for a streaming client.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Status(StreamStatus),
    Delta(StreamDelta),
    /// The final text does not extend what was streamed: replace the job's text.
    Reset(StreamDelta),
    Generation(StreamGeneration),
    Aborted(StreamAborted),
    /// The request is done; the last event.
    Done(TextStatus),
}

impl StreamEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::Status(_) => "status",
            StreamEvent::Delta(_) => "delta",
            StreamEvent::Reset(_) => "reset",
            StreamEvent::Generation(_) => "generation",
            StreamEvent::Aborted(_) => "aborted",
            StreamEvent::Done(_) => "done",
        }
    }

    /// The event's JSON data.
    pub fn data(&self) -> serde_json::Value {
        let v = match self {
            StreamEvent::Status(s) => serde_json::to_value(s),
            StreamEvent::Delta(d) | StreamEvent::Reset(d) => serde_json::to_value(d),
            StreamEvent::Generation(g) => serde_json::to_value(g),
            StreamEvent::Aborted(a) => serde_json::to_value(a),
            StreamEvent::Done(s) => serde_json::to_value(s),
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}

/// What one client has been sent.
#[derive(Debug, Clone, Default)]
pub struct StreamCursor {
    /// (job, bytes of its text sent, finished with it), in the order jobs were handed out.
    jobs: Vec<(Uuid, usize, bool)>,
    last_status: Option<StreamStatus>,
    done: bool,
}

impl StreamCursor {
    /// The final event was produced.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn job(&mut self, id: Uuid) -> &mut (Uuid, usize, bool) {
        let i = match self.jobs.iter().position(|j| j.0 == id) {
            Some(i) => i,
            None => {
                self.jobs.push((id, 0, false));
                self.jobs.len() - 1
            }
        };
        &mut self.jobs[i]
    }
}

impl State {
    /// A subscription to the changes of text request `id`: it resolves on each change, and
    /// closes when the request leaves memory.
    pub fn subscribe_text(&self, id: &Uuid) -> Result<watch::Receiver<()>> {
        let req = self.queue.get(id).ok_or_else(|| HordeError::RequestNotFound(id.to_string()))?;
        Ok(req.changes.subscribe())
    }

    /// The events `cursor`'s client has not been sent yet; advances the cursor.
    pub fn text_stream_events(&mut self, id: &Uuid, cursor: &mut StreamCursor, now_ms: u64) -> Result<Vec<StreamEvent>> {
        if cursor.done {
            return Ok(vec![]);
        }
        let standing = self.check::<TextKind>(id, now_ms)?;
        let req = self.queue.get(id).ok_or_else(|| HordeError::RequestNotFound(id.to_string()))?;
        let mut events = vec![];
        for job in self.queue.jobs_of(req) {
            let entry = cursor.job(job.id);
            if entry.2 {
                continue;
            }
            let job_key = job.id.to_string();
            match job.state {
                JobState::InFlight => {
                    if let Some(new) = job.progress.get(entry.1..).filter(|t| !t.is_empty()) {
                        events.push(StreamEvent::Delta(StreamDelta {
                            job: job_key,
                            text: new.to_string(),
                        }));
                        entry.1 = job.progress.len();
                    }
                }
                JobState::Done => {
                    let Some(g) = req.generations.iter().find(|g| g.job_id == job.id) else {
                        continue;
                    };
                    match g.output.get(entry.1..).filter(|_| entry.1 <= job.progress_kept) {
                        Some(rest) if !rest.is_empty() => events.push(StreamEvent::Delta(StreamDelta {
                            job: job_key.clone(),
                            text: rest.to_string(),
                        })),
                        Some(_) => {}
                        None => events.push(StreamEvent::Reset(StreamDelta {
                            job: job_key.clone(),
                            text: g.output.clone(),
                        })),
                    }
                    events.push(StreamEvent::Generation(StreamGeneration {
                        job: job_key,
                        generation: text_generation(g),
                    }));
                    entry.1 = g.output.len();
                    entry.2 = true;
                }
                JobState::Aborted | JobState::Faulted => {
                    if entry.1 > 0 {
                        events.push(StreamEvent::Aborted(StreamAborted { job: job_key }));
                    }
                    entry.2 = true;
                }
            }
        }
        let done = standing.done;
        if cursor.last_status.as_ref() != Some(&standing) {
            cursor.last_status = Some(standing.clone());
            events.push(StreamEvent::Status(standing));
        }
        if done {
            cursor.done = true;
            events.push(StreamEvent::Done(self.status::<TextKind>(id, now_ms, &no_links)?));
        }
        Ok(events)
    }

    /// A worker's progress report for text job `job_id` it holds: the whole text so far.
    /// Returns whether the request was cancelled.
    pub fn text_progress(&mut self, user_id: i64, job_id: &str, text: String, now_ms: u64) -> Result<bool> {
        let workers = &self.workers;
        let Some(job) = self
            .queue
            .job_for_submit(job_id, user_id, false, |w| workers.get(w).map(|w| w.owner_id))?
        else {
            return Ok(false);
        };
        if text.contains('\0') {
            return Err(HordeError::NulByteInPayload);
        }
        if text.len() > MAX_PROGRESS_BYTES {
            return Err(HordeError::Validation(format!(
                "Progress text may be at most {MAX_PROGRESS_BYTES} bytes."
            )));
        }
        self.queue.record_progress(&job.id, text, now_ms)
    }
}

/// Largest progress text accepted (4,096 tokens of long words).
pub const MAX_PROGRESS_BYTES: usize = 256 * 1024;

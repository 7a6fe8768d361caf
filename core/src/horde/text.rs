//! Text generation: requests, their status and streams, workers' pops, progress and results.

use std::net::IpAddr;

use horde_protocol::stream::{TextProgressRequest, TextProgressResponse, PROGRESS_VERSION};
use horde_protocol::text::{GenerateTextRequest, TextPopRequest, TextPopResponse, TextStatus, TextSubmitRequest};
use uuid::Uuid;

use super::Horde;
use crate::horde_ops::op;
use crate::lifecycle::{no_links, Submission};
use crate::text::{StreamCursor, StreamEvent, TextJobResult, TextKind, TextRequest};
use crate::workers::WorkerKind;
use crate::{HordeError, Result};

impl Horde {
    /// `POST /generate/text/async`.
    pub async fn generate_text(&self, user_id: i64, req: GenerateTextRequest, ip: Option<IpAddr>) -> Result<Submission> {
        crate::request_checks::proxied_account(req.proxied_account.as_deref())?;
        let (req, author) = self.styled_text_request(req).await?;
        let submitted = self.submit_request::<TextKind>(user_id, TextRequest::try_from(req)?, ip).await?;
        self.reward_style_author(author, user_id, &submitted).await?;
        Ok(submitted)
    }

    /// Whether an online worker could serve `req` for `user_id` now (nothing is charged).
    pub async fn text_servable(&self, user_id: i64, req: &TextRequest) -> Result<bool> {
        let now = self.now_ms();
        Ok(self.synced().await?.servable::<TextKind>(user_id, req, now))
    }

    /// Queues (or prices, on a dry run) an already validated text request.
    pub async fn submit_text_request(&self, user_id: i64, req: TextRequest) -> Result<Submission> {
        self.submit_request::<TextKind>(user_id, req, None).await
    }

    /// `GET /generate/text/status/{id}`.
    pub async fn text_status(&self, id: &str) -> Result<TextStatus> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        self.synced().await?.status::<TextKind>(&id, now, &no_links)
    }

    /// `DELETE /generate/text/status/{id}`.
    pub async fn cancel_text(&self, id: &str) -> Result<TextStatus> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        self.run(op::CancelText { id, now }).await
    }

    /// Subscribes to the changes of text request `id` (see `State::subscribe_text`).
    pub async fn subscribe_text(&self, id: &str) -> Result<(Uuid, tokio::sync::watch::Receiver<()>)> {
        let id = Self::parse_request_id(id)?;
        let rx = self.synced().await?.subscribe_text(&id)?;
        Ok((id, rx))
    }

    /// What a streaming client of request `id` has not been sent yet (changes reach this replica
    /// from every process and wake its subscribers).
    pub fn text_stream_events(&self, id: &Uuid, cursor: &mut StreamCursor) -> Result<Vec<StreamEvent>> {
        let now = self.now_ms();
        self.local().text_stream_events(id, cursor, now)
    }

    /// `POST /generate/text/progress`.
    pub async fn text_progress(&self, user_id: i64, p: TextProgressRequest) -> Result<TextProgressResponse> {
        if let Some(v) = p.version.filter(|v| *v != PROGRESS_VERSION) {
            return Err(HordeError::Validation(format!(
                "Progress protocol version {v} is not supported; this horde speaks version {PROGRESS_VERSION}."
            )));
        }
        let now = self.now_ms();
        let op = op::TextProgress {
            user_id,
            job: p.id,
            text: p.text,
            now,
        };
        let cancelled = self.run(op).await?;
        Ok(TextProgressResponse { cancelled })
    }

    /// `POST /generate/text/pop`.
    pub async fn pop_text(&self, user_id: i64, pop: TextPopRequest, ip: Option<IpAddr>) -> Result<TextPopResponse> {
        let (worker_id, pop) = self.popping_worker(user_id, pop, WorkerKind::Text, ip).await?;
        let now = self.now_ms();
        self.run(op::PopText { worker_id, pop, ip, now }).await
    }

    /// `POST /generate/text/submit`, answered once the reward is stored.
    pub async fn submit_text(&self, user_id: i64, sub: TextSubmitRequest) -> Result<f64> {
        let result = TextJobResult {
            job_id: sub.id.unwrap_or_default(),
            generation: sub.generation.unwrap_or_default(),
            state: sub.state.unwrap_or_else(|| "ok".into()),
            seed: sub.seed.unwrap_or(0),
            gen_metadata: sub.gen_metadata.unwrap_or_default(),
        };
        let now = self.now_ms();
        let reward = self.run(op::SubmitTextJob { user_id, result, now }).await?;
        self.commit().await?;
        Ok(reward)
    }
}

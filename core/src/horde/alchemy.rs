//! Alchemy: requests to interrogate or post-process an image, their status, alchemists' pops
//! (with links to the source image and for uploads) and results.

use std::net::IpAddr;

use horde_protocol::alchemy::{AlchemyAsyncRequest, AlchemyPopRequest, AlchemyPopResponse, AlchemyStatusResponse, AlchemySubmitRequest};
use uuid::Uuid;

use super::Horde;
use crate::alchemy::{AlchemyJobResult, AlchemyKind, AlchemyRequest};
use crate::horde_ops::op;
use crate::image::LinkPurpose;
use crate::lifecycle::Submission;
use crate::workers::WorkerKind;
use crate::Result;

impl Horde {
    /// `POST /interrogate/async` from client address `ip` (when known).
    pub async fn interrogate(&self, user_id: i64, req: AlchemyAsyncRequest, ip: Option<IpAddr>) -> Result<Submission> {
        // The source image's key is drawn here, and carried by the operation.
        let req = AlchemyRequest::parse(req, &self.local().cfg, Uuid::new_v4())?;
        self.submit_request::<AlchemyKind>(user_id, req, ip).await
    }

    /// `GET /interrogate/status/{id}`; image results link under `base`.
    pub async fn alchemy_status(&self, id: &str, base: &str) -> Result<AlchemyStatusResponse> {
        self.status_with_links::<AlchemyKind>(id, base).await
    }

    /// `DELETE /interrogate/status/{id}`.
    pub async fn cancel_alchemy(&self, id: &str, base: &str) -> Result<AlchemyStatusResponse> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        let download_secs = self.local().cfg.download_url_secs;
        let op = op::CancelAlchemy {
            id,
            now,
            base: base.to_string(),
            download_secs,
        };
        self.run(op).await
    }

    /// `POST /interrogate/pop`: upload links and the source image's download link point at
    /// `base`.
    pub async fn pop_alchemy(&self, user_id: i64, pop: AlchemyPopRequest, base: &str, ip: Option<IpAddr>) -> Result<AlchemyPopResponse> {
        let (worker_id, pop) = self.popping_worker(user_id, pop, WorkerKind::Alchemist, ip).await?;
        let now = self.now_ms();
        let (upload_secs, download_secs) = {
            let s = self.local();
            (s.cfg.upload_url_secs, s.cfg.download_url_secs)
        };
        let op = op::PopAlchemy {
            worker_id,
            pop,
            ip,
            now,
            base: base.to_string(),
            upload_secs,
        };
        let mut popped = self.run(op).await?;
        // The handout names the source image by its store key; the worker gets a link.
        for form in &mut popped.forms {
            if let Some(key) = form.source_image.as_deref().and_then(|k| Uuid::parse_str(k).ok()) {
                form.source_image = Some(self.link_with(base, LinkPurpose::Download, &key, download_secs));
            }
        }
        Ok(popped)
    }

    /// `POST /interrogate/submit`, answered once the reward is stored.
    pub async fn submit_alchemy(&self, user_id: i64, sub: AlchemySubmitRequest) -> Result<f64> {
        let result = AlchemyJobResult {
            job_id: sub.id,
            result: sub.result.to_string(),
            state: sub.state.filter(|s| !s.is_empty()).unwrap_or_else(|| "ok".into()),
        };
        let now = self.now_ms();
        let reward = self.run(op::SubmitAlchemyJob { user_id, result, now }).await?;
        self.commit().await?;
        Ok(reward)
    }
}

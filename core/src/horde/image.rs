//! Image generation: requests, their status, workers' pops, uploads and results, image links,
//! ratings.

use std::net::IpAddr;
use std::sync::Arc;

use horde_protocol::image::{
    GenerateImageRequest, ImageCheck, ImagePopRequest, ImagePopResponse, ImageStatus, ImageSubmitRequest, RateRequest,
};
use uuid::Uuid;

use super::Horde;
use crate::horde_ops::op;
use crate::image::{ImageJobResult, ImageKind, ImageRequest, LinkPurpose};
use crate::lifecycle::Submission;
use crate::workers::WorkerKind;
use crate::{HordeError, Result};

impl Horde {
    /// `POST /generate/async`.
    /// `ip` is the client's address (timeouts; `None` when unknown).
    pub async fn generate_image(&self, user_id: i64, req: GenerateImageRequest, ip: Option<IpAddr>) -> Result<Submission> {
        crate::request_checks::proxied_account(req.proxied_account.as_deref())?;
        let (req, author) = self.styled_image_request(req).await?;
        // Parsed here: parsing draws the random seed, which the operation then carries.
        let req = ImageRequest::parse(req, &self.local().cfg)?;
        let submitted = self.submit_request::<ImageKind>(user_id, req, ip).await?;
        self.reward_style_author(author, user_id, &submitted).await?;
        Ok(submitted)
    }

    /// A link to `job`'s image for `purpose`, under `base` (the horde's public address).
    pub fn image_link(&self, base: &str, purpose: LinkPurpose, job: &Uuid) -> String {
        let secs = {
            let s = self.local();
            match purpose {
                LinkPurpose::Upload => s.cfg.upload_url_secs,
                LinkPurpose::Download => s.cfg.download_url_secs,
            }
        };
        self.link_with(base, purpose, job, secs)
    }

    pub(super) fn link_with(&self, base: &str, purpose: LinkPurpose, job: &Uuid, valid_secs: u64) -> String {
        self.links.url(base, purpose, job, self.now_ms() / 1000 + valid_secs)
    }

    /// `GET /generate/check/{id}`.
    pub async fn image_check(&self, id: &str) -> Result<ImageCheck> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        self.synced().await?.check::<ImageKind>(&id, now)
    }

    /// `GET /generate/status/{id}`; image links point at `base`.
    pub async fn image_status(&self, id: &str, base: &str) -> Result<ImageStatus> {
        self.status_with_links::<ImageKind>(id, base).await
    }

    /// The status of a request of kind `K` whose results are images, linked for download under
    /// `base`.
    pub(super) async fn status_with_links<K: crate::lifecycle::RequestKind>(&self, id: &str, base: &str) -> Result<K::Status> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        let mut s = self.synced().await?;
        let secs = s.cfg.download_url_secs;
        let link = |job: &Uuid| self.link_with(base, LinkPurpose::Download, job, secs);
        s.status::<K>(&id, now, &link)
    }

    /// `DELETE /generate/status/{id}`.
    pub async fn cancel_image(&self, id: &str, base: &str) -> Result<ImageStatus> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        let download_secs = self.local().cfg.download_url_secs;
        let op = op::CancelImage {
            id,
            now,
            base: base.to_string(),
            download_secs,
        };
        self.run(op).await
    }

    /// `POST /generate/pop`; upload links point at `base`.
    pub async fn pop_image(&self, user_id: i64, pop: ImagePopRequest, base: &str, ip: Option<IpAddr>) -> Result<ImagePopResponse> {
        let (worker_id, pop) = self.popping_worker(user_id, pop, WorkerKind::Image, ip).await?;
        let now = self.now_ms();
        let upload_secs = self.local().cfg.upload_url_secs;
        let op = op::PopImage {
            worker_id,
            pop,
            ip,
            now,
            base: base.to_string(),
            upload_secs,
        };
        self.run(op).await
    }

    /// `PUT` to an upload link: keeps the job's image until its request expires.
    pub async fn upload_image(&self, token: &str, bytes: Vec<u8>) -> Result<()> {
        let job = self.links.verify(LinkPurpose::Upload, token, self.now_ms() / 1000)?;
        self.run(op::UploadImage { job, bytes }).await?;
        Ok(())
    }

    /// `GET` of a download link: the image's WebP bytes.
    pub async fn download_image(&self, token: &str) -> Result<Arc<Vec<u8>>> {
        let job = self.links.verify(LinkPurpose::Download, token, self.now_ms() / 1000)?;
        self.synced().await?.image_bytes(&job).ok_or(HordeError::InvalidImageLink)
    }

    /// `POST /generate/submit`, answered once the reward is stored.
    pub async fn submit_image(&self, user_id: i64, sub: ImageSubmitRequest) -> Result<f64> {
        let result = ImageJobResult {
            job_id: sub.id.unwrap_or_default(),
            generation: sub.generation.unwrap_or_default(),
            state: sub.state.unwrap_or_else(|| "ok".into()),
            seed: sub.seed.unwrap_or(0),
            censored: sub.censored.unwrap_or(false),
            gen_metadata: sub.gen_metadata.unwrap_or_default(),
        };
        let now = self.now_ms();
        let reward = self.run(op::SubmitImageJob { user_id, result, now }).await?;
        self.commit().await?;
        Ok(reward)
    }

    /// `POST /generate/rate/{id}`, answered once the reward is stored.
    pub async fn rate_images(&self, id: &str, rate: RateRequest) -> Result<f64> {
        let id = Self::parse_request_id(id)?;
        let now = self.now_ms();
        let reward = self.run(op::RateImages { id, rate, now }).await?;
        self.commit().await?;
        Ok(reward)
    }

    /// A job's image as base64, for webhooks of requests with `r2: false`.
    pub fn image_base64(&self, job: &Uuid) -> Option<String> {
        use base64::Engine;
        let bytes = self.local().image_bytes(job)?;
        Some(base64::engine::general_purpose::STANDARD.encode(bytes.as_slice()))
    }
}

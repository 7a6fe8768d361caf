//! `Horde`'s shared keys: their owners manage them; anyone holding one generates as the owner,
//! within the key's limits.

use std::net::IpAddr;

use horde_protocol::image::GenerateImageRequest;
use horde_protocol::shared_keys as wire;
use horde_protocol::text::GenerateTextRequest;
use uuid::Uuid;

use super::Horde;
use crate::kudos::to_kudos;
use crate::lifecycle::Submission;
use crate::shared_keys::{self as sk, SharedKey};
use crate::{HordeError, Result};

impl Horde {
    /// The shared key `api_key` is, if it is one (shared keys are UUIDs; account keys are not).
    pub async fn shared_key_for_generation(&self, api_key: &str) -> Result<Option<SharedKey>> {
        let k = api_key.trim();
        if k.len() != 36 || Uuid::parse_str(k).is_err() {
            return Ok(None);
        }
        self.store.shared_key(k).await
    }

    /// A key by id; an unknown one is an invalid key (401), as the public horde answers.
    async fn stored_shared_key(&self, id: &str) -> Result<SharedKey> {
        match Uuid::parse_str(id.trim()) {
            Ok(_) => self.store.shared_key(id.trim()).await?.ok_or(HordeError::InvalidApiKey),
            Err(_) => Err(HordeError::InvalidApiKey),
        }
    }

    /// `GET /sharedkeys/{id}`.
    pub async fn shared_key_details(&self, id: &str) -> Result<wire::SharedKeyDetails> {
        Ok(self.stored_shared_key(id).await?.details())
    }

    /// `PUT /sharedkeys`: a new key of `viewer`'s (not the anonymous user; at most 3, 10 when trusted).
    pub async fn create_shared_key(&self, viewer: i64, input: wire::SharedKeyInput) -> Result<wire::SharedKeyDetails> {
        if !self.ensure_user(viewer).await? {
            return Err(HordeError::InvalidApiKey);
        }
        let (anonymous, trusted, username) = {
            let s = self.local();
            let u = s.users.get(viewer).ok_or(HordeError::InvalidApiKey)?;
            (u.is_anonymous(), u.trusted || u.moderator, u.display_name())
        };
        if anonymous {
            return Err(HordeError::AnonForbidden);
        }
        let max = sk::max_keys(trusted);
        if self.store.shared_key_ids(viewer).await?.len() >= max {
            return Err(HordeError::forbidden(
                "Forbidden",
                format!("You cannot have more than {max} shared keys."),
            ));
        }
        let now = self.now_ms();
        let mut key = SharedKey {
            id: Uuid::new_v4().to_string(),
            user_id: viewer,
            username,
            name: None,
            kudos: sk::DEFAULT_KUDOS,
            utilized: 0,
            expiry_ms: None,
            created_ms: now as i64,
            max_image_pixels: -1,
            max_image_steps: -1,
            max_text_tokens: -1,
        };
        key.apply(&input, now)?;
        self.store.insert_shared_key(&key).await?;
        Ok(key.details())
    }

    async fn owned_shared_key(&self, viewer: i64, id: &str) -> Result<SharedKey> {
        let key = self.stored_shared_key(id).await?;
        if key.user_id != viewer {
            return Err(HordeError::forbidden(
                "Forbidden",
                format!("Shared Key {} belongs to {} and not to you.", key.id, key.username),
            ));
        }
        Ok(key)
    }

    /// `PATCH /sharedkeys/{id}`: the owner changes the given fields.
    pub async fn modify_shared_key(&self, viewer: i64, id: &str, input: wire::SharedKeyInput) -> Result<wire::SharedKeyDetails> {
        let mut key = self.owned_shared_key(viewer, id).await?;
        if !key.apply(&input, self.now_ms())? {
            return Err(HordeError::rejected(
                "NoSharedKeyModSelected",
                "No shared key modification selected!",
            ));
        }
        self.store.update_shared_key(&key).await?;
        Ok(key.details())
    }

    /// `DELETE /sharedkeys/{id}`: the owner.
    pub async fn delete_shared_key(&self, viewer: i64, id: &str) -> Result<()> {
        let key = self.owned_shared_key(viewer, id).await?;
        self.store.delete_shared_key(&key.id).await
    }

    /// The price of a request as its dry run gives it.
    fn dry_price(s: Submission) -> f64 {
        match s {
            Submission::DryRun(k) => k,
            Submission::Queued(a) => to_kudos(a.kudos),
        }
    }

    /// Counts what an accepted request costs against the key.
    async fn spend(&self, key: &SharedKey, out: &Submission) -> Result<()> {
        if let Submission::Queued(a) = out {
            self.store.spend_shared_key(&key.id, to_kudos(a.kudos).ceil() as i64).await?;
        }
        Ok(())
    }

    /// A key assigned to styles pays only for them (`SharedKeyAssignedStyles`, 403).
    async fn check_not_assigned(&self, key: &SharedKey) -> Result<()> {
        if self.store.styles_with_shared_key(&key.id).await? > 0 {
            return Err(HordeError::forbidden(
                "SharedKeyAssignedStyles",
                "This shared key cannot be used as it has been assigned to specific styles only",
            ));
        }
        Ok(())
    }

    /// Whether `key` may pay for a request now: usable, not kept for styles only (unless it is
    /// the requested style's own, `for_style`), and its owner still there.
    async fn admit_shared_key(&self, key: &SharedKey, for_style: bool) -> Result<()> {
        key.check_usable(self.now_ms())?;
        if !for_style {
            self.check_not_assigned(key).await?;
        }
        if !self.ensure_user(key.user_id).await? {
            return Err(HordeError::InvalidApiKey);
        }
        Ok(())
    }

    /// Submits `req` as `key`'s owner once its dry-run price fits the key, and counts what it
    /// costs against the key (a dry run answers that price).
    async fn submit_within_key<R: KeyedRequest>(&self, key: &SharedKey, req: R, ip: Option<IpAddr>) -> Result<Submission> {
        let price = Self::dry_price(req.probe().submit(self, key.user_id, ip).await?);
        if req.is_dry_run() {
            return Ok(Submission::DryRun(price));
        }
        key.check_price(price)?;
        let out = req.submit(self, key.user_id, ip).await?;
        self.spend(key, &out).await?;
        Ok(out)
    }

    /// `POST /generate/async` with a shared key: the owner's request, within the key's limits
    /// (the per-job ones waived when the key is the requested style's own, `for_style`).
    pub async fn generate_image_shared(
        &self,
        key: SharedKey,
        req: GenerateImageRequest,
        ip: Option<IpAddr>,
        for_style: bool,
    ) -> Result<Submission> {
        self.admit_shared_key(&key, for_style).await?;
        let (req, author) = self.styled_image_request(req).await?;
        let p = req.params.as_ref();
        let pixels = p
            .and_then(|p| p.width)
            .unwrap_or(512)
            .saturating_mul(p.and_then(|p| p.height).unwrap_or(512));
        if !for_style {
            key.check_image_job(pixels, p.and_then(|p| p.steps).unwrap_or(30))?;
        }
        let submitted = self.submit_within_key(&key, req, ip).await?;
        self.reward_style_author(author, key.user_id, &submitted).await?;
        Ok(submitted)
    }

    /// `POST /generate/text/async` with a shared key (see [`Horde::generate_image_shared`]).
    pub async fn generate_text_shared(
        &self,
        key: SharedKey,
        req: GenerateTextRequest,
        ip: Option<IpAddr>,
        for_style: bool,
    ) -> Result<Submission> {
        self.admit_shared_key(&key, for_style).await?;
        let (req, author) = self.styled_text_request(req).await?;
        if !for_style {
            key.check_text_job(req.params.as_ref().and_then(|p| p.max_length).unwrap_or(80))?;
        }
        let submitted = self.submit_within_key(&key, req, ip).await?;
        self.reward_style_author(author, key.user_id, &submitted).await?;
        Ok(submitted)
    }

    /// `sharedkey_ids` of a user's details (for the owner and moderators).
    pub async fn shared_key_ids(&self, user_id: i64) -> Result<Vec<String>> {
        self.store.shared_key_ids(user_id).await
    }
}

/// A generation request a shared key can pay for: its dry-run copy and its submission.
trait KeyedRequest: Sized {
    /// The same request as a dry run (priced, not queued).
    fn probe(&self) -> Self;
    /// Whether the client asked for a dry run.
    fn is_dry_run(&self) -> bool;
    /// Submits it as `user_id`.
    async fn submit(self, horde: &Horde, user_id: i64, ip: Option<IpAddr>) -> Result<Submission>;
}

impl KeyedRequest for GenerateImageRequest {
    fn probe(&self) -> Self {
        Self {
            dry_run: Some(true),
            ..self.clone()
        }
    }
    fn is_dry_run(&self) -> bool {
        self.dry_run == Some(true)
    }
    async fn submit(self, horde: &Horde, user_id: i64, ip: Option<IpAddr>) -> Result<Submission> {
        horde.generate_image(user_id, self, ip).await
    }
}

impl KeyedRequest for GenerateTextRequest {
    fn probe(&self) -> Self {
        Self {
            dry_run: Some(true),
            ..self.clone()
        }
    }
    fn is_dry_run(&self) -> bool {
        self.dry_run == Some(true)
    }
    async fn submit(self, horde: &Horde, user_id: i64, ip: Option<IpAddr>) -> Result<Submission> {
        horde.generate_text(user_id, self, ip).await
    }
}

//! `Horde`'s messages to workers: who may write and read them, and the ones a pop carries.

use horde_protocol::worker_messages as wire;
use uuid::Uuid;

use super::Horde;
use crate::worker_messages::{self as wm, Validity, WorkerMessage};
use crate::{HordeError, Result};

/// Who moderators' messages are from when they name no one.
const MODERATORS: &str = "Horde moderators";

impl Horde {
    /// The viewer's (moderator, anonymous) flags.
    async fn message_viewer(&self, viewer: i64) -> Result<(bool, bool)> {
        if !self.ensure_user(viewer).await? {
            return Err(HordeError::InvalidApiKey);
        }
        let s = self.local();
        let u = s.users.get(viewer).ok_or(HordeError::InvalidApiKey)?;
        Ok((u.moderator, u.is_anonymous()))
    }

    /// `GET /workers/messages`: one's own messages and those to every worker; moderators see
    /// anyone's.
    pub async fn list_worker_messages(
        &self,
        viewer: i64,
        user_id: Option<i64>,
        worker_id: Option<&str>,
        validity: Option<&str>,
        page: Option<i64>,
    ) -> Result<Vec<wire::WorkerMessage>> {
        let (moderator, _) = self.message_viewer(viewer).await?;
        let validity = Validity::parse(validity)?;
        if let Some(w) = worker_id {
            if Uuid::parse_str(w.trim()).is_err() {
                return Err(HordeError::WorkerNotFound(w.chars().filter(|c| !c.is_control()).take(60).collect()));
            }
        }
        let worker_id = worker_id.map(str::trim);
        let user_id = if moderator { user_id } else { Some(user_id.unwrap_or(viewer)) };
        if !moderator && user_id != Some(viewer) {
            return Err(HordeError::forbidden("Forbidden", "You can only view your own messages."));
        }
        let now = self.now_ms() as i64;
        let list = self
            .store
            .list_worker_messages(user_id, worker_id, validity, now, page.unwrap_or(1))
            .await?;
        Ok(list.iter().map(WorkerMessage::details).collect())
    }

    /// `POST /workers/messages`: moderators to any worker or all; owners to their own workers.
    pub async fn create_worker_message(&self, viewer: i64, input: wire::WorkerMessageInput) -> Result<wire::WorkerMessage> {
        let (moderator, anonymous) = self.message_viewer(viewer).await?;
        if anonymous {
            return Err(HordeError::AnonForbidden);
        }
        let message = wm::clean_message(input.message.as_deref())?;
        let hours = wm::clean_hours(input.expiry)?;
        let worker = match input.worker_id.as_deref() {
            Some(w) => {
                let id = Uuid::parse_str(w.trim()).map_err(|_| HordeError::WorkerNotFound(w.chars().take(60).collect()))?;
                self.ensure_worker(&id).await?;
                let owner = self.local().workers.get(&id).map(|w| w.owner_id);
                Some((id, owner))
            }
            None => None,
        };
        let own = matches!(worker, Some((_, Some(owner))) if owner == viewer);
        if !moderator && !own {
            return Err(HordeError::forbidden(
                "MessagesOnlyOwnWorkers",
                "You can only send messages to your own workers.",
            ));
        }
        let origin = if moderator {
            Some(
                input
                    .origin
                    .map(|o| o.trim().chars().filter(|c| !c.is_control()).take(255).collect())
                    .unwrap_or_else(|| MODERATORS.to_string()),
            )
        } else {
            Some(viewer.to_string())
        };
        let now = self.now_ms() as i64;
        let m = WorkerMessage {
            id: Uuid::new_v4().to_string(),
            worker_id: worker.map(|(id, _)| id.to_string()),
            user_id: viewer,
            message,
            origin,
            expiry_ms: now + hours * 3_600_000,
            created_ms: now,
        };
        self.store.insert_worker_message(&m).await?;
        self.worker_messages.clear();
        Ok(m.details())
    }

    async fn stored_worker_message(&self, id: &str) -> Result<WorkerMessage> {
        let missing = || {
            HordeError::missing(
                "WorkerMessageNotFound",
                format!("WorkerMessage with ID '{}' not found.", id.chars().take(60).collect::<String>()),
            )
        };
        if Uuid::parse_str(id.trim()).is_err() {
            return Err(missing());
        }
        self.store.worker_message(id.trim()).await?.ok_or_else(missing)
    }

    /// `GET /workers/messages/{id}`.
    pub async fn worker_message(&self, id: &str) -> Result<wire::WorkerMessage> {
        Ok(self.stored_worker_message(id).await?.details())
    }

    /// `DELETE /workers/messages/{id}`: its writer or a moderator.
    pub async fn delete_worker_message(&self, viewer: i64, id: &str) -> Result<()> {
        let (moderator, _) = self.message_viewer(viewer).await?;
        let m = self.stored_worker_message(id).await?;
        if m.user_id != viewer && !moderator {
            return Err(HordeError::forbidden("Forbidden", "You can only delete your own messages."));
        }
        self.store.delete_worker_message(&m.id).await?;
        self.worker_messages.clear();
        Ok(())
    }

    /// The unexpired messages for the worker called `worker_name`, for its pop (from the copy
    /// in memory, read again every few seconds).
    pub async fn pop_messages(&self, worker_name: &str) -> Result<Vec<wire::PopMessage>> {
        let Some(id) = self.local().workers.id_by_name(worker_name) else {
            return Ok(Vec::new());
        };
        let now = self.now_ms();
        let all = match self.worker_messages.fresh() {
            Some(all) => all,
            None => {
                let all = self.store.active_worker_messages(now as i64).await?;
                self.worker_messages.set(all.clone());
                all
            }
        };
        let id = id.to_string();
        Ok(all.iter().filter(|m| m.is_for(&id, now)).map(WorkerMessage::pop_view).collect())
    }
}

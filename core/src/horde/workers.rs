//! Workers: found or created on their first pop, listed, shown, modified and deleted.

use std::net::IpAddr;

use horde_protocol::workers as wire_workers;
use uuid::Uuid;

use super::Horde;
use crate::accounts::{User, ANONYMOUS_USER_ID};
use crate::horde_ops::op;
use crate::state::State;
use crate::workers::{validate_worker_name, Worker, WorkerKind, WorkerPop, MAX_WORKER_INFO};
use crate::{HordeError, Result};

impl Horde {
    /// The worker popping with `pop`, checked as every pop is (not while draining, not from a
    /// timed-out address, not anonymously), found by name or created.
    pub(super) async fn popping_worker<P>(&self, user_id: i64, pop: P, kind: WorkerKind, ip: Option<IpAddr>) -> Result<(Uuid, WorkerPop)>
    where
        WorkerPop: TryFrom<P, Error = HordeError>,
    {
        self.check_taking_work()?;
        self.check_ip(ip)?;
        if user_id == ANONYMOUS_USER_ID {
            return Err(HordeError::AnonForbiddenWorker);
        }
        self.local().users.check_not_deleted(user_id)?;
        let pop = WorkerPop::try_from(pop)?;
        let worker_id = self.worker_for_pop(user_id, &pop.name, kind).await?;
        Ok((worker_id, pop))
    }

    /// Finds the popping worker by name, creating it on its first pop.
    pub(super) async fn worker_for_pop(&self, user_id: i64, name: &str, kind: WorkerKind) -> Result<Uuid> {
        if let Some((id, owner, has_kind)) = {
            let s = self.local();
            s.workers
                .id_by_name(name)
                .and_then(|id| s.workers.get(&id).map(|w| (id, w.owner_id, w.kind)))
        } {
            return if owner != user_id {
                Err(HordeError::WrongCredentials)
            } else if has_kind != kind {
                Err(HordeError::PolymorphicNameConflict(name.to_string()))
            } else {
                Ok(id)
            };
        }
        if let Some(w) = self.store.worker_by_name(name).await? {
            if w.owner_id != user_id {
                return Err(HordeError::WrongCredentials);
            }
            if w.kind != kind {
                return Err(HordeError::PolymorphicNameConflict(name.to_string()));
            }
            let id = w.id;
            self.run(op::LoadWorker { worker: w }).await?;
            return Ok(id);
        }
        let (trusted, invited) = self
            .local()
            .users
            .get(user_id)
            .map(|u| (u.trusted, u.worker_invited))
            .unwrap_or((false, 0));
        let existing = self.store.worker_ids_of(user_id).await?.len();
        let cfg_limit = {
            let s = self.local();
            if trusted {
                s.cfg.max_workers_trusted
            } else {
                s.cfg.max_workers_untrusted
            }
        };
        let limit = cfg_limit.max(invited.max(0) as usize);
        if existing >= limit {
            return Err(HordeError::TooManyWorkers(limit));
        }
        let mut w = Worker::new(Uuid::new_v4(), name.to_string(), user_id, (self.now_ms() / 1000) as i64);
        w.kind = kind;
        let id = w.id;
        if let Err(e) = self.store.insert_worker(&w).await {
            // Another pop may have created it at the same moment.
            if let Some(other) = self.store.worker_by_name(name).await? {
                return if other.owner_id == user_id {
                    Box::pin(self.worker_for_pop(user_id, name, kind)).await
                } else {
                    Err(HordeError::WrongCredentials)
                };
            }
            return Err(e);
        }
        self.run(op::LoadWorker { worker: w }).await?;
        Ok(id)
    }

    pub(super) fn worker_view(&self, s: &State, w: &Worker, viewer: Option<i64>) -> wire_workers::WorkerDetails {
        let owner = s.users.get(w.owner_id);
        let viewer_mod = viewer.and_then(|v| s.users.get(v)).is_some_and(|u| u.moderator);
        let is_owner = viewer == Some(w.owner_id) && w.owner_id != ANONYMOUS_USER_ID;
        let show_owner = viewer_mod || is_owner || owner.is_some_and(|u| u.public_workers);
        w.details(
            self.now_ms(),
            s.cfg.worker_online_secs,
            owner.is_some_and(|u| u.trusted),
            owner.is_some_and(|u| u.flagged),
            if show_owner { owner.map(User::display_name) } else { None },
            viewer_mod,
        )
    }

    /// `GET /workers`: online workers, optionally by type and name.
    pub async fn list_workers(
        &self,
        kind: Option<&str>,
        name: Option<&str>,
        viewer: Option<i64>,
    ) -> Result<Vec<wire_workers::WorkerDetails>> {
        let kind = match kind.filter(|k| !k.is_empty()) {
            None => None,
            Some(k) => match WorkerKind::parse(k) {
                Some(k) => Some(k),
                None => return Ok(vec![]),
            },
        };
        let now = self.now_ms();
        let s = self.synced().await?;
        let mut out: Vec<_> = s
            .workers
            .iter()
            .filter(|w| w.is_online(now, s.cfg.worker_online_secs))
            .filter(|w| kind.is_none_or(|k| w.kind == k))
            .filter(|w| name.is_none_or(|n| w.name == n))
            .map(|w| self.worker_view(&s, w, viewer))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Loads a worker (and its owner) into memory if needed.
    pub(super) async fn ensure_worker(&self, id: &Uuid) -> Result<()> {
        let known = self.local().workers.get(id).map(|w| w.owner_id);
        let owner = match known {
            Some(o) => o,
            None => {
                let w = self
                    .store
                    .worker_by_id(id)
                    .await?
                    .ok_or_else(|| HordeError::WorkerNotFound(id.to_string()))?;
                let owner = w.owner_id;
                self.run(op::LoadWorker { worker: w }).await?;
                owner
            }
        };
        self.ensure_user(owner).await?;
        Ok(())
    }

    /// `GET /workers/{id}` (also offline workers).
    pub async fn worker_details(&self, id: &str, viewer: Option<i64>) -> Result<wire_workers::WorkerDetails> {
        let id = Self::parse_worker_id(id)?;
        self.ensure_worker(&id).await?;
        let s = self.synced().await?;
        let w = s.workers.get(&id).ok_or_else(|| HordeError::WorkerNotFound(id.to_string()))?;
        Ok(self.worker_view(&s, w, viewer))
    }

    /// `GET /workers/name/{name}`.
    pub async fn worker_details_by_name(&self, name: &str, viewer: Option<i64>) -> Result<wire_workers::WorkerDetails> {
        let known = self.synced().await?.workers.id_by_name(name);
        let id = match known {
            Some(id) => id,
            None => self
                .store
                .worker_by_name(name)
                .await?
                .map(|w| w.id)
                .ok_or_else(|| HordeError::WorkerNotFound(name.chars().take(100).collect()))?,
        };
        self.worker_details(&id.to_string(), viewer).await
    }

    /// `PUT /workers/{id}`: maintenance and info by the owner or a moderator, pause by moderators.
    pub async fn modify_worker(&self, viewer: i64, id: &str, m: wire_workers::ModifyWorker) -> Result<wire_workers::ModifyWorkerResponse> {
        let id = Self::parse_worker_id(id)?;
        self.ensure_worker(&id).await?;
        if m.maintenance.is_none() && m.paused.is_none() && m.info.is_none() && m.name.is_none() {
            return Err(HordeError::NoWorkerModSelected);
        }
        let moderator = self.is_moderator(viewer);
        let owner = self.synced().await?.workers.get(&id).map(|w| w.owner_id);
        if owner != Some(viewer) && !moderator {
            return Err(HordeError::NotOwner);
        }
        if m.paused.is_some() && !moderator {
            return Err(HordeError::NotModerator);
        }
        if let Some(info) = &m.info {
            if info.chars().count() > MAX_WORKER_INFO || info.contains('\0') {
                return Err(HordeError::Validation(format!("info may be at most {MAX_WORKER_INFO} characters.")));
            }
            crate::safety::profanity::check(info, "ProfaneWorkerInfo", "worker info")?;
        }
        if let Some(msg) = &m.maintenance_msg {
            if msg.chars().count() > MAX_WORKER_INFO || msg.contains('\0') {
                return Err(HordeError::Validation(format!(
                    "maintenance_msg may be at most {MAX_WORKER_INFO} characters."
                )));
            }
        }
        let new_name = m.name.as_deref().map(validate_worker_name).transpose()?;
        if let Some(n) = &new_name {
            let taken_here = self.local().workers.id_by_name(n).is_some_and(|other| other != id);
            let taken_db = self.store.worker_by_name(n).await?.is_some_and(|w| w.id != id);
            if taken_here || taken_db {
                return Err(HordeError::WorkerNameTaken(n.clone()));
            }
        }
        let op = op::ModifyWorker {
            id,
            changes: m,
            name: new_name,
        };
        let (resp, snapshot) = *self.run(op).await?;
        self.store.update_worker(&snapshot).await?;
        Ok(resp)
    }

    /// `DELETE /workers/{id}` by the owner or a moderator; refused while jobs are in flight.
    pub async fn delete_worker(&self, viewer: i64, id: &str) -> Result<wire_workers::DeletedWorker> {
        let id = Self::parse_worker_id(id)?;
        self.ensure_worker(&id).await?;
        let moderator = self.is_moderator(viewer);
        let name = {
            let s = self.synced().await?;
            let w = s.workers.get(&id).ok_or_else(|| HordeError::WorkerNotFound(id.to_string()))?;
            if w.owner_id != viewer && !moderator {
                return Err(HordeError::NotOwner);
            }
            if w.in_flight > 0 {
                return Err(HordeError::Locked);
            }
            w.name.clone()
        };
        self.store.delete_worker(&id).await?;
        self.run(op::DeleteWorker { id }).await?;
        Ok(wire_workers::DeletedWorker {
            deleted_id: id.to_string(),
            deleted_name: name,
        })
    }
}

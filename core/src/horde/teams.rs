//! `Horde`'s teams: trusted users found them; owners and moderators change them; a worker's
//! owner (or a moderator) puts it in one. A team's figures are its members', summed when read.

use std::collections::BTreeMap;

use horde_protocol::teams as wire;
use horde_protocol::workers as wire_workers;
use uuid::Uuid;

use super::Horde;
use crate::teams::{self as tm, Team};
use crate::{HordeError, Result};

fn team_not_found(id: &str) -> HordeError {
    HordeError::missing(
        "TeamNotFound",
        format!("Team with ID '{}' not found.", id.chars().take(60).collect::<String>()),
    )
}

impl Horde {
    /// The viewer's (moderator, trusted, anonymous) flags.
    async fn team_viewer(&self, viewer: i64) -> Result<(bool, bool, bool)> {
        if !self.ensure_user(viewer).await? {
            return Err(HordeError::InvalidApiKey);
        }
        let s = self.local();
        let u = s.users.get(viewer).ok_or(HordeError::InvalidApiKey)?;
        Ok((u.moderator, u.trusted, u.is_anonymous()))
    }

    async fn stored_team(&self, id: &str) -> Result<Team> {
        if Uuid::parse_str(id.trim()).is_err() {
            return Err(team_not_found(id));
        }
        self.store.team(id.trim()).await?.ok_or_else(|| team_not_found(id))
    }

    /// A team with its members' figures.
    async fn team_details_of(&self, t: &Team) -> Result<wire::TeamDetails> {
        let mut d = wire::TeamDetails {
            id: t.id.clone(),
            name: t.name.clone(),
            info: t.info.clone(),
            creator: t.creator.clone(),
            requests_fulfilled: 0,
            kudos: 0.0,
            uptime: 0,
            worker_count: 0,
            workers: Vec::new(),
            models: Vec::new(),
        };
        let mut models: BTreeMap<String, i64> = BTreeMap::new();
        for id in self.store.team_worker_ids(&t.id).await? {
            // A member deleted since is no member.
            let Ok(w) = self.worker_details(&id, None).await else { continue };
            d.requests_fulfilled += w.requests_fulfilled;
            d.kudos += w.kudos_rewards;
            d.uptime += w.uptime;
            for m in &w.models {
                *models.entry(m.clone()).or_default() += 1;
            }
            d.workers.push(wire::WorkerLite {
                kind: w.kind,
                name: w.name,
                id: w.id,
                online: w.online,
            });
        }
        d.worker_count = d.workers.len() as i64;
        d.models = models.into_iter().map(|(name, count)| wire::ModelCount { name, count }).collect();
        Ok(d)
    }

    /// `GET /teams`.
    pub async fn list_teams(&self) -> Result<Vec<wire::TeamDetails>> {
        let mut out = Vec::new();
        for t in self.store.teams().await? {
            out.push(self.team_details_of(&t).await?);
        }
        Ok(out)
    }

    /// `GET /teams/{id}`.
    pub async fn team_details(&self, id: &str) -> Result<wire::TeamDetails> {
        let t = self.stored_team(id).await?;
        self.team_details_of(&t).await
    }

    /// `POST /teams`: trusted users.
    pub async fn create_team(&self, viewer: i64, input: wire::TeamInput) -> Result<wire::TeamModified> {
        let (_, trusted, anonymous) = self.team_viewer(viewer).await?;
        if anonymous {
            return Err(HordeError::AnonForbidden);
        }
        if !trusted {
            return Err(HordeError::forbidden(
                "UntrustedTeamCreation",
                "Only Trusted users are allowed to perform this operation",
            ));
        }
        let name = tm::clean_name(input.name.as_deref().unwrap_or(""))?;
        if self.store.team_name_taken(&name, "").await? {
            return Err(HordeError::rejected(
                "TeamNameAlreadyExists",
                format!("A team named '{name}' already exists."),
            ));
        }
        let t = Team {
            id: Uuid::new_v4().to_string(),
            name,
            info: tm::clean_info(input.info.as_deref().unwrap_or(""))?,
            owner_id: viewer,
            creator: String::new(),
            created_ms: self.now_ms() as i64,
        };
        self.store.insert_team(&t).await?;
        Ok(wire::TeamModified {
            id: Some(t.id),
            name: Some(t.name),
            info: Some(t.info),
        })
    }

    /// `PATCH /teams/{id}`: its owner or a moderator.
    pub async fn modify_team(&self, viewer: i64, id: &str, input: wire::TeamInput) -> Result<wire::TeamModified> {
        let (moderator, _, _) = self.team_viewer(viewer).await?;
        let mut t = self.stored_team(id).await?;
        if input.name.is_none() && input.info.is_none() {
            return Err(HordeError::rejected("NoTeamModSelected", "No team modification selected!"));
        }
        if t.owner_id != viewer && !moderator {
            return Err(if input.info.is_some() {
                HordeError::NotOwner
            } else {
                HordeError::NotModerator
            });
        }
        let mut out = wire::TeamModified::default();
        if let Some(i) = input.info.as_deref() {
            t.info = tm::clean_info(i)?;
            out.info = Some(t.info.clone());
        }
        if let Some(n) = input.name.as_deref() {
            let n = tm::clean_name(n)?;
            if self.store.team_name_taken(&n, &t.id).await? {
                return Err(HordeError::rejected(
                    "TeamNameAlreadyExists",
                    format!("A team named '{n}' already exists."),
                ));
            }
            t.name = n;
            out.name = Some(t.name.clone());
        }
        self.store.update_team(&t).await?;
        Ok(out)
    }

    /// `DELETE /teams/{id}`: its owner or a moderator; its workers are in no team after.
    pub async fn delete_team(&self, viewer: i64, id: &str) -> Result<wire::DeletedTeam> {
        let (moderator, _, _) = self.team_viewer(viewer).await?;
        let t = self.stored_team(id).await?;
        if t.owner_id != viewer && !moderator {
            return Err(HordeError::NotModerator);
        }
        self.store.delete_team(&t.id).await?;
        Ok(wire::DeletedTeam {
            deleted_id: t.id,
            deleted_name: t.name,
        })
    }

    /// `PUT /workers/{id}` with `team` (and perhaps other changes): the team is checked first,
    /// then the other changes made, then the worker put in the team (`""`: in none).
    pub async fn modify_worker_and_team(
        &self,
        viewer: i64,
        worker: &str,
        mut m: wire_workers::ModifyWorker,
    ) -> Result<wire_workers::ModifyWorkerResponse> {
        let Some(team) = m.team.take() else {
            return self.modify_worker(viewer, worker, m).await;
        };
        let (moderator, _, anonymous) = self.team_viewer(viewer).await?;
        let id = Self::parse_worker_id(worker)?;
        self.ensure_worker(&id).await?;
        let owner = self.local().workers.get(&id).map(|w| w.owner_id);
        if owner != Some(viewer) && !moderator {
            return Err(HordeError::NotModerator);
        }
        if anonymous {
            return Err(HordeError::AnonForbiddenWorker);
        }
        let joined = match team.trim() {
            "" => None,
            t => Some(self.stored_team(t).await?),
        };
        let only_team = m.maintenance.is_none() && m.paused.is_none() && m.info.is_none() && m.name.is_none();
        let mut resp = if only_team {
            wire_workers::ModifyWorkerResponse::default()
        } else {
            self.modify_worker(viewer, worker, m).await?
        };
        self.store
            .set_worker_team(&id.to_string(), joined.as_ref().map(|t| t.id.as_str()))
            .await?;
        resp.team = Some(joined.map(|t| t.name).unwrap_or_else(|| "None".into()));
        Ok(resp)
    }

    /// Fills in the `team` of each worker's details.
    pub async fn fill_worker_teams(&self, workers: &mut [wire_workers::WorkerDetails]) -> Result<()> {
        let teams: BTreeMap<String, (String, String)> = self
            .store
            .team_memberships()
            .await?
            .into_iter()
            .map(|(w, id, name)| (w, (id, name)))
            .collect();
        for w in workers {
            if let Some((id, name)) = teams.get(&w.id) {
                w.team = wire_workers::TeamLite {
                    id: Some(id.clone()),
                    name: Some(name.clone()),
                };
            }
        }
        Ok(())
    }
}

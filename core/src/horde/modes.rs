//! `Horde`'s modes: reading and setting them, and the checks each one makes.

use horde_protocol::status::{Modes, ModesInput};

use super::Horde;
use crate::modes::{self as md};
use crate::{HordeError, Result};

impl Horde {
    /// `GET /status/modes` (from a copy at most a few seconds old).
    pub async fn modes(&self) -> Result<Modes> {
        if let Some(m) = self.modes_cache.fresh() {
            return Ok(m);
        }
        let m = Modes {
            maintenance_mode: md::flag(self.store.setting(md::MAINTENANCE).await?.as_deref()),
            invite_only_mode: md::flag(self.store.setting(md::INVITE_ONLY).await?.as_deref()),
            raid_mode: md::flag(self.store.setting(md::RAID).await?.as_deref()),
        };
        self.modes_cache.set(m.clone());
        Ok(m)
    }

    /// `PUT /status/modes`: moderators.
    pub async fn set_modes(&self, viewer: i64, input: ModesInput) -> Result<Modes> {
        self.require_moderator(viewer).await?;
        for (name, v) in [
            (md::MAINTENANCE, input.maintenance_mode),
            (md::INVITE_ONLY, input.invite_only_mode),
            (md::RAID, input.raid_mode),
        ] {
            if let Some(on) = v {
                self.store.put_setting(name, if on { "1" } else { "0" }).await?;
            }
        }
        self.modes_cache.clear();
        self.modes().await
    }

    /// `MaintenanceMode` while the horde is in maintenance: no new generation requests.
    pub async fn check_not_in_maintenance(&self) -> Result<()> {
        if self.modes().await?.maintenance_mode {
            return Err(HordeError::MaintenanceMode);
        }
        Ok(())
    }

    /// `WorkerInviteOnly` (403) when invite-only mode keeps `user_id` from adding a worker
    /// called `name` (workers that exist keep working).
    pub async fn check_new_worker(&self, user_id: i64, name: &str) -> Result<()> {
        if !self.modes().await?.invite_only_mode {
            return Ok(());
        }
        let name = name.trim();
        if self.local().workers.id_by_name(name).is_some() || self.store.worker_by_name(name).await?.is_some() {
            return Ok(());
        }
        self.ensure_user(user_id).await?;
        let invited = self.local().users.get(user_id).map(|u| u.worker_invited).unwrap_or(0);
        let count = self.store.worker_ids_of(user_id).await?.len() as i64;
        if count >= invited {
            return Err(HordeError::forbidden(
                "WorkerInviteOnly",
                "This horde has been switched to worker invite-only mode. Ask its moderators to allow your worker.",
            ));
        }
        Ok(())
    }

    /// `RaidMode` (403) while raid mode keeps new accounts from registering.
    pub async fn check_registration_open(&self) -> Result<()> {
        if self.modes().await?.raid_mode {
            return Err(HordeError::forbidden(
                "RaidMode",
                "This horde is not registering new accounts at the moment; try again later.",
            ));
        }
        Ok(())
    }
}

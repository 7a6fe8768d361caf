//! Changes to workers in memory: loading them, what their owner or a moderator sets, deleting.

use horde_protocol::workers::{ModifyWorker, ModifyWorkerResponse};
use uuid::Uuid;

use super::Worker;
use crate::state::State;
use crate::{HordeError, Result};

impl State {
    /// Keeps a worker read from storage or just created, unless it is already in memory.
    pub fn load_worker(&mut self, worker: Worker) -> Result<()> {
        if self.workers.get(&worker.id).is_none() {
            self.workers.insert(worker);
        }
        Ok(())
    }

    /// `PUT /workers/{id}`, once allowed and validated: a new name, maintenance (with its
    /// message), pause, info. Answers what changed and the worker as it now is.
    pub fn modify_worker(&mut self, id: &Uuid, m: ModifyWorker, name: Option<String>) -> Result<Box<(ModifyWorkerResponse, Worker)>> {
        let mut resp = ModifyWorkerResponse::default();
        if let Some(n) = name {
            self.workers.rename(id, n.clone());
            resp.name = Some(n);
        }
        let w = self.workers.get_mut(id).ok_or_else(|| HordeError::WorkerNotFound(id.to_string()))?;
        if let Some(v) = m.maintenance {
            w.maintenance = v;
            w.maintenance_msg = if v { m.maintenance_msg.clone() } else { None };
            resp.maintenance = Some(v);
        }
        if let Some(v) = m.paused {
            w.paused = v;
            resp.paused = Some(v);
        }
        if let Some(v) = m.info {
            w.info = v.clone();
            resp.info = Some(v);
        }
        Ok(Box::new((resp, w.clone())))
    }

    /// Forgets a deleted worker (and its stats not yet stored).
    pub fn delete_worker(&mut self, id: &Uuid) -> Result<()> {
        self.workers.remove(id);
        self.pending.workers.remove(id);
        Ok(())
    }
}

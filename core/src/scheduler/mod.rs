//! The queue of waiting requests, the jobs handed to workers, and the rules matching one to the
//! other, for any kind of request: the kinds bring their matching (`Matching`) and their types
//! (`QueueKind`); nothing here names one.

pub mod figures;
pub mod matching;
pub mod queue;

pub use matching::{choose_request, Matching, Skip};
pub use queue::{flags, Criteria, FinishedJob, Job, JobCounts, JobState, Queue, QueueKey, QueueKind, WaitingRequest};

use std::collections::HashMap;

/// A model name, interned.
pub type ModelId = u32;

/// Interns model names so matching compares integers.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ModelNames {
    ids: HashMap<String, ModelId>,
    names: Vec<String>,
}

impl ModelNames {
    pub fn intern(&mut self, name: &str) -> ModelId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as ModelId;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }
    /// Interns a list, sorted and without duplicates.
    pub fn intern_all(&mut self, names: &[String]) -> Vec<ModelId> {
        let mut ids: Vec<ModelId> = names.iter().map(|n| self.intern(n)).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
    /// The ids of the names already interned, sorted, without interning the others (reads must
    /// not change the numbering, which replicas share).
    pub fn known(&self, names: &[String]) -> Vec<ModelId> {
        let mut ids: Vec<ModelId> = names.iter().filter_map(|n| self.ids.get(n).copied()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
    pub fn name(&self, id: ModelId) -> &str {
        self.names.get(id as usize).map(String::as_str).unwrap_or("")
    }
}

/// Whether two sorted id lists share an element.
pub fn intersects(a: &[ModelId], b: &[ModelId]) -> bool {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    false
}

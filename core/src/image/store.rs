//! Images held in memory: results (by job id) and the source images of queued requests, under one
//! byte cap. Nothing here ever touches disk; images leave with their request.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::{HordeError, Result};

/// Result images by job id, and the bytes all images take.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ImageStore {
    images: HashMap<Uuid, Arc<Vec<u8>>>,
    used: usize,
    cap: usize,
}

impl ImageStore {
    pub fn new(cap: usize) -> Self {
        Self {
            images: HashMap::new(),
            used: 0,
            cap,
        }
    }

    fn full(&self) -> HordeError {
        HordeError::ImageStoreFull {
            cap_mib: self.cap / (1024 * 1024),
        }
    }

    /// Counts `bytes` held elsewhere (a request's source image) against the cap.
    pub fn reserve(&mut self, bytes: usize) -> Result<()> {
        if self.used.saturating_add(bytes) > self.cap {
            return Err(self.full());
        }
        self.used += bytes;
        Ok(())
    }

    /// Gives back what `reserve` counted.
    pub fn release(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Keeps a job's image, replacing any earlier one (a worker may upload twice).
    pub fn put(&mut self, job_id: Uuid, image: Vec<u8>) -> Result<()> {
        let old = self.images.get(&job_id).map_or(0, |i| i.len());
        if self.used.saturating_sub(old).saturating_add(image.len()) > self.cap {
            return Err(self.full());
        }
        self.used = self.used - old + image.len();
        self.images.insert(job_id, Arc::new(image));
        Ok(())
    }

    pub fn get(&self, job_id: &Uuid) -> Option<Arc<Vec<u8>>> {
        self.images.get(job_id).cloned()
    }

    pub fn contains(&self, job_id: &Uuid) -> bool {
        self.images.contains_key(job_id)
    }

    /// Drops a job's image.
    pub fn remove(&mut self, job_id: &Uuid) {
        if let Some(i) = self.images.remove(job_id) {
            self.used = self.used.saturating_sub(i.len());
        }
    }

    /// Bytes held.
    pub fn used(&self) -> usize {
        self.used
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_is_enforced_and_space_comes_back() {
        let mut s = ImageStore::new(100);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        s.put(a, vec![0; 60]).expect("fits");
        assert_eq!(s.put(b, vec![0; 50]).err().map(|e| e.rc()), Some("ImageStoreFull"));
        assert_eq!(s.reserve(41).err().map(|e| e.rc()), Some("ImageStoreFull"));
        s.reserve(40).expect("fits");
        s.release(40);
        // Replacing an image counts only the difference.
        s.put(a, vec![0; 90]).expect("replaces");
        assert_eq!(s.used(), 90);
        s.remove(&a);
        assert_eq!(s.used(), 0);
        s.put(b, vec![0; 100]).expect("fits again");
        assert!(s.contains(&b) && !s.contains(&a));
    }
}

//! Result images: what a worker uploads to a job's link, the checks every result image passes,
//! and reading them back.

use uuid::Uuid;

use super::request::image_dimensions;
use crate::scheduler::JobState;
use crate::state::State;
use crate::{HordeError, Result};

impl State {
    /// Keeps the image a worker PUT to a job's upload link. Allowed while the job is in flight.
    pub fn upload_image(&mut self, job_id: &Uuid, bytes: Vec<u8>) -> Result<()> {
        let job = self
            .images
            .job(job_id)
            .or_else(|| self.alchemy.job(job_id))
            .ok_or(HordeError::InvalidImageLink)?;
        if job.state != JobState::InFlight {
            return Err(HordeError::rejected(
                "JobNotInFlight",
                "This job is no longer waiting for its image.",
            ));
        }
        check_result_image(&bytes, self.cfg.max_result_image_bytes)?;
        self.image_store.put(*job_id, bytes)
    }

    /// The image of a finished (or uploaded) job.
    pub fn image_bytes(&self, job_id: &Uuid) -> Option<std::sync::Arc<Vec<u8>>> {
        self.image_store.get(job_id)
    }
}

/// Whether `bytes` may be kept as a result: at most `max` bytes of a WebP, PNG or JPEG image.
pub(crate) fn check_result_image(bytes: &[u8], max: usize) -> Result<()> {
    if bytes.len() > max {
        return Err(HordeError::rejected(
            "ImageTooLarge",
            format!("A result image may be at most {} KiB.", max / 1024),
        ));
    }
    if image_dimensions(bytes).is_none() {
        return Err(HordeError::rejected(
            "InvalidImage",
            "The generation is not a WebP, PNG or JPEG image.",
        ));
    }
    Ok(())
}

//! How image requests are matched to image workers: their capabilities and the `skipped`
//! counters of an idle image pop (the shared part is `scheduler::matching`).

use horde_protocol::image::ImageSkipped;

use super::{caps, ImageKind, ImageNeeds, ImageRequest};
use crate::accounts::Users;
use crate::scheduler::matching::common_checks;
use crate::scheduler::{flags, Criteria, Job, Matching, Skip, WaitingRequest};
use crate::workers::{Worker, WorkerKind, LIMITED_MAX_STEPS};

/// Why an image worker may not take an image request, besides the reasons every kind shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSkip {
    /// An NSFW request and a SFW worker.
    Nsfw,
    MaxPixels,
    /// More steps than a worker with `limit_max_steps` takes.
    StepCount,
    Img2img,
    Painting,
    PostProcessing,
    Lora,
    Controlnet,
}

impl Matching for ImageKind {
    const WORKER: WorkerKind = WorkerKind::Image;
    const NAME: &'static str = "image";
    const MIN_SPEED: f64 = 0.01;
    const THINGS_PER_UNIT: f64 = 1e6;
    type Skipped = ImageSkipped;
    type Reason = ImageSkip;

    fn job_things(r: &ImageRequest) -> f64 {
        (r.pixels() * r.accurate_steps) as f64
    }
    /// A batch is generated image after image.
    fn in_flight_work(r: &ImageRequest, job: &Job) -> f64 {
        Self::job_things(r) / Self::THINGS_PER_UNIT * job.batch as f64
    }
    fn count(skip: Skip<ImageSkip>, skipped: &mut ImageSkipped, n: i64) {
        let c = match skip {
            Skip::WorkerId => &mut skipped.worker_id,
            Skip::Performance => &mut skipped.performance,
            Skip::Untrusted => &mut skipped.untrusted,
            Skip::Models => &mut skipped.models,
            Skip::Kudos => &mut skipped.kudos,
            Skip::BridgeVersion => &mut skipped.bridge_version,
            Skip::Kind(ImageSkip::Nsfw) => &mut skipped.nsfw,
            Skip::Kind(ImageSkip::MaxPixels) => &mut skipped.max_pixels,
            Skip::Kind(ImageSkip::StepCount) => &mut skipped.step_count,
            Skip::Kind(ImageSkip::Img2img) => &mut skipped.img2img,
            Skip::Kind(ImageSkip::Painting) => &mut skipped.painting,
            Skip::Kind(ImageSkip::PostProcessing) => &mut skipped.post_processing,
            Skip::Kind(ImageSkip::Lora) => &mut skipped.lora,
            Skip::Kind(ImageSkip::Controlnet) => &mut skipped.controlnet,
        };
        *c += n;
    }
    fn can_serve_matched<'a>(
        worker: &Worker,
        owner_trusted: bool,
        c: &Criteria<ImageNeeds>,
        detail: impl FnOnce() -> Option<&'a WaitingRequest<Self>>,
        users: &Users,
    ) -> Result<(), Skip<ImageSkip>> {
        let cap = &worker.image;
        let n = &c.needs;
        if n.pixels > cap.max_pixels {
            return Err(Skip::Kind(ImageSkip::MaxPixels));
        }
        if c.has(flags::NSFW) && !worker.nsfw {
            return Err(Skip::Kind(ImageSkip::Nsfw));
        }
        for (need, allowed, skip) in [
            (caps::IMG2IMG, cap.allow_img2img, ImageSkip::Img2img),
            (caps::PAINTING, cap.allow_painting, ImageSkip::Painting),
            (caps::POST_PROCESSING, cap.allow_post_processing, ImageSkip::PostProcessing),
            (caps::LORA, cap.allow_lora, ImageSkip::Lora),
            (caps::CONTROLNET, cap.allow_controlnet, ImageSkip::Controlnet),
        ] {
            if n.caps & need != 0 && !allowed {
                return Err(Skip::Kind(skip));
            }
        }
        if cap.limit_max_steps && n.steps > LIMITED_MAX_STEPS {
            return Err(Skip::Kind(ImageSkip::StepCount));
        }
        common_checks(
            worker,
            owner_trusted,
            c,
            || {
                let r = &detail()?.request;
                Some((!r.workers.is_empty(), r.workers.contains(&worker.id) != r.worker_blacklist))
            },
            users,
        )
    }
}

//! How image requests are matched to image workers: their capabilities and the `skipped`
//! counters of an idle image pop (the shared part is `scheduler::matching`).

use horde_protocol::image::ImageSkipped;

use super::{caps, ImageKind, ImageNeeds, ImageRequest};
use crate::accounts::Users;
use crate::scheduler::matching::common_checks;
use crate::scheduler::{flags, Criteria, Job, Matching, Skip, WaitingRequest};
use crate::workers::{Worker, WorkerKind, LIMITED_MAX_STEPS};

impl Matching for ImageKind {
    const WORKER: WorkerKind = WorkerKind::Image;
    const NAME: &'static str = "image";
    const MIN_SPEED: f64 = 0.01;
    const THINGS_PER_UNIT: f64 = 1e6;
    type Skipped = ImageSkipped;

    fn job_things(r: &ImageRequest) -> f64 {
        (r.pixels() * r.accurate_steps) as f64
    }
    /// A batch is generated image after image.
    fn in_flight_work(r: &ImageRequest, job: &Job) -> f64 {
        Self::job_things(r) / Self::THINGS_PER_UNIT * job.batch as f64
    }
    fn count(skip: Skip, skipped: &mut ImageSkipped, n: i64) {
        let c = match skip {
            Skip::WorkerId => &mut skipped.worker_id,
            Skip::Performance => &mut skipped.performance,
            Skip::Untrusted => &mut skipped.untrusted,
            Skip::Models => &mut skipped.models,
            Skip::Kudos => &mut skipped.kudos,
            Skip::Nsfw => &mut skipped.nsfw,
            Skip::MaxPixels => &mut skipped.max_pixels,
            Skip::StepCount => &mut skipped.step_count,
            Skip::Img2img => &mut skipped.img2img,
            Skip::Painting => &mut skipped.painting,
            Skip::PostProcessing => &mut skipped.post_processing,
            Skip::Lora => &mut skipped.lora,
            Skip::Controlnet => &mut skipped.controlnet,
            Skip::BridgeVersion | Skip::MaxContextLength | Skip::MaxLength | Skip::MatchingSoftprompt => &mut skipped.bridge_version,
        };
        *c += n;
    }
    fn can_serve_matched<'a>(
        worker: &Worker,
        owner_trusted: bool,
        c: &Criteria<ImageNeeds>,
        detail: impl FnOnce() -> Option<&'a WaitingRequest<Self>>,
        users: &Users,
    ) -> Result<(), Skip> {
        let cap = &worker.image;
        let n = &c.needs;
        if n.pixels > cap.max_pixels {
            return Err(Skip::MaxPixels);
        }
        if c.has(flags::NSFW) && !worker.nsfw {
            return Err(Skip::Nsfw);
        }
        for (need, allowed, skip) in [
            (caps::IMG2IMG, cap.allow_img2img, Skip::Img2img),
            (caps::PAINTING, cap.allow_painting, Skip::Painting),
            (caps::POST_PROCESSING, cap.allow_post_processing, Skip::PostProcessing),
            (caps::LORA, cap.allow_lora, Skip::Lora),
            (caps::CONTROLNET, cap.allow_controlnet, Skip::Controlnet),
        ] {
            if n.caps & need != 0 && !allowed {
                return Err(skip);
            }
        }
        if cap.limit_max_steps && n.steps > LIMITED_MAX_STEPS {
            return Err(Skip::StepCount);
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

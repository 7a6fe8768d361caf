//! Whether a worker may serve a request, and if not, why (the `skipped` counters of a pop).

use horde_protocol::image::ImageSkipped;
use horde_protocol::text::TextSkipped;

use uuid::Uuid;

use super::queue::{flags, Job, Queue, QueueKey, RequestKind};
use super::{intersects, Criteria, WaitingRequest};
use crate::accounts::Users;
use crate::image::{caps, ImageKind, ImageNeeds, ImageRequest};
use crate::text::{TextKind, TextNeeds, TextRequest};
use crate::workers::{Worker, WorkerKind, LIMITED_MAX_STEPS};

/// How a kind of request is matched to workers and measured: what the shared scheduler and the
/// queue figures need to treat text and image alike.
pub trait Matching: RequestKind + Sized {
    /// Workers that serve this kind.
    const WORKER: WorkerKind;
    /// Name in `/status/models` (`type`).
    const NAME: &'static str;
    /// Smallest worker speed assumed when dividing by one.
    const MIN_SPEED: f64;
    /// `/status/models` counts queued work in things (tokens; pixelsteps); this many make one
    /// unit of worker speed (1 token; a megapixelstep).
    const THINGS_PER_UNIT: f64;
    /// Why-not counters of an idle pop.
    type Skipped: Default;

    /// Things one job of `r` takes.
    fn job_things(r: &Self::Request) -> f64;
    /// Work left on a job in flight, in speed units.
    fn in_flight_work(r: &Self::Request, job: &Job) -> f64;
    fn models(r: &Self::Request) -> &[String];
    fn count(skip: Skip, skipped: &mut Self::Skipped, n: i64);
    /// Whether `worker` may serve `req`.
    fn can_serve(worker: &Worker, owner_trusted: bool, req: &WaitingRequest<Self>, users: &Users) -> Result<(), Skip>;
    /// The same for a request known to name one of the worker's models (or none), from its inline
    /// criteria; `detail` gives the full request when needed.
    fn can_serve_matched<'a>(
        worker: &Worker,
        owner_trusted: bool,
        c: &Criteria<Self::Needs>,
        detail: impl FnOnce() -> Option<&'a WaitingRequest<Self>>,
        users: &Users,
    ) -> Result<(), Skip>
    where
        Self: 'a;
}

impl Matching for TextKind {
    const WORKER: WorkerKind = WorkerKind::Text;
    const NAME: &'static str = "text";
    const MIN_SPEED: f64 = 0.1;
    const THINGS_PER_UNIT: f64 = 1.0;
    type Skipped = TextSkipped;

    fn job_things(r: &TextRequest) -> f64 {
        r.max_length as f64
    }
    fn in_flight_work(r: &TextRequest, _job: &Job) -> f64 {
        r.max_length as f64
    }
    fn models(r: &TextRequest) -> &[String] {
        &r.models
    }
    fn count(skip: Skip, skipped: &mut TextSkipped, n: i64) {
        skip.count(skipped, n)
    }
    fn can_serve(worker: &Worker, owner_trusted: bool, req: &WaitingRequest<Self>, users: &Users) -> Result<(), Skip> {
        can_serve(worker, owner_trusted, req, users)
    }
    fn can_serve_matched<'a>(
        worker: &Worker,
        owner_trusted: bool,
        c: &Criteria<TextNeeds>,
        detail: impl FnOnce() -> Option<&'a WaitingRequest<Self>>,
        users: &Users,
    ) -> Result<(), Skip> {
        can_serve_model_matched(worker, owner_trusted, c, detail, users)
    }
}

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
    fn models(r: &ImageRequest) -> &[String] {
        &r.models
    }
    fn count(skip: Skip, skipped: &mut ImageSkipped, n: i64) {
        skip.count_image(skipped, n)
    }
    fn can_serve(worker: &Worker, owner_trusted: bool, req: &WaitingRequest<Self>, users: &Users) -> Result<(), Skip> {
        can_serve_image(worker, owner_trusted, req, users)
    }
    fn can_serve_matched<'a>(
        worker: &Worker,
        owner_trusted: bool,
        c: &Criteria<ImageNeeds>,
        detail: impl FnOnce() -> Option<&'a WaitingRequest<Self>>,
        users: &Users,
    ) -> Result<(), Skip> {
        image_can_serve_model_matched(worker, owner_trusted, c, detail, users)
    }
}

/// The request `w` gets, if any: its owner's first, then its priority users' (merged in queue
/// order), then everyone's in priority order (the last only when the worker is neither in
/// maintenance nor paused). When nothing fits, `skipped` says why.
pub fn choose_request<K: Matching>(
    queue: &Queue<K>,
    w: &Worker,
    owner_trusted: bool,
    users: &Users,
    skipped: &mut K::Skipped,
) -> Option<Uuid> {
    let restricted = w.maintenance || w.paused;
    let mut candidates: Vec<Uuid> = queue.user_in_order(w.owner_id).map(|(_, id)| *id).collect();
    if !restricted {
        let mut listed: Vec<(QueueKey, Uuid)> = w
            .priority_user_ids
            .iter()
            .filter(|id| **id != w.owner_id)
            .flat_map(|u| queue.user_in_order(*u).map(|(k, id)| (*k, *id)))
            .collect();
        listed.sort_unstable();
        candidates.extend(listed.into_iter().map(|(_, id)| id));
    }
    let chosen = candidates
        .iter()
        .copied()
        .find(|id| queue.get(id).is_some_and(|r| K::can_serve(w, owner_trusted, r, users).is_ok()));
    if chosen.is_some() || restricted {
        return chosen;
    }
    let mut examined = 0i64;
    for c in queue.for_models(&w.model_ids) {
        examined += 1;
        match K::can_serve_matched(w, owner_trusted, c, || queue.get(&c.id), users) {
            Ok(()) => return Some(c.id),
            Err(skip) => K::count(skip, skipped, 1),
        }
    }
    // Everything not examined names only models this worker does not serve.
    K::count(Skip::Models, skipped, queue.queued_len() as i64 - examined);
    None
}

/// Why a request was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Allow-list without this worker, or block-list with it.
    WorkerId,
    /// Needs faster workers, or the worker is extra slow.
    Performance,
    /// Needs workers of trusted users.
    Untrusted,
    /// Names models the worker does not serve.
    Models,
    /// Needs a validated backend.
    BridgeVersion,
    /// The worker wants upfront kudos the requester lacks.
    Kudos,
    MaxContextLength,
    MaxLength,
    MatchingSoftprompt,
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

impl Skip {
    pub fn count(self, skipped: &mut TextSkipped, n: i64) {
        let c = match self {
            Skip::WorkerId => &mut skipped.worker_id,
            Skip::Performance => &mut skipped.performance,
            Skip::Untrusted => &mut skipped.untrusted,
            Skip::Models => &mut skipped.models,
            Skip::BridgeVersion => &mut skipped.bridge_version,
            Skip::Kudos => &mut skipped.kudos,
            Skip::MaxContextLength => &mut skipped.max_context_length,
            Skip::MaxLength => &mut skipped.max_length,
            Skip::MatchingSoftprompt => &mut skipped.matching_softprompt,
            Skip::Nsfw => &mut skipped.nsfw,
            _ => &mut skipped.bridge_version,
        };
        *c += n;
    }

    pub fn count_image(self, skipped: &mut ImageSkipped, n: i64) {
        let c = match self {
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
}

/// Checks every kind shares: trust, speed, validated backends, allow/block lists, upfront kudos.
fn common_checks<N>(
    worker: &Worker,
    owner_trusted: bool,
    c: &Criteria<N>,
    listed: impl FnOnce() -> Option<(bool, bool)>,
    users: &Users,
) -> Result<(), Skip> {
    if c.has(flags::TRUSTED_WORKERS) && !owner_trusted {
        return Err(Skip::Untrusted);
    }
    if worker.extra_slow && !c.has(flags::EXTRA_SLOW_OK) {
        return Err(Skip::Performance);
    }
    if c.has(flags::FAST_ONLY) && worker.speed() < worker.slow_threshold() {
        return Err(Skip::Performance);
    }
    if c.has(flags::VALIDATED_BACKENDS) && !worker.is_validated_backend() {
        return Err(Skip::BridgeVersion);
    }
    if c.has(flags::NEEDS_DETAIL) {
        // (has a list, the worker is on it when it is an allow-list / off it when a block-list)
        match listed() {
            Some((true, false)) | None => return Err(Skip::WorkerId),
            _ => {}
        }
    }
    if worker.require_upfront_kudos && c.user_id != worker.owner_id && !worker.priority_user_ids.contains(&c.user_id) {
        let ok = users
            .get(c.user_id)
            .is_some_and(|u| u.trusted || u.available_kudos() >= c.job_estimate);
        if !ok {
            return Err(Skip::Kudos);
        }
    }
    Ok(())
}

/// Whether `worker` (owned by a user with `owner_trusted`) may serve `req`.
pub fn can_serve(worker: &Worker, owner_trusted: bool, req: &WaitingRequest<TextKind>, users: &Users) -> Result<(), Skip> {
    if !req.model_ids.is_empty() && !intersects(&req.model_ids, &worker.model_ids) {
        return Err(Skip::Models);
    }
    can_serve_model_matched(worker, owner_trusted, &req.criteria, || Some(req), users)
}

/// The same checks for a request known to name one of the worker's models (or none), from its
/// inline criteria; `detail` gives the full request, consulted only for allow/block lists and
/// softprompts. Cheap checks first: a pop may run this over a long queue.
pub fn can_serve_model_matched<'a>(
    worker: &Worker,
    owner_trusted: bool,
    c: &Criteria<TextNeeds>,
    detail: impl FnOnce() -> Option<&'a WaitingRequest<TextKind>>,
    users: &Users,
) -> Result<(), Skip> {
    if c.needs.max_context_length > worker.max_context_length {
        return Err(Skip::MaxContextLength);
    }
    if c.needs.max_length > worker.max_length {
        return Err(Skip::MaxLength);
    }
    let mut softprompt_ok = true;
    common_checks(
        worker,
        owner_trusted,
        c,
        || {
            let r = &detail()?.request;
            if let Some(sp) = &r.softprompt {
                softprompt_ok = worker.softprompts.iter().any(|s| s == sp);
            }
            Some((!r.workers.is_empty(), r.workers.contains(&worker.id) != r.worker_blacklist))
        },
        users,
    )?;
    if !softprompt_ok {
        return Err(Skip::MatchingSoftprompt);
    }
    Ok(())
}

/// Whether an image `worker` may serve `req`.
pub fn can_serve_image(worker: &Worker, owner_trusted: bool, req: &WaitingRequest<ImageKind>, users: &Users) -> Result<(), Skip> {
    if !req.model_ids.is_empty() && !intersects(&req.model_ids, &worker.model_ids) {
        return Err(Skip::Models);
    }
    image_can_serve_model_matched(worker, owner_trusted, &req.criteria, || Some(req), users)
}

/// The image checks for a request known to name one of the worker's models (or none).
pub fn image_can_serve_model_matched<'a>(
    worker: &Worker,
    owner_trusted: bool,
    c: &Criteria<ImageNeeds>,
    detail: impl FnOnce() -> Option<&'a WaitingRequest<ImageKind>>,
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

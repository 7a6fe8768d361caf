//! What the queue looks like to a requester and to `/status/models`: which online workers could
//! serve a request, its position and expected wait, and per-model capacity. The same for text and
//! image, through `Matching`.

use std::collections::HashMap;

use uuid::Uuid;

use horde_protocol::image::ImageCheck;
use horde_protocol::status::ActiveModel;

use super::matching::Matching;
use super::queue::{JobState, Queue, WaitingRequest};
use crate::accounts::Users;
use crate::kudos::to_kudos;
use crate::workers::{Worker, Workers};

/// Online workers of the kind that could serve `req` (in maintenance: only their owner's).
pub fn eligible_workers<'a, K: Matching>(
    workers: &'a Workers,
    users: &Users,
    req: &WaitingRequest<K>,
    now_ms: u64,
    online_secs: u64,
) -> Vec<&'a Worker> {
    workers
        .online(K::WORKER, now_ms, online_secs)
        .filter(|w| !(w.maintenance || w.paused) || w.owner_id == req.user_id)
        .filter(|w| {
            let trusted = users.is_trusted(w.owner_id);
            K::can_serve(w, trusted, req, users).is_ok()
        })
        .collect()
}

/// What a requester sees of a request: whether some online worker can serve it, and its queue
/// position and wait (seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueFigures {
    pub is_possible: bool,
    pub queue_position: i64,
    pub wait_time: i64,
}

/// The figures of request `id` (`None` if unknown). Position and wait are kept for a second,
/// since clients poll.
pub fn queue_figures<K: Matching>(
    queue: &mut Queue<K>,
    workers: &Workers,
    users: &Users,
    id: &Uuid,
    now_ms: u64,
    online_secs: u64,
) -> Option<QueueFigures> {
    let req = queue.get(id)?;
    let eligible = eligible_workers(workers, users, req, now_ms, online_secs);
    let is_possible = req.processing > 0 || req.is_done() || !eligible.is_empty();
    let (queue_position, wait_time) = match req.cached_position {
        Some((at, pos, wait)) if now_ms.saturating_sub(at) < 1000 => (pos, wait),
        _ => {
            let (pos, wait) = position_and_wait(queue, workers, users, req, &eligible, now_ms);
            if let Some(r) = queue.get_mut(id) {
                r.cached_position = Some((now_ms, pos, wait));
            }
            (pos, wait)
        }
    };
    Some(QueueFigures {
        is_possible,
        queue_position,
        wait_time,
    })
}

/// How request `id` stands, as a client sees it (`None` if unknown): its job counts, whether it
/// is done, its queue figures and what it has cost. The image check and the text stream's
/// `status` event are this.
pub fn standing<K: Matching>(
    queue: &mut Queue<K>,
    workers: &Workers,
    users: &Users,
    id: &Uuid,
    now_ms: u64,
    online_secs: u64,
) -> Option<ImageCheck> {
    let figures = queue_figures(queue, workers, users, id, now_ms, online_secs)?;
    let req = queue.get(id)?;
    Some(ImageCheck {
        finished: req.generations.len() as i64,
        processing: req.processing as i64,
        restarted: req.faults as i64,
        waiting: if req.is_queued() { req.remaining as i64 } else { 0 },
        done: req.is_done(),
        faulted: req.faulted,
        wait_time: figures.wait_time,
        queue_position: figures.queue_position,
        kudos: to_kudos(req.consumed),
        is_possible: figures.is_possible,
    })
}

/// Queue position and wait time (seconds) of `req`. Only requests ahead that one of the
/// `eligible` workers could also serve count; the wait adds the expected time left on the
/// request's own jobs in flight.
pub fn position_and_wait<K: Matching>(
    queue: &Queue<K>,
    workers: &Workers,
    users: &Users,
    req: &WaitingRequest<K>,
    eligible: &[&Worker],
    now_ms: u64,
) -> (i64, i64) {
    let work = |r: &K::Request, jobs: u32| K::job_things(r) / K::THINGS_PER_UNIT * jobs as f64;
    let mut wait = 0.0;
    for job in queue.jobs_of(req).filter(|j| j.state == JobState::InFlight) {
        if let Some(w) = workers.get(&job.worker_id) {
            let expected = K::in_flight_work(&req.request, job) / w.speed().max(K::MIN_SPEED);
            let elapsed = now_ms.saturating_sub(job.started_ms) as f64 / 1000.0;
            wait = f64::max(wait, expected - elapsed);
        }
    }
    if !req.is_queued() {
        return (0, wait.ceil().max(0.0) as i64);
    }
    let throughput: f64 = eligible.iter().map(|w| w.speed() * w.threads as f64).sum::<f64>().max(K::MIN_SPEED);
    let mut position = 1i64;
    let mut ahead = 0.0;
    for other in queue.in_order() {
        if other.id == req.id {
            break;
        }
        let competes = eligible.is_empty()
            || eligible.iter().any(|w| {
                let trusted = users.is_trusted(w.owner_id);
                K::can_serve(w, trusted, other, users).is_ok()
            });
        if competes {
            position += 1;
            ahead += work(&other.request, other.remaining);
        }
    }
    if !eligible.is_empty() {
        wait += (ahead + work(&req.request, req.remaining)) / throughput;
    }
    (position, wait.ceil().max(0.0) as i64)
}

/// `/status/models` for one kind: each model an online worker serves, with threads, average
/// speed, queued things and jobs (requests naming it or no model), and the time to clear them.
pub fn active_models<K: Matching>(queue: &Queue<K>, workers: &Workers, now_ms: u64, online_secs: u64) -> Vec<ActiveModel> {
    let mut by_model: HashMap<&str, (i64, f64, usize, f64)> = HashMap::new();
    for w in workers.online(K::WORKER, now_ms, online_secs) {
        for m in &w.models {
            let e = by_model.entry(m.as_str()).or_default();
            e.0 += w.threads;
            e.1 += w.speed();
            e.2 += 1;
            e.3 += w.speed() * w.threads as f64;
        }
    }
    let mut out: Vec<ActiveModel> = by_model
        .into_iter()
        .map(|(name, (threads, speed_sum, count, throughput))| {
            let (mut queued, mut jobs) = (0.0, 0.0);
            for r in queue.in_order().filter(|r| {
                let models = &r.request.models;
                models.is_empty() || models.iter().any(|m| m == name)
            }) {
                queued += K::job_things(&r.request) * r.remaining as f64;
                jobs += r.remaining as f64;
            }
            let eta = if throughput > 0.0 {
                (queued / K::THINGS_PER_UNIT / throughput).ceil() as i64
            } else {
                10_000
            };
            ActiveModel {
                name: name.to_string(),
                count: threads,
                performance: (speed_sum / count.max(1) as f64 * 100.0).round() / 100.0,
                queued,
                jobs,
                eta,
                kind: K::NAME.into(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    out
}

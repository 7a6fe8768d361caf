//! What alchemy requests bring to the lifecycle (`crate::lifecycle`): per-form prices, the source
//! image held in the image store, one form per job (the job's model is its form), upload links
//! for post-processors' images, and results kept in memory with their request.

use base64::Engine;
use horde_protocol::alchemy::{AlchemyFormStatus, AlchemyPopForm, AlchemyPopResponse, AlchemySkipped, AlchemyStatusResponse, UPLOADED};
use horde_protocol::image::ImageCheck;
use horde_protocol::text::GenMetadata;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{form_price, AlchemyKind, AlchemyNeeds, AlchemyOutput, AlchemyRequest, FORM_FEE, FORM_TTL_SECS};
use crate::accounts::{UserRecords, Users};
use crate::config::HordeConfig;
use crate::kudos::Centikudos;
use crate::lifecycle::{JobLinks, JobReport, RequestKind, Settled, Work};
use crate::scheduler::{FinishedJob, Job, Queue, WaitingRequest};
use crate::state::State;
use crate::workers::{Worker, Workers};
use crate::{HordeError, Result};

/// Most bytes of a text form's result, as JSON.
pub const MAX_RESULT_CHARS: usize = 64 * 1024;

/// What an alchemist sends back for a form (`POST /interrogate/submit`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AlchemyJobResult {
    pub job_id: String,
    /// Keyed by form name, as JSON text (an object; a post-processor's is `{form: "R2"}`).
    pub result: String,
    /// `ok` or `faulted`.
    pub state: String,
}

impl JobReport for AlchemyJobResult {
    fn job_id(&self) -> &str {
        &self.job_id
    }
    fn state(&self) -> &str {
        &self.state
    }
    fn seed(&self) -> i64 {
        0
    }
    fn gen_metadata(&self) -> &[GenMetadata] {
        &[]
    }
}

/// The request of `job`, mutably, with the index of the job's form.
fn form_of<'a>(s: &'a mut State, job: &Job) -> Option<(&'a mut AlchemyRequest, usize)> {
    let r = s.alchemy.get_mut(&job.request_id)?;
    let i = r.request.form_index(&job.model)?;
    Some((&mut r.request, i))
}

/// The result object a worker sent: an object (old clients' bare strings are kept under the
/// form's name).
fn result_object(report: &AlchemyJobResult, form: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(&report.result) {
        Ok(Value::Object(m)) => m,
        Ok(Value::Null) | Err(_) => Map::new(),
        Ok(other) => Map::from_iter([(form.to_string(), other)]),
    }
}

impl RequestKind for AlchemyKind {
    type Pop = AlchemyPopResponse;
    type Report = AlchemyJobResult;
    type Status = AlchemyStatusResponse;

    fn queue(s: &State) -> &Queue<Self> {
        &s.alchemy
    }
    fn queue_mut(s: &mut State) -> &mut Queue<Self> {
        &mut s.alchemy
    }
    fn queue_beside_workers(s: &mut State) -> (&mut Queue<Self>, &Workers, &Users) {
        (&mut s.alchemy, &s.workers, &s.users)
    }

    /// The dearest form's charge (the upfront check's figure).
    fn job_estimate(_s: &State, r: &AlchemyRequest) -> Centikudos {
        r.forms.iter().map(|f| charge(r, form_price(&f.name, r.tiles))).max().unwrap_or(0)
    }
    /// Every form's charge.
    fn jobs_estimate(_s: &State, r: &AlchemyRequest) -> Centikudos {
        r.forms.iter().map(|f| charge(r, form_price(&f.name, r.tiles))).sum()
    }
    /// The source image's bytes go into the image store while the request lives.
    fn hold(s: &mut State, _user_id: i64, r: &AlchemyRequest) -> Result<usize> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&r.source.base64)
            .map_err(|_| HordeError::rejected("InvalidSourceImage", "source_image is not valid base64."))?;
        s.image_store.put(r.source_key, bytes)?;
        Ok(0)
    }
    fn release(s: &mut State, r: &AlchemyRequest) {
        s.image_store.remove(&r.source_key);
    }
    fn count_request(_records: &mut UserRecords, _r: &AlchemyRequest) {}
    fn needs(r: &AlchemyRequest) -> (AlchemyNeeds, u8) {
        (AlchemyNeeds { tiles: r.tiles }, 0)
    }

    /// As many waiting forms as the worker serves, up to `amount`; 3 minutes each.
    fn batch(_cfg: &HordeConfig, w: &Worker, req: &WaitingRequest<Self>, amount: u32) -> (u32, u64) {
        let count = (req.request.servable(&w.models, w.image.max_pixels).len() as u32)
            .min(amount)
            .min(req.remaining);
        (count, FORM_TTL_SECS * count.max(1) as u64)
    }
    /// The batch's `index`th form the worker serves.
    fn job_model(w: &Worker, req: &WaitingRequest<Self>, index: u32, model: &str) -> String {
        let r = &req.request;
        r.servable(&w.models, w.image.max_pixels)
            .get(index as usize)
            .and_then(|i| r.forms.get(*i))
            .map_or_else(|| model.to_string(), |f| f.name.clone())
    }
    /// The batch's forms are in flight.
    fn started(s: &mut State, request_id: &Uuid, jobs: &[Job]) {
        if let Some(r) = s.alchemy.get_mut(request_id) {
            for job in jobs {
                if let Some(i) = r.request.form_index(&job.model) {
                    r.request.in_flight |= 1 << i;
                }
            }
        }
    }
    /// Each form with its payload, an upload link for a post-processor's image, and the source
    /// image's store key in `source_image` (the horde makes it a download link).
    fn handout(_w: &Worker, req: &WaitingRequest<Self>, jobs: &[Job], _model: String, links: JobLinks) -> AlchemyPopResponse {
        let r = &req.request;
        let forms = jobs
            .iter()
            .map(|j| {
                let spec = r.form_index(&j.model).and_then(|i| r.forms.get(i));
                AlchemyPopForm {
                    id: j.id.to_string(),
                    form: j.model.clone(),
                    payload: spec
                        .and_then(|f| f.payload.as_deref())
                        .and_then(|p| serde_json::from_str::<Map<String, Value>>(p).ok()),
                    source_image: Some(r.source_key.to_string()),
                    r2_upload: horde_protocol::alchemy::is_post_processor(&j.model).then(|| links(&j.id)),
                }
            })
            .collect();
        AlchemyPopResponse { forms, skipped: None }
    }
    fn idle(skipped: AlchemySkipped) -> AlchemyPopResponse {
        AlchemyPopResponse {
            forms: vec![],
            skipped: Some(skipped),
        }
    }

    /// A post-processor's image must have been uploaded to its link; a description must be an
    /// object of bounded size.
    fn check_result(s: &mut State, job: &Job, report: &AlchemyJobResult) -> Result<()> {
        if report.result.len() > MAX_RESULT_CHARS {
            return Err(HordeError::Validation(format!(
                "A form's result may be at most {MAX_RESULT_CHARS} bytes."
            )));
        }
        if horde_protocol::alchemy::is_post_processor(&job.model) && !s.image_store.contains(&job.id) {
            return Err(HordeError::rejected(
                "ImageNotUploaded",
                format!(
                    "Upload the {} image to this form's r2_upload link, then submit {{\"{}\": \"{UPLOADED}\"}}.",
                    job.model, job.model
                ),
            ));
        }
        Ok(())
    }
    /// The form's price to the worker; the requester pays it with the form fee.
    fn work(_s: &State, req: &WaitingRequest<Self>, job: &Job, _report: &AlchemyJobResult, now_ms: u64) -> Work {
        let r = &req.request;
        let reward = form_price(&job.model, r.tiles);
        let secs = (now_ms.saturating_sub(job.started_ms) as f64 / 1000.0).max(0.001);
        Work {
            reward,
            charge: charge(r, reward),
            things: 1,
            speed: 1.0 / secs,
            max_speed: f64::INFINITY,
        }
    }
    /// The form is done; its result is kept with the request.
    fn count_work(s: &mut State, done: &Settled, report: AlchemyJobResult) -> AlchemyOutput {
        let job = done.job;
        if let Some((r, i)) = form_of(s, job) {
            r.in_flight &= !(1 << i);
            r.done |= 1 << i;
        }
        let image = horde_protocol::alchemy::is_post_processor(&job.model);
        let mut result = result_object(&report, &job.model);
        if image {
            result = Map::from_iter([(job.model.clone(), Value::String(UPLOADED.into()))]);
        }
        AlchemyOutput {
            form: job.model.clone(),
            result,
            image,
        }
    }
    fn announce(
        g: &FinishedJob<AlchemyOutput>,
        _r: &AlchemyRequest,
        body: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Option<(Uuid, bool)> {
        body.insert("form".into(), g.output.form.clone().into());
        if !g.output.image {
            body.insert("result".into(), Value::Object(g.output.result.clone()));
            return None;
        }
        Some((g.job_id, true))
    }

    /// A failed form waits again; its uploaded image goes.
    fn drop_result(s: &mut State, job_id: &Uuid) {
        s.image_store.remove(job_id);
        if let Some(job) = s.alchemy.job(job_id).cloned() {
            if let Some((r, i)) = form_of(s, &job) {
                r.in_flight &= !(1 << i);
            }
        }
    }
    fn forget(s: &mut State, r: &WaitingRequest<Self>) {
        for j in &r.job_ids {
            s.image_store.remove(j);
        }
        s.image_store.remove(&r.request.source_key);
    }

    /// Each form's state and result (a post-processor's as a download link).
    fn status(_s: &State, _check: ImageCheck, req: &WaitingRequest<Self>, links: JobLinks) -> AlchemyStatusResponse {
        let r = &req.request;
        let forms: Vec<AlchemyFormStatus> = r
            .forms
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let finished = req.generations.iter().rev().find(|g| g.output.form == f.name);
                let (state, result) = match finished {
                    Some(g) if g.output.image => ("done", Some(Map::from_iter([(f.name.clone(), Value::String(links(&g.job_id)))]))),
                    Some(g) => ("done", Some(g.output.result.clone())),
                    None if r.in_flight & (1 << i) != 0 => ("processing", None),
                    None if req.faulted => ("faulted", None),
                    None if req.cancelled => ("cancelled", None),
                    None => ("waiting", None),
                };
                AlchemyFormStatus {
                    form: f.name.clone(),
                    state: state.into(),
                    result,
                }
            })
            .collect();
        // The public horde's rule: all faulted, all done, any processing, any waiting, else
        // partial (cancelled forms among done ones).
        let all = |s: &str| forms.iter().all(|f| f.state == s);
        let any = |s: &str| forms.iter().any(|f| f.state == s);
        let state = if all("faulted") {
            "faulted"
        } else if all("done") {
            "done"
        } else if any("processing") {
            "processing"
        } else if any("waiting") {
            "waiting"
        } else {
            "partial"
        };
        AlchemyStatusResponse {
            state: state.into(),
            forms,
        }
    }
}

/// What the requester pays for a form worth `reward`: the form fee on top, twice with
/// `slow_workers` (the public horde's charge).
fn charge(r: &AlchemyRequest, reward: Centikudos) -> Centikudos {
    reward + FORM_FEE + if r.slow_workers { FORM_FEE } else { 0 }
}

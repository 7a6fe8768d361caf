//! Workers: what a worker declared on its last pop, its counters, and how it is shown.

pub mod changes;
pub mod check_in;
pub mod pop;

pub use pop::WorkerPop;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use horde_protocol::workers as wire;
use uuid::Uuid;

use crate::kudos::{to_kudos, Centikudos};
use crate::safety::suspicion::{Suspicion, Suspicions};
use crate::scheduler::ModelId;
use crate::{HordeError, Result};

/// Speed samples kept per worker.
pub const PERFORMANCE_SAMPLES: usize = 20;
/// Speed a worker is assumed to have before its first job, in tokens per second.
pub const BASELINE_TOKENS_PER_SEC: f64 = 1.0;
/// Longest worker name.
pub const MAX_WORKER_NAME: usize = 100;
/// Longest worker info.
pub const MAX_WORKER_INFO: usize = 1000;

/// Backends the public horde counts as validated (`validated_backends: true`).
pub const VALIDATED_BACKENDS: &[&str] = &[
    "AI Horde Worker",
    "AI Horde Worker~aphrodite~oai",
    "AI Horde Worker~aphrodite~kai",
    "KoboldCppEmbedWorker",
    "TabbyAPI",
    "horde-worker",
];

/// What a worker generates. Names are unique across kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WorkerKind {
    Text,
    Image,
    /// Interrogates and post-processes images (`/interrogate/pop`); the public API's
    /// `interrogation` workers.
    Alchemist,
}

impl WorkerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerKind::Text => "text",
            WorkerKind::Image => "image",
            WorkerKind::Alchemist => "interrogation",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(WorkerKind::Text),
            "image" => Some(WorkerKind::Image),
            "interrogation" => Some(WorkerKind::Alchemist),
            _ => None,
        }
    }
}

/// What an image worker declared on its last pop.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageCapabilities {
    pub max_pixels: i64,
    /// Lower-cased censorlist words: requests containing one are generated with the NSFW censor.
    pub blacklist: Vec<String>,
    pub allow_img2img: bool,
    pub allow_painting: bool,
    pub allow_post_processing: bool,
    pub allow_controlnet: bool,
    pub allow_lora: bool,
    pub limit_max_steps: bool,
}

impl Default for ImageCapabilities {
    fn default() -> Self {
        Self {
            max_pixels: 512 * 512,
            blacklist: vec![],
            allow_img2img: true,
            allow_painting: true,
            allow_post_processing: true,
            allow_controlnet: false,
            allow_lora: false,
            limit_max_steps: false,
        }
    }
}

/// A worker that abandons more than this many jobs within `ABORT_WINDOW_MS` is put in maintenance.
pub const MAX_ABORTS_PER_HOUR: usize = 20;
pub const ABORT_WINDOW_MS: u64 = 60 * 60 * 1000;
/// The maintenance message it gets.
pub const TOO_MANY_ABORTS_MSG: &str =
    "Put in maintenance automatically: more than 20 jobs were abandoned (timed out or faulted) within an hour. Check the worker, then take it out of maintenance.";

/// Steps above which a worker with `limit_max_steps` skips a request.
pub const LIMITED_MAX_STEPS: i64 = 30;

/// A worker.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Worker {
    pub id: Uuid,
    pub name: String,
    pub owner_id: i64,
    pub kind: WorkerKind,
    pub image: ImageCapabilities,
    /// Thousands of pixelsteps generated.
    pub kps_generated: i64,
    /// Recent ratios of actual to predicted image time (how fast this worker is), for
    /// normalizing its timings.
    pub time_ratios: VecDeque<f64>,
    pub created_secs: i64,
    pub info: String,
    pub maintenance: bool,
    pub maintenance_msg: Option<String>,
    pub paused: bool,
    pub nsfw: bool,
    pub models: Vec<String>,
    /// Interned `models`, sorted, for fast matching.
    pub model_ids: Vec<ModelId>,
    pub max_length: i64,
    pub max_context_length: i64,
    pub softprompts: Vec<String>,
    pub bridge_agent: String,
    pub threads: i64,
    pub extra_slow: bool,
    pub require_upfront_kudos: bool,
    pub priority_user_ids: Vec<i64>,
    /// Last check-in (pop), ms since the epoch; 0 if not seen since the horde started.
    pub last_check_in_ms: u64,
    pub uptime_ms: u64,
    /// Uptime not yet paid for.
    pub uptime_unpaid_secs: f64,
    pub requests_fulfilled: i64,
    pub tokens_generated: i64,
    pub kudos_generated: Centikudos,
    pub kudos_uptime: Centikudos,
    pub uncompleted_jobs: i64,
    /// Tokens per second of recent jobs.
    pub performance: VecDeque<f64>,
    /// Jobs handed out and not yet submitted or timed out.
    pub in_flight: u32,
    /// When its recent jobs were abandoned (timed out or reported faulted), oldest first.
    pub recent_aborts: VecDeque<u64>,
    pub suspicions: Suspicions,
    /// The address of its last check-in (memory only), for moderators' IP blocks.
    pub last_ip: Option<IpAddr>,
    /// It asked for chat messages in payloads (pop extension `messages-v1`).
    pub wants_messages: bool,
}

impl Worker {
    pub fn new(id: Uuid, name: String, owner_id: i64, now_secs: i64) -> Self {
        Self {
            id,
            name,
            owner_id,
            kind: WorkerKind::Text,
            image: ImageCapabilities::default(),
            kps_generated: 0,
            time_ratios: VecDeque::new(),
            created_secs: now_secs,
            info: String::new(),
            maintenance: false,
            maintenance_msg: None,
            paused: false,
            nsfw: true,
            models: vec![],
            model_ids: vec![],
            max_length: 512,
            max_context_length: 2048,
            softprompts: vec![],
            bridge_agent: "unknown:0:unknown".into(),
            threads: 1,
            extra_slow: false,
            require_upfront_kudos: false,
            priority_user_ids: vec![],
            last_check_in_ms: 0,
            uptime_ms: 0,
            uptime_unpaid_secs: 0.0,
            requests_fulfilled: 0,
            tokens_generated: 0,
            kudos_generated: 0,
            kudos_uptime: 0,
            uncompleted_jobs: 0,
            performance: VecDeque::new(),
            in_flight: 0,
            recent_aborts: VecDeque::new(),
            suspicions: Suspicions::default(),
            last_ip: None,
            wants_messages: false,
        }
    }

    pub fn is_online(&self, now_ms: u64, online_secs: u64) -> bool {
        self.last_check_in_ms > 0 && now_ms.saturating_sub(self.last_check_in_ms) <= online_secs * 1000
    }

    /// Counts an abandoned job. Past `MAX_ABORTS_PER_HOUR` within the hour the worker is put in
    /// maintenance (serving only its owner); returns whether that happened now.
    pub fn record_abort(&mut self, now_ms: u64) -> bool {
        self.uncompleted_jobs += 1;
        self.recent_aborts.push_back(now_ms);
        while self
            .recent_aborts
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) > ABORT_WINDOW_MS)
        {
            self.recent_aborts.pop_front();
        }
        if self.recent_aborts.len() > MAX_ABORTS_PER_HOUR && !self.maintenance {
            self.maintenance = true;
            self.maintenance_msg = Some(TOO_MANY_ABORTS_MSG.into());
            return true;
        }
        false
    }

    /// Adds a suspicion; at the threshold a worker of an untrusted owner is paused (it then
    /// serves only its owner). Returns whether it was paused now.
    pub fn suspect(&mut self, reason: Suspicion, owner_trusted: bool) -> bool {
        if self.suspicions.add(reason) && !owner_trusted && !self.paused {
            self.paused = true;
            return true;
        }
        false
    }

    /// Mean ratio of actual to predicted image time over recent jobs (1 before the first).
    pub fn time_ratio(&self) -> f64 {
        if self.time_ratios.is_empty() {
            1.0
        } else {
            self.time_ratios.iter().sum::<f64>() / self.time_ratios.len() as f64
        }
    }

    pub fn record_time_ratio(&mut self, ratio: f64) {
        if ratio.is_finite() && ratio > 0.0 {
            self.time_ratios.push_back(ratio);
            while self.time_ratios.len() > PERFORMANCE_SAMPLES {
                self.time_ratios.pop_front();
            }
        }
    }

    /// Average speed over recent jobs (tokens/s for text, megapixelsteps/s for images), or the
    /// baseline of 1 before the first.
    pub fn speed(&self) -> f64 {
        if self.performance.is_empty() {
            BASELINE_TOKENS_PER_SEC
        } else {
            self.performance.iter().sum::<f64>() / self.performance.len() as f64
        }
    }

    pub fn record_performance(&mut self, tokens_per_sec: f64) {
        if tokens_per_sec.is_finite() && tokens_per_sec >= 0.0 {
            self.performance.push_back(tokens_per_sec);
            while self.performance.len() > PERFORMANCE_SAMPLES {
                self.performance.pop_front();
            }
        }
    }

    /// Speed below which a worker does not get `slow_workers: false` requests: for text, 3 t/s
    /// for models of 20B and more, 4 for 13B and more, else 5; for images 0.5 megapixelsteps/s.
    pub fn slow_threshold(&self) -> f64 {
        if self.kind == WorkerKind::Image {
            return 0.5;
        }
        if self.kind == WorkerKind::Alchemist {
            // Forms per second; any alchemist is fast enough.
            return 0.0;
        }
        let p = self
            .models
            .first()
            .and_then(|m| crate::kudos::text_price::model_billions(m))
            .unwrap_or(0.0);
        if p >= 20.0 {
            3.0
        } else if p >= 13.0 {
            4.0
        } else {
            5.0
        }
    }

    /// Whether the bridge is one of the validated backends.
    pub fn is_validated_backend(&self) -> bool {
        let name = self.bridge_agent.split(':').next().unwrap_or("");
        VALIDATED_BACKENDS.contains(&name)
    }

    /// The wire view. `owner_name`: shown when the owner's workers are public or the viewer is
    /// privileged. `moderator_view` adds moderation fields.
    pub fn details(
        &self,
        now_ms: u64,
        online_secs: u64,
        owner_trusted: bool,
        owner_flagged: bool,
        owner_name: Option<String>,
        moderator_view: bool,
    ) -> wire::WorkerDetails {
        let performance = if self.performance.is_empty() {
            "No requests fulfilled yet".to_string()
        } else if self.kind == WorkerKind::Image {
            format!("{:.1} megapixelsteps per second", self.speed())
        } else if self.kind == WorkerKind::Alchemist {
            format!("{:.1} forms per second", self.speed())
        } else {
            format!("{:.1} tokens per second", self.speed())
        };
        let text = self.kind == WorkerKind::Text;
        let image = (self.kind == WorkerKind::Image).then_some(&self.image);
        wire::WorkerDetails {
            kind: self.kind.as_str().into(),
            name: self.name.clone(),
            id: self.id.to_string(),
            online: self.is_online(now_ms, online_secs),
            requests_fulfilled: self.requests_fulfilled,
            kudos_rewards: to_kudos(self.kudos_generated + self.kudos_uptime),
            kudos_details: wire::WorkerKudosDetails {
                generated: to_kudos(self.kudos_generated),
                uptime: (self.kudos_uptime / 100),
            },
            performance,
            threads: self.threads,
            uptime: (self.uptime_ms / 1000) as i64,
            maintenance_mode: self.maintenance,
            info: self.info.clone(),
            nsfw: self.nsfw,
            trusted: owner_trusted,
            flagged: owner_flagged,
            uncompleted_jobs: self.uncompleted_jobs,
            models: self.models.clone(),
            team: wire::TeamLite::default(),
            bridge_agent: self.bridge_agent.clone(),
            max_length: text.then_some(self.max_length),
            max_context_length: text.then_some(self.max_context_length),
            tokens_generated: text.then_some(self.tokens_generated),
            max_pixels: image.map(|i| i.max_pixels),
            megapixelsteps_generated: image.map(|_| self.kps_generated / 1000),
            img2img: image.map(|i| i.allow_img2img),
            painting: image.map(|i| i.allow_painting),
            post_processing: image.map(|i| i.allow_post_processing),
            lora: image.map(|i| i.allow_lora),
            controlnet: image.map(|i| i.allow_controlnet),
            owner: owner_name,
            paused: moderator_view.then_some(self.paused),
            suspicious: moderator_view.then_some(i64::from(self.suspicions.count())),
        }
    }
}

/// Checks a worker name: 1 to 100 characters, no control characters.
pub fn validate_worker_name(name: &str) -> Result<String> {
    let trimmed = name.trim();
    if trimmed.chars().count() > MAX_WORKER_NAME {
        return Err(HordeError::rejected(
            "TooLongWorkerName",
            format!("A worker name may be at most {MAX_WORKER_NAME} characters."),
        ));
    }
    crate::safety::profanity::check(trimmed, "ProfaneWorkerName", "worker name")?;
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        return Err(HordeError::InvalidWorkerName(format!(
            "1 to {MAX_WORKER_NAME} characters without control characters"
        )));
    }
    Ok(trimmed.to_string())
}

/// The workers this process knows, by id and by name.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Workers {
    by_id: HashMap<Uuid, Worker>,
    by_name: HashMap<String, Uuid>,
}

impl Workers {
    pub fn get(&self, id: &Uuid) -> Option<&Worker> {
        self.by_id.get(id)
    }
    pub fn get_mut(&mut self, id: &Uuid) -> Option<&mut Worker> {
        self.by_id.get_mut(id)
    }
    pub fn id_by_name(&self, name: &str) -> Option<Uuid> {
        self.by_name.get(name).copied()
    }
    pub fn insert(&mut self, w: Worker) {
        self.by_name.insert(w.name.clone(), w.id);
        self.by_id.insert(w.id, w);
    }
    pub fn rename(&mut self, id: &Uuid, new_name: String) {
        if let Some(w) = self.by_id.get_mut(id) {
            self.by_name.remove(&w.name);
            self.by_name.insert(new_name.clone(), *id);
            w.name = new_name;
        }
    }
    pub fn remove(&mut self, id: &Uuid) -> Option<Worker> {
        let w = self.by_id.remove(id)?;
        self.by_name.remove(&w.name);
        Some(w)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Worker> {
        self.by_id.values()
    }
    /// The workers of `kind` that checked in within `online_secs` of `now_ms`.
    pub fn online(&self, kind: WorkerKind, now_ms: u64, online_secs: u64) -> impl Iterator<Item = &Worker> {
        self.iter().filter(move |w| w.kind == kind && w.is_online(now_ms, online_secs))
    }
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_aborts_in_an_hour_means_maintenance() {
        let mut w = Worker::new(Uuid::new_v4(), "w".into(), 1, 0);
        // 20 spread over more than an hour never trip it.
        for i in 0..40u64 {
            assert!(!w.record_abort(i * 4 * 60 * 1000));
        }
        assert!(!w.maintenance);
        let t = 10 * ABORT_WINDOW_MS;
        for i in 0..MAX_ABORTS_PER_HOUR as u64 {
            assert!(!w.record_abort(t + i));
        }
        assert!(w.record_abort(t + 100));
        assert!(w.maintenance && w.maintenance_msg.is_some());
        assert_eq!(w.uncompleted_jobs, 61);
    }

    #[test]
    fn suspicious_workers_of_untrusted_owners_are_paused() {
        let mut w = Worker::new(Uuid::new_v4(), "w".into(), 1, 0);
        let mut t = w.clone();
        for _ in 0..4 {
            assert!(!w.suspect(Suspicion::TooManyJobsAborted, false));
            assert!(!t.suspect(Suspicion::TooManyJobsAborted, true));
        }
        assert!(!w.paused);
        assert!(w.suspect(Suspicion::UnreasonablyFast, false));
        assert!(w.paused);
        assert!(!t.suspect(Suspicion::UnreasonablyFast, true));
        assert!(!t.paused, "trusted owners' workers are never paused for suspicion");
        assert_eq!(w.details(0, 60, false, false, None, true).suspicious, Some(5));
    }

    #[test]
    fn names_and_speed() {
        assert!(validate_worker_name("").is_err());
        assert!(validate_worker_name(&"x".repeat(101)).is_err());
        assert_eq!(validate_worker_name(" w1 ").ok().as_deref(), Some("w1"));
        let mut w = Worker::new(Uuid::new_v4(), "w".into(), 1, 0);
        assert_eq!(w.speed(), BASELINE_TOKENS_PER_SEC);
        for i in 0..30 {
            w.record_performance(i as f64);
        }
        assert_eq!(w.performance.len(), PERFORMANCE_SAMPLES);
        assert_eq!(w.speed(), (10..30).sum::<i32>() as f64 / 20.0);
        w.models = vec!["x-70B".into()];
        assert_eq!(w.slow_threshold(), 3.0);
        w.bridge_agent = "AI Horde Worker~aphrodite~kai:24:url".into();
        assert!(w.is_validated_backend());
    }
}

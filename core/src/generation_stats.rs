//! The horde's generation figures (`/stats/img/*`, `/stats/text/*`): how many images and text
//! generations were finished, and their pixelsteps or tokens, over the last minute, hour, day,
//! month and in all; and per model over the last day, month and in all. Counts only: no prompt,
//! no user, no worker.
//!
//! Every finished job is counted in memory, in minute buckets for the last hour (replicated with
//! the state), and queued as an hourly increment for the store (`generation_stats` rows, one per
//! kind, model and hour). The day, month and total figures are read from the store with the
//! increments not stored yet added, so they survive restarts and agree between the processes of
//! a shared horde; the minute and hour figures count what the running horde saw.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
/// Hours a month's figures cover.
pub const MONTH_HOURS: u64 = 30 * 24;

/// The kinds of generation counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GenerationKind {
    /// Images; their things are pixelsteps.
    Image,
    /// Text generations; their things are tokens.
    Text,
}

impl GenerationKind {
    /// The name stored in `generation_stats.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            GenerationKind::Image => "image",
            GenerationKind::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(GenerationKind::Image),
            "text" => Some(GenerationKind::Text),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Finished generations of one kind and model in one hour (a stored row, or an increment of it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationCount {
    pub kind: GenerationKind,
    pub model: String,
    /// Hours since the Unix epoch; 0 holds everything older than the figures' month.
    pub hour: i64,
    pub jobs: i64,
    pub things: i64,
}

/// Jobs and things over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub jobs: i64,
    pub things: i64,
}

impl Tally {
    fn add(&mut self, jobs: i64, things: i64) {
        self.jobs += jobs;
        self.things += things;
    }
}

/// The figures of one kind over the public horde's windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub minute: Tally,
    pub hour: Tally,
    pub day: Tally,
    pub month: Tally,
    pub total: Tally,
}

/// Jobs per model over the last day, month and in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelCounts {
    pub day: HashMap<String, i64>,
    pub month: HashMap<String, i64>,
    pub total: HashMap<String, i64>,
}

/// One model's stored figures over the last day, month and in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFigures {
    pub model: String,
    pub day: Tally,
    pub month: Tally,
    pub total: Tally,
}

impl ModelFigures {
    /// Adds `c` (an increment not stored yet) where it falls at `now_ms`.
    fn add(&mut self, c: &GenerationCount, now_ms: u64) {
        let hour = (now_ms / HOUR_MS) as i64;
        self.total.add(c.jobs, c.things);
        if c.hour > hour - MONTH_HOURS as i64 {
            self.month.add(c.jobs, c.things);
        }
        if c.hour > hour - 24 {
            self.day.add(c.jobs, c.things);
        }
    }
}

/// The first hour of the last day's and of the last month's figures at `now_ms`.
pub fn window_starts(now_ms: u64) -> (i64, i64) {
    let hour = (now_ms / HOUR_MS) as i64;
    (hour - 23, hour - MONTH_HOURS as i64 + 1)
}

/// Stored figures of one kind with the increments not stored yet (`pending`) added.
pub fn with_pending(mut stored: Vec<ModelFigures>, pending: &[GenerationCount], kind: GenerationKind, now_ms: u64) -> Vec<ModelFigures> {
    for c in pending.iter().filter(|c| c.kind == kind) {
        match stored.iter_mut().find(|m| m.model == c.model) {
            Some(m) => m.add(c, now_ms),
            None => {
                let mut m = ModelFigures {
                    model: c.model.clone(),
                    ..Default::default()
                };
                m.add(c, now_ms);
                stored.push(m);
            }
        }
    }
    stored
}

/// `kind`'s figures: the last minute and hour from memory (`recent`), the rest from the models'.
pub fn totals(recent: &RecentGenerations, models: &[ModelFigures], kind: GenerationKind, now_ms: u64) -> Totals {
    let (minute, hour) = recent.minute_and_hour(kind, now_ms);
    let mut t = Totals {
        minute,
        hour,
        ..Default::default()
    };
    for m in models {
        t.day.add(m.day.jobs, m.day.things);
        t.month.add(m.month.jobs, m.month.things);
        t.total.add(m.total.jobs, m.total.things);
    }
    t
}

/// Jobs per model, models with none in a window left out of it.
pub fn model_counts(models: &[ModelFigures]) -> ModelCounts {
    let mut counts = ModelCounts::default();
    for m in models {
        for (window, n) in [
            (&mut counts.day, m.day.jobs),
            (&mut counts.month, m.month.jobs),
            (&mut counts.total, m.total.jobs),
        ] {
            if n > 0 {
                window.insert(m.model.clone(), n);
            }
        }
    }
    counts
}

/// Finished generations of the last hour, per kind in minute buckets (replicated with the state;
/// the longer windows are read from the store).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RecentGenerations {
    /// Per kind: (minute, tally), oldest first.
    minutes: [VecDeque<(u64, Tally)>; 2],
}

impl RecentGenerations {
    /// Counts a finished job of `kind` on `model` with `things` (pixelsteps, tokens) at `now_ms`;
    /// returns the increment to store.
    pub fn count(&mut self, kind: GenerationKind, model: &str, things: i64, now_ms: u64) -> GenerationCount {
        let minutes = &mut self.minutes[kind.index()];
        let minute = now_ms / MINUTE_MS;
        match minutes.back_mut() {
            Some((m, t)) if *m == minute => t.add(1, things),
            _ => minutes.push_back((minute, Tally { jobs: 1, things })),
        }
        while minutes.front().is_some_and(|(m, _)| *m + 60 <= minute) {
            minutes.pop_front();
        }
        GenerationCount {
            kind,
            model: model.to_string(),
            hour: (now_ms / HOUR_MS) as i64,
            jobs: 1,
            things,
        }
    }

    /// `kind`'s figures of the current minute and the last 60 minutes.
    pub fn minute_and_hour(&self, kind: GenerationKind, now_ms: u64) -> (Tally, Tally) {
        let minute = now_ms / MINUTE_MS;
        let (mut this, mut hour) = (Tally::default(), Tally::default());
        for (m, tally) in &self.minutes[kind.index()] {
            if *m == minute {
                this.add(tally.jobs, tally.things);
            }
            if *m + 60 > minute {
                hour.add(tally.jobs, tally.things);
            }
        }
        (this, hour)
    }
}

/// Increments for the store, one per kind, model and hour.
pub fn merge_counts(counts: Vec<GenerationCount>) -> Vec<GenerationCount> {
    let mut merged: Vec<GenerationCount> = Vec::with_capacity(counts.len());
    let mut at: HashMap<(GenerationKind, String, i64), usize> = HashMap::new();
    for c in counts {
        match at.get(&(c.kind, c.model.clone(), c.hour)) {
            Some(&i) => {
                merged[i].jobs += c.jobs;
                merged[i].things += c.things;
            }
            None => {
                at.insert((c.kind, c.model.clone(), c.hour), merged.len());
                merged.push(c);
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn windows_count_what_falls_in_them() {
        let mut recent = RecentGenerations::default();
        let mut pending = vec![];
        for (model, things, ago) in [
            ("sd", 100, 40 * 24 * HOUR_MS),
            ("sd", 10, 2 * 24 * HOUR_MS),
            ("flux", 20, 2 * HOUR_MS),
            ("sd", 1, 5 * MINUTE_MS),
            ("sd", 2, 0),
        ] {
            pending.push(recent.count(GenerationKind::Image, model, things, T0 - ago));
        }
        pending.push(recent.count(GenerationKind::Text, "llm", 7, T0));
        let models = with_pending(vec![], &merge_counts(pending.clone()), GenerationKind::Image, T0);
        let t = totals(&recent, &models, GenerationKind::Image, T0);
        assert_eq!(t.minute, Tally { jobs: 1, things: 2 });
        assert_eq!(t.hour, Tally { jobs: 2, things: 3 });
        assert_eq!(t.day, Tally { jobs: 3, things: 23 });
        assert_eq!(t.month, Tally { jobs: 4, things: 33 });
        assert_eq!(t.total, Tally { jobs: 5, things: 133 });
        let text = with_pending(vec![], &pending, GenerationKind::Text, T0);
        assert_eq!(totals(&recent, &text, GenerationKind::Text, T0).total, Tally { jobs: 1, things: 7 });
        let m = model_counts(&models);
        assert_eq!(m.day.get("sd"), Some(&2));
        assert_eq!(m.day.get("flux"), Some(&1));
        assert_eq!(m.month.get("sd"), Some(&3));
        assert_eq!(m.total.get("sd"), Some(&4));
        // Increments add to what is stored.
        let stored = vec![ModelFigures {
            model: "sd".into(),
            day: Tally { jobs: 10, things: 10 },
            month: Tally { jobs: 10, things: 10 },
            total: Tally { jobs: 10, things: 10 },
        }];
        let both = with_pending(stored, &pending, GenerationKind::Image, T0);
        assert_eq!(model_counts(&both).total.get("sd"), Some(&14));
        assert_eq!(window_starts(T0).0, (T0 / HOUR_MS) as i64 - 23);
    }

    #[test]
    fn increments_merge_per_hour() {
        let mut recent = RecentGenerations::default();
        let rows: Vec<GenerationCount> = [0, 3 * HOUR_MS, 3 * HOUR_MS + 1]
            .into_iter()
            .map(|ago| recent.count(GenerationKind::Text, "m", 2, T0 - ago))
            .collect();
        let merged = merge_counts(rows);
        assert_eq!(merged.len(), 2, "two jobs in one hour make one row");
        assert_eq!(merged.iter().map(|c| c.jobs).sum::<i64>(), 3);
    }
}

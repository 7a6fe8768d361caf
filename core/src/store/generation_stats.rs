//! Stored generation figures (`generation_stats` rows: finished jobs and their things per kind,
//! model and hour): added to by each flush, summed per model for `/stats`.

use sqlx::Row;

use super::script::{Bound, Script};
use super::Store;
use crate::generation_stats::{window_starts, GenerationCount, GenerationKind, ModelFigures, Tally};
use crate::Result;

const ADD_COUNT: &str = "INSERT INTO generation_stats (kind, model, hour, jobs, things) VALUES (?, ?, ?, ?, ?) \
     ON CONFLICT (kind, model, hour) DO UPDATE SET jobs = generation_stats.jobs + excluded.jobs, \
     things = generation_stats.things + excluded.things";

impl Store {
    /// The stored figures of `kind` per model at `now_ms`: the last day's, the last month's and
    /// all.
    pub async fn generation_figures(&self, kind: GenerationKind, now_ms: u64) -> Result<Vec<ModelFigures>> {
        let (day, month) = window_starts(now_ms);
        let rows = sqlx::query(self.sql(
            "SELECT model, \
             CAST(SUM(CASE WHEN hour >= ? THEN jobs ELSE 0 END) AS BIGINT) AS day_jobs, \
             CAST(SUM(CASE WHEN hour >= ? THEN things ELSE 0 END) AS BIGINT) AS day_things, \
             CAST(SUM(CASE WHEN hour >= ? THEN jobs ELSE 0 END) AS BIGINT) AS month_jobs, \
             CAST(SUM(CASE WHEN hour >= ? THEN things ELSE 0 END) AS BIGINT) AS month_things, \
             CAST(SUM(jobs) AS BIGINT) AS total_jobs, CAST(SUM(things) AS BIGINT) AS total_things \
             FROM generation_stats WHERE kind = ? GROUP BY model",
        ))
        .bind(day)
        .bind(day)
        .bind(month)
        .bind(month)
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let tally = |jobs: &str, things: &str| -> Result<Tally> {
                    Ok(Tally {
                        jobs: r.try_get(jobs)?,
                        things: r.try_get(things)?,
                    })
                };
                Ok(ModelFigures {
                    model: r.try_get("model")?,
                    day: tally("day_jobs", "day_things")?,
                    month: tally("month_jobs", "month_things")?,
                    total: tally("total_jobs", "total_things")?,
                })
            })
            .collect()
    }
}

/// Adds to `script` the statements adding a batch's generation counts.
pub(super) fn push_generation_counts(script: &mut Script, counts: &[GenerationCount]) {
    for c in counts {
        script.push(
            ADD_COUNT.into(),
            vec![
                Bound::Text(c.kind.as_str().to_string()),
                Bound::Text(c.model.clone()),
                Bound::Int(c.hour),
                Bound::Int(c.jobs),
                Bound::Int(c.things),
            ],
        );
    }
}

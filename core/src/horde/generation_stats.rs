//! The horde's generation figures (`/stats/img/*`, `/stats/text/*`), read from memory.

use horde_protocol::stats::{ImagePeriodStats, ImageTotals, ModelStats, TextPeriodStats, TextTotals};

use super::Horde;
use crate::generation_stats::{self as figures, GenerationKind, ModelFigures, Tally, Totals};
use crate::{HordeError, Result};

/// Which models `/stats/*/models` lists (`model_state`): this horde keeps no reference of known
/// models, so every model counted is "known" and none is "custom".
fn keeps_model(model_state: Option<&str>) -> Result<bool> {
    match model_state.unwrap_or("known") {
        "known" | "all" => Ok(true),
        "custom" => Ok(false),
        other => Err(HordeError::Validation(format!(
            "model_state must be known, custom or all, not '{}'.",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

impl Horde {
    /// `kind`'s figures per model: the stored ones with what is not stored yet.
    async fn model_figures(&self, kind: GenerationKind, now_ms: u64) -> Result<Vec<ModelFigures>> {
        // Not while a flush has taken queued figures and not yet stored them.
        let _figures = self.flushes.figures.read().await;
        let stored = self.store.generation_figures(kind, now_ms).await?;
        let state = self.synced().await?;
        Ok(figures::with_pending(stored, &state.pending.generations, kind, now_ms))
    }

    async fn totals(&self, kind: GenerationKind) -> Result<Totals> {
        let now = self.now_ms();
        let models = self.model_figures(kind, now).await?;
        Ok(figures::totals(&self.synced().await?.recent_generations, &models, kind, now))
    }

    /// `GET /stats/img/totals`.
    pub async fn image_totals(&self) -> Result<ImageTotals> {
        let t = self.totals(GenerationKind::Image).await?;
        let p = |t: Tally| ImagePeriodStats {
            images: t.jobs,
            ps: t.things,
        };
        Ok(ImageTotals {
            minute: p(t.minute),
            hour: p(t.hour),
            day: p(t.day),
            month: p(t.month),
            total: p(t.total),
        })
    }

    /// `GET /stats/text/totals`.
    pub async fn text_totals(&self) -> Result<TextTotals> {
        let t = self.totals(GenerationKind::Text).await?;
        let p = |t: Tally| TextPeriodStats {
            requests: t.jobs,
            tokens: t.things,
        };
        Ok(TextTotals {
            minute: p(t.minute),
            hour: p(t.hour),
            day: p(t.day),
            month: p(t.month),
            total: p(t.total),
        })
    }

    /// `GET /stats/{img,text}/models?model_state=`: finished jobs per model.
    pub async fn model_stats(&self, kind: GenerationKind, model_state: Option<&str>) -> Result<ModelStats> {
        let keep = keeps_model(model_state)?;
        let models = if keep {
            self.model_figures(kind, self.now_ms()).await?
        } else {
            vec![]
        };
        let m = figures::model_counts(&models);
        Ok(ModelStats {
            day: m.day,
            month: m.month,
            total: m.total,
        })
    }
}

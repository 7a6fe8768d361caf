//! The network: its layers, the weights shipped with the horde, and predictions.

use serde::{Deserialize, Serialize};

use super::features::PayloadFeatures;
use crate::{HordeError, Result};

/// One dense layer: `out = W·in + b`, `w` row-major `[out][in]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    pub inputs: usize,
    pub outputs: usize,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

/// The fitted network and what it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KudosModel {
    pub version: u32,
    /// Input names; a model is only used with the features it was trained on.
    pub features: Vec<String>,
    pub monotone_inputs: Vec<usize>,
    /// The target is `(ln(seconds) − mean) / std`.
    pub target_mean: f32,
    pub target_std: f32,
    /// Dense layers; ReLU between them, none after the last.
    pub layers: Vec<Dense>,
    /// How the weights were made.
    pub provenance: String,
    /// Root-mean-square error of `ln(seconds)` on the held-out tenth of the data.
    pub validation_rmse_ln: f32,
    /// Predicted `ln(seconds)` of the baseline payload, computed once when the model is made.
    #[serde(skip)]
    pub(super) baseline_ln: f64,
}

/// The weights shipped with the horde (made by the command in their `provenance`).
pub const SHIPPED_MODEL_JSON: &str = include_str!("../image_kudos_model.json");

impl KudosModel {
    /// The shipped model.
    pub fn shipped() -> Result<Self> {
        Self::from_json(SHIPPED_MODEL_JSON)
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let m: KudosModel = serde_json::from_str(text).map_err(|e| HordeError::Validation(format!("kudos model: {e}")))?;
        if m.features != PayloadFeatures::names() {
            return Err(HordeError::Validation(
                "kudos model: trained on other features than this horde computes".into(),
            ));
        }
        let mut inputs = m.features.len();
        for l in &m.layers {
            if l.inputs != inputs || l.w.len() != l.inputs * l.outputs || l.b.len() != l.outputs {
                return Err(HordeError::Validation("kudos model: layer shapes do not chain".into()));
            }
            inputs = l.outputs;
        }
        if inputs != 1 || m.target_std.is_nan() || m.target_std <= 0.0 {
            return Err(HordeError::Validation("kudos model: must end in one output".into()));
        }
        Ok(m.with_baseline())
    }

    pub(super) fn with_baseline(mut self) -> Self {
        self.baseline_ln = self.predict_ln(&PayloadFeatures::baseline());
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Predicted `ln(seconds)`.
    pub fn predict_ln(&self, p: &PayloadFeatures) -> f64 {
        let mut x = p.vector();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x);
            if i + 1 < self.layers.len() {
                x.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        x.first().copied().unwrap_or(0.0) as f64 * self.target_std as f64 + self.target_mean as f64
    }

    /// Predicted seconds.
    pub fn predict_seconds(&self, p: &PayloadFeatures) -> f64 {
        self.predict_ln(p).exp()
    }

    /// How many baselines `p` takes: `predicted(p) / predicted(baseline)`.
    pub fn relative_time(&self, p: &PayloadFeatures) -> f64 {
        (self.predict_ln(p) - self.baseline_ln).exp()
    }
}

impl Dense {
    pub(super) fn forward(&self, x: &[f32]) -> Vec<f32> {
        (0..self.outputs)
            .map(|o| {
                let row = &self.w[o * self.inputs..(o + 1) * self.inputs];
                row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + self.b[o]
            })
            .collect()
    }
}

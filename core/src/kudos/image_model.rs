//! The image kudos model: a small neural network that predicts how long an image payload takes,
//! its analytic prior, and the training that fits one to the other (or to real timings).
//!
//! **Why plain Rust, not burn.** The network is 57→32→16→1. A forward pass is ~2,500
//! multiply-adds, done once per request under the horde's lock; plain loops take about a
//! microsecond and pull in nothing, whereas burn would bring its tensor runtime into the server's
//! build (the guide keeps burn out of it) and spend more on tensor setup than on the arithmetic.
//! Training is equally small (minutes of CPU at most) and needs only per-sample backpropagation.
//!
//! **What it predicts.** `ln(seconds)` of one image on a reference worker. Pricing only ever uses
//! the ratio of two predictions, so the unit does not matter: a payload predicted to take twice
//! as long as the baseline costs twice as much.
//!
//! **Monotonic by construction.** Size and step features enter through non-negative first-layer
//! weights, and every later layer has non-negative weights; ReLU is monotonic, so the prediction
//! can never fall when width, height or steps grow. (Non-negative later layers make the network
//! convex in its inputs, so multiplicative effects — steps, size, denoising strength — are also
//! given as logarithms, in which the log-cost is convex.)
//!
//! **The prior** (`prior_seconds`), used until real timings exist, is a documented guess at a
//! mid-range GPU running SD 1.5:
//! - model evaluations `E = steps × denoise` (denoise 1 without a source image), ×2 for
//!   second-order samplers, 40 for `k_dpm_adaptive`;
//! - one evaluation at `p = width × height / 512²` costs `0.11 s × p^1.2` (attention grows faster
//!   than pixels), ×1.4 with ControlNet, ×1.03 per LoRA;
//! - hires fix adds a second pass at half the evaluations: ×1.5 on the sampling time;
//! - plus 0.5 s overhead, VAE `0.25 s × p`, 0.3 s per LoRA and 0.1 s per textual inversion to
//!   load, 1.5 s × p per upscaler, 0.8 s per face fixer, 1.0 s for background removal.
//!
//! The baseline (512×512, 50 steps, k_euler, cfg 7.5, txt2img) comes out at 6.25 s.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::image::request::{CONTROL_TYPES, OTHER_POST_PROCESSORS, SAMPLERS, SECOND_ORDER_SAMPLERS, UPSCALERS};
use crate::{HordeError, Result};

/// Source processing modes the model knows (`remix` counts as img2img).
pub const SOURCE_MODES: &[&str] = &["txt2img", "img2img", "inpainting", "outpainting"];

/// What the model sees of a payload: everything that changes generation time, nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadFeatures {
    pub width: i64,
    pub height: i64,
    pub steps: i64,
    pub sampler: String,
    pub cfg_scale: f64,
    /// 1.0 without a source image.
    pub denoising_strength: f64,
    pub karras: bool,
    pub hires_fix: bool,
    /// `txt2img`, `img2img`, `inpainting` or `outpainting`.
    pub source_processing: String,
    /// Empty for none.
    pub control_type: String,
    pub post_processing: Vec<String>,
    pub loras: i64,
    pub tis: i64,
}

impl PayloadFeatures {
    /// The payload that costs exactly 10 kudos: 512×512, 50 steps, k_euler, cfg 7.5, txt2img.
    pub fn baseline() -> Self {
        Self {
            width: 512,
            height: 512,
            steps: 50,
            sampler: "k_euler".into(),
            cfg_scale: 7.5,
            denoising_strength: 1.0,
            karras: true,
            hires_fix: false,
            source_processing: "txt2img".into(),
            control_type: String::new(),
            post_processing: vec![],
            loras: 0,
            tis: 0,
        }
    }

    fn post_processors() -> impl Iterator<Item = &'static str> {
        UPSCALERS.iter().chain(OTHER_POST_PROCESSORS.iter()).copied()
    }

    /// Names of the network's inputs, in order.
    pub fn names() -> Vec<String> {
        let mut n: Vec<String> = [
            "ln_width",
            "ln_height",
            "ln_pixels",
            "ln_steps",
            "steps",
            "pixels",
            "cfg_scale",
            "denoise",
            "ln_denoise",
            "karras",
            "hires_fix",
            "loras",
            "tis",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        n.extend(SAMPLERS.iter().map(|s| format!("sampler={s}")));
        n.extend(std::iter::once("control=none".to_string()).chain(CONTROL_TYPES.iter().map(|s| format!("control={s}"))));
        n.extend(SOURCE_MODES.iter().map(|s| format!("source={s}")));
        n.extend(Self::post_processors().map(|s| format!("pp={s}")));
        n
    }

    /// Inputs that only ever make a payload slower (constrained to non-negative weights).
    pub fn monotone_inputs() -> Vec<usize> {
        vec![0, 1, 2, 3, 4, 5]
    }

    /// The normalized input vector.
    pub fn vector(&self) -> Vec<f32> {
        let w = self.width.max(1) as f64 / 512.0;
        let h = self.height.max(1) as f64 / 512.0;
        let mut v: Vec<f64> = vec![
            w.ln(),
            h.ln(),
            (w * h).ln(),
            (self.steps.max(1) as f64).ln() / 4.0,
            self.steps as f64 / 100.0,
            w * h / 4.0,
            self.cfg_scale / 30.0,
            self.denoising_strength,
            self.denoising_strength.clamp(0.01, 1.0).ln(),
            f64::from(u8::from(self.karras)),
            f64::from(u8::from(self.hires_fix)),
            self.loras as f64 / 5.0,
            self.tis as f64 / 20.0,
        ];
        let sampler = if SAMPLERS.contains(&self.sampler.as_str()) {
            self.sampler.as_str()
        } else {
            "k_euler"
        };
        v.extend(SAMPLERS.iter().map(|s| f64::from(u8::from(*s == sampler))));
        v.push(f64::from(u8::from(self.control_type.is_empty())));
        v.extend(CONTROL_TYPES.iter().map(|c| f64::from(u8::from(*c == self.control_type))));
        let mode = if self.source_processing == "remix" {
            "img2img"
        } else {
            self.source_processing.as_str()
        };
        v.extend(SOURCE_MODES.iter().map(|m| f64::from(u8::from(*m == mode))));
        v.extend(Self::post_processors().map(|p| f64::from(u8::from(self.post_processing.iter().any(|x| x == p)))));
        v.into_iter().map(|x| x as f32).collect()
    }

    /// One CSV row (without seconds).
    fn csv_fields(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.width,
            self.height,
            self.steps,
            self.sampler,
            self.cfg_scale,
            self.denoising_strength,
            u8::from(self.karras),
            u8::from(self.hires_fix),
            self.source_processing,
            self.control_type,
            self.post_processing.join(";"),
            self.loras,
            self.tis
        )
    }
}

/// Header of the timing CSV the fit command reads and the export writes.
pub const CSV_HEADER: &str =
    "width,height,steps,sampler,cfg_scale,denoising_strength,karras,hires_fix,source_processing,control_type,post_processing,loras,tis,seconds";

/// One training example.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    pub payload: PayloadFeatures,
    pub seconds: f64,
}

/// Writes timings as CSV.
pub fn to_csv(rows: &[Timing]) -> String {
    let mut out = String::with_capacity(rows.len() * 80);
    out.push_str(CSV_HEADER);
    out.push('\n');
    for r in rows {
        out.push_str(&r.payload.csv_fields());
        out.push_str(&format!(",{:.4}\n", r.seconds));
    }
    out
}

/// Reads timings from CSV (the header line is required).
pub fn from_csv(text: &str) -> Result<Vec<Timing>> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(CSV_HEADER) {
        return Err(HordeError::Validation(format!(
            "the CSV must start with the header line: {CSV_HEADER}"
        )));
    }
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = || HordeError::Validation(format!("CSV line {}: expected 14 valid fields", i + 2));
        if f.len() != 14 {
            return Err(bad());
        }
        let int = |s: &str| s.parse::<i64>().map_err(|_| bad());
        let float = |s: &str| s.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(bad);
        let seconds = float(f[13])?;
        if seconds <= 0.0 {
            return Err(bad());
        }
        rows.push(Timing {
            payload: PayloadFeatures {
                width: int(f[0])?,
                height: int(f[1])?,
                steps: int(f[2])?,
                sampler: f[3].to_string(),
                cfg_scale: float(f[4])?,
                denoising_strength: float(f[5])?,
                karras: f[6] == "1",
                hires_fix: f[7] == "1",
                source_processing: f[8].to_string(),
                control_type: f[9].to_string(),
                post_processing: f[10].split(';').filter(|s| !s.is_empty()).map(String::from).collect(),
                loras: int(f[11])?,
                tis: int(f[12])?,
            },
            seconds,
        });
    }
    Ok(rows)
}

/// The analytic prior (see the module documentation).
pub fn prior_seconds(p: &PayloadFeatures) -> f64 {
    let px = (p.width * p.height) as f64 / (512.0 * 512.0);
    let img2img = p.source_processing != "txt2img";
    let denoise = if img2img { p.denoising_strength.clamp(0.01, 1.0) } else { 1.0 };
    let evals = if p.sampler == "k_dpm_adaptive" {
        40.0
    } else if SECOND_ORDER_SAMPLERS.contains(&p.sampler.as_str()) {
        2.0 * p.steps as f64 * denoise
    } else {
        p.steps as f64 * denoise
    };
    let mut per_eval = 0.11 * px.powf(1.2) * 1.03f64.powi(p.loras as i32);
    if !p.control_type.is_empty() {
        per_eval *= 1.4;
    }
    let mut sampling = evals * per_eval;
    if p.hires_fix {
        sampling *= 1.5;
    }
    let mut post = 0.0;
    for pp in &p.post_processing {
        post += if UPSCALERS.contains(&pp.as_str()) {
            1.5 * px
        } else if pp == "strip_background" {
            1.0
        } else {
            0.8
        };
    }
    0.5 + sampling + 0.25 * px + 0.3 * p.loras as f64 + 0.1 * p.tis as f64 + post
}

/// Random payloads spanning what clients send, timed by the prior: the initial training set.
pub fn prior_dataset(rows: usize, seed: u64) -> Vec<Timing> {
    let mut rng = StdRng::seed_from_u64(seed);
    let pps: Vec<&str> = PayloadFeatures::post_processors().collect();
    (0..rows)
        .map(|_| {
            // Mostly common sizes, sometimes anything up to 2048 a side.
            let side = |rng: &mut StdRng| {
                if rng.random_bool(0.7) {
                    64 * rng.random_range(6..=16)
                } else {
                    64 * rng.random_range(1..=32)
                }
            };
            let source_processing = match rng.random_range(0..10) {
                0..=5 => "txt2img",
                6..=7 => "img2img",
                8 => "inpainting",
                _ => "outpainting",
            };
            let control_type = if source_processing == "img2img" && rng.random_bool(0.3) {
                CONTROL_TYPES[rng.random_range(0..CONTROL_TYPES.len())].to_string()
            } else {
                String::new()
            };
            let mut post_processing = vec![];
            if rng.random_bool(0.2) {
                post_processing.push(pps[rng.random_range(0..pps.len())].to_string());
            }
            let steps = if rng.random_bool(0.8) {
                rng.random_range(10..=60)
            } else {
                rng.random_range(1..=150)
            };
            let payload = PayloadFeatures {
                width: side(&mut rng),
                height: side(&mut rng),
                steps,
                sampler: SAMPLERS[rng.random_range(0..SAMPLERS.len())].to_string(),
                cfg_scale: (rng.random_range(10..=300) as f64) / 20.0,
                denoising_strength: if source_processing == "txt2img" {
                    1.0
                } else {
                    rng.random_range(5..=100) as f64 / 100.0
                },
                karras: rng.random_bool(0.7),
                hires_fix: rng.random_bool(0.1),
                source_processing: source_processing.into(),
                control_type,
                post_processing,
                loras: if rng.random_bool(0.2) { rng.random_range(1..=5) } else { 0 },
                tis: if rng.random_bool(0.1) { rng.random_range(1..=5) } else { 0 },
            };
            let seconds = prior_seconds(&payload);
            Timing { payload, seconds }
        })
        .collect()
}

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
    baseline_ln: f64,
}

/// The weights shipped with the horde (made by the command in their `provenance`).
pub const SHIPPED_MODEL_JSON: &str = include_str!("image_kudos_model.json");

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

    fn with_baseline(mut self) -> Self {
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
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        (0..self.outputs)
            .map(|o| {
                let row = &self.w[o * self.inputs..(o + 1) * self.inputs];
                row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + self.b[o]
            })
            .collect()
    }
}

/// Settings of a fit.
#[derive(Debug, Clone)]
pub struct FitOptions {
    pub hidden: Vec<usize>,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f32,
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            hidden: vec![32, 16],
            epochs: 60,
            batch: 32,
            learning_rate: 3e-3,
            seed: 1,
        }
    }
}

/// Fits a model to timings by Adam on the squared error of standardized `ln(seconds)`, keeping
/// the monotone weights non-negative after every step. A tenth of the rows is held out to report
/// the validation error. Deterministic for a given seed and data.
pub fn fit(rows: &[Timing], opts: &FitOptions, provenance: String) -> Result<KudosModel> {
    if rows.len() < 20 {
        return Err(HordeError::Validation("at least 20 timings are needed to fit".into()));
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let data: Vec<(Vec<f32>, f32)> = rows.iter().map(|r| (r.payload.vector(), r.seconds.max(1e-3).ln() as f32)).collect();
    let mut order: Vec<usize> = (0..data.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let held = (data.len() / 10).max(1);
    let (valid, train) = order.split_at(held);
    let mean = train.iter().map(|&i| data[i].1).sum::<f32>() / train.len() as f32;
    let var = train.iter().map(|&i| (data[i].1 - mean).powi(2)).sum::<f32>() / train.len() as f32;
    let std = var.sqrt().max(1e-3);
    let inputs = data[0].0.len();
    let monotone = PayloadFeatures::monotone_inputs();
    let mut sizes = vec![inputs];
    sizes.extend(&opts.hidden);
    sizes.push(1);
    let mut layers: Vec<Dense> = sizes
        .windows(2)
        .map(|s| {
            let scale = (2.0 / s[0] as f32).sqrt();
            Dense {
                inputs: s[0],
                outputs: s[1],
                w: (0..s[0] * s[1]).map(|_| rng.random_range(-1.0f32..1.0) * scale).collect(),
                b: vec![0.0; s[1]],
            }
        })
        .collect();
    let project = |layers: &mut [Dense]| {
        for (li, l) in layers.iter_mut().enumerate() {
            for o in 0..l.outputs {
                for i in 0..l.inputs {
                    if li > 0 || monotone.contains(&i) {
                        let w = &mut l.w[o * l.inputs + i];
                        *w = w.max(0.0);
                    }
                }
            }
        }
    };
    // Start with positive later layers so every unit carries signal.
    for l in layers.iter_mut().skip(1) {
        l.w.iter_mut().for_each(|w| *w = w.abs());
    }
    project(&mut layers);
    let mut m: Vec<(Vec<f32>, Vec<f32>)> = layers.iter().map(|l| (vec![0.0; l.w.len()], vec![0.0; l.b.len()])).collect();
    let mut v = m.clone();
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut t = 0i32;
    let mut train_order = train.to_vec();
    for epoch in 0..opts.epochs {
        for i in (1..train_order.len()).rev() {
            train_order.swap(i, rng.random_range(0..=i));
        }
        let lr = opts.learning_rate * (1.0 - epoch as f32 / opts.epochs as f32).max(0.05);
        for chunk in train_order.chunks(opts.batch.max(1)) {
            let mut grads: Vec<(Vec<f32>, Vec<f32>)> = layers.iter().map(|l| (vec![0.0; l.w.len()], vec![0.0; l.b.len()])).collect();
            for &idx in chunk {
                let (x, y) = &data[idx];
                let target = (y - mean) / std;
                // Forward, keeping each layer's input and pre-activation.
                let mut acts = vec![x.clone()];
                let mut pre = Vec::with_capacity(layers.len());
                for (li, l) in layers.iter().enumerate() {
                    let z = l.forward(acts.last().map(Vec::as_slice).unwrap_or(&[]));
                    let a = if li + 1 < layers.len() {
                        z.iter().map(|v| v.max(0.0)).collect()
                    } else {
                        z.clone()
                    };
                    pre.push(z);
                    acts.push(a);
                }
                let out = acts.last().and_then(|a| a.first()).copied().unwrap_or(0.0);
                let mut delta = vec![2.0 * (out - target) / chunk.len() as f32];
                for li in (0..layers.len()).rev() {
                    let l = &layers[li];
                    let input = &acts[li];
                    let (gw, gb) = &mut grads[li];
                    for (o, d) in delta.iter().enumerate() {
                        gb[o] += d;
                        let row = &mut gw[o * l.inputs..(o + 1) * l.inputs];
                        for (g, x) in row.iter_mut().zip(input) {
                            *g += d * x;
                        }
                    }
                    if li > 0 {
                        let mut prev = vec![0.0f32; l.inputs];
                        for (o, d) in delta.iter().enumerate() {
                            for (i, p) in prev.iter_mut().enumerate() {
                                *p += d * l.w[o * l.inputs + i];
                            }
                        }
                        for (i, p) in prev.iter_mut().enumerate() {
                            if pre[li - 1][i] <= 0.0 {
                                *p = 0.0;
                            }
                        }
                        delta = prev;
                    }
                }
            }
            t += 1;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            for (li, l) in layers.iter_mut().enumerate() {
                let (gw, gb) = &grads[li];
                let step = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
                    for k in 0..p.len() {
                        m[k] = b1 * m[k] + (1.0 - b1) * g[k];
                        v[k] = b2 * v[k] + (1.0 - b2) * g[k] * g[k];
                        p[k] -= lr * (m[k] / c1) / ((v[k] / c2).sqrt() + eps);
                    }
                };
                step(&mut l.w, gw, &mut m[li].0, &mut v[li].0);
                step(&mut l.b, gb, &mut m[li].1, &mut v[li].1);
            }
            project(&mut layers);
        }
    }
    let mut model = KudosModel {
        version: 1,
        features: PayloadFeatures::names(),
        monotone_inputs: monotone,
        target_mean: mean,
        target_std: std,
        layers,
        provenance,
        validation_rmse_ln: 0.0,
        baseline_ln: 0.0,
    };
    let se: f64 = valid
        .iter()
        .map(|&i| (model.predict_ln(&rows[i].payload) - rows[i].seconds.max(1e-3).ln()).powi(2))
        .sum();
    model.validation_rmse_ln = (se / valid.len() as f64).sqrt() as f32;
    Ok(model.with_baseline())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_match_their_names() {
        assert_eq!(PayloadFeatures::baseline().vector().len(), PayloadFeatures::names().len());
        assert!((prior_seconds(&PayloadFeatures::baseline()) - 6.25).abs() < 1e-9);
    }

    #[test]
    fn csv_round_trips() {
        let rows = prior_dataset(30, 7);
        let back = from_csv(&to_csv(&rows)).expect("parses");
        assert_eq!(back.len(), 30);
        assert_eq!(back[3].payload, rows[3].payload);
        assert!((back[3].seconds - rows[3].seconds).abs() < 1e-3);
        assert!(from_csv("nope\n").is_err());
        assert!(from_csv(&format!("{CSV_HEADER}\n1,2,3\n")).is_err());
    }

    #[test]
    fn a_small_fit_learns_the_prior_and_stays_monotone() {
        let rows = prior_dataset(1500, 3);
        let opts = FitOptions {
            hidden: vec![16],
            epochs: 40,
            ..FitOptions::default()
        };
        let model = fit(&rows, &opts, "test".into()).expect("fits");
        let lns: Vec<f64> = rows.iter().map(|r| r.seconds.ln()).collect();
        let mean = lns.iter().sum::<f64>() / lns.len() as f64;
        let spread = (lns.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lns.len() as f64).sqrt();
        // A fitted model is far better than predicting the mean.
        assert!(
            (model.validation_rmse_ln as f64) < spread / 4.0,
            "rmse {} vs spread {spread}",
            model.validation_rmse_ln
        );
        let mut p = PayloadFeatures::baseline();
        let mut last = 0.0;
        for steps in [1, 10, 20, 50, 100, 200, 500] {
            p.steps = steps;
            let t = model.predict_seconds(&p);
            assert!(t >= last, "steps {steps}: {t} < {last}");
            last = t;
        }
        let model2 = KudosModel::from_json(&model.to_json()).expect("loads");
        assert_eq!(model2, model);
    }

    #[test]
    fn the_shipped_model_loads_and_fits_the_prior() {
        let m = KudosModel::shipped().expect("shipped model loads");
        assert!(m.validation_rmse_ln < 0.1, "rmse {}", m.validation_rmse_ln);
        let mut big = PayloadFeatures::baseline();
        big.width = 1024;
        big.height = 1024;
        let r = m.relative_time(&big);
        let prior = prior_seconds(&big) / prior_seconds(&PayloadFeatures::baseline());
        assert!((r / prior - 1.0).abs() < 0.25, "model {r} vs prior {prior}");
    }
}

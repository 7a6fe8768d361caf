//! Fitting a network to timings.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::features::{PayloadFeatures, Timing};
use super::network::{Dense, KudosModel};
use crate::{HordeError, Result};

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

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
//!
//! Its parts: `features` (what the model sees, and timings as CSV), `prior`, `network` (the
//! weights and predictions) and `fitting`.

mod features;
mod fitting;
mod network;
mod prior;

pub use features::{from_csv, to_csv, PayloadFeatures, Timing, CSV_HEADER, SOURCE_MODES};
pub use fitting::{fit, FitOptions};
pub use network::{Dense, KudosModel, SHIPPED_MODEL_JSON};
pub use prior::{prior_dataset, prior_seconds};

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

//! Cost of pricing an image request with the shipped kudos model, and of a fit.
//! Run: `cargo bench -p horde-core --bench kudos_model`.

use std::time::Instant;

use horde_core::kudos::image_model::{fit, prior_dataset, FitOptions, KudosModel, PayloadFeatures};

fn main() {
    let model = match KudosModel::shipped() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("shipped model does not load: {e}");
            std::process::exit(1);
        }
    };
    let payloads: Vec<PayloadFeatures> = prior_dataset(1000, 9).into_iter().map(|t| t.payload).collect();
    let rounds = 100;
    let start = Instant::now();
    let mut sum = 0.0;
    for _ in 0..rounds {
        for p in &payloads {
            sum += model.relative_time(p);
        }
    }
    let per = start.elapsed().as_secs_f64() / (rounds * payloads.len()) as f64;
    println!(
        "price (relative_time: one forward pass, the baseline cached): {:.2} µs per payload (checksum {sum:.1})",
        per * 1e6
    );

    let rows = prior_dataset(20_000, 1);
    let start = Instant::now();
    let m = fit(&rows, &FitOptions::default(), "bench".into()).map_err(|e| e.to_string());
    match m {
        Ok(m) => println!(
            "fit: 20,000 rows, 60 epochs, 32-16 hidden: {:.1} s, held-out RMSE of ln(seconds) {:.4}",
            start.elapsed().as_secs_f64(),
            m.validation_rmse_ln
        ),
        Err(e) => eprintln!("fit failed: {e}"),
    }
}

//! Pop latency with a deep queue of requests the worker cannot serve (every pop walks the whole
//! queue and counts why each request was skipped). Run: `cargo bench -p horde-core --bench pop`.

use std::time::Instant;

use horde_core::accounts::{KudosBuckets, User};
use horde_core::kudos::KudosLedger;
use horde_core::lifecycle::no_links;
use horde_core::text::{TextKind, TextRequest};
use horde_core::workers::{Worker, WorkerPop};
use horde_core::{HordeConfig, State};
use horde_protocol::text::{GenerateTextRequest, TextPopRequest};
use uuid::Uuid;

fn user(id: i64) -> User {
    User {
        kudos: 100_000,
        buckets: KudosBuckets {
            admin: 100_000,
            ..Default::default()
        },
        concurrency: i64::MAX,
        ..User::new(id, format!("u{id}"), format!("o{id}"))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// How the queued requests fail to match the worker.
#[derive(Clone, Copy)]
enum Mismatch {
    /// They name models the worker does not serve (skipped through the per-model index).
    Model,
    /// They name the worker's model but ask for more tokens than it allows (each one examined).
    Length,
}

fn run(queued: usize, pops: usize, mismatch: Mismatch) {
    let mut s = State::new(
        HordeConfig::default(),
        KudosLedger::default(),
        horde_core::kudos::image_model::KudosModel::shipped().expect("kudos model"),
    );
    for id in 0..100 {
        s.users.insert_loaded(user(id), None);
    }
    let t0 = 1_700_000_000_000u64;
    for i in 0..queued {
        let wire: GenerateTextRequest = match mismatch {
            Mismatch::Model => {
                serde_json::from_value(serde_json::json!({"prompt": "benchmark prompt", "models": [format!("other-model-{}", i % 50)]}))
            }
            Mismatch::Length => serde_json::from_value(
                serde_json::json!({"prompt": "benchmark prompt", "models": ["mine-13B"], "params": {"max_length": 1024}}),
            ),
        }
        .expect("request");
        let req = TextRequest::try_from(wire).expect("valid");
        s.accept::<TextKind>((i % 99 + 1) as i64, req, t0 + i as u64).expect("queued");
    }
    let wire: TextPopRequest = serde_json::from_value(serde_json::json!({"name": "bench", "models": ["mine-13B"]})).expect("pop");
    let pop = WorkerPop::try_from(wire).expect("valid pop");
    let id = Uuid::new_v4();
    s.workers.insert(Worker::new(id, "bench".into(), 0, 0));
    let mut lat = Vec::with_capacity(pops);
    let mut skipped = 0;
    for i in 0..pops {
        let now = t0 + queued as u64 + i as u64;
        let start = Instant::now();
        s.check_in(&id, &pop, now).expect("check in");
        let r = s.pop::<TextKind>(&id, 1, now, &no_links).expect("pop");
        lat.push(start.elapsed().as_secs_f64() * 1e6);
        assert!(r.id.is_none());
        skipped = r.skipped.models + r.skipped.max_length;
    }
    assert_eq!(skipped as usize, queued, "every request was examined");
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "pop, {queued:>6} queued, unmatched by {:<6}: p50 {:>7.1} µs  p99 {:>7.1} µs  max {:>7.1} µs  ({pops} pops)",
        match mismatch {
            Mismatch::Model => "model",
            Mismatch::Length => "length",
        },
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

fn main() {
    // `cargo test --benches` runs this too; keep that quick.
    let quick = std::env::args().any(|a| a == "--test");
    if quick {
        run(1_000, 10, Mismatch::Model);
        run(1_000, 10, Mismatch::Length);
        return;
    }
    for m in [Mismatch::Model, Mismatch::Length] {
        run(1_000, 2_000, m);
        run(10_000, 2_000, m);
        run(100_000, 200, m);
    }
}

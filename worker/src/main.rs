//! `horde-worker`: joins a horde, pops text jobs, generates and submits them.

use std::process::ExitCode;

use clap::Parser;
use horde_worker::config::{Args, WorkerConfig};

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cfg = match WorkerConfig::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("horde-worker: {e}");
            return ExitCode::from(2);
        }
    };
    // The bridge (pop, generate, submit, faults, maintenance on shutdown) is in the library; no
    // inference backend is built into this version yet, so there is nothing to serve with.
    eprintln!(
        "horde-worker {}: no inference backend is built into this version yet, so it cannot serve {:?} for '{}' on {}.",
        env!("CARGO_PKG_VERSION"),
        cfg.models,
        cfg.name,
        cfg.url
    );
    ExitCode::from(2)
}

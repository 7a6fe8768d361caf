//! `horde-worker`: joins a horde, pops text jobs, generates them with a local model on burn, and
//! submits the results. SIGINT/SIGTERM puts the worker in maintenance, finishes running jobs, then
//! exits.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use horde_worker::config::{Args, WorkerConfig};
use horde_worker::text_model::{TextModel, TextModels};
use horde_worker::Bridge;

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
    if cfg.models.is_empty() {
        eprintln!("horde-worker: no model given: pass --model PATH.gguf (scripts/fetch-models.sh fetches the default one)");
        return ExitCode::from(2);
    }
    let compute = match horde_worker::device::select(&cfg.device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("horde-worker: {e}");
            return ExitCode::from(2);
        }
    };
    let mut models = vec![];
    for spec in &cfg.models {
        match TextModel::load(spec, &compute, cfg.f16_weights) {
            Ok(m) => {
                tracing::info!(model = %m.name, "loaded");
                models.push(m);
            }
            Err(e) => {
                eprintln!("horde-worker: cannot load {spec}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let backend = TextModels::new(models);
    let mut cfg = cfg;
    cfg.models = vec![];
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("horde-worker: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let bridge = match Bridge::new(cfg, Arc::new(backend)) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("horde-worker: {e}");
                return ExitCode::from(2);
            }
        };
        let shutdown = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("horde-worker: {e}");
                return ExitCode::from(1);
            }
        };
        let stats = bridge.run(shutdown).await;
        println!(
            "jobs done {}, faulted {}, {:.1} tokens/s, {:.2} kudos earned",
            stats.jobs_done,
            stats.jobs_faulted,
            stats.tokens_per_sec(),
            stats.kudos
        );
        ExitCode::SUCCESS
    })
}

/// Resolves on SIGINT or SIGTERM; handlers are installed before it returns.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

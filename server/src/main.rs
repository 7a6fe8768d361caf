//! `horde`: serves the AI Horde API v2, the scheduler and the web UI from one binary.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use horde_core::kudos::image_model::{self, FitOptions, KudosModel};
use horde_core::lease::{DutyLeases, RedisLeases};
use horde_core::replication::{self, SharedLogConfig};
use horde_core::{AccountSpec, Horde, HordeConfig, Store, SystemClock};
use horde_server::api::rate_limits::{RateLimits, SharedBuckets};
use horde_server::api::{self, ApiOptions};
use horde_server::cli::{Cli, Command, KudosModelCommand, ServeArgs, StorageArgs, UserCommand};
use horde_server::duties;
use horde_server::local_worker::{self, LocalModel, LocalWorkerOptions};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open(storage: &StorageArgs, cfg: HordeConfig) -> anyhow::Result<Arc<Horde>> {
    open_shared(storage, cfg, None).await
}

/// Opens the horde, its state shared through `shared` when given.
async fn open_shared(storage: &StorageArgs, cfg: HordeConfig, shared: Option<&SharedLogConfig>) -> anyhow::Result<Arc<Horde>> {
    let url = storage.resolve_url().context("creating the data directory")?;
    if shared.is_some() && !(url.starts_with("postgres:") || url.starts_with("postgresql:")) {
        anyhow::bail!("--redis-url needs a database every process shares: give --database-url postgres://…");
    }
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("opening the database {}", horde_core::store::redact(&url)))?;
    let horde = Horde::open_with(store, cfg, Arc::new(SystemClock), storage.secret.clone(), shared)
        .await
        .context("loading the horde")?;
    Ok(horde)
}

/// What processes sharing one horde share through `args.redis_url`, if given: the log, the duty
/// leases and the rate-limit buckets.
struct Shared {
    log: Option<SharedLogConfig>,
    leases: DutyLeases,
    buckets: Option<SharedBuckets>,
}

async fn shared_state(args: &ServeArgs) -> anyhow::Result<Shared> {
    let Some(url) = &args.redis_url else {
        return Ok(Shared {
            log: None,
            leases: DutyLeases::Local,
            buckets: None,
        });
    };
    let cfg = SharedLogConfig {
        redis_url: url.clone(),
        prefix: args.redis_prefix.clone(),
        // Nothing in Redis outlives the requests' own expiry once every process stopped.
        retain: Duration::from_secs_f64((args.request_expiry_minutes * 60.0).max(60.0)),
        // With the horde's own settings and version (added by the horde): the kudos model.
        settings: match &args.kudos_model {
            Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            None => "shipped kudos model".into(),
        },
        settings_ttl: Duration::from_millis(args.snapshot_ms.max(100).saturating_mul(3).max(30_000)),
    };
    if let Some(how) = replication::redis_persists(&cfg).await.context("reaching Redis (--redis-url)")? {
        tracing::warn!(persistence = %how, "this Redis writes its data to disk: prompts would reach it. Run it with `save \"\"` and `appendonly no`");
    }
    let client = redis::Client::open(url.as_str()).context("--redis-url")?;
    let conn = client.get_connection_manager().await.context("reaching Redis (--redis-url)")?;
    let leases = RedisLeases::new(conn.clone(), &args.redis_prefix, Duration::from_millis(args.lease_ms.max(100)));
    Ok(Shared {
        log: Some(cfg),
        leases: DutyLeases::Redis(leases),
        buckets: Some(SharedBuckets::new(conn, &args.redis_prefix)),
    })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed before this returns, so a signal that
/// arrives right after start-up is not lost (and does not kill the process uncleanly).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        Ok(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("shutting down: draining");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: draining");
        })
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.log_format == "json");
    let file_limit = api::connections::raise_file_limit();
    let cfg = HordeConfig {
        request_expiry_secs: (args.request_expiry_minutes * 60.0).round().max(1.0) as u64,
        min_text_job_ttl_secs: args.min_job_ttl_secs.max(1),
        image_memory_cap_bytes: (args.image_memory_mib.max(0.0) * 1024.0 * 1024.0) as usize,
        max_source_image_bytes: args.max_source_image_kib.saturating_mul(1024),
        text_memory_cap_bytes: (args.text_memory_mib.max(0.0) * 1024.0 * 1024.0) as usize,
        account_text_memory_cap_bytes: (args.account_text_memory_mib.max(0.0) * 1024.0 * 1024.0) as usize,
        allow_loopback_http_webhooks: args.dev_loopback_webhooks,
        ..HordeConfig::default()
    };
    let signal = shutdown_signal()?;
    // At shutdown, open event streams end so the graceful shutdown does not wait on them.
    let closing = horde_server::api::events::Closing::default();
    let kudos_model = match &args.kudos_model {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(KudosModel::from_json(&text).with_context(|| format!("loading the kudos model {}", path.display()))?)
        }
        None => None,
    };
    let rate_limits = if args.no_rate_limits {
        RateLimits::off()
    } else {
        RateLimits::with_overrides(&args.rate_limit).context("--rate-limit")?
    };
    let Shared {
        log: shared,
        leases,
        buckets,
    } = shared_state(&args).await?;
    let rate_limits = match buckets {
        Some(b) => rate_limits.shared(b),
        None => rate_limits,
    };
    let horde = open_shared(&args.storage, cfg, shared.as_ref()).await?;
    if let Some(m) = kudos_model {
        horde.set_kudos_model(m);
    }
    let documents = api::v2::documents::Documents::load(
        args.terms_file.as_deref(),
        args.privacy_file.as_deref(),
        args.sponsors_file.as_deref(),
        args.news_file.as_deref(),
    )?;
    let options = ApiOptions {
        documents,
        public_url: args.public_url.clone(),
        dev_test_users: args.dev_test_users,
        rate_limits,
        closing: closing.clone(),
    };
    let app = api::router(horde.clone(), options);
    // At a signal the local worker stops taking jobs at once; it finishes those it has through
    // the API while the horde drains (see `drain_on`).
    let (worker_stop, worker_stopped) = tokio::sync::watch::channel(false);
    let signal = async move {
        signal.await;
        let _ = worker_stop.send(true);
    };
    let (shutdown, deadline) = drain_on(signal, horde.clone(), closing, Duration::from_secs(args.drain_secs));
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let duties = duties::spawn(
        horde.clone(),
        leases.clone(),
        Duration::from_millis(args.reap_interval_ms.max(10)),
        Duration::from_millis(args.flush_interval_ms.max(1)),
        Duration::from_millis(args.snapshot_ms.max(100)),
        stop_rx.clone(),
    );
    let base = args.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let webhooks = horde_server::webhooks::spawn(horde.clone(), leases, base, stop_rx);
    tracing::info!(%addr, dev_test_users = args.dev_test_users, shared = horde.is_shared(), "horde listening");
    println!("horde listening on http://{addr}");
    let local_opts = LocalWorkerOptions {
        model: LocalModel::parse(&args.local_worker),
        jobs: args.local_worker_threads.into(),
        data_dir: args.storage.data_dir.clone(),
        cache: args.model_cache.clone().unwrap_or_else(horde_worker::text_model::model_cache),
        pypi: args.pypi_url.clone(),
    };
    let local = tokio::spawn(local_worker::run(
        horde.clone(),
        local_worker::loopback_url(addr),
        local_opts,
        worker_stopped,
    ));
    let limits = args.connections.limits(file_limit);
    tracing::info!(
        open_files = file_limit,
        max_connections = limits.max_connections,
        "connection limits"
    );
    tokio::select! {
        served = api::connections::serve(listener, app, limits, shutdown) => served?,
        _ = deadline => tracing::warn!("clients still held connections at the drain deadline: closing them"),
    }
    if tokio::time::timeout(Duration::from_secs(2), local).await.is_err() {
        tracing::warn!("the local worker had not stopped by the end of the drain");
    }
    let _ = stop_tx.send(true);
    let _ = duties.await;
    let _ = webhooks.await;
    horde.store().close().await;
    tracing::info!("stopped");
    Ok(())
}

/// What happens at `signal`: the horde drains for `drain_for` at most (see `Horde::drain`), then
/// the first future resolves (and the HTTP server stops taking connections and lets calls in
/// flight end); the second resolves at the drain's deadline, when connections still open are
/// dropped.
fn drain_on(
    signal: impl std::future::Future<Output = ()> + Send + 'static,
    horde: Arc<Horde>,
    closing: horde_server::api::events::Closing,
    drain_for: Duration,
) -> (
    impl std::future::Future<Output = ()> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (deadline_tx, mut deadline_rx) = tokio::sync::watch::channel(None);
    let shutdown = async move {
        signal.await;
        let deadline = tokio::time::Instant::now() + drain_for;
        let _ = deadline_tx.send(Some(deadline));
        // The last moments are for calls in flight (a requester reading its result, say).
        let close_grace = Duration::from_secs(1).min(drain_for / 2);
        match horde.drain(deadline - close_grace).await {
            Ok(r) if r.handed_over => tracing::info!("the other processes sharing this horde take its work over"),
            Ok(r) => tracing::info!(
                refunded = r.refunded,
                jobs_lost = r.left.jobs_in_flight,
                results_unread = r.left.uncollected,
                "drained"
            ),
            Err(e) => tracing::error!(error = %e, "draining failed"),
        }
        closing.close();
    };
    let deadline = async move {
        match deadline_rx.wait_for(Option::is_some).await.map(|d| *d) {
            Ok(Some(deadline)) => tokio::time::sleep_until(deadline).await,
            _ => std::future::pending().await,
        }
    };
    (shutdown, deadline)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Command::Serve(args) = &cli.command {
        if let Some(n) = args.threads {
            runtime.worker_threads(n.clamp(1, 256));
        }
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    let result = runtime.block_on(run(cli));
    // Connections still open after the drain deadline end here, with the runtime's tasks.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::User {
            command: UserCommand::Create(args),
        } => {
            let horde = open(&args.storage, HordeConfig::default()).await?;
            let (user, key) = horde
                .create_account(AccountSpec {
                    username: args.name,
                    oauth_id: None,
                    kudos: args.kudos,
                    moderator: args.moderator,
                    trusted: args.trusted,
                    pseudonymous: false,
                })
                .await?;
            horde.store().close().await;
            println!(
                "Created user {} (kudos {}, moderator {}, trusted {}). Its API key, shown only once:",
                user.display_name(),
                horde_core::kudos::to_kudos(user.kudos),
                user.moderator,
                user.trusted
            );
            println!("{key}");
            Ok(())
        }
        Command::KudosModel { command } => kudos_model(command).await,
    }
}

async fn kudos_model(command: KudosModelCommand) -> anyhow::Result<()> {
    match command {
        KudosModelCommand::Prior(a) => {
            let rows = image_model::prior_dataset(a.rows, a.seed);
            std::fs::write(&a.out, image_model::to_csv(&rows)).with_context(|| format!("writing {}", a.out.display()))?;
            println!("wrote {} prior timings to {}", rows.len(), a.out.display());
        }
        KudosModelCommand::Fit(a) => {
            let mut rows = Vec::new();
            for path in &a.data {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                rows.extend(image_model::from_csv(&text).with_context(|| format!("parsing {}", path.display()))?);
            }
            let opts = FitOptions {
                hidden: a.hidden.clone(),
                epochs: a.epochs.max(1),
                seed: a.seed,
                ..FitOptions::default()
            };
            let names: Vec<String> = a
                .data
                .iter()
                .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
                .collect();
            let hidden: Vec<String> = a.hidden.iter().map(usize::to_string).collect();
            let provenance = format!(
                "horde kudos-model fit --data {} --epochs {} --hidden {} --seed {} ({} rows)",
                names.join(" --data "),
                opts.epochs,
                hidden.join(","),
                opts.seed,
                rows.len()
            );
            let model = image_model::fit(&rows, &opts, provenance)?;
            std::fs::write(&a.out, model.to_json() + "\n").with_context(|| format!("writing {}", a.out.display()))?;
            println!(
                "fitted on {} rows; held-out RMSE of ln(seconds) {:.4}; weights in {}",
                rows.len(),
                model.validation_rmse_ln,
                a.out.display()
            );
        }
        KudosModelCommand::Export(a) => {
            let horde = open(&a.storage, HordeConfig::default()).await?;
            let rows = horde.store().image_timings(a.limit).await?;
            horde.store().close().await;
            std::fs::write(&a.out, image_model::to_csv(&rows)).with_context(|| format!("writing {}", a.out.display()))?;
            println!("wrote {} recorded timings to {}", rows.len(), a.out.display());
        }
    }
    Ok(())
}

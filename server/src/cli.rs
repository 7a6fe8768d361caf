//! Command line of the `horde` binary.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "horde",
    version,
    about = "A crowdsourced cluster for AI text generation, wire-compatible with AI Horde API v2."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API (/api/v2), the scheduler and the web UI.
    Serve(ServeArgs),
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
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

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
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
    /// How often stale jobs and expired requests are reaped, in milliseconds.
    #[arg(long, env = "HORDE_REAP_INTERVAL_MS", default_value_t = 1000)]
    pub reap_interval_ms: u64,
    /// Pseudonymous registrations allowed per IP address in a burst.
    #[arg(long, env = "HORDE_REGISTER_BURST", default_value_t = 5)]
    pub register_burst: u32,
    /// Seconds after which a full burst of registrations is allowed again.
    #[arg(long, env = "HORDE_REGISTER_PERIOD_SECS", default_value_t = 60)]
    pub register_period_secs: u64,
    /// Minutes a request lives after its last activity.
    #[arg(long, env = "HORDE_REQUEST_EXPIRY_MINUTES", default_value_t = 20)]
    pub request_expiry_minutes: u64,
    /// Shortest time a worker has for a text job before it is handed out again, in seconds.
    #[arg(long, env = "HORDE_MIN_JOB_TTL_SECS", default_value_t = 150)]
    pub min_job_ttl_secs: u64,
    /// Worker threads of the async runtime (default: one per CPU core).
    #[arg(long, env = "HORDE_THREADS")]
    pub threads: Option<usize>,
    /// Log format: "text" or "json".
    #[arg(long, env = "HORDE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

#[derive(Debug, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Username (1 to 30 characters, no '#').
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

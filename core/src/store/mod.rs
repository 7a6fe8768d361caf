//! Durable storage of accounts, workers and the kudos ledger, on SQLite (default) or PostgreSQL.
//! The same SQL runs on both through sqlx's `Any` driver; each dialect has its own migrations.
//! Nothing request-related (prompts, generations) is ever written here.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};
use uuid::Uuid;

use crate::accounts::api_key::ApiKeyHash;
use crate::accounts::{KudosBuckets, User, UserRecords};
use crate::kudos::Centikudos;
use crate::workers::Worker;
use crate::Result;

mod batch;
mod commit_connection;
mod file_journal;
mod generation_stats;
mod journal;
mod script;
mod shared_keys;
mod sqlite_writer;
mod styles;
mod teams;
mod transfer_keys;
mod worker_messages;

pub use batch::FlushBatch;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Fields of a new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub oauth_id: String,
    pub key: ApiKeyHash,
    pub moderator: bool,
    pub trusted: bool,
    pub pseudonymous: bool,
    pub concurrency: i64,
    pub created_secs: i64,
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite in a file: the connection batches are stored on (see `sqlite_writer`).
    writer: Option<Arc<sqlite_writer::SqliteWriter>>,
    /// SQLite in a file: the file a waiting caller's commit appends its kudos movements to (see
    /// `file_journal`), unless another connection to the database holds it.
    file_journal: Option<Arc<file_journal::FileJournal>>,
    /// PostgreSQL: the connection a waiting caller's commit is sent on.
    commit_connection: Option<Arc<commit_connection::CommitConnection>>,
    /// Whether postings were journaled since the last fold (see `journal`).
    journaled: Arc<std::sync::atomic::AtomicBool>,
    /// Held by a fold from reading the journal file's records until they are marked folded, so
    /// that two folds never store the same record.
    fold_lock: Arc<tokio::sync::Mutex<()>>,
}

const USER_COLUMNS: &str = "id, username, oauth_id, created, kudos, kd_accumulated, kd_gifted, kd_received, kd_admin, kd_awarded, \
    usage_tokens, requests_text, contribution_tokens, fulfilled_text, usage_kps, requests_image, contribution_kps, fulfilled_image, moderator, trusted, flagged, pseudonymous, concurrency, \
    worker_invited, public_workers, contact, admin_comment, deleted_secs";

const WORKER_COLUMNS: &str = "id, user_id, name, info, created, last_check_in, maintenance, maintenance_msg, paused, nsfw, models, \
    max_length, max_context_length, threads, bridge_agent, uptime_ms, requests_fulfilled, tokens_generated, kudos_generated, \
    kudos_uptime, uncompleted_jobs, kind, kps_generated";

fn b(v: bool) -> i64 {
    v as i64
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    let g = |c: &str| row.try_get::<i64, _>(c);
    Ok(User {
        id: g("id")?,
        username: row.try_get("username")?,
        oauth_id: row.try_get("oauth_id")?,
        created_secs: g("created")?,
        kudos: g("kudos")?,
        buckets: KudosBuckets {
            accumulated: g("kd_accumulated")?,
            gifted: g("kd_gifted")?,
            received: g("kd_received")?,
            admin: g("kd_admin")?,
            awarded: g("kd_awarded")?,
        },
        records: UserRecords {
            usage_tokens: g("usage_tokens")?,
            requests_text: g("requests_text")?,
            contribution_tokens: g("contribution_tokens")?,
            fulfilled_text: g("fulfilled_text")?,
            usage_kps: g("usage_kps")?,
            requests_image: g("requests_image")?,
            contribution_kps: g("contribution_kps")?,
            fulfilled_image: g("fulfilled_image")?,
        },
        moderator: g("moderator")? != 0,
        trusted: g("trusted")? != 0,
        flagged: g("flagged")? != 0,
        pseudonymous: g("pseudonymous")? != 0,
        concurrency: g("concurrency")?,
        worker_invited: g("worker_invited")?,
        public_workers: g("public_workers")? != 0,
        contact: row.try_get("contact")?,
        admin_comment: row.try_get("admin_comment")?,
        deleted_secs: row.try_get("deleted_secs")?,
        suspicions: Default::default(),
    })
}

fn worker_from_row(row: &AnyRow) -> Result<Worker> {
    let g = |c: &str| row.try_get::<i64, _>(c);
    let id: String = row.try_get("id")?;
    let id = Uuid::parse_str(&id).map_err(|e| crate::HordeError::Internal(format!("bad worker id in storage: {e}")))?;
    let models: String = row.try_get("models")?;
    let mut w = Worker::new(id, row.try_get("name")?, g("user_id")?, g("created")?);
    w.info = row.try_get("info")?;
    w.maintenance = g("maintenance")? != 0;
    w.maintenance_msg = row.try_get("maintenance_msg")?;
    w.paused = g("paused")? != 0;
    w.nsfw = g("nsfw")? != 0;
    w.models = serde_json::from_str(&models).unwrap_or_default();
    w.max_length = g("max_length")?;
    w.max_context_length = g("max_context_length")?;
    w.threads = g("threads")?;
    w.bridge_agent = row.try_get("bridge_agent")?;
    w.uptime_ms = g("uptime_ms")?.max(0) as u64;
    w.requests_fulfilled = g("requests_fulfilled")?;
    w.tokens_generated = g("tokens_generated")?;
    w.kudos_generated = g("kudos_generated")?;
    w.kudos_uptime = g("kudos_uptime")?;
    w.uncompleted_jobs = g("uncompleted_jobs")?;
    let kind: String = row.try_get("kind")?;
    w.kind = crate::workers::WorkerKind::parse(&kind).unwrap_or(crate::workers::WorkerKind::Text);
    w.kps_generated = g("kps_generated")?;
    Ok(w)
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            return Err(crate::HordeError::Validation(format!(
                "unsupported database URL (use sqlite:// or postgres://): {}",
                redact(url)
            )));
        };
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = AnyConnectOptions::from_str(url)?;
        let mut pool = AnyPoolOptions::new().max_connections(match (dialect, in_memory) {
            (Dialect::Sqlite, true) => 1,
            (Dialect::Sqlite, false) => 4,
            (Dialect::Postgres, _) => 8,
        });
        if dialect == Dialect::Sqlite {
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options.clone()).await?;
        if dialect == Dialect::Sqlite && !in_memory {
            pool.execute("PRAGMA journal_mode = WAL;").await?;
        }
        let migrator = match dialect {
            Dialect::Sqlite => &SQLITE_MIGRATOR,
            Dialect::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| crate::HordeError::Internal(format!("migrations: {e}")))?;
        let db_file = match dialect {
            Dialect::Sqlite if !in_memory => Some(sqlx::sqlite::SqliteConnectOptions::from_str(url)?.get_filename().to_path_buf()),
            _ => None,
        };
        let writer = match &db_file {
            Some(file) => Some(Arc::new(sqlite_writer::SqliteWriter::open(file)?)),
            None => None,
        };
        let file_journal = match &db_file {
            Some(file) => {
                let folded: i64 = sqlx::query_scalar("SELECT folded_seq FROM journal_file WHERE id = 1")
                    .fetch_one(&pool)
                    .await?;
                file_journal::FileJournal::open(file_journal::path_for(file), folded.max(0) as u64)?.map(Arc::new)
            }
            None => None,
        };
        let commit_connection = (dialect == Dialect::Postgres).then(|| Arc::new(commit_connection::CommitConnection::new(options.clone())));
        let store = Self {
            pool,
            dialect,
            writer,
            file_journal,
            commit_connection,
            journaled: Arc::default(),
            fold_lock: Arc::default(),
        };
        // What earlier processes journaled goes to the ledger and balances before anything reads them.
        store.fold_journal().await?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Our SQL uses `?` placeholders; PostgreSQL wants `$1, $2, …`.
    fn sql(&self, s: &str) -> AssertSqlSafe<String> {
        match self.dialect {
            Dialect::Sqlite => AssertSqlSafe(s.to_string()),
            Dialect::Postgres => {
                let mut out = String::with_capacity(s.len() + 16);
                let mut n = 0;
                for c in s.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                AssertSqlSafe(out)
            }
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Liveness check for the heartbeat.
    pub async fn ping(&self) -> bool {
        sqlx::query(self.sql("SELECT 1")).execute(&self.pool).await.is_ok()
    }

    // ----- settings ------------------------------------------------------------------------

    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query(self.sql("SELECT value FROM settings WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("value")?),
            None => None,
        })
    }

    /// Stores `value` under `name`, replacing what was there.
    pub async fn put_setting(&self, name: &str, value: &str) -> Result<()> {
        sqlx::query(self.sql("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"))
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores `value` unless the setting exists; returns the stored value either way.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query(self.sql("INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"))
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(self.setting(name).await?.unwrap_or_else(|| value.to_string()))
    }

    // ----- users ---------------------------------------------------------------------------

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let q = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        let row = sqlx::query(self.sql(&q)).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_key(&self, key: &ApiKeyHash) -> Result<Option<User>> {
        let q = format!("SELECT {USER_COLUMNS} FROM users WHERE api_key_hash = ?");
        let row = sqlx::query(self.sql(&q)).bind(key.to_hex()).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_oauth_id(&self, oauth_id: &str) -> Result<Option<User>> {
        let q = format!("SELECT {USER_COLUMNS} FROM users WHERE oauth_id = ?");
        let row = sqlx::query(self.sql(&q)).bind(oauth_id).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Users by kudos (descending) or age (oldest first), 25 per page.
    pub async fn list_users(&self, page: i64, by_age: bool) -> Result<Vec<User>> {
        let order = if by_age { "id ASC" } else { "kudos DESC, id ASC" };
        let q = format!("SELECT {USER_COLUMNS} FROM users WHERE id <> 0 ORDER BY {order} LIMIT 25 OFFSET ?");
        let rows = sqlx::query(self.sql(&q)).bind((page.max(1) - 1) * 25).fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Creates an account with zero kudos; returns its id.
    pub async fn insert_user(&self, u: &NewUser) -> Result<i64> {
        let row = sqlx::query(self.sql(
            "INSERT INTO users (username, oauth_id, api_key_hash, created, moderator, trusted, pseudonymous, concurrency) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(&u.username)
        .bind(&u.oauth_id)
        .bind(u.key.to_hex())
        .bind(u.created_secs)
        .bind(b(u.moderator))
        .bind(b(u.trusted))
        .bind(b(u.pseudonymous))
        .bind(u.concurrency)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("id")?)
    }

    pub async fn set_user_key(&self, id: i64, key: &ApiKeyHash) -> Result<()> {
        sqlx::query(self.sql("UPDATE users SET api_key_hash = ? WHERE id = ?"))
            .bind(key.to_hex())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Drops a wiped account's identity (name, sign-in identity, contact, API key) and deletes
    /// its shared keys; its balance and counters stay.
    pub async fn wipe_user(&self, u: &User) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql(
            "UPDATE users SET username = ?, oauth_id = ?, api_key_hash = NULL, contact = NULL, admin_comment = NULL, \
             public_workers = 0 WHERE id = ?",
        ))
        .bind(&u.username)
        .bind(&u.oauth_id)
        .bind(u.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(self.sql("DELETE FROM shared_keys WHERE user_id = ?"))
            .bind(u.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes the profile fields of an account (not its balance, which only moves by postings).
    pub async fn update_user_profile(&self, u: &User) -> Result<()> {
        sqlx::query(self.sql(
            "UPDATE users SET username = ?, moderator = ?, trusted = ?, flagged = ?, concurrency = ?, worker_invited = ?, \
             public_workers = ?, contact = ?, admin_comment = ?, deleted_secs = ? WHERE id = ?",
        ))
        .bind(&u.username)
        .bind(b(u.moderator))
        .bind(b(u.trusted))
        .bind(b(u.flagged))
        .bind(u.concurrency)
        .bind(u.worker_invited)
        .bind(b(u.public_workers))
        .bind(u.contact.clone())
        .bind(u.admin_comment.clone())
        .bind(u.deleted_secs)
        .bind(u.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ----- workers -------------------------------------------------------------------------

    pub async fn worker_by_id(&self, id: &Uuid) -> Result<Option<Worker>> {
        let q = format!("SELECT {WORKER_COLUMNS} FROM workers WHERE id = ?");
        let row = sqlx::query(self.sql(&q)).bind(id.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(worker_from_row).transpose()
    }

    pub async fn worker_by_name(&self, name: &str) -> Result<Option<Worker>> {
        let q = format!("SELECT {WORKER_COLUMNS} FROM workers WHERE name = ?");
        let row = sqlx::query(self.sql(&q)).bind(name).fetch_optional(&self.pool).await?;
        row.as_ref().map(worker_from_row).transpose()
    }

    pub async fn worker_ids_of(&self, user_id: i64) -> Result<Vec<Uuid>> {
        let rows = sqlx::query(self.sql("SELECT id FROM workers WHERE user_id = ? ORDER BY created, id"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get("id")?;
                Uuid::parse_str(&s).map_err(|e| crate::HordeError::Internal(format!("bad worker id in storage: {e}")))
            })
            .collect()
    }

    pub async fn insert_worker(&self, w: &Worker) -> Result<()> {
        sqlx::query(self.sql("INSERT INTO workers (id, user_id, name, created, kind) VALUES (?, ?, ?, ?, ?)"))
            .bind(w.id.to_string())
            .bind(w.owner_id)
            .bind(&w.name)
            .bind(w.created_secs)
            .bind(w.kind.as_str())
            .execute(&self.pool)
            .await?;
        self.save_worker(w).await
    }

    async fn save_worker(&self, w: &Worker) -> Result<()> {
        let (sql, values) = batch::save_worker(w);
        script::bind_all(sqlx::query(self.sql(sql)), values).execute(&self.pool).await?;
        Ok(())
    }

    /// Writes a worker's settings now (name, info, maintenance…).
    pub async fn update_worker(&self, w: &Worker) -> Result<()> {
        self.save_worker(w).await
    }

    pub async fn delete_worker(&self, id: &Uuid) -> Result<()> {
        sqlx::query(self.sql("DELETE FROM workers WHERE id = ?"))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ----- kudos ---------------------------------------------------------------------------

    /// Stored balances of the mint and burn accounts.
    pub async fn system_balances(&self) -> Result<(Centikudos, Centikudos)> {
        let rows = sqlx::query(self.sql("SELECT name, balance FROM system_accounts"))
            .fetch_all(&self.pool)
            .await?;
        let (mut mint, mut burn) = (0, 0);
        for r in rows {
            let name: String = r.try_get("name")?;
            let bal: i64 = r.try_get("balance")?;
            match name.as_str() {
                "mint" => mint = bal,
                "burn" => burn = bal,
                _ => {}
            }
        }
        Ok((mint, burn))
    }

    // ----- prompt filter -------------------------------------------------------------------

    /// Every stored filter rule, by id.
    pub async fn filters(&self) -> Result<Vec<crate::safety::FilterRule>> {
        let rows = sqlx::query(self.sql("SELECT id, regex, filter_type, description, replacement, user_id FROM filters ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::safety::FilterRule {
                    id: r.try_get("id")?,
                    regex: r.try_get("regex")?,
                    filter_type: r.try_get("filter_type")?,
                    description: r.try_get("description")?,
                    replacement: r.try_get("replacement")?,
                    user_id: r.try_get("user_id")?,
                })
            })
            .collect()
    }

    /// Stores a new rule; returns its id.
    pub async fn insert_filter(&self, f: &crate::safety::FilterRule) -> Result<i64> {
        let row = sqlx::query(
            self.sql("INSERT INTO filters (regex, filter_type, description, replacement, user_id) VALUES (?, ?, ?, ?, ?) RETURNING id"),
        )
        .bind(&f.regex)
        .bind(f.filter_type)
        .bind(&f.description)
        .bind(&f.replacement)
        .bind(f.user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Replaces a rule's fields; returns whether it existed.
    pub async fn update_filter(&self, f: &crate::safety::FilterRule) -> Result<bool> {
        let done = sqlx::query(
            self.sql("UPDATE filters SET regex = ?, filter_type = ?, description = ?, replacement = ?, user_id = ? WHERE id = ?"),
        )
        .bind(&f.regex)
        .bind(f.filter_type)
        .bind(&f.description)
        .bind(&f.replacement)
        .bind(f.user_id)
        .bind(f.id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a rule; returns whether it existed.
    pub async fn delete_filter(&self, id: i64) -> Result<bool> {
        let done = sqlx::query(self.sql("DELETE FROM filters WHERE id = ?"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Recorded image timings, oldest first (at most `limit`).
    pub async fn image_timings(&self, limit: i64) -> Result<Vec<crate::kudos::image_model::Timing>> {
        use crate::kudos::image_model::{PayloadFeatures, Timing};
        let rows = sqlx::query(self.sql(
            "SELECT width, height, steps, sampler, cfg_scale, denoising_strength, karras, hires_fix, source_processing, control_type, \
             post_processing, loras, tis, seconds FROM image_timings ORDER BY created_ms LIMIT ?",
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let pp: String = r.try_get("post_processing")?;
                Ok(Timing {
                    payload: PayloadFeatures {
                        width: r.try_get("width")?,
                        height: r.try_get("height")?,
                        steps: r.try_get("steps")?,
                        sampler: r.try_get("sampler")?,
                        cfg_scale: r.try_get("cfg_scale")?,
                        denoising_strength: r.try_get("denoising_strength")?,
                        karras: r.try_get::<i64, _>("karras")? != 0,
                        hires_fix: r.try_get::<i64, _>("hires_fix")? != 0,
                        source_processing: r.try_get("source_processing")?,
                        control_type: r.try_get("control_type")?,
                        post_processing: pp.split(';').filter(|s| !s.is_empty()).map(String::from).collect(),
                        loras: r.try_get("loras")?,
                        tis: r.try_get("tis")?,
                    },
                    seconds: r.try_get("seconds")?,
                })
            })
            .collect()
    }

    /// Balances recomputed from the ledger alone (account key → balance), for audits and tests.
    pub async fn ledger_balances(&self) -> Result<HashMap<String, Centikudos>> {
        let rows = sqlx::query(self.sql("SELECT from_account, to_account, amount FROM kudos_ledger"))
            .fetch_all(&self.pool)
            .await?;
        let mut out: HashMap<String, Centikudos> = HashMap::new();
        for r in rows {
            let from: String = r.try_get("from_account")?;
            let to: String = r.try_get("to_account")?;
            let amount: i64 = r.try_get("amount")?;
            *out.entry(from).or_default() -= amount;
            *out.entry(to).or_default() += amount;
        }
        Ok(out)
    }

    /// Stored balance of every user (id → balance).
    pub async fn stored_balances(&self) -> Result<HashMap<i64, Centikudos>> {
        let rows = sqlx::query(self.sql("SELECT id, kudos FROM users")).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>("id")?, r.try_get::<i64, _>("kudos")?)))
            .collect()
    }
}

/// A database URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}

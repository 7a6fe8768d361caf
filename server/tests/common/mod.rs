//! A real `horde` process on a random port, on SQLite or on a fresh PostgreSQL database.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

pub mod fake_worker;
#[path = "../../../core/tests/common/mod.rs"]
pub mod redis;
pub mod sse;

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
    /// PostgreSQL, with the in-memory state shared through its own Redis (`--redis-url`).
    Shared,
}

/// A PostgreSQL database made for one test, or `None` when PostgreSQL is not configured (then the
/// test is skipped, unless `HORDE_REQUIRE_PG=1`, as in CI, makes that a failure).
pub async fn fresh_pg_url() -> Option<String> {
    let Ok(admin) = std::env::var("TEST_PG_URL") else {
        assert!(
            std::env::var("HORDE_REQUIRE_PG").is_err(),
            "HORDE_REQUIRE_PG is set but TEST_PG_URL is not"
        );
        eprintln!("TEST_PG_URL not set: skipping the PostgreSQL run");
        return None;
    };
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to TEST_PG_URL");
    let name = format!("horde_t_{}", uuid_like());
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .expect("TEST_PG_URL has a database part");
    Some(format!("{base}/{name}"))
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}{:x}", n, std::process::id())
}

pub struct Server {
    pub url: String,
    pub db_url: String,
    pub dir: std::path::PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    pub client: reqwest::Client,
    /// The Redis of a `Db::Shared` server.
    pub redis: Option<redis::TempRedis>,
}

impl Server {
    /// Starts a server; `None` if the database kind is not available here.
    pub async fn start(db: Db, extra: &[&str]) -> Option<Server> {
        let dir = Self::temp_dir();
        let db_url = match db {
            Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("horde.db").display()),
            Db::Postgres | Db::Shared => fresh_pg_url().await?,
        };
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let redis = if db == Db::Shared {
            let r = redis::TempRedis::start().await?;
            extra.extend(["--redis-url".to_string(), r.url()]);
            Some(r)
        } else {
            None
        };
        Some(Self::launch(dir, db_url, extra, redis))
    }

    /// One more process of a horde: on `db_url`, sharing its state through `redis_url`.
    pub fn node(db_url: &str, redis_url: &str, extra: &[&str]) -> Server {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend(["--redis-url".to_string(), redis_url.to_string()]);
        Self::launch(Self::temp_dir(), db_url.to_string(), args, None)
    }

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("horde-test-{}", uuid_like()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn launch(dir: std::path::PathBuf, db_url: String, extra: Vec<String>, redis: Option<redis::TempRedis>) -> Server {
        let mut s = Server {
            url: String::new(),
            db_url,
            dir,
            child: None,
            extra,
            client: reqwest::Client::new(),
            redis,
        };
        s.spawn();
        s
    }

    /// Kills the process outright (SIGKILL): nothing of it is flushed or drained.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The process id, for memory readings.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) {
        // HORDE_TEST_BIN: a copy of the binary, where several checkouts share one target dir.
        let mut cmd = Command::new(std::env::var_os("HORDE_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_horde").into()));
        cmd.args(["serve", "--port", "0", "--data-dir"])
            .arg(&self.dir)
            .args(["--database-url", &self.db_url])
            .args(
                (!self.extra.iter().any(|a| a == "--flush-interval-ms"))
                    .then_some(["--flush-interval-ms", "20"])
                    .into_iter()
                    .flatten(),
            )
            // Restarts in tests drain briefly (jobs left in flight would hold them the default 30 s).
            .args(
                (!self.extra.iter().any(|a| a == "--drain-secs"))
                    .then_some(["--drain-secs", "2"])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.extra)
            // Tests send traffic far above the public limits; the rate-limit tests set their own.
            .args((!self.extra.iter().any(|a| a.starts_with("--rate-limit"))).then_some("--no-rate-limits"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start horde");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read address");
        let url = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
        assert!(url.starts_with("http://"), "unexpected first line: {line:?}");
        self.url = url;
        self.child = Some(child);
    }

    /// Stops with SIGTERM and waits; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        for _ in 0..100 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Sends SIGTERM, without waiting.
    pub fn terminate(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        }
    }

    /// Waits up to `within` for the process to exit: its exit status, or `None` while it runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + within;
        while std::time::Instant::now() < until {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Starts the process again after `stop` (possibly with another `db_url`).
    pub fn start_again(&mut self) {
        self.spawn();
    }

    pub fn restart(&mut self) {
        assert!(self.stop(), "clean exit on SIGTERM");
        self.spawn();
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v2{}", self.url, path)
    }

    /// Creates (or refreshes) a user through the test-user route; returns (api key, user id).
    pub async fn user(&self, name: &str, kudos: f64, moderator: bool, trusted: bool) -> (String, i64) {
        let r = self
            .client
            .post(self.api("/dev/test-user"))
            .json(
                &json!({"username": name, "oauth_id": format!("oauth-{name}"), "kudos": kudos, "moderator": moderator, "trusted": trusted}),
            )
            .send()
            .await
            .expect("test-user");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        let id = v["user_id"].as_str().and_then(|s| s.parse().ok()).expect("user id");
        (v["api_key"].as_str().expect("key").to_string(), id)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut r = self.client.get(self.api(path));
        if let Some(k) = key {
            r = r.header("apikey", k);
        }
        let resp = r.send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        let mut r = self.client.request(method, self.api(path)).json(&body);
        if let Some(k) = key {
            r = r.header("apikey", k);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, key, body).await
    }

    /// Waits until the server's batched writes are stored.
    pub async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a test server (see [`Server::start`]), or returns from the test when its database is
/// not available here.
#[macro_export]
macro_rules! server {
    ($db:expr) => {
        $crate::server!($db, &[])
    };
    ($db:expr, $extra:expr) => {
        match common::Server::start($db, $extra).await {
            Some(s) => s,
            None => return,
        }
    };
}

/// Declares one async test per backend: SQLite, PostgreSQL, and PostgreSQL with the state shared
/// through Redis (`name::sqlite`, `name::postgres`, `name::shared`).
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(common::Db::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(common::Db::Postgres).await;
            }
            /// The same rules with the state shared through Redis.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn shared() {
                $body(common::Db::Shared).await;
            }
        }
    };
}

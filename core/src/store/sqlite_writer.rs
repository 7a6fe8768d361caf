//! The connection that stores batches on SQLite: a connection of its own, driven from the calling
//! thread (rusqlite) instead of through sqlx, which runs every SQLite connection on a thread of
//! its own and wakes it (and then the caller) for every statement. A caller waiting for its
//! commit (group commit, `Horde::commit`) pays for the write itself: in WAL mode with
//! `synchronous = NORMAL` a commit is a `write` of the changed pages to the log, no `fsync`.
//!
//! A transaction of a few statements runs at once in the caller's thread when no other
//! connection is writing (tens of microseconds); a larger one, or one that finds the database
//! busy, runs on a blocking thread and waits there. This connection never checkpoints inside a
//! commit (`wal_autocheckpoint = 0`, since a checkpoint syncs the files): every
//! [`COMMITS_PER_CHECKPOINT`] commits it copies the log into the database on a blocking thread,
//! holding the connection meanwhile, so that no commit lands while it runs and the next one
//! starts the log over (a checkpoint on another connection, racing the commits, seldom reaches
//! the log's end, and the log grew without bound).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use rusqlite::{Connection, ErrorCode};

use super::journal::{journaled, Journaled};
use super::script::{Bound, Script};
use crate::{HordeError, Result};

/// Statements a transaction may have to run in the caller's thread (a batch of kudos movements
/// has four or five).
const INLINE_STATEMENTS: usize = 16;
/// Commits between two checkpoints. A commit of kudos movements (journaled) writes a page or two
/// to the log; SQLite's own default checkpoints every 1,000 pages.
const COMMITS_PER_CHECKPOINT: u32 = 1000;
/// How long a transaction on the blocking thread waits for another connection's write.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// The writing connection.
#[derive(Debug)]
pub(super) struct SqliteWriter {
    conn: Mutex<Connection>,
    /// Commits since the last checkpoint began.
    commits: AtomicU32,
    /// Whether a checkpoint is under way.
    checkpointing: AtomicBool,
}

fn db_error(e: rusqlite::Error) -> HordeError {
    HordeError::Internal(format!("database: {e}"))
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

impl SqliteWriter {
    /// Opens the database file at `path` (created and migrated already, in WAL mode).
    pub(super) fn open(path: &Path) -> Result<Self> {
        let open = || -> rusqlite::Result<Connection> {
            let conn = Connection::open(path)?;
            conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0;")?;
            conn.set_prepared_statement_cache_capacity(64);
            Ok(conn)
        };
        Ok(Self {
            conn: Mutex::new(open().map_err(db_error)?),
            commits: AtomicU32::new(0),
            checkpointing: AtomicBool::new(false),
        })
    }

    /// Runs `script` as one transaction (`BEGIN IMMEDIATE` … `COMMIT`); returns once it is
    /// committed. On failure nothing of it is stored.
    pub(super) async fn commit(self: &Arc<Self>, script: Script) -> Result<()> {
        if script.len() <= INLINE_STATEMENTS {
            if let Some(conn) = self.conn.try_lock() {
                match begin(&conn, Duration::ZERO) {
                    Ok(()) => {
                        let done = finish(&conn, &script);
                        drop(conn);
                        done.map_err(db_error)?;
                        self.committed();
                        return Ok(());
                    }
                    Err(e) if is_busy(&e) => {} // another connection writes: wait on a blocking thread
                    Err(e) => return Err(db_error(e)),
                }
            }
        }
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = this.conn.lock();
            begin(&conn, BUSY_WAIT).and_then(|()| finish(&conn, &script)).map_err(db_error)?;
            drop(conn);
            this.committed();
            Ok(())
        })
        .await
        .map_err(|e| HordeError::Internal(format!("storage thread: {e}")))?
    }

    /// Runs, as one transaction on a blocking thread, `take` (a statement answering journaled
    /// postings, see `journal`), then the script `build` makes of what it answered; answers how
    /// many postings `take` answered. The connection goes to a commit waiting for it, if any,
    /// before this thread may take it again.
    pub(super) async fn commit_taking(
        self: &Arc<Self>,
        take: &'static str,
        build: impl FnOnce(Vec<Journaled>) -> Script + Send + 'static,
    ) -> Result<usize> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let conn = this.conn.lock();
            let done = begin(&conn, BUSY_WAIT).map_err(db_error).and_then(|()| {
                let taken = take_journaled(&conn, take).inspect_err(|_| {
                    let _ = conn.execute_batch("ROLLBACK");
                })?;
                let n = taken.len();
                finish(&conn, &build(taken)).map_err(db_error)?;
                Ok(n)
            });
            MutexGuard::unlock_fair(conn);
            let n = done?;
            this.committed();
            Ok(n)
        })
        .await
        .map_err(|e| HordeError::Internal(format!("storage thread: {e}")))?
    }

    /// Counts a commit; starts a checkpoint on a blocking thread when one is due.
    fn committed(self: &Arc<Self>) {
        if self.commits.fetch_add(1, Ordering::Relaxed) + 1 < COMMITS_PER_CHECKPOINT || self.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.commits.store(0, Ordering::Relaxed);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.checkpointing.store(false, Ordering::Release);
            return;
        };
        let this = Arc::clone(self);
        rt.spawn_blocking(move || {
            // Commits wait meanwhile (on a blocking thread), so this one copies the whole log
            // unless a reader still uses part of it.
            let done = this.conn.lock().query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            if let Err(e) = done {
                tracing::warn!("WAL checkpoint: {e}");
            }
            this.checkpointing.store(false, Ordering::Release);
        });
    }
}

/// The postings `take` answers (in a transaction begun).
fn take_journaled(conn: &Connection, take: &str) -> Result<Vec<Journaled>> {
    let mut statement = conn.prepare_cached(take).map_err(db_error)?;
    let mut rows = statement.raw_query();
    let mut taken = Vec::new();
    while let Some(r) = rows.next().map_err(db_error)? {
        let text = |i: usize| r.get::<_, String>(i).map_err(db_error);
        let int = |i: usize| r.get::<_, i64>(i).map_err(db_error);
        taken.push(journaled(int(0)?, int(1)?, &text(2)?, &text(3)?, &text(4)?, int(5)?)?);
    }
    Ok(taken)
}

/// Begins a write transaction, waiting up to `busy` for another connection's.
fn begin(conn: &Connection, busy: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy)?;
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([]).map(|_| ())
}

/// Runs the statements of the transaction begun, and commits; rolls back on failure.
fn finish(conn: &Connection, script: &Script) -> rusqlite::Result<()> {
    let run = || -> rusqlite::Result<()> {
        for (sql, values) in script.statements() {
            let mut statement = conn.prepare_cached(sql)?;
            for (i, v) in values.iter().enumerate() {
                match v {
                    Bound::Int(n) => statement.raw_bind_parameter(i + 1, n)?,
                    Bound::Float(x) => statement.raw_bind_parameter(i + 1, x)?,
                    Bound::Text(s) => statement.raw_bind_parameter(i + 1, s.as_str())?,
                    Bound::Null => statement.raw_bind_parameter(i + 1, rusqlite::types::Null)?,
                }
            }
            statement.raw_execute()?;
        }
        conn.prepare_cached("COMMIT")?.execute([]).map(|_| ())
    };
    let done = run();
    if done.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    done
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::kudos::{Account, Posting, PostingKind};
    use crate::store::{FlushBatch, Store};

    fn mint_to_burn(amount: i64) -> FlushBatch {
        FlushBatch {
            postings: vec![Posting {
                from: Account::Mint,
                to: Account::Burn,
                amount,
                kind: PostingKind::Admin,
                at_ms: 1,
            }],
            ..Default::default()
        }
    }

    /// A commit that finds another connection writing waits for it (on a blocking thread) and
    /// is then stored; commits past a checkpoint's count are stored too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_waits_for_another_connections_write() {
        let dir = std::env::temp_dir().join(format!("horde-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("horde.db");
        let store = Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .expect("store");
        let other = rusqlite::Connection::open(&path).expect("second connection");
        other
            .execute_batch("BEGIN IMMEDIATE; UPDATE system_accounts SET balance = balance WHERE name = 'mint';")
            .expect("write lock");
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            other.execute_batch("COMMIT").expect("commit");
        });
        // The writer itself (the journal is a file: the writer stores what the periodic batch folds,
        // and the journal of a second connection to the database).
        let writer = store.writer.clone().expect("writer");
        let journal = |amount| writer.commit(super::super::journal::journal_script(&mint_to_burn(amount)));
        let started = Instant::now();
        journal(100).await.expect("stored after the other write");
        assert!(started.elapsed().as_millis() >= 250, "did not wait: {:?}", started.elapsed());
        holder.join().expect("holder");
        // The log is copied and started over every COMMITS_PER_CHECKPOINT commits: it stays
        // about the size that many commits take.
        let per = super::COMMITS_PER_CHECKPOINT as i64;
        let wal = || std::fs::metadata(dir.join("horde.db-wal")).map(|m| m.len()).unwrap_or(0);
        for _ in 0..per {
            journal(1).await.expect("stored");
        }
        let after_one_round = wal();
        for _ in 0..4 * per {
            journal(1).await.expect("stored");
        }
        assert!(wal() < 2 * after_one_round, "log grew from {after_one_round} to {} bytes", wal());
        // The periodic batch folds the journal into the balances and the ledger.
        store.flush(&mint_to_burn(1)).await.expect("folded");
        let n = 5 * per + 1;
        assert_eq!(store.system_balances().await.expect("balances"), (-100 - n, 100 + n));
        assert_eq!(store.ledger_balances().await.expect("ledger")["burn"], 100 + n);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

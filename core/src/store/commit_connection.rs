//! PostgreSQL: the connection that a waiting caller's commit is sent on, kept apart from the pool.
//! The pool checks a connection (a round trip) each time it lends one; this connection is
//! checked only after it has been idle a while, so a commit is one round trip (its statement is
//! a single one: see `batch`). Commits are serialized by the horde's flush lock, so one
//! connection is enough; a connection that failed is dropped and the next commit opens another.

use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyRow};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};

use super::script::{bind_all, Bound};
use crate::Result;

/// After this long unused, the connection is checked before a statement is sent on it.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// The connection, opened on first use.
pub(super) struct CommitConnection {
    options: AnyConnectOptions,
    conn: tokio::sync::Mutex<Option<(AnyConnection, Instant)>>,
}

impl std::fmt::Debug for CommitConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitConnection").finish_non_exhaustive()
    }
}

impl CommitConnection {
    pub(super) fn new(options: AnyConnectOptions) -> Self {
        Self {
            options,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Runs one statement (autocommit) and answers its one row.
    pub(super) async fn fetch_one(&self, sql: AssertSqlSafe<String>, values: Vec<Bound>) -> Result<AnyRow> {
        let mut slot = self.conn.lock().await;
        let kept = match slot.take() {
            Some((mut conn, used)) if used.elapsed() >= IDLE_CHECK => conn.ping().await.is_ok().then_some(conn),
            Some((conn, _)) => Some(conn),
            None => None,
        };
        let mut conn = match kept {
            Some(conn) => conn,
            None => AnyConnection::connect_with(&self.options).await?,
        };
        let row = bind_all(sqlx::query(sql), values).fetch_one(&mut conn).await?;
        // Kept only after a success: a failed statement may have left it in any state.
        *slot = Some((conn, Instant::now()));
        Ok(row)
    }
}

//! Statements of one transaction sent together: on SQLite as one multi-statement query (one trip
//! to the connection's thread instead of one per statement, which is what a caller waiting for
//! a commit pays for), on PostgreSQL one after the other.

use super::{Dialect, Store};
use crate::Result;

/// A value bound to a placeholder.
pub(super) enum Bound {
    Int(i64),
    Text(String),
}

/// Statements with their values, in order.
#[derive(Default)]
pub(super) struct Script {
    statements: Vec<(String, Vec<Bound>)>,
}

impl Script {
    /// Adds a statement (`?` placeholders) with its values.
    pub(super) fn push(&mut self, sql: String, values: Vec<Bound>) {
        self.statements.push((sql, values));
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind_all(mut q: AnyQuery<'_>, values: Vec<Bound>) -> AnyQuery<'_> {
    for v in values {
        q = match v {
            Bound::Int(i) => q.bind(i),
            Bound::Text(s) => q.bind(s),
        };
    }
    q
}

impl Store {
    /// Runs `script` as one transaction in one trip to the connection (SQLite only:
    /// `BEGIN IMMEDIATE`, the statements and `COMMIT` in one multi-statement query). On failure the
    /// transaction is rolled back, or the connection closed if even that fails.
    pub(super) async fn commit_in_one_trip(&self, script: Script) -> Result<()> {
        use sqlx::Executor;
        let mut sql = String::from("BEGIN IMMEDIATE;\n");
        let mut values = Vec::new();
        for (s, v) in script.statements {
            sql.push_str(&s);
            sql.push_str(";\n");
            values.extend(v);
        }
        sql.push_str("COMMIT;");
        let mut conn = self.pool.acquire().await?;
        let done = bind_all(sqlx::query(self.sql(&sql)), values).execute(&mut *conn).await;
        if let Err(e) = done {
            if conn.execute("ROLLBACK").await.is_err() {
                let _ = conn.close().await;
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Runs `script` in `tx`.
    pub(super) async fn run_script(&self, tx: &mut sqlx::Transaction<'static, sqlx::Any>, script: Script) -> Result<()> {
        match self.dialect {
            Dialect::Sqlite => {
                if script.statements.is_empty() {
                    return Ok(());
                }
                let mut sql = String::new();
                let mut values = Vec::new();
                for (s, v) in script.statements {
                    sql.push_str(&s);
                    sql.push_str(";\n");
                    values.extend(v);
                }
                bind_all(sqlx::query(self.sql(&sql)), values).execute(&mut **tx).await?;
            }
            Dialect::Postgres => {
                for (s, v) in script.statements {
                    bind_all(sqlx::query(self.sql(&s)), v).execute(&mut **tx).await?;
                }
            }
        }
        Ok(())
    }
}

//! Statements of one transaction with their values, run by whichever connection stores them:
//! the SQLite writer (`sqlite_writer`), or sqlx in a transaction (on SQLite as one
//! multi-statement query, on PostgreSQL one after the other).

use super::{Dialect, Store};
use crate::Result;

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(super) enum Bound {
    Int(i64),
    Float(f64),
    Text(String),
    Null,
}

/// Statements (`?` placeholders) with their values, in order.
#[derive(Debug, Default)]
pub(super) struct Script {
    statements: Vec<(String, Vec<Bound>)>,
}

impl Script {
    /// Adds a statement with its values.
    pub(super) fn push(&mut self, sql: String, values: Vec<Bound>) {
        self.statements.push((sql, values));
    }

    /// How many statements there are.
    pub(super) fn len(&self) -> usize {
        self.statements.len()
    }

    /// The statements with their values, in order.
    pub(super) fn statements(&self) -> impl Iterator<Item = (&str, &[Bound])> {
        self.statements.iter().map(|(s, v)| (s.as_str(), v.as_slice()))
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// `q` with `values` bound in order.
pub(super) fn bind_all(mut q: AnyQuery<'_>, values: Vec<Bound>) -> AnyQuery<'_> {
    for v in values {
        q = match v {
            Bound::Int(i) => q.bind(i),
            Bound::Float(x) => q.bind(x),
            Bound::Text(s) => q.bind(s),
            Bound::Null => q.bind(Option::<String>::None),
        };
    }
    q
}

impl Store {
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

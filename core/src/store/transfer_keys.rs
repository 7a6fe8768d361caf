//! Stored keys of kudos transfers (`Idempotency-Key`): written in the transaction that stores the
//! transfer's posting, read back when a repeated key is not in memory (after a restart).

use sqlx::Row;

use super::script::{Bound, Script};
use super::Store;
use crate::kudos::transfer_keys::{TransferKey, KEEP_MS};
use crate::Result;

impl Store {
    /// The transfer `from` made under `key` within the last day, if it was stored.
    pub async fn transfer_key(&self, from: i64, key: &str, now_ms: u64) -> Result<Option<TransferKey>> {
        let row = sqlx::query(
            self.sql("SELECT to_user, transferred, created_ms FROM transfer_keys WHERE from_user = ? AND idem_key = ? AND created_ms >= ?"),
        )
        .bind(from)
        .bind(key)
        .bind(now_ms.saturating_sub(KEEP_MS) as i64)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(TransferKey {
            from,
            key: key.to_string(),
            to: r.try_get("to_user")?,
            transferred: r.try_get("transferred")?,
            at_ms: r.try_get::<i64, _>("created_ms")?.max(0) as u64,
        }))
    }
}

/// Adds to `script` the statements storing the keys of a batch's transfers and forgetting those
/// older than a day.
pub(super) fn push_transfer_keys(script: &mut Script, keys: &[TransferKey]) {
    let Some(newest) = keys.iter().map(|k| k.at_ms).max() else {
        return;
    };
    for k in keys {
        script.push(
            "INSERT INTO transfer_keys (from_user, idem_key, to_user, transferred, created_ms) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (from_user, idem_key) DO UPDATE SET to_user = excluded.to_user, transferred = excluded.transferred, \
             created_ms = excluded.created_ms"
                .into(),
            vec![
                Bound::Int(k.from),
                Bound::Text(k.key.clone()),
                Bound::Int(k.to),
                Bound::Int(k.transferred),
                Bound::Int(k.at_ms as i64),
            ],
        );
    }
    script.push(
        "DELETE FROM transfer_keys WHERE created_ms < ?".into(),
        vec![Bound::Int(newest.saturating_sub(KEEP_MS) as i64)],
    );
}

/// PostgreSQL, one statement (see `batch`): adds to `clauses` the modifying `WITH` clauses that
/// store the keys of a batch's transfers and forget those older than a day; `guard` (empty, or a
/// `WHERE` condition) is appended to the row source of the insert.
pub(super) fn push_transfer_key_clauses(clauses: &mut Vec<String>, values: &mut Vec<Bound>, keys: &[TransferKey], guard: &str) {
    let Some(newest) = keys.iter().map(|k| k.at_ms).max() else {
        return;
    };
    // One row per key, the last given: one statement may not change a row twice.
    let mut last: Vec<&TransferKey> = Vec::with_capacity(keys.len());
    for k in keys.iter().rev() {
        if !last.iter().any(|l| l.from == k.from && l.key == k.key) {
            last.push(k);
        }
    }
    let rows = |width: usize| vec![format!("({})", vec!["?"; width].join(", ")); last.len()].join(", ");
    let guard = if guard.is_empty() { " WHERE true" } else { guard };
    clauses.push(format!(
        "kn AS (INSERT INTO transfer_keys (from_user, idem_key, to_user, transferred, created_ms) \
         SELECT * FROM (VALUES {}) AS v{guard} ON CONFLICT (from_user, idem_key) DO UPDATE SET to_user = excluded.to_user, \
         transferred = excluded.transferred, created_ms = excluded.created_ms)",
        rows(5)
    ));
    for k in &last {
        values.extend([
            Bound::Int(k.from),
            Bound::Text(k.key.clone()),
            Bound::Int(k.to),
            Bound::Int(k.transferred),
            Bound::Int(k.at_ms as i64),
        ]);
    }
    // The keys just written are spared: the statement sees the table as it was before it.
    let and = guard.replace(" WHERE ", " AND ");
    clauses.push(format!(
        "ko AS (DELETE FROM transfer_keys WHERE created_ms < ? AND (from_user, idem_key) NOT IN (VALUES {}){and})",
        rows(2)
    ));
    values.push(Bound::Int(newest.saturating_sub(KEEP_MS) as i64));
    for k in &last {
        values.extend([Bound::Int(k.from), Bound::Text(k.key.clone())]);
    }
}

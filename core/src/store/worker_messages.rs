//! Stored messages to workers.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Store;
use crate::worker_messages::{Validity, WorkerMessage, PAGE_SIZE};
use crate::Result;

const COLUMNS: &str = "id, worker_id, user_id, message, origin, expiry_ms, created_ms";

fn message_from_row(r: &AnyRow) -> Result<WorkerMessage> {
    Ok(WorkerMessage {
        id: r.try_get("id")?,
        worker_id: r.try_get("worker_id")?,
        user_id: r.try_get("user_id")?,
        message: r.try_get("message")?,
        origin: r.try_get("origin")?,
        expiry_ms: r.try_get("expiry_ms")?,
        created_ms: r.try_get("created_ms")?,
    })
}

impl Store {
    pub async fn insert_worker_message(&self, m: &WorkerMessage) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO worker_messages (id, worker_id, user_id, message, origin, expiry_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(&m.id)
        .bind(m.worker_id.as_deref())
        .bind(m.user_id)
        .bind(&m.message)
        .bind(m.origin.as_deref())
        .bind(m.expiry_ms)
        .bind(m.created_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn worker_message(&self, id: &str) -> Result<Option<WorkerMessage>> {
        let q = format!("SELECT {COLUMNS} FROM worker_messages WHERE id = ?");
        match sqlx::query(self.sql(&q)).bind(id).fetch_optional(&self.pool).await? {
            Some(r) => Ok(Some(message_from_row(&r)?)),
            None => Ok(None),
        }
    }

    pub async fn delete_worker_message(&self, id: &str) -> Result<()> {
        sqlx::query(self.sql("DELETE FROM worker_messages WHERE id = ?"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every message not expired at `now_ms` (for the pops' copy), forgetting those expired a
    /// month ago.
    pub async fn active_worker_messages(&self, now_ms: i64) -> Result<Vec<WorkerMessage>> {
        sqlx::query(self.sql("DELETE FROM worker_messages WHERE expiry_ms < ?"))
            .bind(now_ms - 30 * 86_400_000)
            .execute(&self.pool)
            .await?;
        let q = format!("SELECT {COLUMNS} FROM worker_messages WHERE expiry_ms > ? ORDER BY created_ms, id");
        let rows = sqlx::query(self.sql(&q)).bind(now_ms).fetch_all(&self.pool).await?;
        rows.iter().map(message_from_row).collect()
    }

    /// A page of messages: `user_id`'s and those to every worker (all messages when `None`), to
    /// `worker_id` when given.
    pub async fn list_worker_messages(
        &self,
        user_id: Option<i64>,
        worker_id: Option<&str>,
        validity: Validity,
        now_ms: i64,
        page: i64,
    ) -> Result<Vec<WorkerMessage>> {
        let when = match validity {
            Validity::Active => "expiry_ms > ?",
            Validity::Expired => "expiry_ms <= ?",
            Validity::All => "? = ?",
        };
        let q = format!(
            "SELECT {COLUMNS} FROM worker_messages WHERE (? < 0 OR user_id = ? OR worker_id IS NULL) AND (? = '' OR worker_id = ?) \
             AND {when} ORDER BY created_ms, id LIMIT ? OFFSET ?"
        );
        let u = user_id.unwrap_or(-1);
        let w = worker_id.unwrap_or("");
        let mut query = sqlx::query(self.sql(&q)).bind(u).bind(u).bind(w).bind(w).bind(now_ms);
        if validity == Validity::All {
            query = query.bind(now_ms);
        }
        let rows = query
            .bind(PAGE_SIZE)
            .bind((page.max(1) - 1).saturating_mul(PAGE_SIZE))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }
}

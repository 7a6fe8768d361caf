//! Stored shared keys.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Store;
use crate::shared_keys::SharedKey;
use crate::Result;

const COLUMNS: &str = "k.id, k.user_id, k.name, k.kudos, k.utilized, k.expiry_ms, k.created_ms, k.max_image_pixels, \
    k.max_image_steps, k.max_text_tokens, COALESCE(u.username, '') AS owner";

fn key_from_row(r: &AnyRow) -> Result<SharedKey> {
    let user_id: i64 = r.try_get("user_id")?;
    let owner: String = r.try_get("owner")?;
    Ok(SharedKey {
        id: r.try_get("id")?,
        user_id,
        username: format!("{owner}#{user_id}"),
        name: r.try_get("name")?,
        kudos: r.try_get("kudos")?,
        utilized: r.try_get("utilized")?,
        expiry_ms: r.try_get("expiry_ms")?,
        created_ms: r.try_get("created_ms")?,
        max_image_pixels: r.try_get("max_image_pixels")?,
        max_image_steps: r.try_get("max_image_steps")?,
        max_text_tokens: r.try_get("max_text_tokens")?,
    })
}

impl Store {
    pub async fn shared_key(&self, id: &str) -> Result<Option<SharedKey>> {
        let q = format!("SELECT {COLUMNS} FROM shared_keys k LEFT JOIN users u ON u.id = k.user_id WHERE k.id = ?");
        match sqlx::query(self.sql(&q)).bind(id).fetch_optional(&self.pool).await? {
            Some(r) => Ok(Some(key_from_row(&r)?)),
            None => Ok(None),
        }
    }

    /// The ids of `user_id`'s shared keys, oldest first.
    pub async fn shared_key_ids(&self, user_id: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(self.sql("SELECT id FROM shared_keys WHERE user_id = ? ORDER BY created_ms, id"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    pub async fn insert_shared_key(&self, k: &SharedKey) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO shared_keys (id, user_id, name, kudos, utilized, expiry_ms, created_ms, max_image_pixels, max_image_steps, max_text_tokens) \
             VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
        ))
        .bind(&k.id)
        .bind(k.user_id)
        .bind(k.name.as_deref())
        .bind(k.kudos)
        .bind(k.expiry_ms)
        .bind(k.created_ms)
        .bind(k.max_image_pixels)
        .bind(k.max_image_steps)
        .bind(k.max_text_tokens)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a key's settings (not what it spent).
    pub async fn update_shared_key(&self, k: &SharedKey) -> Result<()> {
        sqlx::query(self.sql(
            "UPDATE shared_keys SET name = ?, kudos = ?, expiry_ms = ?, max_image_pixels = ?, max_image_steps = ?, max_text_tokens = ? WHERE id = ?",
        ))
        .bind(k.name.as_deref())
        .bind(k.kudos)
        .bind(k.expiry_ms)
        .bind(k.max_image_pixels)
        .bind(k.max_image_steps)
        .bind(k.max_text_tokens)
        .bind(&k.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_shared_key(&self, id: &str) -> Result<()> {
        sqlx::query(self.sql("DELETE FROM shared_keys WHERE id = ?"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts `kudos` spent through a key: its limit goes down (not below 0; -1 stays).
    pub async fn spend_shared_key(&self, id: &str, kudos: i64) -> Result<()> {
        sqlx::query(self.sql(
            "UPDATE shared_keys SET utilized = utilized + ?, \
             kudos = CASE WHEN kudos = -1 THEN -1 WHEN kudos - ? < 0 THEN 0 ELSE kudos - ? END WHERE id = ?",
        ))
        .bind(kudos)
        .bind(kudos)
        .bind(kudos)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

//! Stored styles, their example images, and collections of styles.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Store;
use crate::styles::{Collection, Style, StyleKind};
use crate::Result;
use horde_protocol::styles::{StyleExample, StyleReference};

const STYLE_COLUMNS: &str = "s.id, s.style_type, s.user_id, s.name, s.info, s.prompt, s.params, s.models, s.tags, s.public, s.nsfw, \
    s.use_count, s.created_ms, s.sharedkey_id, COALESCE(u.username, '') AS author";

const COLLECTION_COLUMNS: &str =
    "c.id, c.style_type, c.user_id, c.name, c.info, c.public, c.use_count, c.created_ms, COALESCE(u.username, '') AS author";

fn kind_of(row: &AnyRow) -> Result<StyleKind> {
    let k: String = row.try_get("style_type")?;
    StyleKind::parse(&k).ok_or_else(|| crate::HordeError::Internal(format!("bad style type in storage: {k}")))
}

fn creator(row: &AnyRow) -> Result<String> {
    let author: String = row.try_get("author")?;
    Ok(format!("{author}#{}", row.try_get::<i64, _>("user_id")?))
}

fn style_from_row(row: &AnyRow) -> Result<Style> {
    let json_list = |c: &str| -> Result<Vec<String>> {
        let s: String = row.try_get(c)?;
        Ok(serde_json::from_str(&s).unwrap_or_default())
    };
    let params: String = row.try_get("params")?;
    Ok(Style {
        id: row.try_get("id")?,
        kind: kind_of(row)?,
        user_id: row.try_get("user_id")?,
        creator: creator(row)?,
        name: row.try_get("name")?,
        info: row.try_get("info")?,
        prompt: row.try_get("prompt")?,
        params: serde_json::from_str(&params).unwrap_or_else(|_| serde_json::json!({})),
        models: json_list("models")?,
        tags: json_list("tags")?,
        public: row.try_get::<i64, _>("public")? != 0,
        nsfw: row.try_get::<i64, _>("nsfw")? != 0,
        use_count: row.try_get("use_count")?,
        created_ms: row.try_get("created_ms")?,
        examples: Vec::new(),
        sharedkey_id: row.try_get("sharedkey_id")?,
    })
}

fn collection_from_row(row: &AnyRow) -> Result<Collection> {
    Ok(Collection {
        id: row.try_get("id")?,
        kind: kind_of(row)?,
        user_id: row.try_get("user_id")?,
        creator: creator(row)?,
        name: row.try_get("name")?,
        info: row.try_get("info")?,
        public: row.try_get::<i64, _>("public")? != 0,
        use_count: row.try_get("use_count")?,
        created_ms: row.try_get("created_ms")?,
        styles: Vec::new(),
    })
}

fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl Store {
    // ----- styles ------------------------------------------------------------------------------

    pub async fn insert_style(&self, s: &Style) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO styles (id, style_type, user_id, name, info, prompt, params, models, tags, public, nsfw, use_count, created_ms, sharedkey_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
        ))
        .bind(&s.id)
        .bind(s.kind.as_str())
        .bind(s.user_id)
        .bind(&s.name)
        .bind(&s.info)
        .bind(&s.prompt)
        .bind(s.params.to_string())
        .bind(json(&s.models))
        .bind(json(&s.tags))
        .bind(s.public as i64)
        .bind(s.nsfw as i64)
        .bind(s.created_ms)
        .bind(s.sharedkey_id.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a style's editable fields.
    pub async fn update_style(&self, s: &Style) -> Result<()> {
        sqlx::query(
            self.sql(
                "UPDATE styles SET name = ?, info = ?, prompt = ?, params = ?, models = ?, tags = ?, public = ?, nsfw = ?, sharedkey_id = ? WHERE id = ?",
            ),
        )
        .bind(&s.name)
        .bind(&s.info)
        .bind(&s.prompt)
        .bind(s.params.to_string())
        .bind(json(&s.models))
        .bind(json(&s.tags))
        .bind(s.public as i64)
        .bind(s.nsfw as i64)
        .bind(s.sharedkey_id.as_deref())
        .bind(&s.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a style with its examples and its places in collections.
    pub async fn delete_style(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "DELETE FROM style_examples WHERE style_id = ?",
            "DELETE FROM style_collection_members WHERE style_id = ?",
            "DELETE FROM styles WHERE id = ?",
        ] {
            sqlx::query(self.sql(table)).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn with_examples(&self, mut s: Style) -> Result<Style> {
        s.examples = self.style_examples(&s.id).await?;
        Ok(s)
    }

    pub async fn style_by_id(&self, id: &str) -> Result<Option<Style>> {
        let q = format!("SELECT {STYLE_COLUMNS} FROM styles s LEFT JOIN users u ON u.id = s.user_id WHERE s.id = ?");
        match sqlx::query(self.sql(&q)).bind(id).fetch_optional(&self.pool).await? {
            Some(row) => Ok(Some(self.with_examples(style_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// The oldest style called `name` (by `user_id` when given).
    pub async fn style_by_name(&self, name: &str, user_id: Option<i64>) -> Result<Option<Style>> {
        let q = format!(
            "SELECT {STYLE_COLUMNS} FROM styles s LEFT JOIN users u ON u.id = s.user_id WHERE s.name = ? AND (? < 0 OR s.user_id = ?) \
             ORDER BY s.created_ms, s.id LIMIT 1"
        );
        let u = user_id.unwrap_or(-1);
        match sqlx::query(self.sql(&q))
            .bind(name)
            .bind(u)
            .bind(u)
            .fetch_optional(&self.pool)
            .await?
        {
            Some(row) => Ok(Some(self.with_examples(style_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// Whether `user_id` has a style called `name` other than `except`.
    pub async fn style_name_taken(&self, user_id: i64, name: &str, except: &str) -> Result<bool> {
        let row = sqlx::query(self.sql("SELECT COUNT(*) AS n FROM styles WHERE user_id = ? AND name = ? AND id <> ?"))
            .bind(user_id)
            .bind(name)
            .bind(except)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Public styles of `kind`, most used first (or oldest first with `by_age`).
    pub async fn public_styles(&self, kind: StyleKind, by_age: bool) -> Result<Vec<Style>> {
        let order = if by_age {
            "s.created_ms ASC, s.id"
        } else {
            "s.use_count DESC, s.created_ms ASC, s.id"
        };
        let q = format!(
            "SELECT {STYLE_COLUMNS} FROM styles s LEFT JOIN users u ON u.id = s.user_id WHERE s.style_type = ? AND s.public = 1 ORDER BY {order}"
        );
        let rows = sqlx::query(self.sql(&q)).bind(kind.as_str()).fetch_all(&self.pool).await?;
        rows.iter().map(style_from_row).collect()
    }

    /// The ids and kinds of `user_id`'s styles (for their account details).
    pub async fn styles_of(&self, user_id: i64) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(self.sql("SELECT id, name, style_type FROM styles WHERE user_id = ? ORDER BY created_ms"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?, r.try_get("style_type")?)))
            .collect()
    }

    /// How many styles a shared key pays for.
    pub async fn styles_with_shared_key(&self, key_id: &str) -> Result<i64> {
        let row = sqlx::query(self.sql("SELECT COUNT(*) AS n FROM styles WHERE sharedkey_id = ?"))
            .bind(key_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn count_style_use(&self, id: &str) -> Result<()> {
        sqlx::query(self.sql("UPDATE styles SET use_count = use_count + 1 WHERE id = ?"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ----- examples ----------------------------------------------------------------------------

    pub async fn style_examples(&self, style_id: &str) -> Result<Vec<StyleExample>> {
        let rows = sqlx::query(self.sql("SELECT id, url, is_primary FROM style_examples WHERE style_id = ? ORDER BY created_ms, id"))
            .bind(style_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StyleExample {
                    id: r.try_get("id")?,
                    url: r.try_get("url")?,
                    primary: r.try_get::<i64, _>("is_primary")? != 0,
                })
            })
            .collect()
    }

    /// Stores a style's examples as given (all of them, replacing the stored ones).
    pub async fn set_style_examples(&self, style_id: &str, examples: &[StyleExample], now_ms: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql("DELETE FROM style_examples WHERE style_id = ?"))
            .bind(style_id)
            .execute(&mut *tx)
            .await?;
        for (i, e) in examples.iter().enumerate() {
            sqlx::query(self.sql("INSERT INTO style_examples (id, style_id, url, is_primary, created_ms) VALUES (?, ?, ?, ?, ?)"))
                .bind(&e.id)
                .bind(style_id)
                .bind(&e.url)
                .bind(e.primary as i64)
                .bind(now_ms + i as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ----- collections -------------------------------------------------------------------------

    /// Stores a collection (new or changed) with its member styles.
    pub async fn save_collection(&self, c: &Collection, new: bool) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if new {
            sqlx::query(self.sql(
                "INSERT INTO style_collections (id, style_type, user_id, name, info, public, use_count, created_ms) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            ))
            .bind(&c.id)
            .bind(c.kind.as_str())
            .bind(c.user_id)
            .bind(&c.name)
            .bind(&c.info)
            .bind(c.public as i64)
            .bind(c.created_ms)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(self.sql("UPDATE style_collections SET style_type = ?, name = ?, info = ?, public = ? WHERE id = ?"))
                .bind(c.kind.as_str())
                .bind(&c.name)
                .bind(&c.info)
                .bind(c.public as i64)
                .bind(&c.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(self.sql("DELETE FROM style_collection_members WHERE collection_id = ?"))
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
        for (i, s) in c.styles.iter().enumerate() {
            sqlx::query(self.sql("INSERT INTO style_collection_members (collection_id, style_id, position) VALUES (?, ?, ?)"))
                .bind(&c.id)
                .bind(&s.id)
                .bind(i as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_collection(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for q in [
            "DELETE FROM style_collection_members WHERE collection_id = ?",
            "DELETE FROM style_collections WHERE id = ?",
        ] {
            sqlx::query(self.sql(q)).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn with_members(&self, mut c: Collection) -> Result<Collection> {
        let rows = sqlx::query(self.sql(
            "SELECT s.id, s.name, s.user_id, COALESCE(u.username, '') AS author FROM style_collection_members m \
             JOIN styles s ON s.id = m.style_id LEFT JOIN users u ON u.id = s.user_id WHERE m.collection_id = ? ORDER BY m.position",
        ))
        .bind(&c.id)
        .fetch_all(&self.pool)
        .await?;
        c.styles = rows
            .iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                Ok(StyleReference {
                    name: format!("{}::style::{name}", creator(r)?),
                    id: r.try_get("id")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(c)
    }

    pub async fn collection_by_id(&self, id: &str) -> Result<Option<Collection>> {
        let q = format!("SELECT {COLLECTION_COLUMNS} FROM style_collections c LEFT JOIN users u ON u.id = c.user_id WHERE c.id = ?");
        match sqlx::query(self.sql(&q)).bind(id).fetch_optional(&self.pool).await? {
            Some(row) => Ok(Some(self.with_members(collection_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// The oldest collection called `name` (by `user_id` when given).
    pub async fn collection_by_name(&self, name: &str, user_id: Option<i64>) -> Result<Option<Collection>> {
        let q = format!(
            "SELECT {COLLECTION_COLUMNS} FROM style_collections c LEFT JOIN users u ON u.id = c.user_id \
             WHERE c.name = ? AND (? < 0 OR c.user_id = ?) ORDER BY c.created_ms, c.id LIMIT 1"
        );
        let u = user_id.unwrap_or(-1);
        match sqlx::query(self.sql(&q))
            .bind(name)
            .bind(u)
            .bind(u)
            .fetch_optional(&self.pool)
            .await?
        {
            Some(row) => Ok(Some(self.with_members(collection_from_row(&row)?).await?)),
            None => Ok(None),
        }
    }

    pub async fn collection_name_taken(&self, user_id: i64, name: &str, except: &str) -> Result<bool> {
        let row = sqlx::query(self.sql("SELECT COUNT(*) AS n FROM style_collections WHERE user_id = ? AND name = ? AND id <> ?"))
            .bind(user_id)
            .bind(name)
            .bind(except)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Public collections (of `kind` when given), most used first (or oldest first).
    pub async fn public_collections(&self, kind: Option<StyleKind>, by_age: bool, offset: i64, limit: i64) -> Result<Vec<Collection>> {
        let order = if by_age {
            "c.created_ms ASC, c.id"
        } else {
            "c.use_count DESC, c.created_ms ASC, c.id"
        };
        let q = format!(
            "SELECT {COLLECTION_COLUMNS} FROM style_collections c LEFT JOIN users u ON u.id = c.user_id \
             WHERE c.public = 1 AND (? = '' OR c.style_type = ?) ORDER BY {order} LIMIT ? OFFSET ?"
        );
        let k = kind.map(StyleKind::as_str).unwrap_or("");
        let rows = sqlx::query(self.sql(&q))
            .bind(k)
            .bind(k)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.with_members(collection_from_row(r)?).await?);
        }
        Ok(out)
    }

    pub async fn count_collection_use(&self, id: &str) -> Result<()> {
        sqlx::query(self.sql("UPDATE style_collections SET use_count = use_count + 1 WHERE id = ?"))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

//! Stored teams and their members.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Store;
use crate::teams::{name_key, Team};
use crate::Result;

const COLUMNS: &str = "t.id, t.name, t.info, t.owner_id, t.created_ms, COALESCE(u.username, '') AS owner";

fn team_from_row(r: &AnyRow) -> Result<Team> {
    let owner_id: i64 = r.try_get("owner_id")?;
    let owner: String = r.try_get("owner")?;
    Ok(Team {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        info: r.try_get("info")?,
        owner_id,
        creator: format!("{owner}#{owner_id}"),
        created_ms: r.try_get("created_ms")?,
    })
}

impl Store {
    pub async fn teams(&self) -> Result<Vec<Team>> {
        let q = format!("SELECT {COLUMNS} FROM teams t LEFT JOIN users u ON u.id = t.owner_id ORDER BY t.created_ms, t.id");
        let rows = sqlx::query(self.sql(&q)).fetch_all(&self.pool).await?;
        rows.iter().map(team_from_row).collect()
    }

    pub async fn team(&self, id: &str) -> Result<Option<Team>> {
        let q = format!("SELECT {COLUMNS} FROM teams t LEFT JOIN users u ON u.id = t.owner_id WHERE t.id = ?");
        match sqlx::query(self.sql(&q)).bind(id).fetch_optional(&self.pool).await? {
            Some(r) => Ok(Some(team_from_row(&r)?)),
            None => Ok(None),
        }
    }

    /// Whether a team other than `except` has this name (in any case).
    pub async fn team_name_taken(&self, name: &str, except: &str) -> Result<bool> {
        let row = sqlx::query(self.sql("SELECT COUNT(*) AS n FROM teams WHERE name_key = ? AND id <> ?"))
            .bind(name_key(name))
            .bind(except)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    pub async fn insert_team(&self, t: &Team) -> Result<()> {
        sqlx::query(self.sql("INSERT INTO teams (id, name, name_key, info, owner_id, created_ms) VALUES (?, ?, ?, ?, ?, ?)"))
            .bind(&t.id)
            .bind(&t.name)
            .bind(name_key(&t.name))
            .bind(&t.info)
            .bind(t.owner_id)
            .bind(t.created_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn update_team(&self, t: &Team) -> Result<()> {
        sqlx::query(self.sql("UPDATE teams SET name = ?, name_key = ?, info = ? WHERE id = ?"))
            .bind(&t.name)
            .bind(name_key(&t.name))
            .bind(&t.info)
            .bind(&t.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes a team; its workers are in no team after.
    pub async fn delete_team(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for q in ["DELETE FROM team_workers WHERE team_id = ?", "DELETE FROM teams WHERE id = ?"] {
            sqlx::query(self.sql(q)).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts a worker in a team, or in none.
    pub async fn set_worker_team(&self, worker_id: &str, team_id: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql("DELETE FROM team_workers WHERE worker_id = ?"))
            .bind(worker_id)
            .execute(&mut *tx)
            .await?;
        if let Some(t) = team_id {
            sqlx::query(self.sql("INSERT INTO team_workers (worker_id, team_id) VALUES (?, ?)"))
                .bind(worker_id)
                .bind(t)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The ids of a team's workers.
    pub async fn team_worker_ids(&self, team_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(self.sql("SELECT worker_id FROM team_workers WHERE team_id = ? ORDER BY worker_id"))
            .bind(team_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("worker_id")?)).collect()
    }

    /// Every (worker id, team id, team name) membership.
    pub async fn team_memberships(&self) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(self.sql("SELECT m.worker_id, t.id, t.name FROM team_workers m JOIN teams t ON t.id = m.team_id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("worker_id")?, r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }
}

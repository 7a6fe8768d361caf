//! Writing a [`FlushBatch`]: kudos postings with the balance changes they imply, transfer keys,
//! counters, worker statistics and image timings, all in one transaction.
//!
//! What a caller of `Horde::commit` waits for is journaled instead (see [`super::journal`]), and
//! folded in by the next batch written here. On SQLite batches go through the writer connection
//! of [`super::sqlite_writer`]. With a shared state (PostgreSQL), a batch of kudos movements alone
//! (what a waiting caller's flush takes) is one statement, guarded by the batch's token, with its
//! data in modifying `WITH` clauses, so one round trip and no `BEGIN`/`COMMIT` (a single
//! statement is atomic), sent on a connection kept for it.

use std::collections::HashMap;

use sqlx::Row;

use super::script::{Bound, Script};
use super::{b, generation_stats, transfer_keys, Store};
use crate::accounts::{User, UserRecords};
use crate::kudos::ledger::apply_to_user;
use crate::kudos::transfer_keys::TransferKey;
use crate::kudos::{Account, Posting};
use crate::workers::Worker;
use crate::Result;

/// Everything the persister writes in one transaction.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct FlushBatch {
    pub postings: Vec<Posting>,
    pub records: HashMap<i64, UserRecords>,
    pub workers: Vec<Worker>,
    /// Normalized image timings for the kudos model.
    pub timings: Vec<(u64, crate::kudos::image_model::Timing)>,
    /// Keys of the transfers among `postings` (`Idempotency-Key`).
    #[serde(default)]
    pub transfer_keys: Vec<TransferKey>,
    /// Finished generations to add to the stored figures, one per kind, model and hour.
    #[serde(default)]
    pub generations: Vec<crate::generation_stats::GenerationCount>,
}

impl FlushBatch {
    pub fn is_empty(&self) -> bool {
        self.postings.is_empty()
            && self.records.is_empty()
            && self.workers.is_empty()
            && self.timings.is_empty()
            && self.transfer_keys.is_empty()
            && self.generations.is_empty()
    }

    /// Whether the batch holds kudos movements (postings, transfer keys) and nothing else.
    fn movements_only(&self) -> bool {
        self.records.is_empty() && self.workers.is_empty() && self.timings.is_empty() && self.generations.is_empty()
    }
}

/// Ledger rows written per INSERT statement.
const POSTINGS_PER_INSERT: usize = 200;
/// Accounts whose balances one UPDATE statement changes.
const USERS_PER_UPDATE: usize = 200;
/// Stored batch tokens are forgotten after a day.
const TOKEN_KEEP_MS: u64 = 86_400_000;

const RECORD_COLUMNS: &str = "usage_tokens, requests_text, contribution_tokens, fulfilled_text, usage_kps, requests_image, \
     contribution_kps, fulfilled_image, id";
const APPLY_RECORDS: &str = "UPDATE users SET usage_tokens = users.usage_tokens + d.usage_tokens, \
     requests_text = users.requests_text + d.requests_text, contribution_tokens = users.contribution_tokens + d.contribution_tokens, \
     fulfilled_text = users.fulfilled_text + d.fulfilled_text, usage_kps = users.usage_kps + d.usage_kps, \
     requests_image = users.requests_image + d.requests_image, contribution_kps = users.contribution_kps + d.contribution_kps, \
     fulfilled_image = users.fulfilled_image + d.fulfilled_image FROM d WHERE users.id = d.id";

const INSERT_TIMING: &str = "INSERT INTO image_timings (created_ms, width, height, steps, sampler, cfg_scale, denoising_strength, \
     karras, hires_fix, source_processing, control_type, post_processing, loras, tis, seconds) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

const SAVE_WORKER: &str = "UPDATE workers SET name = ?, info = ?, last_check_in = ?, maintenance = ?, maintenance_msg = ?, \
     paused = ?, nsfw = ?, models = ?, max_length = ?, max_context_length = ?, threads = ?, bridge_agent = ?, uptime_ms = ?, \
     requests_fulfilled = ?, tokens_generated = ?, kudos_generated = ?, kudos_uptime = ?, uncompleted_jobs = ?, \
     kps_generated = ? WHERE id = ?";

/// The statement saving a worker's settings and statistics.
pub(super) fn save_worker(w: &Worker) -> (&'static str, Vec<Bound>) {
    let text = |s: &str| Bound::Text(s.to_string());
    let values = vec![
        text(&w.name),
        text(&w.info),
        Bound::Int((w.last_check_in_ms / 1000) as i64),
        Bound::Int(b(w.maintenance)),
        w.maintenance_msg.as_deref().map_or(Bound::Null, text),
        Bound::Int(b(w.paused)),
        Bound::Int(b(w.nsfw)),
        Bound::Text(serde_json::to_string(&w.models).unwrap_or_else(|_| "[]".into())),
        Bound::Int(w.max_length),
        Bound::Int(w.max_context_length),
        Bound::Int(w.threads),
        text(&w.bridge_agent),
        Bound::Int(w.uptime_ms as i64),
        Bound::Int(w.requests_fulfilled),
        Bound::Int(w.tokens_generated),
        Bound::Int(w.kudos_generated),
        Bound::Int(w.kudos_uptime),
        Bound::Int(w.uncompleted_jobs),
        Bound::Int(w.kps_generated),
        Bound::Text(w.id.to_string()),
    ];
    (SAVE_WORKER, values)
}

/// A batch's kudos movements folded per account: each account's balance and bucket changes
/// (the same bucket rule as in memory), and the mint's and burn's.
struct Movements {
    /// Account id → change of `kudos, accumulated, gifted, received, admin, awarded`.
    users: Vec<(i64, [i64; 6])>,
    mint: i64,
    burn: i64,
}

impl Movements {
    fn of(postings: &[Posting]) -> Self {
        let mut users: HashMap<i64, User> = HashMap::new();
        let (mut mint, mut burn) = (0, 0);
        for p in postings {
            for (account, delta) in [(p.from, -p.amount), (p.to, p.amount)] {
                match account {
                    Account::User(id) => apply_to_user(users.entry(id).or_insert_with(|| User::new(id, "", "")), p.kind, delta),
                    Account::Mint => mint += delta,
                    Account::Burn => burn += delta,
                }
            }
        }
        let mut users: Vec<(i64, [i64; 6])> = users
            .into_iter()
            .map(|(id, u)| {
                let k = &u.buckets;
                (id, [u.kudos, k.accumulated, k.gifted, k.received, k.admin, k.awarded])
            })
            .collect();
        users.sort_unstable_by_key(|(id, _)| *id); // one order of row locks for every writer
        Self { users, mint, burn }
    }
}

pub(super) fn posting_values(p: &Posting) -> [Bound; 5] {
    [
        Bound::Int(p.at_ms as i64),
        Bound::Text(p.kind.as_str().to_string()),
        Bound::Text(p.from.key()),
        Bound::Text(p.to.key()),
        Bound::Int(p.amount),
    ]
}

/// `(?, ?, …), (?, ?, …)`: `rows` rows of `width` placeholders.
pub(super) fn placeholders(rows: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; rows].join(", ")
}

const USER_DELTA_COLUMNS: &str = "id, kudos, accumulated, gifted, received, admin, awarded";
const APPLY_USER_DELTAS: &str = "UPDATE users SET kudos = users.kudos + d.kudos, kd_accumulated = users.kd_accumulated + d.accumulated, \
     kd_gifted = users.kd_gifted + d.gifted, kd_received = users.kd_received + d.received, \
     kd_admin = users.kd_admin + d.admin, kd_awarded = users.kd_awarded + d.awarded FROM d WHERE users.id = d.id";
const APPLY_SYSTEM: &str =
    "UPDATE system_accounts SET balance = balance + CASE name WHEN 'mint' THEN ? ELSE ? END WHERE name IN ('mint', 'burn')";

/// The statements storing a whole batch, up to [`POSTINGS_PER_INSERT`] ledger rows and
/// [`USERS_PER_UPDATE`] accounts per statement.
pub(super) fn batch_script(batch: &FlushBatch) -> Script {
    let mut script = Script::default();
    for chunk in batch.postings.chunks(POSTINGS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO kudos_ledger (created_ms, kind, from_account, to_account, amount) VALUES {}",
            placeholders(chunk.len(), 5)
        );
        script.push(sql, chunk.iter().flat_map(posting_values).collect());
    }
    let moved = Movements::of(&batch.postings);
    for chunk in moved.users.chunks(USERS_PER_UPDATE) {
        let sql = format!(
            "WITH d ({USER_DELTA_COLUMNS}) AS (VALUES {}) {APPLY_USER_DELTAS}",
            placeholders(chunk.len(), 7)
        );
        let values = chunk
            .iter()
            .flat_map(|(id, d)| std::iter::once(*id).chain(d.iter().copied()))
            .map(Bound::Int)
            .collect();
        script.push(sql, values);
    }
    if moved.mint != 0 || moved.burn != 0 {
        script.push(APPLY_SYSTEM.into(), vec![Bound::Int(moved.mint), Bound::Int(moved.burn)]);
    }
    transfer_keys::push_transfer_keys(&mut script, &batch.transfer_keys);
    let mut records: Vec<(&i64, &UserRecords)> = batch.records.iter().collect();
    records.sort_unstable_by_key(|(id, _)| **id);
    let record_values = |(id, r): &(&i64, &UserRecords)| {
        [
            r.usage_tokens,
            r.requests_text,
            r.contribution_tokens,
            r.fulfilled_text,
            r.usage_kps,
            r.requests_image,
            r.contribution_kps,
            r.fulfilled_image,
            **id,
        ]
    };
    // One statement per chunk of accounts: one round trip on PostgreSQL however many moved.
    for chunk in records.chunks(USERS_PER_UPDATE) {
        let sql = format!(
            "WITH d ({RECORD_COLUMNS}) AS (VALUES {}) {APPLY_RECORDS}",
            placeholders(chunk.len(), 9)
        );
        let values = chunk.iter().flat_map(record_values).map(Bound::Int).collect();
        script.push(sql, values);
    }
    for w in &batch.workers {
        let (sql, values) = save_worker(w);
        script.push(sql.into(), values);
    }
    for (at_ms, t) in &batch.timings {
        let p = &t.payload;
        let values = vec![
            Bound::Int(*at_ms as i64),
            Bound::Int(p.width),
            Bound::Int(p.height),
            Bound::Int(p.steps),
            Bound::Text(p.sampler.clone()),
            Bound::Float(p.cfg_scale),
            Bound::Float(p.denoising_strength),
            Bound::Int(b(p.karras)),
            Bound::Int(b(p.hires_fix)),
            Bound::Text(p.source_processing.clone()),
            Bound::Text(p.control_type.clone()),
            Bound::Text(p.post_processing.join(";")),
            Bound::Int(p.loras),
            Bound::Int(p.tis),
            Bound::Float(t.seconds),
        ];
        script.push(INSERT_TIMING.into(), values);
    }
    generation_stats::push_generation_counts(&mut script, &batch.generations);
    script
}

/// PostgreSQL, with a shared state: a batch of kudos movements as one statement (modifying
/// `WITH` clauses), stored once under `token` (every clause depends on the token's row being
/// new). The statement answers one row: 1 if the batch was stored, 0 if its token was stored
/// already.
fn movements_statement(batch: &FlushBatch, token: &str, now_ms: u64) -> (String, Vec<Bound>) {
    let mut clauses: Vec<String> = vec![
        "t AS (INSERT INTO flushed_batches (token, created_ms) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING 1)".into(),
        "tk AS (DELETE FROM flushed_batches WHERE created_ms < ? AND EXISTS (SELECT 1 FROM t))".into(),
    ];
    let mut values: Vec<Bound> = vec![
        Bound::Text(token.to_string()),
        Bound::Int(now_ms as i64),
        Bound::Int(now_ms.saturating_sub(TOKEN_KEEP_MS) as i64),
    ];
    let guard = " WHERE EXISTS (SELECT 1 FROM t)";
    let and = " AND EXISTS (SELECT 1 FROM t)";
    if !batch.postings.is_empty() {
        clauses.push(format!(
            "l AS (INSERT INTO kudos_ledger (created_ms, kind, from_account, to_account, amount) \
             SELECT * FROM (VALUES {}) AS v{guard})",
            placeholders(batch.postings.len(), 5)
        ));
        values.extend(batch.postings.iter().flat_map(posting_values));
    }
    let moved = Movements::of(&batch.postings);
    if !moved.users.is_empty() {
        clauses.push(format!(
            "d ({USER_DELTA_COLUMNS}) AS (VALUES {}), u AS ({APPLY_USER_DELTAS}{and})",
            placeholders(moved.users.len(), 7)
        ));
        values.extend(
            moved
                .users
                .iter()
                .flat_map(|(id, d)| std::iter::once(*id).chain(d.iter().copied()))
                .map(Bound::Int),
        );
    }
    if moved.mint != 0 || moved.burn != 0 {
        clauses.push(format!("s AS ({APPLY_SYSTEM}{and})"));
        values.extend([Bound::Int(moved.mint), Bound::Int(moved.burn)]);
    }
    transfer_keys::push_transfer_key_clauses(&mut clauses, &mut values, &batch.transfer_keys, guard);
    (
        format!("WITH {} SELECT count(*)::bigint AS stored FROM t", clauses.join(", ")),
        values,
    )
}

impl Store {
    /// Writes a batch in one transaction: ledger postings with the balance and bucket changes they
    /// imply, counters, and worker stats, after every posting journaled so far (see `journal`).
    /// Either all of it is stored or none.
    pub async fn flush(&self, batch: &FlushBatch) -> Result<()> {
        self.fold_into(batch).await
    }

    /// With a shared state: writes a batch once under `token`. A batch whose token is already
    /// stored is skipped, and `false` returned. Stored tokens older than a day are forgotten.
    /// `now_ms` dates the token.
    pub async fn flush_once(&self, token: &str, batch: &FlushBatch, now_ms: u64) -> Result<bool> {
        if batch.is_empty() {
            return Ok(true);
        }
        if batch.movements_only() {
            if let Some(conn) = &self.commit_connection {
                let (sql, values) = movements_statement(batch, token, now_ms);
                let row = conn.fetch_one(self.sql(&sql), values).await?;
                return Ok(row.try_get::<i64, _>("stored")? > 0);
            }
        }
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(self.sql("INSERT INTO flushed_batches (token, created_ms) VALUES (?, ?) ON CONFLICT DO NOTHING"))
            .bind(token)
            .bind(now_ms as i64)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(self.sql("DELETE FROM flushed_batches WHERE created_ms < ?"))
            .bind(now_ms.saturating_sub(TOKEN_KEEP_MS) as i64)
            .execute(&mut *tx)
            .await?;
        self.run_script(&mut tx, batch_script(batch)).await?;
        tx.commit().await?;
        Ok(true)
    }
}

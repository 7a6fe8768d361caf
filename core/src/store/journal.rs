//! The journal of committed kudos postings: what a waiting caller's commit (group commit,
//! `Horde::commit`) writes, so that its answer means "stored" at the price of one short insert.
//!
//! On SQLite in a file the journal is a file beside the database, appended to from the caller's
//! thread (see `file_journal`); elsewhere (PostgreSQL, or SQLite held by another process) a
//! commit of kudos movements stores its postings in `pending_postings` (no index: one page on
//! SQLite) and its transfer keys in their table, and is then as durable as any transaction. The
//! periodic batch ([`Store::flush`]) takes every journaled posting in its own transaction and
//! writes them, ahead of its own, as ledger rows with the balance changes they imply; every
//! process start does the same before anything reads a balance (the journal file's records with
//! the number of the last one, in the same transaction). So the ledger and the balances
//! of the database lag the journal by one periodic batch at most, as they lagged memory before,
//! and nothing committed can be lost or stored twice: a posting leaves the journal in the
//! transaction that writes it to the ledger.

use std::sync::atomic::Ordering;

use sqlx::Row;

use super::batch::{batch_script, placeholders, posting_values, FlushBatch};
use super::script::{Bound, Script};
use super::{transfer_keys, Store};
use crate::kudos::{Account, Posting, PostingKind};
use crate::{HordeError, Result};

/// Journals one posting. One statement per posting, whose text never changes, so a connection
/// prepares it once.
pub(super) const JOURNAL_POSTING: &str =
    "INSERT INTO pending_postings (created_ms, kind, from_account, to_account, amount) VALUES (?, ?, ?, ?, ?)";

/// Stores the number of the journal file's last record folded (in the fold's transaction).
const FOLDED_SEQ: &str = "UPDATE journal_file SET folded_seq = ? WHERE id = 1";

/// Journaled postings a fold takes per transaction: the fold's transactions stay short (a commit
/// that arrives meanwhile waits for one), however much was journaled.
const FOLD_CHUNK: usize = 500;

/// Takes the oldest [`FOLD_CHUNK`] journaled postings (a fold's first statement).
pub(super) const TAKE_JOURNAL: &str = "DELETE FROM pending_postings WHERE id IN (SELECT id FROM pending_postings ORDER BY id LIMIT 500) \
     RETURNING id, created_ms, kind, from_account, to_account, amount";

/// A journaled posting as taken: its row id and the posting.
pub(super) type Journaled = (i64, Posting);

/// A taken row as a posting; an unknown kind or account is an error (the fold then stores nothing).
pub(super) fn journaled(id: i64, created_ms: i64, kind: &str, from: &str, to: &str, amount: i64) -> Result<Journaled> {
    let bad = |what: &str, v: &str| HordeError::Internal(format!("journaled posting {id}: unknown {what} {v:?}"));
    let posting = Posting {
        from: Account::parse(from).ok_or_else(|| bad("account", from))?,
        to: Account::parse(to).ok_or_else(|| bad("account", to))?,
        amount,
        kind: PostingKind::parse(kind).ok_or_else(|| bad("kind", kind))?,
        at_ms: created_ms.max(0) as u64,
    };
    Ok((id, posting))
}

/// The statements journaling a batch of kudos movements: its postings and its transfer keys.
pub(super) fn journal_script(batch: &FlushBatch) -> Script {
    let mut script = Script::default();
    for p in &batch.postings {
        script.push(JOURNAL_POSTING.into(), posting_values(p).into());
    }
    transfer_keys::push_transfer_keys(&mut script, &batch.transfer_keys);
    script
}

/// PostgreSQL: the same as one statement (modifying `WITH` clauses), so one round trip; it
/// answers one row. The batch holds a posting or a transfer key.
pub(super) fn journal_statement(batch: &FlushBatch) -> (String, Vec<super::script::Bound>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    if !batch.postings.is_empty() {
        clauses.push(format!(
            "p AS (INSERT INTO pending_postings (created_ms, kind, from_account, to_account, amount) SELECT * FROM (VALUES {}) AS v)",
            placeholders(batch.postings.len(), 5)
        ));
        values.extend(batch.postings.iter().flat_map(posting_values));
    }
    transfer_keys::push_transfer_key_clauses(&mut clauses, &mut values, &batch.transfer_keys, "");
    (format!("WITH {} SELECT 1::bigint AS stored", clauses.join(", ")), values)
}

/// `batch` with the journaled postings ahead of its own, in the order they were journaled.
pub(super) fn folded(mut taken: Vec<Journaled>, mut batch: FlushBatch) -> FlushBatch {
    taken.sort_unstable_by_key(|(id, _)| *id);
    let mut postings: Vec<Posting> = taken.into_iter().map(|(_, p)| p).collect();
    postings.append(&mut batch.postings);
    FlushBatch { postings, ..batch }
}

impl Store {
    /// Stores a batch of kudos movements (postings, transfer keys) in the journal: committed
    /// when this returns, folded into the ledger and balances by the next [`Store::flush`].
    pub async fn journal(&self, batch: &FlushBatch) -> Result<()> {
        if batch.postings.is_empty() && batch.transfer_keys.is_empty() {
            return Ok(());
        }
        if let Some(file) = &self.file_journal {
            file.append(|| batch.clone(), |_| {})?;
        } else if let Some(writer) = &self.writer {
            writer.commit(journal_script(batch)).await?;
        } else if let Some(conn) = &self.commit_connection {
            let (sql, values) = journal_statement(batch);
            conn.fetch_one(self.sql(&sql), values).await?;
        } else {
            let mut tx = self.pool.begin().await?;
            self.run_script(&mut tx, journal_script(batch)).await?;
            tx.commit().await?;
        }
        self.journaled.store(true, Ordering::Release);
        Ok(())
    }

    /// Takes the kudos movements to store (`take`) and journals them; on failure they go back
    /// through `restore`. Answers how many postings were journaled. With the journal in a file
    /// the take and the append are one step under the file's lock (see
    /// [`Store::journals_in_place`]).
    pub async fn journal_taken(&self, take: impl FnOnce() -> FlushBatch, restore: impl FnOnce(FlushBatch)) -> Result<usize> {
        if let Some(file) = &self.file_journal {
            let appended = file.append(take, restore)?;
            if appended.is_some() {
                self.journaled.store(true, Ordering::Release);
            }
            return Ok(appended.unwrap_or(0));
        }
        let batch = take();
        let n = batch.postings.len();
        if let Err(e) = self.journal(&batch).await {
            restore(batch);
            return Err(e);
        }
        Ok(n)
    }

    /// Whether the journal is a file this process appends to from the caller's thread (SQLite
    /// in a file): [`Store::journal_taken`] then returns without waiting, and a caller that
    /// finds nothing left to take knows that what others took is written.
    pub fn journals_in_place(&self) -> bool {
        self.file_journal.is_some()
    }

    /// Whether postings were journaled since the last fold (by this process).
    pub fn journal_unfolded(&self) -> bool {
        self.journaled.load(Ordering::Acquire)
    }

    /// Writes every journaled posting to the ledger and balances, in one transaction.
    pub async fn fold_journal(&self) -> Result<()> {
        self.fold_into(&FlushBatch::default()).await
    }

    /// Stores `batch` in one transaction together with every journaled posting (those first).
    pub(super) async fn fold_into(&self, batch: &FlushBatch) -> Result<()> {
        let _folding = self.fold_lock.lock().await;
        // Cleared first: a posting journaled while this runs sets it again.
        let was = self.journaled.swap(false, Ordering::AcqRel);
        let done = self.fold_now(batch).await;
        if done.is_err() && was {
            self.journaled.store(true, Ordering::Release);
        }
        done
    }

    /// Folds in chunks: `batch` with the oldest journaled postings in the first transaction,
    /// then the rest, until a transaction takes less than a whole chunk. An error means `batch`
    /// was not stored: once the first transaction is committed, a later one that fails leaves
    /// its postings journaled for the next fold (logged, and `journal_unfolded` says so), since
    /// a caller that queued `batch` again would store its counters twice.
    async fn fold_now(&self, batch: &FlushBatch) -> Result<()> {
        let mut taken = self.fold_chunk(batch).await?;
        while taken == FOLD_CHUNK {
            match self.fold_chunk(&FlushBatch::default()).await {
                Ok(n) => taken = n,
                Err(e) => {
                    self.journaled.store(true, Ordering::Release);
                    tracing::warn!("folding the journal (the rest waits for the next batch): {e}");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// One transaction of a fold; answers how many journaled postings it took.
    async fn fold_chunk(&self, batch: &FlushBatch) -> Result<usize> {
        if let Some(writer) = &self.writer {
            // The file's records come before the batch, and their last number is stored with them.
            let records = self.file_journal.as_ref().map(|f| f.unfolded()).unwrap_or_default();
            let last = records.last().map(|r| r.seq);
            let mut batch = batch.clone();
            let mut postings: Vec<Posting> = Vec::new();
            let mut keys = Vec::new();
            for r in records {
                postings.extend(r.postings);
                keys.extend(r.transfer_keys);
            }
            postings.append(&mut batch.postings);
            keys.append(&mut batch.transfer_keys);
            let batch = FlushBatch {
                postings,
                transfer_keys: keys,
                ..batch
            };
            let n = writer
                .commit_taking(TAKE_JOURNAL, move |taken| {
                    let mut script = batch_script(&folded(taken, batch));
                    if let Some(seq) = last {
                        script.push(FOLDED_SEQ.into(), vec![Bound::Int(seq as i64)]);
                    }
                    script
                })
                .await?;
            if let (Some(file), Some(seq)) = (&self.file_journal, last) {
                file.folded(seq);
            }
            return Ok(n);
        }
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(TAKE_JOURNAL).fetch_all(&mut *tx).await?;
        let taken = rows
            .iter()
            .map(|r| {
                journaled(
                    r.try_get("id")?,
                    r.try_get("created_ms")?,
                    &r.try_get::<String, _>("kind")?,
                    &r.try_get::<String, _>("from_account")?,
                    &r.try_get::<String, _>("to_account")?,
                    r.try_get("amount")?,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let n = taken.len();
        if n == 0 && batch.is_empty() {
            return Ok(0); // the transaction rolls back: nothing was changed
        }
        self.run_script(&mut tx, batch_script(&folded(taken, batch.clone()))).await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::kudos::{Account, Posting, PostingKind};
    use crate::store::{FlushBatch, Store};

    /// A new account named `name` (its key hash all `key` bytes); answers its id.
    async fn user(store: &Store, name: &str, key: u8) -> i64 {
        store
            .insert_user(&crate::store::NewUser {
                username: name.into(),
                oauth_id: name.into(),
                key: crate::accounts::api_key::ApiKeyHash([key; 32]),
                moderator: false,
                trusted: false,
                pseudonymous: false,
                concurrency: 30,
                created_secs: 0,
            })
            .await
            .expect("user")
    }

    fn mint_to(user: i64, amount: i64, at_ms: u64) -> FlushBatch {
        FlushBatch {
            postings: vec![Posting {
                from: Account::Mint,
                to: Account::User(user),
                amount,
                kind: PostingKind::JobReward,
                at_ms,
            }],
            ..Default::default()
        }
    }

    /// What a commit journals is in the ledger and balances after the next periodic batch, or
    /// after a restart that finds it unfolded (a process killed before its batch), exactly once
    /// and in the order journaled.
    async fn journaled_postings_are_folded_once(url: &str) {
        let store = Store::connect(url).await.expect("store");
        let user = user(&store, "worker", 7).await;
        store.journal(&mint_to(user, 5, 1)).await.expect("journaled");
        assert!(store.journal_unfolded());
        assert_eq!(
            store.stored_balances().await.expect("balances")[&user],
            0,
            "folded before its batch"
        );
        store.flush(&mint_to(user, 7, 2)).await.expect("folded");
        assert!(!store.journal_unfolded());
        assert_eq!(store.stored_balances().await.expect("balances")[&user], 12);
        // Journaled, then the process is gone before its periodic batch: the next start folds.
        store.journal(&mint_to(user, 100, 3)).await.expect("journaled");
        store.journal(&mint_to(user, 1000, 4)).await.expect("journaled");
        drop(store);
        let store = Store::connect(url).await.expect("restarted");
        assert_eq!(store.stored_balances().await.expect("balances")[&user], 1112);
        assert_eq!(store.system_balances().await.expect("system").0, -1112);
        assert_eq!(store.ledger_balances().await.expect("ledger")[&format!("user:{user}")], 1112);
        // The ledger holds the postings once each, in the order they were journaled.
        let amounts: Vec<i64> = sqlx::query_scalar::<_, i64>("SELECT amount FROM kudos_ledger WHERE kind = 'job_reward' ORDER BY id")
            .fetch_all(&store.pool)
            .await
            .expect("ledger rows");
        assert_eq!(amounts, vec![5, 7, 100, 1000]);
        // Nothing is left to fold, and folding again changes nothing.
        store.fold_journal().await.expect("fold");
        assert_eq!(store.stored_balances().await.expect("balances")[&user], 1112);
        // More than a fold's chunk is folded whole, in several transactions.
        for i in 0..(2 * super::FOLD_CHUNK as u64 + 100) {
            store.journal(&mint_to(user, 1, 10 + i)).await.expect("journaled");
        }
        store.fold_journal().await.expect("fold");
        let n = 2 * super::FOLD_CHUNK as i64 + 100;
        assert_eq!(store.stored_balances().await.expect("balances")[&user], 1112 + n);
        assert_eq!(store.ledger_balances().await.expect("ledger")[&format!("user:{user}")], 1112 + n);
        store.close().await;
    }

    #[test]
    fn a_fold_takes_a_chunk() {
        assert!(super::TAKE_JOURNAL.contains(&format!("LIMIT {})", super::FOLD_CHUNK)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn journaled_postings_are_folded_once_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("horde-journal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        journaled_postings_are_folded_once(&format!("sqlite://{}?mode=rwc", dir.join("horde.db").display())).await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// On SQLite in a file the journal is the file beside it, held by the first connection; a
    /// second connection to the database journals in the table, and a fold of either takes both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_store_journals_to_its_file_and_a_second_to_the_table() {
        let dir = std::env::temp_dir().join(format!("horde-journal-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = dir.join("horde.db");
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let file = crate::store::file_journal::path_for(&db);
        let first = Store::connect(&url).await.expect("first");
        assert!(first.journals_in_place());
        let user = user(&first, "earner", 8).await;
        first.journal(&mint_to(user, 5, 1)).await.expect("journaled");
        let len = std::fs::metadata(&file).expect("journal file").len();
        assert!(len > 0, "the commit went to the file");
        let second = Store::connect(&url).await.expect("second");
        assert!(!second.journals_in_place());
        second.journal(&mint_to(user, 7, 2)).await.expect("journaled");
        assert_eq!(
            std::fs::metadata(&file).expect("journal file").len(),
            len,
            "the second one wrote the table"
        );
        let table: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pending_postings")
            .fetch_one(&first.pool)
            .await
            .expect("count");
        assert_eq!(table, 1);
        first.fold_journal().await.expect("fold");
        assert_eq!(std::fs::metadata(&file).expect("journal file").len(), 0, "folded and emptied");
        assert_eq!(first.system_balances().await.expect("system").0, -12);
        assert_eq!(first.stored_balances().await.expect("balances")[&user], 12);
        second.close().await;
        first.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}

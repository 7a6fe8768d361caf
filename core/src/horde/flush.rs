//! Storing the horde's queued durable changes (kudos postings, counters, worker stats, transfer
//! keys), and *group commit*: a caller that must not answer before its change is stored (a
//! transfer, a job's reward, a registration) waits in [`Horde::commit`] until its kudos
//! movements are journaled (see `Store::journal`).
//!
//! Where the journal is a file this process appends to (SQLite in a file), the caller takes
//! whatever is queued and appends it itself, under the file's lock, in microseconds: whoever
//! finds nothing left to take knows that the caller who took it has written it. Elsewhere
//! (PostgreSQL, or a shared state) callers that arrive together share one flush: while one
//! flush runs, every caller arriving waits for it to end; then one of them (the first to take
//! the flush lock) flushes everything queued by all of them in one transaction, and the others
//! find their change stored when it ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use super::Horde;
use crate::horde_ops::HordeOp;
use crate::{HordeError, Result};

/// A batch another process cut is stored by this one only if it is still unstored after this
/// long (its cutter died, say), unless a caller here waits for it.
const TAKEOVER_AFTER: Duration = Duration::from_secs(3);

/// How long [`Horde::commit`] waits for its change to be stored before answering an error.
const COMMIT_WAIT: Duration = Duration::from_secs(15);

/// Where the flushes of this process stand.
#[derive(Debug)]
pub(super) struct Flushes {
    /// Serializes flushes (and the storing of the shared outbox).
    lock: tokio::sync::Mutex<()>,
    /// Flushes begun so far; a flush takes its number before it takes the queued changes.
    begun: AtomicU64,
    /// Flushes ended so far, and the number of the last one that stored everything queued
    /// before it began.
    ended: watch::Sender<Ended>,
    /// Held (written) while queued generation figures are being stored, so that a reader adding
    /// the stored figures to those still queued (read) sees them in one place or the other.
    pub(super) figures: tokio::sync::RwLock<()>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Ended {
    count: u64,
    stored: u64,
}

impl Default for Flushes {
    fn default() -> Self {
        Self {
            lock: tokio::sync::Mutex::new(()),
            begun: AtomicU64::new(0),
            ended: watch::channel(Ended::default()).0,
            figures: tokio::sync::RwLock::new(()),
        }
    }
}

impl Horde {
    /// Returns once every durable change this process made before the call is stored (group
    /// commit: see the module). An error means it could not be stored in time; the change may
    /// still be stored later.
    pub async fn commit(&self) -> Result<()> {
        if self.store.journals_in_place() && !self.is_shared() {
            return self.journal_queued().await.map(|_| ());
        }
        // Any flush numbered above the ones begun so far takes this caller's changes.
        let target = self.flushes.begun.load(Ordering::SeqCst) + 1;
        let mut ended = self.flushes.ended.subscribe();
        let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
        let stored = || self.flushes.ended.borrow().stored >= target;
        // A shared log lost meanwhile took the changes not yet cut with it.
        let logs_lost = || self.replica.lock().logs_lost;
        let lost_before = logs_lost();
        loop {
            ended.borrow_and_update();
            if stored() {
                if logs_lost() != lost_before {
                    return Err(HordeError::SharedStateUnavailable(
                        "the shared state was lost before this change was stored".into(),
                    ));
                }
                return Ok(());
            }
            // The lock, to flush everything queued for every caller; or, asleep, whichever comes
            // first of the lock and the end of the flush running now (which may have taken this
            // caller's changes).
            let step = async {
                let guard = tokio::select! {
                    guard = self.flushes.lock.lock() => guard,
                    _ = ended.changed() => return Ok(()),
                };
                if stored() {
                    return Ok(()); // the loop's check follows
                }
                self.flush_locked(guard, false).await.map(|_| ())
            };
            match tokio::time::timeout_at(deadline, step).await {
                Ok(r) => r?,
                Err(_) => return Err(HordeError::Internal("the change could not be stored in time".into())),
            }
        }
    }

    /// Stores queued durable changes. On failure they stay queued.
    ///
    /// Alone (no shared state): the kudos movements are journaled under the flush lock, like a
    /// waiting caller's (see `Store::journal`); then, outside the lock so that no caller waits
    /// for it, the counters and worker statistics are stored in the transaction that folds the
    /// journal into the ledger and balances.
    ///
    /// With a shared state, every replica queues the same changes: a `Flush` operation cuts them
    /// into a batch at the same place in every replica, and the process that cut it stores it at
    /// once together with every batch cut before it; the others store it only if it is still
    /// unstored a few seconds later (its cutter died). The batch's token makes the store take
    /// it once.
    pub async fn flush(&self) -> Result<usize> {
        let guard = self.flushes.lock.lock().await;
        if self.is_shared() {
            let _figures = self.flushes.figures.write().await;
            return self.flush_locked(guard, true).await;
        }
        let n = self.flush_locked(guard, false).await?;
        let _figures = self.flushes.figures.write().await;
        let stats = self.local().take_pending_stats();
        if stats.is_empty() && !self.store.journal_unfolded() {
            return Ok(n);
        }
        if let Err(e) = self.store.flush(&stats).await {
            self.local().restore_pending_writes(stats);
            return Err(e);
        }
        Ok(n)
    }

    /// `flush`, under the flush lock (of the kudos movements only without `stats`); tells
    /// waiting callers how it ended.
    async fn flush_locked(&self, _guard: tokio::sync::MutexGuard<'_, ()>, stats: bool) -> Result<usize> {
        let number = self.flushes.begun.fetch_add(1, Ordering::SeqCst) + 1;
        let result = self.flush_now(stats).await;
        self.flushes.ended.send_modify(|e| {
            e.count += 1;
            if result.is_ok() {
                e.stored = e.stored.max(number);
            }
        });
        result
    }

    async fn flush_now(&self, stats: bool) -> Result<usize> {
        if !self.is_shared() {
            // Kudos movements only, journaled: `flush` stores the rest outside the lock.
            return self.journal_queued().await;
        }
        // Every replica queues the same writes, so this one's view says whether a cut is due:
        // with nothing queued, whatever this process changed is in a batch cut already.
        if self.local().has_pending_writes(stats) {
            let token = Uuid::new_v4().to_string();
            self.run(HordeOp::Flush { token, stats }).await?;
        }
        // Every batch cut so far holds changes made before this flush began.
        let cut: Vec<String> = self.replica.lock().outbox.iter().map(|b| b.token.clone()).collect();
        self.store_outbox(|token, _| cut.iter().any(|t| t == token)).await
    }

    /// Journals the kudos movements queued (no shared state); on failure they stay queued.
    async fn journal_queued(&self) -> Result<usize> {
        let take = || self.local().take_pending_writes(false);
        let restore = |batch| self.local().restore_pending_writes(batch);
        self.store.journal_taken(take, restore).await
    }

    /// Stores the batches at the front of this replica's outbox, oldest first, while `due` says
    /// so of the next one.
    async fn store_outbox(&self, due: impl Fn(&str, Duration) -> bool) -> Result<usize> {
        let mut stored = 0;
        loop {
            let next = {
                let m = self.replica.lock();
                m.outbox
                    .front()
                    .and_then(|b| due(&b.token, b.cut_at.elapsed()).then(|| (b.token.clone(), b.batch.clone())))
            };
            let Some((token, batch)) = next else { return Ok(stored) };
            if self.store.flush_once(&token, &batch, self.now_ms()).await? {
                stored += batch.postings.len();
            }
            let mut m = self.replica.lock();
            if m.outbox.front().is_some_and(|b| b.token == token) {
                m.outbox.pop_front();
            }
        }
    }

    /// Stores the batches other processes cut and have not stored for a while (a process that
    /// does not hold the persister duty runs this in its place).
    pub async fn store_unstored_batches(&self) -> Result<usize> {
        if !self.is_shared() {
            return Ok(0);
        }
        let _guard = self.flushes.lock.lock().await;
        self.store_outbox(|_, age| age >= TAKEOVER_AFTER).await
    }

    /// At shutdown: cuts and stores what is queued, and every batch still unstored.
    pub async fn flush_all(&self) -> Result<usize> {
        let n = self.flush().await?;
        if !self.is_shared() {
            return Ok(n);
        }
        let _guard = self.flushes.lock.lock().await;
        Ok(n + self.store_outbox(|_, _| true).await?)
    }
}

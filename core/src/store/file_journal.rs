//! The journal of committed kudos movements on SQLite in a file: a file beside the database that
//! a waiting caller's commit (group commit, `Horde::commit`) appends its postings and transfer
//! keys to, one line each, with one `write`, from its own thread.
//!
//! A `write` that has returned is in the kernel's page cache: it survives the process being
//! killed, exactly as a commit of the database's log does with `synchronous = NORMAL` (neither
//! is synced to the disk). What it saves is the transaction: no file locks, no pages of the
//! database, no lock shared with the periodic batch; a commit costs microseconds, so callers
//! never wait for one another long.
//!
//! Each line is a [`Record`] numbered in order. The periodic batch (`Store::flush`) writes the
//! records not yet folded to the ledger and balances in its transaction, together with the
//! number of the last one (`journal_file.folded_seq`), and then empties the file if nothing was
//! appended meanwhile. Every process start folds what the file holds past that number before
//! anything reads a balance, so a record is folded exactly once whenever the process stops. A
//! last line without its newline is a write that never returned (never acknowledged): it is
//! dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::FlushBatch;
use crate::kudos::transfer_keys::TransferKey;
use crate::kudos::Posting;
use crate::{HordeError, Result};

/// One commit's kudos movements, as a line of the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) seq: u64,
    pub(super) postings: Vec<Posting>,
    #[serde(default)]
    pub(super) transfer_keys: Vec<TransferKey>,
}

/// The file and what of it is not folded yet.
#[derive(Debug)]
pub(super) struct FileJournal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Bytes in the file (a failed append is cut back to this).
    len: u64,
    next_seq: u64,
    /// Appended and not yet folded, in order.
    unfolded: Vec<Record>,
}

fn io_error(path: &Path, e: std::io::Error) -> HordeError {
    HordeError::Internal(format!("kudos journal {}: {e}", path.display()))
}

/// The journal's file for the database file `db`.
pub(super) fn path_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push("-postings.log");
    db.with_file_name(name)
}

/// The records of `bytes` (the file's content), in order, and the length of the lines they were
/// read from. A last line cut short (no newline, or not a whole record) is dropped; a damaged
/// line before it is an error.
pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<(Vec<Record>, usize)> {
    let mut records = Vec::new();
    let mut kept = 0;
    let mut lines = bytes.split_inclusive(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        // Only the last line can lack its newline.
        let Some(record) = line.strip_suffix(b"\n") else { break };
        match serde_json::from_slice::<Record>(record) {
            Ok(r) => records.push(r),
            Err(_) if last => break,
            Err(e) => {
                return Err(HordeError::Internal(format!(
                    "kudos journal {}: line {} is damaged ({e}); no record after it can be trusted to be folded once",
                    path.display(),
                    records.len() + 1
                )))
            }
        }
        kept += line.len();
    }
    Ok((records, kept))
}

impl FileJournal {
    /// Opens (or creates) the journal at `path`, holding the records it has numbered after
    /// `folded_seq` as not folded yet (to fold before anything else); new ones are numbered after
    /// both.
    ///
    /// `None` when another connection (another process on the same database, say) holds it:
    /// that one folds it, and this one journals in the database.
    pub(super) fn open(path: PathBuf, folded_seq: u64) -> Result<Option<Self>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path, e)),
        }
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
        let (records, kept) = parse(&bytes, &path)?;
        // A last line cut short goes: the next record starts a line of its own.
        if kept < bytes.len() {
            file.set_len(kept as u64).map_err(|e| io_error(&path, e))?;
        }
        let last = records.iter().map(|r| r.seq).max().unwrap_or(0).max(folded_seq);
        let unfolded = records.into_iter().filter(|r| r.seq > folded_seq).collect();
        Ok(Some(Self {
            path,
            inner: Mutex::new(Inner {
                file,
                len: kept as u64,
                next_seq: last + 1,
                unfolded,
            }),
        }))
    }

    /// Under the journal's lock: takes the movements to store (`take`) and appends them as one
    /// record, so that a caller finding nothing to take knows that what was taken before is
    /// written. Answers how many postings were appended (`None`: nothing was taken); on
    /// failure the movements go back through `restore` and nothing of them stays in the file.
    pub(super) fn append(&self, take: impl FnOnce() -> FlushBatch, restore: impl FnOnce(FlushBatch)) -> Result<Option<usize>> {
        let mut inner = self.inner.lock();
        let batch = take();
        if batch.postings.is_empty() && batch.transfer_keys.is_empty() {
            return Ok(None);
        }
        let record = Record {
            seq: inner.next_seq,
            postings: batch.postings,
            transfer_keys: batch.transfer_keys,
        };
        let n = record.postings.len();
        let written = serde_json::to_vec(&record)
            .map_err(|e| HordeError::Internal(format!("kudos journal record: {e}")))
            .and_then(|mut line| {
                line.push(b'\n');
                inner.file.write_all(&line).map_err(|e| io_error(&self.path, e))?;
                Ok(line.len() as u64)
            });
        match written {
            Ok(bytes) => {
                inner.len += bytes;
                inner.next_seq += 1;
                inner.unfolded.push(record);
                Ok(Some(n))
            }
            Err(e) => {
                // A partial line would join the next one: cut it off.
                let len = inner.len;
                let _ = inner.file.set_len(len);
                restore(FlushBatch {
                    postings: record.postings,
                    transfer_keys: record.transfer_keys,
                    ..FlushBatch::default()
                });
                Err(e)
            }
        }
    }

    /// The records not folded yet, in order (a copy: they stay until [`FileJournal::folded`]).
    pub(super) fn unfolded(&self) -> Vec<Record> {
        self.inner.lock().unfolded.clone()
    }

    /// The records up to `seq` are folded (committed with it as `folded_seq`): they are
    /// forgotten, and the file is emptied if nothing was appended after them.
    /// (A file that cannot be emptied only grows: its records are skipped by number at the next
    /// start.)
    pub(super) fn folded(&self, seq: u64) {
        let mut inner = self.inner.lock();
        inner.unfolded.retain(|r| r.seq > seq);
        if inner.unfolded.is_empty() && inner.len > 0 {
            match inner.file.set_len(0) {
                Ok(()) => inner.len = 0,
                Err(e) => tracing::warn!("{}", io_error(&self.path, e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kudos::{Account, PostingKind};

    fn batch(amount: i64) -> FlushBatch {
        FlushBatch {
            postings: vec![Posting {
                from: Account::Mint,
                to: Account::User(1),
                amount,
                kind: PostingKind::JobReward,
                at_ms: 1,
            }],
            ..FlushBatch::default()
        }
    }

    fn temp_path() -> PathBuf {
        std::env::temp_dir().join(format!("horde-file-journal-{}", uuid::Uuid::new_v4()))
    }

    #[test]
    fn records_survive_a_reopen_until_folded_and_a_cut_last_line_is_dropped() {
        let path = temp_path();
        let journal = FileJournal::open(path.clone(), 0).expect("open").expect("not held");
        // Held: another opener journals elsewhere.
        assert!(FileJournal::open(path.clone(), 0).expect("second open").is_none());
        assert!(journal.unfolded().is_empty());
        for amount in [5, 7, 9] {
            assert_eq!(journal.append(|| batch(amount), |_| panic!("restored")).expect("append"), Some(1));
        }
        assert_eq!(journal.append(FlushBatch::default, |_| panic!("restored")).expect("nothing"), None);
        drop(journal);
        // A write cut short by a crash: no newline.
        let mut f = OpenOptions::new().append(true).open(&path).expect("file");
        f.write_all(br#"{"seq":4,"postings":[{"from""#).expect("torn");
        drop(f);
        // Folded up to 1 before the restart: 2 and 3 come back, numbered on after them.
        let journal = FileJournal::open(path.clone(), 1).expect("reopen").expect("not held");
        let pending = journal.unfolded();
        let amounts: Vec<i64> = pending.iter().map(|r| r.postings[0].amount).collect();
        assert_eq!(amounts, vec![7, 9]);
        assert_eq!(pending.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
        // The cut line is gone: the next record is a line of its own.
        journal.append(|| batch(11), |_| panic!("restored")).expect("append");
        let (records, _) = parse(&std::fs::read(&path).expect("read"), &path).expect("parse");
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        // A fold of older records leaves a newer one in the file; the last fold empties it.
        journal.folded(3);
        assert_eq!(journal.unfolded().iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4]);
        assert!(std::fs::metadata(&path).expect("file").len() > 0);
        journal.folded(4);
        assert_eq!(std::fs::metadata(&path).expect("file").len(), 0, "emptied once all is folded");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_damaged_line_before_the_last_is_an_error() {
        let path = temp_path();
        let good = serde_json::to_string(&Record {
            seq: 1,
            postings: batch(1).postings,
            transfer_keys: vec![],
        })
        .expect("json");
        let text = format!("{good}\nnot a record\n{good}\n");
        assert!(parse(text.as_bytes(), &path).is_err());
        let line = good.len() + 1;
        // Cut short, or whole but damaged (a crash of the machine): the last line is not kept.
        assert_eq!(parse(format!("{good}\n{good}").as_bytes(), &path).expect("cut last line").1, line);
        let (records, kept) = parse(format!("{good}\nnot a record\n").as_bytes(), &path).expect("damaged last line");
        assert_eq!((records.len(), kept), (1, line));
        assert_eq!(parse(b"", &path).expect("empty").0.len(), 0);
    }
}

//! State shared by several horde processes: one deterministic state machine, replicated through an
//! ordered log of operations kept in Redis.
//!
//! Every process holds a replica of the machine. A change is not applied where it is made: it is
//! appended to a Redis stream (`XADD`, atomic), and every process applies every entry of the
//! stream in stream order. The process that appended an entry gets the entry's output back once
//! its own replica reaches it. Because all replicas apply the same operations in the same order,
//! they agree, and an operation's outcome (which job a pop hands out, say) is decided once, by its
//! place in the log: two processes can never hand out the same job. The rules themselves stay
//! plain synchronous code, the same code a single process runs.
//!
//! A read first waits until the local replica has applied the stream's last entry, so a request
//! submitted through one process is seen by the next read on any other.
//!
//! The stream lives only in Redis's memory (the horde requires Redis without RDB or AOF). When
//! Redis restarts empty, every replica notices that the log's *epoch* key changed, drops what the
//! log carried (`Machine::log_lost`) and carries on in the new epoch.
//!
//! The log does not grow forever: one process at a time (`publish_snapshot`, run by a leased
//! duty) stores a snapshot of its replica in Redis and trims the log up to its previous snapshot.
//! A replica that joins late, or falls behind past the trimmed part, starts from the snapshot.
//! The log and the snapshot expire `retain` after the last snapshot, so nothing they hold
//! outlives a horde whose processes all stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use redis::aio::{ConnectionManager, MultiplexedConnection};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::{HordeError, Result};

/// A deterministic state machine: the same operations in the same order give the same state and
/// the same outputs on every replica.
pub trait Machine: Send + 'static {
    type Op: Serialize + DeserializeOwned + Send + 'static;
    type Output: Send + 'static;
    /// Applies one operation.
    fn apply(&mut self, op: Self::Op) -> Self::Output;
    /// The shared log was lost (Redis restarted empty): forget the state it carried.
    fn log_lost(&mut self);
    /// The state the log has built so far, for replicas that join after the log was trimmed.
    fn snapshot(&self) -> Result<Vec<u8>>;
    /// Replaces the state the log has built with a snapshot's.
    fn restore(&mut self, snapshot: &[u8]) -> Result<()>;
}

/// A place in the log: a Redis stream entry id (`ms-seq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    pub ms: u64,
    pub seq: u64,
}

impl LogPosition {
    pub fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for LogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// How long an operation or a read waits for the local replica to catch up.
const CATCH_UP: Duration = Duration::from_secs(10);
/// How long one read of the log waits for new entries, in milliseconds.
const BLOCK_MS: u64 = 1000;

/// The follower's connection: its blocking reads outlast the client's default answer timeout.
fn follower_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(BLOCK_MS + 4000)))
}

/// Entries read from the stream at once.
/// (Operations are encoded as CBOR: compact, and bytes stay bytes.)
const READ_BATCH: usize = 512;

/// Appends an operation, if the log is still in the epoch the caller knows. Each entry names its
/// epoch (`e`) and the entry before it (`p`, empty for the first), so a replica can tell from the
/// entries alone that they follow what it applied.
const APPEND: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('EPOCH the shared log was lost')
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local previous = ''
if last[1] then
  previous = last[1][1]
end
return redis.call('XADD', KEYS[1], '*', 'e', ARGV[1], 'p', previous, 'n', ARGV[2], 's', ARGV[3], 'o', ARGV[4])
";

fn unavailable(e: impl std::fmt::Display) -> HordeError {
    HordeError::SharedStateUnavailable(e.to_string())
}

/// Where the replicas meet: a Redis server and the key prefix of this horde.
#[derive(Debug, Clone)]
pub struct SharedLogConfig {
    pub redis_url: String,
    /// Prefix of every key (several hordes may share one Redis).
    pub prefix: String,
    /// How long the log and its snapshot outlive the last snapshot (the last process).
    pub retain: Duration,
    /// What every process sharing the log must agree on (version, settings), as text: a process
    /// whose text differs from the running processes' is refused, since its replica would diverge.
    pub settings: String,
    /// How long the running processes' settings are remembered after the last snapshot.
    pub settings_ttl: Duration,
}

/// Stores a snapshot taken at ARGV[2] in the epoch ARGV[1] and trims the log to the previous one.
const PUBLISH: &str = r"
if redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return 0
end
local previous = redis.call('HGET', KEYS[1], 'at')
redis.call('HSET', KEYS[1], 'at', ARGV[2], 'data', ARGV[3])
if previous then
  redis.call('XTRIM', KEYS[2], 'MINID', previous)
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[6])
return 1
";

/// The replicated log's side of a replica.
struct Shared<M: Machine> {
    conn: ConnectionManager,
    append: redis::Script,
    log_key: String,
    epoch_key: String,
    snapshot_key: String,
    publish: redis::Script,
    retain: Duration,
    settings_key: String,
    settings: String,
    settings_ttl: Duration,
    /// This process, in the entries it appends.
    node: String,
    next_seq: AtomicU64,
    /// (epoch, last position applied); the epoch string changes when the log is lost.
    applied: watch::Sender<(String, LogPosition)>,
    waiters: Mutex<HashMap<u64, oneshot::Sender<M::Output>>>,
}

/// A replica of `M`: applied directly on a single process, or through the shared log.
pub struct Replica<M: Machine> {
    machine: Arc<Mutex<M>>,
    shared: Option<Arc<Shared<M>>>,
    follower: Option<tokio::task::JoinHandle<()>>,
}

impl<M: Machine> Drop for Replica<M> {
    fn drop(&mut self) {
        if let Some(f) = &self.follower {
            f.abort();
        }
    }
}

impl<M: Machine> Replica<M> {
    /// A machine on its own: operations apply at once, under a lock.
    pub fn local(machine: M) -> Self {
        Self {
            machine: Arc::new(Mutex::new(machine)),
            shared: None,
            follower: None,
        }
    }

    /// Joins the shared log at `cfg`: `machine` must be the state at the start of the log (empty
    /// of anything the log carries). The whole log is applied before this returns.
    pub async fn shared(machine: M, cfg: &SharedLogConfig) -> Result<Self> {
        let client = redis::Client::open(cfg.redis_url.as_str()).map_err(unavailable)?;
        let conn = client.get_connection_manager().await.map_err(unavailable)?;
        let epoch_key = format!("{}log:epoch", cfg.prefix);
        let settings_key = format!("{}log:settings", cfg.prefix);
        let settings = settings_digest(&cfg.settings);
        check_settings(&mut conn.clone(), &settings_key, &settings, cfg.settings_ttl).await?;
        let epoch = adopt_epoch(&mut conn.clone(), &epoch_key).await?;
        let (applied, _) = watch::channel((epoch, LogPosition::default()));
        let shared = Arc::new(Shared {
            conn,
            append: redis::Script::new(APPEND),
            log_key: format!("{}log", cfg.prefix),
            epoch_key,
            snapshot_key: format!("{}log:snapshot", cfg.prefix),
            publish: redis::Script::new(PUBLISH),
            retain: cfg.retain,
            settings_key,
            settings,
            settings_ttl: cfg.settings_ttl,
            node: Uuid::new_v4().to_string(),
            next_seq: AtomicU64::new(0),
            applied,
            waiters: Mutex::new(HashMap::new()),
        });
        let machine = Arc::new(Mutex::new(machine));
        let follower = tokio::spawn(follow(client, shared.clone(), machine.clone()));
        let replica = Self {
            machine,
            shared: Some(shared),
            follower: Some(follower),
        };
        replica.sync().await?;
        Ok(replica)
    }

    /// Whether the state is shared with other processes.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Applies `op` (through the log when shared) and returns its output.
    pub async fn execute(&self, op: M::Op) -> Result<M::Output> {
        let Some(shared) = &self.shared else {
            return Ok(self.machine.lock().apply(op));
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&op, &mut bytes).map_err(|e| HordeError::Internal(format!("encoding an operation: {e}")))?;
        let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        shared.waiters.lock().insert(seq, tx);
        let epoch = shared.applied.borrow().0.clone();
        let appended: redis::RedisResult<String> = shared
            .append
            .key(&shared.log_key)
            .key(&shared.epoch_key)
            .arg(&epoch)
            .arg(&shared.node)
            .arg(seq)
            .arg(bytes)
            .invoke_async(&mut shared.conn.clone())
            .await;
        if let Err(e) = appended {
            shared.waiters.lock().remove(&seq);
            return Err(unavailable(e));
        }
        match tokio::time::timeout(CATCH_UP, rx).await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(_)) => Err(unavailable("the shared log was lost before the operation applied")),
            Err(_) => {
                shared.waiters.lock().remove(&seq);
                Err(unavailable("the operation was not applied in time"))
            }
        }
    }

    /// Waits until this replica has applied everything appended so far (by any process).
    pub async fn sync(&self) -> Result<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let mut conn = shared.conn.clone();
        let last: redis::Value = redis::cmd("XREVRANGE")
            .arg(&shared.log_key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some(target) = first_entry_id(&last) else {
            return Ok(());
        };
        let mut rx = shared.applied.subscribe();
        let reached = tokio::time::timeout(CATCH_UP, rx.wait_for(|(_, at)| *at >= target)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(unavailable("this process could not catch up with the shared log")),
        }
    }

    /// The local replica, for reads (after `sync`) and for changes that are this process's own
    /// (caches, subscriptions): never for changes other replicas must see.
    pub fn lock(&self) -> MutexGuard<'_, M> {
        self.machine.lock()
    }

    /// Stores this replica's state in Redis as the log's snapshot, and trims the log up to the
    /// previous snapshot (so replicas that fell behind by less than one period still follow
    /// it). Run by one process at a time, every few seconds. Returns the snapshot's size.
    pub async fn publish_snapshot(&self) -> Result<usize> {
        let Some(shared) = &self.shared else {
            return Ok(0);
        };
        let (epoch, at, data) = {
            let m = self.machine.lock();
            let (epoch, at) = shared.applied.borrow().clone();
            (epoch, at, m.snapshot()?)
        };
        if at == LogPosition::default() {
            return Ok(0);
        }
        let _: i64 = shared
            .publish
            .key(&shared.snapshot_key)
            .key(&shared.log_key)
            .key(&shared.epoch_key)
            .key(&shared.settings_key)
            .arg(epoch)
            .arg(at.to_string())
            .arg(data.as_slice())
            .arg(shared.retain.as_millis().max(1000) as u64)
            .arg(&shared.settings)
            .arg(shared.settings_ttl.as_millis().max(1000) as u64)
            .invoke_async(&mut shared.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(data.len())
    }

    /// The last log position this replica applied (the default position when local).
    pub fn applied(&self) -> LogPosition {
        self.shared.as_ref().map(|s| s.applied.borrow().1).unwrap_or_default()
    }
}

/// How the Redis at `cfg` writes its data to disk (`save` snapshots, `appendonly`), or `None`
/// when it keeps everything in memory only, as the horde requires.
pub async fn redis_persists(cfg: &SharedLogConfig) -> Result<Option<String>> {
    let client = redis::Client::open(cfg.redis_url.as_str()).map_err(unavailable)?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(unavailable)?;
    let mut how = Vec::new();
    for (name, off) in [("save", ""), ("appendonly", "no")] {
        let pair: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if let Some(value) = pair.get(1).filter(|v| v.as_str() != off) {
            how.push(format!("{name} {value:?}"));
        }
    }
    Ok((!how.is_empty()).then(|| how.join(", ")))
}

/// The id of the first entry of an `XRANGE`/`XREVRANGE` answer.
fn first_entry_id(v: &redis::Value) -> Option<LogPosition> {
    let redis::Value::Array(entries) = v else { return None };
    let redis::Value::Array(entry) = entries.first()? else {
        return None;
    };
    match entry.first()? {
        redis::Value::BulkString(b) => LogPosition::parse(std::str::from_utf8(b).ok()?),
        redis::Value::SimpleString(s) => LogPosition::parse(s),
        _ => None,
    }
}

/// A short digest of the settings text.
fn settings_digest(text: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..16])
}

/// Records this process's settings if no running process did, or refuses to join processes that
/// run with other ones.
async fn check_settings(conn: &mut ConnectionManager, key: &str, digest: &str, ttl: Duration) -> Result<()> {
    let _: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(digest)
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis().max(1000) as u64)
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    let running: Option<String> = redis::cmd("GET").arg(key).query_async(conn).await.map_err(unavailable)?;
    match running {
        Some(r) if r != digest => Err(HordeError::Validation(format!(
            "the processes already sharing this Redis (key {key}) run another version of horde or other settings; \
             start this one with the same version and settings, or with another --redis-prefix"
        ))),
        _ => Ok(()),
    }
}

/// The log's epoch: the one in Redis, or a new one if there is none (a fresh or restarted Redis).
async fn adopt_epoch(conn: &mut ConnectionManager, key: &str) -> Result<String> {
    let fresh = Uuid::new_v4().to_string();
    let _: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(&fresh)
        .arg("NX")
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    let epoch: Option<String> = redis::cmd("GET").arg(key).query_async(conn).await.map_err(unavailable)?;
    epoch.ok_or_else(|| unavailable("the log's epoch vanished"))
}

/// One decoded stream entry.
struct Entry {
    at: LogPosition,
    epoch: String,
    /// The entry before it (`None` for the log's first).
    previous: Option<LogPosition>,
    node: String,
    seq: u64,
    op: Vec<u8>,
}

fn field<'a>(map: &'a [(redis::Value, redis::Value)], name: &str) -> Option<&'a redis::Value> {
    map.iter().find_map(|(k, v)| match k {
        redis::Value::BulkString(b) if b == name.as_bytes() => Some(v),
        _ => None,
    })
}

fn bytes(v: &redis::Value) -> Option<Vec<u8>> {
    match v {
        redis::Value::BulkString(b) => Some(b.clone()),
        redis::Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// Decodes an `XREAD` answer (RESP2 arrays) into entries.
fn entries_of(v: redis::Value) -> Vec<Entry> {
    let mut out = Vec::new();
    let streams = match v {
        redis::Value::Array(s) => s,
        redis::Value::Map(m) => m.into_iter().map(|(k, v)| redis::Value::Array(vec![k, v])).collect(),
        _ => return out,
    };
    for stream in streams {
        let redis::Value::Array(mut pair) = stream else { continue };
        if pair.len() != 2 {
            continue;
        }
        let redis::Value::Array(items) = pair.remove(1) else { continue };
        for item in items {
            let redis::Value::Array(mut parts) = item else { continue };
            if parts.len() != 2 {
                continue;
            }
            let fields = parts.remove(1);
            let Some(at) = bytes(&parts[0])
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| LogPosition::parse(&s))
            else {
                continue;
            };
            let pairs: Vec<(redis::Value, redis::Value)> = match fields {
                redis::Value::Array(f) => {
                    let mut it = f.into_iter();
                    let mut v = Vec::new();
                    while let (Some(k), Some(val)) = (it.next(), it.next()) {
                        v.push((k, val));
                    }
                    v
                }
                redis::Value::Map(m) => m,
                _ => continue,
            };
            let text = |name: &str| {
                field(&pairs, name)
                    .and_then(bytes)
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default()
            };
            let node = text("n");
            let epoch = text("e");
            let previous = LogPosition::parse(&text("p"));
            let seq = field(&pairs, "s")
                .and_then(bytes)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(u64::MAX);
            let op = field(&pairs, "o").and_then(bytes).unwrap_or_default();
            out.push(Entry {
                at,
                epoch,
                previous,
                node,
                seq,
                op,
            });
        }
    }
    out
}

/// Replaces the replica's state with the log's snapshot, and follows the log from there. Returns
/// whether it did.
async fn restore_snapshot<M: Machine>(shared: &Shared<M>, machine: &Mutex<M>, conn: &mut ConnectionManager) -> bool {
    let got: redis::RedisResult<(Option<String>, Option<Vec<u8>>)> = redis::cmd("HMGET")
        .arg(&shared.snapshot_key)
        .arg("at")
        .arg("data")
        .query_async(conn)
        .await;
    let (Some(at), Some(data)) = (match got {
        Ok((at, data)) => (at.as_deref().and_then(LogPosition::parse), data),
        Err(e) => {
            tracing::warn!(error = %e, "shared log: cannot read the snapshot; retrying");
            return false;
        }
    }) else {
        tracing::warn!("shared log: the log was trimmed but has no snapshot; retrying");
        return false;
    };
    let mut m = machine.lock();
    if let Err(e) = m.restore(&data) {
        tracing::error!(error = %e, "shared log: the snapshot could not be read");
        return false;
    }
    // Operations of this process in the part skipped are answered by their timeout.
    shared.applied.send_modify(|(_, applied)| *applied = at);
    tracing::info!(at = %at, "shared log: started from the snapshot");
    true
}

/// Applies the log to the replica as it grows, until the replica is dropped.
async fn follow<M: Machine>(client: redis::Client, shared: Arc<Shared<M>>, machine: Arc<Mutex<M>>) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut control = shared.conn.clone();
    loop {
        let c = match &mut conn {
            Some(c) => c,
            None => match client.get_multiplexed_async_connection_with_config(&follower_config()).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::warn!(error = %e, "shared log: cannot reach Redis; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let from = shared.applied.borrow().1;
        let read: redis::RedisResult<redis::Value> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&shared.log_key)
            .arg(from.to_string())
            .query_async(c)
            .await;
        let entries = match read {
            Ok(v) => entries_of(v),
            Err(e) => {
                tracing::warn!(error = %e, "shared log: read failed; reconnecting");
                conn = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
                Vec::new()
            }
        };
        let (known, applied) = shared.applied.borrow().clone();
        // Entries of another epoch: Redis lost the log (and a process started a new one). With no
        // entries, the epoch is checked directly: a Redis that restarted empty has none.
        let lost = match entries.first() {
            Some(first) => first.epoch != known,
            None => {
                let current: redis::RedisResult<Option<String>> = redis::cmd("GET").arg(&shared.epoch_key).query_async(&mut control).await;
                matches!(current, Ok(e) if e.as_deref() != Some(known.as_str()))
            }
        };
        if lost {
            let Ok(epoch) = adopt_epoch(&mut control, &shared.epoch_key).await else {
                continue;
            };
            tracing::warn!("shared log: Redis lost the log; state carried by it is dropped");
            machine.lock().log_lost();
            // Waiting operations were lost with the log.
            shared.waiters.lock().clear();
            shared.applied.send_replace((epoch, LogPosition::default()));
            continue;
        }
        // Entries that do not follow what this replica applied: the part between was trimmed
        // (this replica joined late or fell behind), so it starts from the snapshot.
        if entries.first().is_some_and(|first| first.previous.unwrap_or_default() != applied) {
            if !restore_snapshot(&shared, &machine, &mut control).await {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        }
        if entries.is_empty() {
            continue;
        }
        let mut m = machine.lock();
        for entry in entries {
            let output = match ciborium::from_reader::<M::Op, _>(entry.op.as_slice()) {
                Ok(op) => Some(m.apply(op)),
                Err(_) => {
                    // Every replica runs the same code, so every one skips it alike. The decoder's
                    // message may quote the operation (a prompt): it is not logged.
                    tracing::error!(at = %entry.at, "shared log: an operation could not be decoded (another version of horde?); skipped");
                    None
                }
            };
            if entry.node == shared.node {
                if let (Some(output), Some(tx)) = (output, shared.waiters.lock().remove(&entry.seq)) {
                    let _ = tx.send(output);
                }
            }
            shared.applied.send_modify(|(_, at)| *at = entry.at);
        }
    }
}

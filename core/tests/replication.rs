//! The replicated state machine against a real Redis: replicas agree, each operation's outcome is
//! decided once, reads see other processes' writes, and a Redis that restarts empty resets them.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use horde_core::replication::{Machine, Replica, SharedLogConfig};
use serde::{Deserialize, Serialize};

/// Hands out numbered tickets; remembers who took which.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tickets {
    next: u64,
    taken: Vec<(String, u64)>,
    lost: u32,
}

#[derive(Debug, Serialize, Deserialize)]
enum TicketOp {
    Take(String),
}

impl Machine for Tickets {
    type Op = TicketOp;
    type Output = u64;
    fn apply(&mut self, op: TicketOp) -> u64 {
        let TicketOp::Take(who) = op;
        let n = self.next;
        self.next += 1;
        self.taken.push((who, n));
        n
    }
    fn log_lost(&mut self) {
        self.next = 0;
        self.taken.clear();
        self.lost += 1;
    }
    fn snapshot(&self) -> horde_core::Result<Vec<u8>> {
        Ok(serde_json::to_vec(&(self.next, &self.taken)).expect("json"))
    }
    fn restore(&mut self, snapshot: &[u8]) -> horde_core::Result<()> {
        (self.next, self.taken) = serde_json::from_slice(snapshot).expect("json");
        Ok(())
    }
}

fn cfg(redis: &common::TempRedis, prefix: &str) -> SharedLogConfig {
    SharedLogConfig {
        redis_url: redis.url(),
        prefix: prefix.into(),
        retain: std::time::Duration::from_secs(60),
        settings: "tickets v1".into(),
        settings_ttl: std::time::Duration::from_secs(60),
    }
}

#[tokio::test]
async fn a_local_replica_applies_at_once() {
    let r = Replica::local(Tickets::default());
    assert_eq!(r.execute(TicketOp::Take("a".into())).await.unwrap(), 0);
    assert_eq!(r.execute(TicketOp::Take("b".into())).await.unwrap(), 1);
    assert!(!r.is_shared());
    r.sync().await.unwrap();
    assert_eq!(r.lock().taken.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_hand_out_every_ticket_once_and_agree() {
    let Some(redis) = common::TempRedis::start().await else { return };
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Arc::new(Replica::shared(Tickets::default(), &cfg(&redis, "t1:")).await.unwrap()));
    }
    let mut tasks = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        for c in 0..8 {
            let r = r.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..25 {
                    got.push(r.execute(TicketOp::Take(format!("{i}/{c}"))).await.unwrap());
                }
                got
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), 600);
    assert_eq!(unique.len(), 600, "a ticket was handed out twice");
    assert_eq!(unique.iter().max(), Some(&599));
    // Each replica, once synced, holds the same history.
    for r in &replicas {
        r.sync().await.unwrap();
    }
    let first = replicas[0].lock().taken.clone();
    for r in &replicas[1..] {
        assert_eq!(r.lock().taken, first, "replicas disagree");
    }
    // A latecomer replays the log to the same state.
    let late = Replica::shared(Tickets::default(), &cfg(&redis, "t1:")).await.unwrap();
    assert_eq!(late.lock().taken, first);
    // Another prefix is another horde.
    let other = Replica::shared(Tickets::default(), &cfg(&redis, "t2:")).await.unwrap();
    assert_eq!(other.execute(TicketOp::Take("x".into())).await.unwrap(), 0);
    // A process with other rules may not join: its replica would diverge.
    let mut different = cfg(&redis, "t1:");
    different.settings = "tickets v2".into();
    let refused = Replica::shared(Tickets::default(), &different).await;
    assert!(
        matches!(refused, Err(horde_core::HordeError::Validation(_))),
        "a process with other settings joined"
    );
}

#[tokio::test]
async fn a_read_after_sync_sees_another_replicas_write() {
    let Some(redis) = common::TempRedis::start().await else { return };
    let a = Replica::shared(Tickets::default(), &cfg(&redis, "t:")).await.unwrap();
    let b = Replica::shared(Tickets::default(), &cfg(&redis, "t:")).await.unwrap();
    for i in 0..20 {
        a.execute(TicketOp::Take(format!("a{i}"))).await.unwrap();
        b.sync().await.unwrap();
        assert_eq!(b.lock().taken.last().map(|t| t.0.clone()), Some(format!("a{i}")));
    }
    assert_eq!(a.applied(), b.applied());
}

#[tokio::test]
async fn a_redis_restart_resets_every_replica_and_work_goes_on() {
    let Some(mut redis) = common::TempRedis::start().await else {
        return;
    };
    let a = Replica::shared(Tickets::default(), &cfg(&redis, "t:")).await.unwrap();
    let b = Replica::shared(Tickets::default(), &cfg(&redis, "t:")).await.unwrap();
    for _ in 0..5 {
        a.execute(TicketOp::Take("before".into())).await.unwrap();
    }
    redis.kill();
    assert!(
        a.execute(TicketOp::Take("down".into())).await.is_err(),
        "an operation succeeded without Redis"
    );
    redis.start_again().await;
    // Once both have noticed, the new log starts from scratch.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while a.lock().lost == 0 || b.lock().lost == 0 {
        assert!(std::time::Instant::now() < deadline, "the replicas did not notice the lost log");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(a.execute(TicketOp::Take("after".into())).await.unwrap(), 0);
    b.sync().await.unwrap();
    assert_eq!(b.lock().taken, vec![("after".to_string(), 0)]);
}

async fn log_length(redis: &common::TempRedis, key: &str) -> i64 {
    let client = redis::Client::open(redis.url()).expect("url");
    let mut c = client.get_multiplexed_async_connection().await.expect("connect");
    redis::cmd("XLEN").arg(key).query_async(&mut c).await.expect("XLEN")
}

#[tokio::test]
async fn snapshots_trim_the_log_and_latecomers_start_from_them() {
    let Some(redis) = common::TempRedis::start().await else { return };
    let a = Replica::shared(Tickets::default(), &cfg(&redis, "s:")).await.unwrap();
    let b = Replica::shared(Tickets::default(), &cfg(&redis, "s:")).await.unwrap();
    for i in 0..50 {
        a.execute(TicketOp::Take(format!("a{i}"))).await.unwrap();
    }
    // The first snapshot trims nothing; the second trims the log up to the first.
    assert!(a.publish_snapshot().await.unwrap() > 0);
    assert_eq!(log_length(&redis, "s:log").await, 50);
    for i in 0..10 {
        b.execute(TicketOp::Take(format!("b{i}"))).await.unwrap();
    }
    b.publish_snapshot().await.unwrap();
    assert!(log_length(&redis, "s:log").await <= 11, "the log was not trimmed");
    for i in 0..5 {
        a.execute(TicketOp::Take(format!("c{i}"))).await.unwrap();
    }
    // A latecomer cannot replay the trimmed log: it starts from the snapshot and catches up.
    let late = Replica::shared(Tickets::default(), &cfg(&redis, "s:")).await.unwrap();
    a.sync().await.unwrap();
    assert_eq!(late.lock().taken, a.lock().taken);
    assert_eq!(late.lock().taken.len(), 65);
    assert_eq!(late.execute(TicketOp::Take("late".into())).await.unwrap(), 65);
    // A local replica has no log to snapshot.
    assert_eq!(Replica::local(Tickets::default()).publish_snapshot().await.unwrap(), 0);
}

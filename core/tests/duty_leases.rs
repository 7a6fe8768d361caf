//! Duty leases against a real Redis: one holder at a time, renewal, release, and takeover after
//! the holder dies.

mod common;

use std::time::{Duration, Instant};

use horde_core::lease::{Duty, DutyLeases, RedisLeases};

async fn leases(url: &str, ttl_ms: u64) -> RedisLeases {
    leases_named(url, "test:", ttl_ms).await
}

async fn leases_named(url: &str, prefix: &str, ttl_ms: u64) -> RedisLeases {
    let client = redis::Client::open(url).expect("redis url");
    let conn = client.get_connection_manager().await.expect("redis connection");
    RedisLeases::new(conn, prefix, Duration::from_millis(ttl_ms))
}

#[tokio::test]
async fn one_process_holds_a_duty_until_it_releases_it() {
    let Some(redis) = common::TempRedis::start().await else { return };
    let a = leases(&redis.url(), 5_000).await;
    let b = leases(&redis.url(), 5_000).await;
    assert!(a.hold(Duty::Reaper).await.unwrap());
    for _ in 0..5 {
        assert!(!b.hold(Duty::Reaper).await.unwrap(), "two processes held the reaper");
        assert!(a.hold(Duty::Reaper).await.unwrap(), "the holder lost its lease on renewal");
    }
    // Hordes with another key prefix share the Redis but not the lease.
    assert!(leases_named(&redis.url(), "other:", 5_000).await.hold(Duty::Reaper).await.unwrap());
    // Releasing someone else's lease does nothing.
    b.release(Duty::Reaper).await.unwrap();
    assert!(!b.hold(Duty::Reaper).await.unwrap());
    a.release(Duty::Reaper).await.unwrap();
    assert!(b.hold(Duty::Reaper).await.unwrap(), "a released lease was not taken");
    assert!(!a.hold(Duty::Reaper).await.unwrap());
}

#[tokio::test]
async fn a_dead_holder_is_replaced_once_its_lease_expires() {
    let Some(redis) = common::TempRedis::start().await else { return };
    let a = leases(&redis.url(), 400).await;
    let b = leases(&redis.url(), 400).await;
    assert!(a.hold(Duty::Reaper).await.unwrap());
    // a renews faster than the lease expires: b never gets it.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(a.hold(Duty::Reaper).await.unwrap());
        assert!(!b.hold(Duty::Reaper).await.unwrap());
    }
    // a dies (stops renewing): b takes over within the lease time.
    drop(a);
    let died = Instant::now();
    let wrapped = DutyLeases::Redis(b);
    while !wrapped.hold(Duty::Reaper).await {
        assert!(died.elapsed() < Duration::from_secs(3), "no takeover after the holder died");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(died.elapsed() >= Duration::from_millis(200), "taken over before the lease expired");
}

#[tokio::test]
async fn a_lone_process_holds_every_duty_and_a_lost_redis_holds_none() {
    assert!(DutyLeases::Local.hold(Duty::Reaper).await);
    let Some(mut redis) = common::TempRedis::start().await else {
        return;
    };
    let a = DutyLeases::Redis(leases(&redis.url(), 5_000).await);
    assert!(a.hold(Duty::Reaper).await);
    redis.kill();
    assert!(!a.hold(Duty::Reaper).await, "a duty ran without Redis to claim it");
}

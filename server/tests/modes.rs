//! Moderators' switches over HTTP on every backend: the horde's modes (maintenance refuses new
//! requests, invite-only new workers beyond an account's invitations, raid mode registrations)
//! and IP timeouts in the public horde's `/operations/ipaddr` shapes.

mod common;

use common::Db;
use reqwest::Method;
use serde_json::{json, Value};

fn rc(v: &Value) -> &str {
    v["rc"].as_str().unwrap_or("")
}

async fn modes(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (user, user_id) = s.user("mode_user", 100.0, false, false).await;
    let (moder, _) = s.user("mode_moder", 0.0, true, false).await;
    let (st, m) = s.get("/status/modes", None).await;
    assert_eq!(
        (st, m),
        (
            200,
            json!({"maintenance_mode": false, "invite_only_mode": false, "raid_mode": false})
        )
    );

    let (st, v) = s
        .send(Method::PUT, "/status/modes", Some(&user), json!({"maintenance_mode": true}))
        .await;
    assert_eq!((st, rc(&v)), (403, "NotModerator"));
    let (st, v) = s.send(Method::PUT, "/status/modes", None, json!({"maintenance_mode": true})).await;
    assert_eq!((st, rc(&v)), (401, "InvalidAPIKey"));

    // Maintenance: new requests are refused; lifting it lets them in again.
    let (st, m) = s
        .send(Method::PUT, "/status/modes", Some(&moder), json!({"maintenance_mode": true}))
        .await;
    assert_eq!((st, m["maintenance_mode"].as_bool()), (200, Some(true)), "{m}");
    let (_, m) = s.get("/status/modes", None).await;
    assert_eq!(m["maintenance_mode"], true);
    let (st, v) = s.post("/generate/text/async", Some(&user), json!({"prompt": "hi"})).await;
    assert_eq!((st, rc(&v)), (400, "MaintenanceMode"));
    let (st, v) = s.post("/generate/async", Some(&user), json!({"prompt": "hi"})).await;
    assert_eq!((st, rc(&v)), (400, "MaintenanceMode"));
    s.send(Method::PUT, "/status/modes", Some(&moder), json!({"maintenance_mode": false}))
        .await;
    let (st, v) = s.post("/generate/text/async", Some(&user), json!({"prompt": "hi"})).await;
    assert_eq!(st, 202, "{v}");

    // Invite-only: workers that exist keep popping; a new one needs an invitation.
    let (st, _) = s.post("/generate/text/pop", Some(&user), json!({"name": "old-worker"})).await;
    assert_eq!(st, 200);
    s.send(Method::PUT, "/status/modes", Some(&moder), json!({"invite_only_mode": true}))
        .await;
    let (st, _) = s.post("/generate/text/pop", Some(&user), json!({"name": "old-worker"})).await;
    assert_eq!(st, 200);
    let (st, v) = s.post("/generate/text/pop", Some(&user), json!({"name": "new-worker"})).await;
    assert_eq!((st, rc(&v)), (403, "WorkerInviteOnly"));
    let (st, v) = s
        .send(
            Method::PUT,
            &format!("/users/{user_id}"),
            Some(&moder),
            json!({"worker_invited": 2}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.post("/generate/text/pop", Some(&user), json!({"name": "new-worker"})).await;
    assert_eq!(st, 200, "{v}");

    // Raid mode: no new accounts.
    s.send(
        Method::PUT,
        "/status/modes",
        Some(&moder),
        json!({"raid_mode": true, "invite_only_mode": false}),
    )
    .await;
    let (st, v) = s.post("/register", None, json!({"username": "raider"})).await;
    assert_eq!((st, rc(&v)), (403, "RaidMode"));
    let (_, m) = s.get("/status/modes", None).await;
    assert_eq!(m, json!({"maintenance_mode": false, "invite_only_mode": false, "raid_mode": true}));
    s.send(Method::PUT, "/status/modes", Some(&moder), json!({"raid_mode": false}))
        .await;
    let (st, v) = s.post("/register", None, json!({"username": "newcomer"})).await;
    assert_eq!(st, 201, "{v}");
}
on_both_databases!(mode_round_trip, modes);

/// IP timeouts in the public horde's shapes (moderators).
async fn ip_timeouts(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (user, _) = s.user("ip_user", 100.0, false, false).await;
    let (moder, _) = s.user("ip_moder", 0.0, true, false).await;
    let (st, v) = s.get("/operations/ipaddr", Some(&user)).await;
    assert_eq!((st, rc(&v)), (403, "NotModerator"));
    let (st, v) = s
        .post("/operations/ipaddr", Some(&moder), json!({"ipaddr": "10.0.0.0/8", "hours": 1}))
        .await;
    assert_eq!((st, rc(&v)), (400, "ValidationError"));
    let (st, v) = s
        .post("/operations/ipaddr", Some(&moder), json!({"ipaddr": "192.0.2.7", "hours": 2}))
        .await;
    assert_eq!((st, v["message"].as_str()), (200, Some("OK")), "{v}");
    let (st, list) = s.get("/operations/ipaddr", Some(&moder)).await;
    assert_eq!(st, 200);
    assert_eq!(list[0]["ipaddr"], "192.0.2.7", "{list}");
    assert!(list[0]["seconds"].as_u64().is_some_and(|t| t > 7000 && t <= 7200), "{list}");
    let (_, one) = s.get("/operations/ipaddr/192.0.2.7", Some(&moder)).await;
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    let (_, none) = s.get("/operations/ipaddr/192.0.2.8", Some(&moder)).await;
    assert_eq!(none, json!([]));
    let (st, _) = s
        .send(Method::DELETE, "/operations/ipaddr", Some(&moder), json!({"ipaddr": "192.0.2.7"}))
        .await;
    assert_eq!(st, 200);
    let (_, list) = s.get("/operations/ipaddr", Some(&moder)).await;
    assert_eq!(list, json!([]));
}
on_both_databases!(ip_timeout_round_trip, ip_timeouts);

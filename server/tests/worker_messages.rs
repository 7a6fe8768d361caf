//! Messages to workers over HTTP on every backend: who may write and read them, and pops
//! carrying the worker's unexpired messages (and nothing extra when there are none).

mod common;

use common::{Db, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn rc(v: &Value) -> &str {
    v["rc"].as_str().unwrap_or("")
}

async fn pop(s: &Server, key: &str, name: &str) -> Value {
    let (st, v) = s
        .post("/generate/text/pop", Some(key), json!({"name": name, "models": ["m-7B"]}))
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

fn texts(popped: &Value) -> Vec<String> {
    let mut t: Vec<String> = popped["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["message"].as_str().map(String::from))
        .collect();
    t.sort();
    t
}

async fn worker_messages(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (owner, owner_id) = s.user("msg_owner", 0.0, false, false).await;
    let (stranger, _) = s.user("msg_stranger", 0.0, false, false).await;
    let (moder, _) = s.user("msg_moder", 0.0, true, false).await;

    let idle = pop(&s, &owner, "msg-worker").await;
    assert!(idle.get("messages").is_none(), "no messages, no field: {idle}");
    pop(&s, &stranger, "other-worker").await;
    let (_, w) = s.get("/workers/name/msg-worker", None).await;
    let wid = w["id"].as_str().expect("worker id").to_string();

    let (st, m1) = s
        .post(
            "/workers/messages",
            Some(&moder),
            json!({"worker_id": wid, "message": "please update", "expiry": 2}),
        )
        .await;
    assert_eq!(st, 200, "{m1}");
    assert_eq!(
        (m1["origin"].as_str(), m1["worker_id"].as_str()),
        (Some("Horde moderators"), Some(wid.as_str()))
    );
    assert!(m1["expiry"].as_str().is_some_and(|e| e.ends_with("-0000")), "{m1}");
    let (st, m2) = s
        .post(
            "/workers/messages",
            Some(&owner),
            json!({"worker_id": wid, "message": "note to self", "origin": "someone else"}),
        )
        .await;
    assert_eq!(st, 200, "{m2}");
    assert_eq!(m2["origin"], owner_id.to_string());
    let (st, all) = s
        .post("/workers/messages", Some(&moder), json!({"message": "maintenance tonight"}))
        .await;
    assert_eq!(st, 200, "{all}");
    assert!(all.get("worker_id").is_none(), "{all}");

    let (st, v) = s
        .post("/workers/messages", Some(&stranger), json!({"worker_id": wid, "message": "hi"}))
        .await;
    assert_eq!((st, rc(&v)), (403, "MessagesOnlyOwnWorkers"));
    let (st, v) = s.post("/workers/messages", Some(&stranger), json!({"message": "to all"})).await;
    assert_eq!((st, rc(&v)), (403, "MessagesOnlyOwnWorkers"));
    let (st, v) = s
        .post(
            "/workers/messages",
            Some(&moder),
            json!({"worker_id": "00000000-0000-4000-8000-000000000000", "message": "x"}),
        )
        .await;
    assert_eq!((st, rc(&v)), (404, "WorkerNotFound"));
    let (st, v) = s.post("/workers/messages", Some(&moder), json!({"worker_id": wid})).await;
    assert_eq!(st, 400, "{v}");

    // Pops carry the worker's messages and those to every worker.
    let popped = pop(&s, &owner, "msg-worker").await;
    assert_eq!(
        texts(&popped),
        vec!["maintenance tonight", "note to self", "please update"],
        "{popped}"
    );
    let other = pop(&s, &stranger, "other-worker").await;
    assert_eq!(texts(&other), vec!["maintenance tonight"]);

    // Listing: one's own and the broadcasts; moderators anyone's.
    let (st, mine) = s.get("/workers/messages", Some(&owner)).await;
    assert_eq!(st, 200, "{mine}");
    assert_eq!(texts(&json!({"messages": mine})), vec!["maintenance tonight", "note to self"]);
    let (st, v) = s.get(&format!("/workers/messages?user_id={owner_id}"), Some(&stranger)).await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
    let (st, theirs) = s.get(&format!("/workers/messages?user_id={owner_id}"), Some(&moder)).await;
    assert_eq!(st, 200);
    assert_eq!(theirs.as_array().map(Vec::len), Some(2), "{theirs}");
    let (st, everything) = s.get(&format!("/workers/messages?worker_id={wid}"), Some(&moder)).await;
    assert_eq!((st, everything.as_array().map(Vec::len)), (200, Some(2)), "{everything}");
    let (st, v) = s.get("/workers/messages?validity=soon", Some(&owner)).await;
    assert_eq!((st, rc(&v)), (400, "BadRequest"));
    let (st, expired) = s.get("/workers/messages?validity=expired", Some(&moder)).await;
    assert_eq!((st, expired), (200, json!([])));

    // One message; deletion by its writer or a moderator.
    let m1_path = format!("/workers/messages/{}", m1["id"].as_str().unwrap_or_default());
    let (st, one) = s.get(&m1_path, None).await;
    assert_eq!((st, one["message"].as_str()), (200, Some("please update")));
    let (st, v) = s.get("/workers/messages/00000000-0000-4000-8000-000000000000", None).await;
    assert_eq!((st, rc(&v)), (404, "WorkerMessageNotFound"));
    let (st, v) = s.send(Method::DELETE, &m1_path, Some(&owner), json!({})).await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
    let (st, _) = s.send(Method::DELETE, &m1_path, Some(&moder), json!({})).await;
    assert_eq!(st, 200);
    let popped = pop(&s, &owner, "msg-worker").await;
    assert_eq!(texts(&popped), vec!["maintenance tonight", "note to self"]);
}
on_both_databases!(worker_message_round_trip, worker_messages);

//! Teams over HTTP on every backend: trusted users found them, workers join through
//! `PUT /workers/{id}`, and a team shows its members' summed figures.

mod common;

use common::{Db, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn rc(v: &Value) -> &str {
    v["rc"].as_str().unwrap_or("")
}

async fn worker_id(s: &Server, key: &str, name: &str) -> String {
    let (st, v) = s
        .post("/generate/text/pop", Some(key), json!({"name": name, "models": ["team-7B"]}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, w) = s.get(&format!("/workers/name/{name}"), None).await;
    w["id"].as_str().expect("worker id").to_string()
}

async fn teams(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (founder, founder_id) = s.user("founder", 0.0, false, true).await;
    let (member, _) = s.user("member", 0.0, false, false).await;
    let (moder, _) = s.user("team_moder", 0.0, true, false).await;
    let (requester, _) = s.user("team_requester", 100.0, false, false).await;

    let (st, v) = s.post("/teams", Some(&member), json!({"name": "Untrusted"})).await;
    assert_eq!((st, rc(&v)), (403, "UntrustedTeamCreation"));
    let (st, t) = s
        .post("/teams", Some(&founder), json!({"name": "Red Team", "info": "we run 7B"}))
        .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!((t["name"].as_str(), t["info"].as_str()), (Some("Red Team"), Some("we run 7B")));
    let tid = t["id"].as_str().expect("team id").to_string();
    let (st, v) = s.post("/teams", Some(&founder), json!({"name": "red team"})).await;
    assert_eq!((st, rc(&v)), (400, "TeamNameAlreadyExists"));

    // Any worker's owner may put it in the team; the worker's details name the team.
    let wid = worker_id(&s, &member, "team-worker").await;
    let wpath = format!("/workers/{wid}");
    let (st, v) = s.send(Method::PUT, &wpath, Some(&founder), json!({"team": tid})).await;
    assert_eq!((st, rc(&v)), (403, "NotModerator"));
    let (st, v) = s
        .send(
            Method::PUT,
            &wpath,
            Some(&member),
            json!({"team": "00000000-0000-4000-8000-000000000000"}),
        )
        .await;
    assert_eq!((st, rc(&v)), (404, "TeamNotFound"));
    let (st, v) = s
        .send(Method::PUT, &wpath, Some(&member), json!({"team": tid, "info": "a member"}))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!((v["team"].as_str(), v["info"].as_str()), (Some("Red Team"), Some("a member")));
    let (_, w) = s.get(&wpath, None).await;
    assert_eq!(w["team"], json!({"id": tid, "name": "Red Team"}));
    let (_, list) = s.get("/workers?type=text", None).await;
    let listed = list
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["id"] == wid.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed["team"]["name"], "Red Team", "{list}");

    // The team's figures are its members': a finished job counts.
    let (st, _) = s
        .post(
            "/generate/text/async",
            Some(&requester),
            json!({"prompt": "hi", "models": ["team-7B"]}),
        )
        .await;
    assert_eq!(st, 202);
    let (_, job) = s
        .post(
            "/generate/text/pop",
            Some(&member),
            json!({"name": "team-worker", "models": ["team-7B"]}),
        )
        .await;
    let (st, r) = s
        .post(
            "/generate/text/submit",
            Some(&member),
            json!({"id": job["id"], "generation": "hello", "state": "ok"}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let (st, d) = s.get(&format!("/teams/{tid}"), None).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["creator"], format!("founder#{founder_id}"));
    assert_eq!(
        (d["worker_count"].as_i64(), d["requests_fulfilled"].as_i64()),
        (Some(1), Some(1)),
        "{d}"
    );
    assert!(d["kudos"].as_f64().is_some_and(|k| k > 0.0), "{d}");
    assert_eq!(d["workers"][0]["name"], "team-worker");
    assert_eq!(d["models"], json!([{"name": "team-7B", "count": 1}]));
    let (_, all) = s.get("/teams", None).await;
    assert_eq!(all.as_array().map(Vec::len), Some(1));

    // Changes: info by the owner, names by the owner or moderators; nothing to change is refused.
    let tpath = format!("/teams/{tid}");
    let (st, v) = s.send(Method::PATCH, &tpath, Some(&member), json!({"info": "taken"})).await;
    assert_eq!((st, rc(&v)), (403, "NotOwner"));
    let (st, v) = s.send(Method::PATCH, &tpath, Some(&member), json!({"name": "Mine"})).await;
    assert_eq!((st, rc(&v)), (403, "NotModerator"));
    let (st, v) = s.send(Method::PATCH, &tpath, Some(&founder), json!({})).await;
    assert_eq!((st, rc(&v)), (400, "NoTeamModSelected"));
    let (st, v) = s.send(Method::PATCH, &tpath, Some(&moder), json!({"name": "Blue Team"})).await;
    assert_eq!((st, v["name"].as_str()), (200, Some("Blue Team")));

    // Leaving, then deletion by a moderator.
    let (st, v) = s.send(Method::PUT, &wpath, Some(&member), json!({"team": ""})).await;
    assert_eq!((st, v["team"].as_str()), (200, Some("None")));
    let (_, w) = s.get(&wpath, None).await;
    assert_eq!(w["team"], json!({"id": null, "name": null}));
    let (st, v) = s.send(Method::DELETE, &tpath, Some(&member), json!({})).await;
    assert_eq!((st, rc(&v)), (403, "NotModerator"));
    let (st, v) = s.send(Method::DELETE, &tpath, Some(&moder), json!({})).await;
    assert_eq!((st, v["deleted_name"].as_str()), (200, Some("Blue Team")));
    let (st, v) = s.get(&tpath, None).await;
    assert_eq!((st, rc(&v)), (404, "TeamNotFound"));
}
on_both_databases!(team_round_trip, teams);

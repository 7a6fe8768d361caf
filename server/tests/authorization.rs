//! Authorization review as one table, on SQLite and PostgreSQL: nobody acts on another user's
//! worker, job or kudos; the anonymous key runs no worker and moves no kudos; moderator powers
//! stay with moderators. Each row is an attempt that must be refused, with its status and rc.

mod common;

use common::Db;
use reqwest::Method;
use serde_json::{json, Value};

const ANON: &str = "0000000000";

/// What is tried, how, by whom (API key), with what body, and the refusal expected (status, rc).
type Attempt<'a> = (&'a str, Method, String, Option<&'a str>, Value, u16, &'a str);

async fn nobody_acts_for_someone_else(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (owner, owner_id) = s.user("owner", 100.0, false, false).await;
    let (stranger, _) = s.user("stranger", 100.0, false, false).await;
    let (requester, _) = s.user("requester", 100.0, false, false).await;
    let (moder, _) = s.user("moder", 0.0, true, false).await;

    // The owner's text and image workers, each holding a job.
    s.post("/generate/text/async", Some(&requester), json!({"prompt": "t"})).await;
    s.post("/generate/async", Some(&requester), json!({"prompt": "i"})).await;
    let (_, text_job) = s.post("/generate/text/pop", Some(&owner), json!({"name": "own-text"})).await;
    let (_, image_job) = s
        .post(
            "/generate/pop",
            Some(&owner),
            json!({"name": "own-image", "models": ["stable_diffusion"]}),
        )
        .await;
    // A 1×1 PNG for the owner's alchemist.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    s.post(
        "/interrogate/async",
        Some(&requester),
        json!({"forms": [{"name": "caption"}], "source_image": png}),
    )
    .await;
    let (_, alchemy_job) = s
        .post(
            "/interrogate/pop",
            Some(&owner),
            json!({"name": "own-alchemist", "forms": ["caption"]}),
        )
        .await;
    let alchemy_job = alchemy_job["forms"][0]["id"].clone();
    let (text_job, image_job) = (text_job["id"].clone(), image_job["id"].clone());
    assert!(text_job.is_string() && image_job.is_string() && alchemy_job.is_string());
    let (_, w) = s.get("/workers/name/own-text", None).await;
    let wid = w["id"].as_str().unwrap_or_default().to_string();
    let worker = format!("/workers/{wid}");
    let owner_user = format!("/users/{owner_id}");
    // A trusted author's style.
    let (stylist, _) = s.user("stylist", 0.0, false, true).await;
    let (st, made) = s
        .post(
            "/styles/image",
            Some(&stylist),
            json!({"name": "owned", "prompt": "{p}{np}", "models": ["stable_diffusion"]}),
        )
        .await;
    assert_eq!(st, 200, "{made}");
    let style = format!("/styles/image/{}", made["id"].as_str().unwrap_or_default());
    let (st, shared) = s.send(Method::PUT, "/sharedkeys", Some(&owner), json!({"kudos": 10})).await;
    assert_eq!(st, 200, "{shared}");
    let shared = format!("/sharedkeys/{}", shared["id"].as_str().unwrap_or_default());
    let (st, team) = s.post("/teams", Some(&stylist), json!({"name": "Stylists"})).await;
    assert_eq!(st, 200, "{team}");
    let team = team["id"].as_str().unwrap_or_default().to_string();

    let attempts: Vec<Attempt> = vec![
        // Another user's worker.
        (
            "modify another's worker",
            Method::PUT,
            worker.clone(),
            Some(&stranger),
            json!({"maintenance": true}),
            403,
            "NotOwner",
        ),
        (
            "rename another's worker",
            Method::PUT,
            worker.clone(),
            Some(&stranger),
            json!({"name": "mine"}),
            403,
            "NotOwner",
        ),
        (
            "delete another's worker",
            Method::DELETE,
            worker.clone(),
            Some(&stranger),
            json!({}),
            403,
            "NotOwner",
        ),
        (
            "pause as owner",
            Method::PUT,
            worker.clone(),
            Some(&owner),
            json!({"paused": true}),
            403,
            "NotModerator",
        ),
        (
            "delete another's account",
            Method::DELETE,
            owner_user.clone(),
            Some(&stranger),
            json!({}),
            403,
            "NotModerator",
        ),
        (
            "delete an account anonymously",
            Method::DELETE,
            owner_user.clone(),
            None,
            json!({}),
            401,
            "InvalidAPIKey",
        ),
        (
            "delete an account with the anonymous key",
            Method::DELETE,
            owner_user.clone(),
            Some(ANON),
            json!({}),
            403,
            "AnonForbidden",
        ),
        (
            "undelete another's account",
            Method::PUT,
            owner_user.clone(),
            Some(&stranger),
            json!({"undelete": true}),
            403,
            "NotModerator",
        ),
        (
            "modify a worker anonymously",
            Method::PUT,
            worker.clone(),
            None,
            json!({"maintenance": true}),
            401,
            "InvalidAPIKey",
        ),
        (
            "delete a worker with the anonymous key",
            Method::DELETE,
            worker.clone(),
            Some(ANON),
            json!({}),
            403,
            "NotOwner",
        ),
        (
            "pop under another's worker name",
            Method::POST,
            "/generate/text/pop".into(),
            Some(&stranger),
            json!({"name": "own-text"}),
            403,
            "WrongCredentials",
        ),
        (
            "image pop under another's worker name",
            Method::POST,
            "/generate/pop".into(),
            Some(&stranger),
            json!({"name": "own-image"}),
            403,
            "WrongCredentials",
        ),
        (
            "alchemist pop under another's worker name",
            Method::POST,
            "/interrogate/pop".into(),
            Some(&stranger),
            json!({"name": "own-alchemist", "forms": ["caption"]}),
            403,
            "WrongCredentials",
        ),
        (
            "alchemist pop under an image worker's name",
            Method::POST,
            "/interrogate/pop".into(),
            Some(&owner),
            json!({"name": "own-image", "forms": ["caption"]}),
            400,
            "PolymorphicNameConflict",
        ),
        // Another worker's jobs.
        (
            "submit another's alchemy form",
            Method::POST,
            "/interrogate/submit".into(),
            Some(&stranger),
            json!({"id": alchemy_job, "result": {"caption": "x"}}),
            403,
            "WrongCredentials",
        ),
        (
            "submit an alchemy form anonymously",
            Method::POST,
            "/interrogate/submit".into(),
            None,
            json!({"id": alchemy_job, "result": {"caption": "x"}}),
            401,
            "InvalidAPIKey",
        ),
        (
            "anonymous alchemist",
            Method::POST,
            "/interrogate/pop".into(),
            Some(ANON),
            json!({"name": "anon-alc", "forms": ["caption"]}),
            403,
            "AnonForbiddenWorker",
        ),
        (
            "submit another's text job",
            Method::POST,
            "/generate/text/submit".into(),
            Some(&stranger),
            json!({"id": text_job, "generation": "x"}),
            403,
            "WrongCredentials",
        ),
        (
            "submit another's image job",
            Method::POST,
            "/generate/submit".into(),
            Some(&stranger),
            json!({"id": image_job, "generation": "x"}),
            403,
            "WrongCredentials",
        ),
        (
            "submit a job anonymously",
            Method::POST,
            "/generate/text/submit".into(),
            None,
            json!({"id": text_job, "generation": "x"}),
            401,
            "InvalidAPIKey",
        ),
        // The anonymous key runs no worker and moves no kudos.
        (
            "anonymous text worker",
            Method::POST,
            "/generate/text/pop".into(),
            Some(ANON),
            json!({"name": "anon-w"}),
            403,
            "AnonForbiddenWorker",
        ),
        (
            "anonymous image worker",
            Method::POST,
            "/generate/pop".into(),
            Some(ANON),
            json!({"name": "anon-w"}),
            403,
            "AnonForbiddenWorker",
        ),
        (
            "transfer from anonymous",
            Method::POST,
            "/kudos/transfer".into(),
            Some(ANON),
            json!({"username": format!("owner#{owner_id}"), "amount": 1}),
            403,
            "KudosTransferFromAnon",
        ),
        (
            "transfer without a key",
            Method::POST,
            "/kudos/transfer".into(),
            None,
            json!({"username": format!("owner#{owner_id}"), "amount": 1}),
            401,
            "InvalidAPIKey",
        ),
        // Another user's account and kudos.
        (
            "change another's account",
            Method::PUT,
            owner_user.clone(),
            Some(&stranger),
            json!({"kudos": 1000}),
            403,
            "NotModerator",
        ),
        (
            "give oneself kudos",
            Method::PUT,
            owner_user.clone(),
            Some(&owner),
            json!({"kudos": 1000}),
            403,
            "NotModerator",
        ),
        (
            "make oneself trusted",
            Method::PUT,
            owner_user.clone(),
            Some(&owner),
            json!({"trusted": true}),
            403,
            "NotModerator",
        ),
        (
            "make oneself moderator",
            Method::PUT,
            owner_user.clone(),
            Some(&owner),
            json!({"moderator": true}),
            403,
            "NotModerator",
        ),
        // Styles: created by trusted users, changed by their author, deleted by it or a moderator.
        (
            "create a style untrusted",
            Method::POST,
            "/styles/image".into(),
            Some(&owner),
            json!({"name": "mine", "models": ["m"]}),
            403,
            "StylesRequiresCustomizer",
        ),
        (
            "create a style anonymously",
            Method::POST,
            "/styles/text".into(),
            Some(ANON),
            json!({"name": "anon", "models": ["m"]}),
            403,
            "StylesRequiresCustomizer",
        ),
        (
            "create a style without a key",
            Method::POST,
            "/styles/image".into(),
            None,
            json!({"name": "nokey", "models": ["m"]}),
            401,
            "InvalidAPIKey",
        ),
        (
            "create a collection anonymously",
            Method::POST,
            "/collections".into(),
            Some(ANON),
            json!({"name": "anon", "styles": ["owned"]}),
            403,
            "StylesAnonForbidden",
        ),
        (
            "modify another's style",
            Method::PATCH,
            style.clone(),
            Some(&stranger),
            json!({"info": "taken over"}),
            403,
            "Forbidden",
        ),
        (
            "modify another's style as moderator",
            Method::PATCH,
            style.clone(),
            Some(&moder),
            json!({"info": "taken over"}),
            403,
            "Forbidden",
        ),
        (
            "delete another's style",
            Method::DELETE,
            style.clone(),
            Some(&stranger),
            json!({}),
            403,
            "Forbidden",
        ),
        (
            "delete a style anonymously",
            Method::DELETE,
            style.clone(),
            Some(ANON),
            json!({}),
            403,
            "StylesAnonForbidden",
        ),
        (
            "add an example to another's style",
            Method::POST,
            format!("{style}/example"),
            Some(&stranger),
            json!({"url": "https://x.invalid/a.webp", "primary": true}),
            403,
            "Forbidden",
        ),
        // Shared keys: the owner's to change; none for the anonymous user.
        (
            "create a shared key anonymously",
            Method::PUT,
            "/sharedkeys".into(),
            Some(ANON),
            json!({}),
            403,
            "AnonForbidden",
        ),
        (
            "change another's shared key",
            Method::PATCH,
            shared.clone(),
            Some(&stranger),
            json!({"kudos": -1}),
            403,
            "Forbidden",
        ),
        (
            "change another's shared key as moderator",
            Method::PATCH,
            shared.clone(),
            Some(&moder),
            json!({"kudos": -1}),
            403,
            "Forbidden",
        ),
        (
            "delete another's shared key",
            Method::DELETE,
            shared.clone(),
            Some(&stranger),
            json!({}),
            403,
            "Forbidden",
        ),
        (
            "delete a shared key without a key",
            Method::DELETE,
            shared.clone(),
            None,
            json!({}),
            401,
            "InvalidAPIKey",
        ),
        // Messages to workers: owners to their own workers; moderators to any or all.
        (
            "message another's worker",
            Method::POST,
            "/workers/messages".into(),
            Some(&stranger),
            json!({"worker_id": wid, "message": "hi"}),
            403,
            "MessagesOnlyOwnWorkers",
        ),
        (
            "message every worker as a user",
            Method::POST,
            "/workers/messages".into(),
            Some(&owner),
            json!({"message": "hi all"}),
            403,
            "MessagesOnlyOwnWorkers",
        ),
        (
            "message a worker anonymously",
            Method::POST,
            "/workers/messages".into(),
            Some(ANON),
            json!({"worker_id": wid, "message": "hi"}),
            403,
            "AnonForbidden",
        ),
        (
            "read another's messages",
            Method::GET,
            format!("/workers/messages?user_id={owner_id}"),
            Some(&stranger),
            json!({}),
            403,
            "Forbidden",
        ),
        // Teams: founded by trusted users; a worker joins by its owner's (or a moderator's) say.
        (
            "found a team untrusted",
            Method::POST,
            "/teams".into(),
            Some(&owner),
            json!({"name": "Owners"}),
            403,
            "UntrustedTeamCreation",
        ),
        (
            "found a team anonymously",
            Method::POST,
            "/teams".into(),
            Some(ANON),
            json!({"name": "Anons"}),
            403,
            "AnonForbidden",
        ),
        (
            "put another's worker in a team",
            Method::PUT,
            worker.clone(),
            Some(&stranger),
            json!({"team": team.clone()}),
            403,
            "NotModerator",
        ),
        (
            "rename another's team",
            Method::PATCH,
            format!("/teams/{team}"),
            Some(&stranger),
            json!({"name": "Ours"}),
            403,
            "NotModerator",
        ),
        (
            "delete another's team",
            Method::DELETE,
            format!("/teams/{team}"),
            Some(&stranger),
            json!({}),
            403,
            "NotModerator",
        ),
        // Moderator powers.
        (
            "award kudos",
            Method::POST,
            "/kudos/award".into(),
            Some(&owner),
            json!({"username": "stranger", "amount": 100}),
            403,
            "NotAllowedAwards",
        ),
        (
            "award kudos anonymously",
            Method::POST,
            "/kudos/award".into(),
            Some(ANON),
            json!({"username": "owner", "amount": 100}),
            403,
            "NotAllowedAwards",
        ),
        (
            "list IP timeouts",
            Method::GET,
            "/operations/ipaddr".into(),
            Some(&owner),
            json!({}),
            403,
            "NotModerator",
        ),
        (
            "time out an IP for hours",
            Method::POST,
            "/operations/ipaddr".into(),
            Some(&owner),
            json!({"ipaddr": "192.0.2.1", "hours": 1}),
            403,
            "NotModerator",
        ),
        (
            "lift an IP timeout",
            Method::DELETE,
            "/operations/ipaddr".into(),
            Some(ANON),
            json!({"ipaddr": "192.0.2.1"}),
            403,
            "NotModerator",
        ),
        (
            "set the horde's modes",
            Method::PUT,
            "/status/modes".into(),
            Some(&owner),
            json!({"maintenance_mode": true}),
            403,
            "NotModerator",
        ),
        (
            "set the horde's modes anonymously",
            Method::PUT,
            "/status/modes".into(),
            Some(ANON),
            json!({"raid_mode": true}),
            403,
            "NotModerator",
        ),
        (
            "list filters",
            Method::GET,
            "/filters".into(),
            Some(&owner),
            json!({}),
            403,
            "NotModerator",
        ),
        (
            "add a filter",
            Method::PUT,
            "/filters".into(),
            Some(&owner),
            json!({"regex": "x", "filter_type": 20}),
            403,
            "NotModerator",
        ),
        (
            "delete a filter",
            Method::DELETE,
            "/filters/1".into(),
            Some(&owner),
            json!({}),
            403,
            "NotModerator",
        ),
        (
            "time out an IP",
            Method::PUT,
            "/operations/ipaddr".into(),
            Some(&owner),
            json!({"ipaddr": "192.0.2.1", "minutes": 5}),
            403,
            "NotModerator",
        ),
        (
            "block a worker's IP",
            Method::PUT,
            format!("/operations/block_worker_ipaddr/{wid}"),
            Some(&owner),
            json!({"days": 1}),
            403,
            "NotModerator",
        ),
    ];
    for (what, method, path, key, body, status, rc) in attempts {
        let (st, v) = s.send(method, &path, key, body).await;
        assert_eq!((st, v["rc"].as_str().unwrap_or("")), (status, rc), "{what}: {v}");
    }

    // Nothing above changed anything: the jobs still belong to the owner, who can finish them.
    let (st, v) = s
        .post("/generate/text/submit", Some(&owner), json!({"id": text_job, "generation": "done"}))
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, w) = s.get(&worker, Some(&owner)).await;
    assert_eq!(
        (w["name"].as_str(), w["maintenance_mode"].as_bool()),
        (Some("own-text"), Some(false))
    );
    let (_, me) = s.get("/find_user", Some(&owner)).await;
    assert_eq!((me["trusted"].as_bool(), me["moderator"].as_bool()), (Some(false), Some(false)));

    // What moderators may do, they can.
    let (st, _) = s.send(Method::PUT, &worker, Some(&moder), json!({"paused": true})).await;
    assert_eq!(st, 200);
    let (st, _) = s.send(Method::PUT, &owner_user, Some(&moder), json!({"trusted": true})).await;
    assert_eq!(st, 200);
    let (st, m) = s
        .post(
            "/workers/messages",
            Some(&moder),
            json!({"worker_id": wid, "message": "from the moderators"}),
        )
        .await;
    assert_eq!(st, 200, "{m}");
    let (_, team_kept) = s.get(&format!("/teams/{team}"), None).await;
    assert_eq!(
        (team_kept["name"].as_str(), team_kept["worker_count"].as_i64()),
        (Some("Stylists"), Some(0))
    );
    let (st, _) = s.send(Method::PUT, &worker, Some(&owner), json!({"team": team.clone()})).await;
    assert_eq!(st, 200);
    let (st, _) = s.send(Method::DELETE, &format!("/teams/{team}"), Some(&moder), json!({})).await;
    assert_eq!(st, 200);
    let (_, key_kept) = s.get(&shared, None).await;
    assert_eq!(key_kept["kudos"], 10, "{key_kept}");
    let (_, kept) = s.get(&style, None).await;
    assert_eq!(kept["info"], "", "{kept}");
    let (st, _) = s.send(Method::DELETE, &style, Some(&moder), json!({})).await;
    assert_eq!(st, 200);
}
on_both_databases!(authorization, nobody_acts_for_someone_else);

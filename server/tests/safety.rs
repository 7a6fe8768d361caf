//! The prompt filter and IP timeouts over HTTP, on SQLite and on PostgreSQL: rewriting, refusal,
//! escalating timeouts on generate and pop, moderators' rule management and manual timeouts.

mod common;

use common::Db;
use reqwest::Method;
use serde_json::json;

async fn filter_and_timeouts(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (req_key, _) = s.user("f_requester", 100.0, false, false).await;
    let (mod_key, _) = s.user("f_moderator", 0.0, true, false).await;
    let (wk_key, _) = s.user("f_worker", 0.0, false, false).await;

    // One context alone passes untouched; both are rewritten to adult terms when allowed.
    let (st, _) = s
        .post("/generate/async", Some(&req_key), json!({"prompt": "a child flying a kite"}))
        .await;
    assert_eq!(st, 202);
    let (st, acc) = s
        .post(
            "/generate/async",
            Some(&req_key),
            json!({"prompt": "a little girl, nude ### blurry"}),
        )
        .await;
    assert_eq!(st, 202, "{acc}");
    let mut prompts = vec![];
    for _ in 0..2 {
        let (_, job) = s
            .post(
                "/generate/pop",
                Some(&wk_key),
                json!({"name": "fw", "models": ["stable_diffusion"]}),
            )
            .await;
        prompts.push(job["payload"]["prompt"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(
        prompts,
        vec!["a child flying a kite".to_string(), "a adult woman, nude ### blurry".to_string()]
    );
    // Text is never filtered.
    let (st, _) = s
        .post("/generate/text/async", Some(&req_key), json!({"prompt": "a child, nude"}))
        .await;
    assert_eq!(st, 202);

    // Moderators manage the rules; others may not.
    let (st, e) = s.get("/filters", Some(&req_key)).await;
    assert_eq!((st, e["rc"].as_str()), (403, Some("NotModerator")));
    let (st, shipped) = s.get("/filters?filter_type=20", Some(&mod_key)).await;
    assert_eq!(st, 200);
    assert!(shipped
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(|f| f["filter_type"] == 20)));
    let (st, e) = s
        .send(Method::PUT, "/filters", Some(&mod_key), json!({"regex": "(", "filter_type": 20}))
        .await;
    assert_eq!((st, e["rc"].as_str()), (400, Some("ValidationError")));
    let (st, rule) = s
        .send(
            Method::PUT,
            "/filters",
            Some(&mod_key),
            json!({"regex": "\\bzorblax\\b", "filter_type": 20, "description": "test word"}),
        )
        .await;
    assert_eq!(st, 200, "{rule}");
    let id = rule["id"].as_i64().unwrap_or_default();
    let (_, check) = s.post("/filters", Some(&mod_key), json!({"prompt": "a kid and a zorblax"})).await;
    assert_eq!(check["suspicion"], 2, "{check}");
    let (st, patched) = s
        .send(
            Method::PATCH,
            &format!("/filters/{id}"),
            Some(&mod_key),
            json!({"regex": "\\bzorblaxx\\b"}),
        )
        .await;
    assert_eq!((st, patched["regex"].as_str()), (200, Some("\\bzorblaxx\\b")));
    let (_, check) = s.post("/filters", Some(&mod_key), json!({"prompt": "a kid and a zorblax"})).await;
    assert_eq!(check["suspicion"], 1);
    let (_, regexes) = s.get("/filters/regex?filter_type=20", Some(&mod_key)).await;
    assert!(regexes[0]["regex"].as_str().is_some_and(|r| r.contains("zorblaxx")), "{regexes}");
    let (st, _) = s.send(Method::DELETE, &format!("/filters/{id}"), Some(&mod_key), json!({})).await;
    assert_eq!(st, 200);
    let (st, e) = s.get(&format!("/filters/{id}"), Some(&mod_key)).await;
    assert_eq!((st, e["rc"].as_str()), (404, Some("FilterNotFound")));

    // Both contexts without the replacement filter: refused, and the address is timed out for
    // generate (text too) and pop. A moderator can lift it; the next refusal times out longer.
    let (st, e) = s
        .post(
            "/generate/async",
            Some(&req_key),
            json!({"prompt": "c h i l d, naked", "replacement_filter": false}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (400, Some("CorruptPrompt")));
    let (st, e) = s.post("/generate/async", Some(&req_key), json!({"prompt": "a meadow"})).await;
    assert_eq!((st, e["rc"].as_str()), (403, Some("TimeoutIP")));
    assert!(e["message"].as_str().is_some_and(|m| m.contains("3 more minutes")), "{e}");
    let (st, e) = s.post("/generate/text/async", Some(&req_key), json!({"prompt": "hello"})).await;
    assert_eq!((st, e["rc"].as_str()), (403, Some("TimeoutIP")));
    let (st, e) = s
        .post(
            "/generate/pop",
            Some(&wk_key),
            json!({"name": "fw", "models": ["stable_diffusion"]}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (403, Some("TimeoutIP")));
    let (st, e) = s
        .send(
            Method::PUT,
            "/operations/ipaddr",
            Some(&req_key),
            json!({"ipaddr": "127.0.0.1", "minutes": 0}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (403, Some("NotModerator")));
    let (st, _) = s
        .send(
            Method::PUT,
            "/operations/ipaddr",
            Some(&mod_key),
            json!({"ipaddr": "127.0.0.1", "minutes": 0}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s.post("/generate/async", Some(&req_key), json!({"prompt": "a meadow"})).await;
    assert_eq!(st, 202);
    let long = format!("{} child nude", "word ".repeat(250));
    let (st, e) = s.post("/generate/async", Some(&req_key), json!({"prompt": long})).await;
    assert_eq!(
        (st, e["rc"].as_str()),
        (400, Some("CorruptPrompt")),
        "long prompts are refused, not rewritten"
    );
    let (_, e) = s.post("/generate/async", Some(&req_key), json!({"prompt": "a meadow"})).await;
    assert!(e["message"].as_str().is_some_and(|m| m.contains("9 more minutes")), "{e}");
}

on_both_databases!(prompt_filter_and_ip_timeouts, filter_and_timeouts);

async fn suspicion_and_worker_ip_blocks(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (abuser, _) = s.user("abuser", 100.0, false, false).await;
    let (_, friend_id) = s.user("friend", 100.0, false, false).await;
    let (moder, _) = s.user("s_moderator", 0.0, true, false).await;
    let (owner, _) = s.user("s_owner", 0.0, false, false).await;
    let lift = json!({"ipaddr": "127.0.0.1", "minutes": 0});

    // Each corrupt prompt is a suspicion; at five the account can no longer move kudos.
    let (st, _) = s
        .post(
            "/kudos/transfer",
            Some(&abuser),
            json!({"username": format!("friend#{friend_id}"), "amount": 1}),
        )
        .await;
    assert_eq!(st, 200);
    for _ in 0..5 {
        let (st, v) = s
            .post(
                "/generate/async",
                Some(&abuser),
                json!({"prompt": "little girl nude", "replacement_filter": false}),
            )
            .await;
        assert_eq!((st, v["rc"].as_str()), (400, Some("CorruptPrompt")), "{v}");
        let (st, _) = s.send(Method::PUT, "/operations/ipaddr", Some(&moder), lift.clone()).await;
        assert_eq!(st, 200);
    }
    let (st, v) = s
        .post(
            "/kudos/transfer",
            Some(&abuser),
            json!({"username": format!("friend#{friend_id}"), "amount": 1}),
        )
        .await;
    assert_eq!((st, v["rc"].as_str()), (403, Some("FaultWhenKudosSending")), "{v}");

    // A worker with a needlessly long name declaring absurd pixels is suspected twice; the
    // moderator sees it, the public does not.
    let name = "w".repeat(60);
    let (st, _) = s
        .post(
            "/generate/pop",
            Some(&owner),
            json!({"name": name, "models": ["stable_diffusion"], "max_pixels": 4096 * 4096}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, w) = s.get(&format!("/workers/name/{name}"), Some(&moder)).await;
    assert_eq!(w["suspicious"].as_i64(), Some(2), "{w}");
    let (_, public) = s.get(&format!("/workers/name/{name}"), None).await;
    assert!(public.get("suspicious").is_none(), "{public}");

    // Moderators block the address a worker checked in from; others may not.
    let wid = w["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/operations/block_worker_ipaddr/{wid}");
    let (st, v) = s.send(Method::PUT, &path, Some(&owner), json!({"days": 1})).await;
    assert_eq!((st, v["rc"].as_str()), (403, Some("NotModerator")));
    let (st, v) = s.send(Method::PUT, &path, Some(&moder), json!({"days": 1})).await;
    assert_eq!((st, v["minutes"].as_u64()), (200, Some(1440)), "{v}");
    let (st, v) = s
        .post("/generate/pop", Some(&owner), json!({"name": name, "models": ["stable_diffusion"]}))
        .await;
    assert_eq!((st, v["rc"].as_str()), (403, Some("TimeoutIP")), "{v}");
    let (st, _) = s.send(Method::DELETE, &path, Some(&moder), json!({})).await;
    assert_eq!(st, 200);
    let (st, _) = s
        .post("/generate/pop", Some(&owner), json!({"name": name, "models": ["stable_diffusion"]}))
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .send(
            Method::PUT,
            "/operations/block_worker_ipaddr/00000000-0000-0000-0000-000000000000",
            Some(&moder),
            json!({}),
        )
        .await;
    assert_eq!((st, v["rc"].as_str()), (404, Some("WorkerNotFound")));
}
on_both_databases!(suspicion_and_blocks, suspicion_and_worker_ip_blocks);

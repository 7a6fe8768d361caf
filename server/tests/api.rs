//! HTTP tests against the real `horde` binary, each on SQLite and on PostgreSQL.

mod common;

use common::{Db, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn is_uuid(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4)
}

async fn text_round_trip(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (req_key, _) = s.user("requester", 1000.0, false, false).await;
    let (wk_key, wk_id) = s.user("volunteer", 0.0, false, false).await;

    let (st, accepted) = s
        .post("/generate/text/async", Some(&req_key), json!({"prompt": "Once upon a time", "models": ["tiny-7B"], "params": {"max_length": 64, "temperature": 0.7, "sampler_seed": 3, "mirostat": 2}}))
        .await;
    assert_eq!(st, 202, "{accepted}");
    assert!(is_uuid(&accepted["id"]));
    assert!(
        accepted["message"].as_str().is_some_and(|m| m.contains("No available workers")),
        "no worker yet: {accepted}"
    );
    let id = accepted["id"].as_str().unwrap_or_default().to_string();

    let (st, status) = s.get(&format!("/generate/text/status/{id}"), None).await;
    assert_eq!(st, 200);
    for field in ["finished", "processing", "restarted", "waiting", "wait_time", "queue_position"] {
        assert!(status[field].is_i64(), "{field} is an integer: {status}");
    }
    assert_eq!(
        (
            status["waiting"].as_i64(),
            status["done"].as_bool(),
            status["is_possible"].as_bool()
        ),
        (Some(1), Some(false), Some(false))
    );
    assert!(status.get("message").is_none(), "Lite aborts on a message key");

    let (st, pop) = s
        .post(
            "/generate/text/pop",
            Some(&wk_key),
            json!({"name": "vol-1", "models": ["tiny-7B"], "max_length": 512, "max_context_length": 4096, "bridge_agent": "test:1:none"}),
        )
        .await;
    assert_eq!(st, 200, "{pop}");
    assert!(is_uuid(&pop["id"]));
    assert_eq!(pop["ids"].as_array().map(Vec::len), Some(1));
    assert_eq!(pop["model"], "tiny-7B");
    assert_eq!(pop["payload"]["prompt"], "Once upon a time");
    assert_eq!(pop["payload"]["max_length"], 64);
    assert_eq!(pop["payload"]["n"], 1);
    assert!(pop["payload"].get("mirostat").is_none(), "unknown params never reach workers");
    assert_eq!(pop["payload"]["sampler_seed"], 3, "KoboldAI's seed does");
    assert!(pop["ttl"].as_i64().is_some_and(|t| t >= 150));

    let (_, status) = s.get(&format!("/generate/text/status/{id}"), None).await;
    assert_eq!(
        (
            status["processing"].as_i64(),
            status["waiting"].as_i64(),
            status["is_possible"].as_bool()
        ),
        (Some(1), Some(0), Some(true))
    );

    let job = pop["id"].as_str().unwrap_or_default();
    let (st, sub) = s
        .post(
            "/generate/text/submit",
            Some(&wk_key),
            json!({"id": job, "generation": " there was a horde.", "state": "ok", "seed": 42}),
        )
        .await;
    assert_eq!(st, 200, "{sub}");
    assert!(sub["reward"].as_f64().is_some_and(|r| r > 0.0));

    let (_, status) = s.get(&format!("/generate/text/status/{id}"), None).await;
    assert_eq!(status["done"], true);
    assert_eq!(status["finished"], 1);
    let g = &status["generations"][0];
    assert_eq!(g["text"], " there was a horde.");
    assert_eq!(g["worker_name"], "vol-1");
    assert_eq!(g["model"], "tiny-7B");
    assert_eq!(g["state"], "ok");
    assert_eq!(g["seed"], 42);
    assert!(is_uuid(&g["worker_id"]));
    assert!(status["kudos"].as_f64().is_some_and(|k| k > 1.0));

    // The worker's owner earned what the requester paid minus the taxes.
    let (_, me) = s.get("/find_user", Some(&wk_key)).await;
    assert_eq!(me["kudos"].as_f64(), sub["reward"].as_f64());
    assert_eq!(me["worker_ids"].as_array().map(Vec::len), Some(1));
    let (_, req_user) = s.get("/find_user", Some(&req_key)).await;
    let spent = 1000.0 - req_user["kudos"].as_f64().unwrap_or(0.0);
    assert!(
        (spent - status["kudos"].as_f64().unwrap_or(0.0)).abs() < 0.011,
        "spent {spent} vs consumed {}",
        status["kudos"]
    );

    let (_, workers) = s.get("/workers?type=text", None).await;
    let w = &workers[0];
    assert_eq!(
        (w["name"].as_str(), w["requests_fulfilled"].as_i64(), w["online"].as_bool()),
        (Some("vol-1"), Some(1), Some(true))
    );
    assert!(w["performance"].as_str().is_some_and(|p| p.ends_with("tokens per second")));
    assert!(w["kudos_rewards"].is_number());
    let (_, by_name) = s.get("/workers/name/vol-1", None).await;
    assert_eq!(by_name["id"], w["id"]);
    let (_, models) = s.get("/status/models?type=text", None).await;
    assert_eq!(models[0]["name"], "tiny-7B");
    assert_eq!(models[0]["type"], "text");
    let (_, image_models) = s.get("/status/models", None).await;
    assert_eq!(image_models, json!([]));
    let (_, perf) = s.get("/status/performance", None).await;
    assert_eq!(perf["text_worker_count"], 1);
    assert!(perf["past_minute_tokens"].as_f64().is_some_and(|t| t >= 20.0));
    let (_, hb) = s.get("/status/heartbeat", None).await;
    assert_eq!(hb["message"], "OK");
    assert!(hb["version"].is_string());
    let _ = wk_id;
}
on_both_databases!(round_trip, text_round_trip);

async fn errors_are_json_with_rc(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (key, _) = s.user("alice", 100.0, false, false).await;
    let (other, _) = s.user("mallory", 100.0, false, false).await;
    let rc = |v: &Value| v["rc"].as_str().unwrap_or("").to_string();

    let r = s
        .client
        .post(s.api("/generate/text/async"))
        .header("apikey", &key)
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(rc(&v), "ValidationError");
    assert!(v["message"].is_string());

    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"prompt": ""}), 400, "MissingPrompt"),
        (json!({"prompt": "a\u{0}b"}), 400, "NulByteInPayload"),
        (json!({"prompt": "x", "params": {"max_length": 100000}}), 400, "ValidationError"),
        (json!({"prompt": "x", "params": {"temperature": "hot"}}), 400, "ValidationError"),
        (
            json!({"prompt": "x", "params": {"max_length": 512, "max_context_length": 100}}),
            400,
            "TokenOverflow",
        ),
        (json!({"prompt": 5}), 400, "ValidationError"),
    ];
    for (body, status, want) in cases {
        let (st, v) = s.post("/generate/text/async", Some(&key), body.clone()).await;
        assert_eq!((st, rc(&v).as_str()), (status, want), "{body}");
    }
    let (st, v) = s
        .post("/generate/text/async", Some("not-a-real-key-1234567"), json!({"prompt": "x"}))
        .await;
    assert_eq!((st, rc(&v).as_str()), (401, "InvalidAPIKey"));
    let (st, v) = s
        .get(&format!("/generate/text/status/{}", "00000000-0000-4000-8000-000000000000"), None)
        .await;
    assert_eq!((st, rc(&v).as_str()), (404, "RequestNotFound"));
    let (st, v) = s.send(Method::DELETE, "/generate/text/status/garbage", None, json!({})).await;
    assert_eq!((st, rc(&v).as_str()), (404, "RequestNotFound"));
    let (st, v) = s.post("/generate/text/pop", None, json!({"name": "w"})).await;
    assert_eq!((st, rc(&v).as_str()), (401, "InvalidAPIKey"));
    let (st, v) = s.post("/generate/text/pop", Some("0000000000"), json!({"name": "w"})).await;
    assert_eq!((st, rc(&v).as_str()), (403, "AnonForbiddenWorker"));
    let (st, v) = s.post("/generate/text/pop", Some(&key), json!({"name": "w", "amount": 99})).await;
    assert_eq!((st, rc(&v).as_str()), (400, "ValidationError"));
    let (st, v) = s
        .post(
            "/generate/text/pop",
            Some(&key),
            json!({"name": "w", "priority_usernames": ["nohash"]}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (400, "InvalidPriorityUsername"));

    // Worker names belong to their first user.
    let (st, idle) = s.post("/generate/text/pop", Some(&key), json!({"name": "alices-worker"})).await;
    assert_eq!(st, 200);
    assert_eq!(idle["id"], Value::Null);
    assert_eq!(idle["ids"], json!([]));
    assert_eq!(idle["payload"], json!({}));
    assert!(idle["skipped"].is_object());
    let (st, v) = s.post("/generate/text/pop", Some(&other), json!({"name": "alices-worker"})).await;
    assert_eq!((st, rc(&v).as_str()), (403, "WrongCredentials"));

    // Submit: unknown job, someone else's job, duplicates.
    let (_, acc) = s.post("/generate/text/async", Some(&key), json!({"prompt": "x"})).await;
    let (_, pop) = s.post("/generate/text/pop", Some(&key), json!({"name": "alices-worker"})).await;
    let job = pop["id"].as_str().unwrap_or_default().to_string();
    let (st, v) = s
        .post(
            "/generate/text/submit",
            Some(&key),
            json!({"id": "00000000-0000-4000-8000-000000000000", "generation": "g"}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (404, "InvalidJobID"));
    let (st, v) = s
        .post("/generate/text/submit", Some(&other), json!({"id": job, "generation": "g"}))
        .await;
    assert_eq!((st, rc(&v).as_str()), (403, "WrongCredentials"));
    let (st, _) = s
        .post(
            "/generate/text/submit",
            Some(&key),
            json!({"id": job, "generation": "g", "state": "ok"}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .post(
            "/generate/text/submit",
            Some(&key),
            json!({"id": job, "generation": "g", "state": "ok"}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (400, "DuplicateGen"));
    assert!(v["message"].as_str().is_some_and(|m| m.contains("already submitted")));
    let _ = acc;

    // A body over the limit (11 MiB declared) is refused from its headers, before it is read. The
    // client writes the headers and the start of the body, then reads the answer: a client still
    // writing the rest when the server closes may see a reset before the answer instead.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = s.url.trim_start_matches("http://").trim_end_matches('/');
        let mut c = tokio::net::TcpStream::connect(host).await.expect("connect");
        let head = format!(
            "POST /api/v2/generate/text/async HTTP/1.1\r\nHost: horde\r\napikey: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"prompt\": \"xxxx",
            11 * 1024 * 1024
        );
        c.write_all(head.as_bytes()).await.expect("send");
        let mut got = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), c.read_to_end(&mut got)).await;
        let answer = String::from_utf8_lossy(&got);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("PayloadTooLarge"), "{answer}");
    }

    let (st, v) = s.get("/no/such/route", None).await;
    assert_eq!((st, rc(&v).as_str()), (404, "NotFound"));
    let (st, v) = s.get("/users/abc", None).await;
    assert_eq!((st, rc(&v).as_str()), (404, "UserNotFound"));
    let (st, v) = s.get("/workers/not-a-worker", None).await;
    assert_eq!((st, rc(&v).as_str()), (404, "WorkerNotFound"));

    // Concurrency limit: 429 TooManyPrompts.
    let (mod_key, _) = s.user("moderator", 0.0, true, true).await;
    let (_, bob_id) = s.user("bob", 0.0, false, false).await;
    let (st, _) = s
        .send(Method::PUT, &format!("/users/{bob_id}"), Some(&mod_key), json!({"concurrency": 2}))
        .await;
    assert_eq!(st, 200);
    let (bob_key, _) = s.user("bob", 50.0, false, false).await;
    let (st, _) = s
        .post("/generate/text/async", Some(&bob_key), json!({"prompt": "x", "params": {"n": 2}}))
        .await;
    assert_eq!(st, 202);
    let (st, v) = s.post("/generate/text/async", Some(&bob_key), json!({"prompt": "x"})).await;
    assert_eq!((st, rc(&v).as_str()), (429, "TooManyPrompts"));

    // Upfront kudos: a kudos-less account's fast or oversized request is refused (403
    // KudosUpfront), or shrunk with allow_downgrade.
    let (poor, _) = s.user("pauper", 0.0, false, false).await;
    for (path, body) in [
        ("/generate/text/async", json!({"prompt": "x", "slow_workers": false})),
        (
            "/generate/text/async",
            json!({"prompt": "x", "params": {"max_length": 1024, "max_context_length": 4096}}),
        ),
        ("/generate/async", json!({"prompt": "x", "params": {"width": 2048, "height": 1024}})),
    ] {
        let (st, v) = s.post(path, Some(&poor), body.clone()).await;
        assert_eq!((st, rc(&v).as_str()), (403, "KudosUpfront"), "{body}: {v}");
        let mut downgraded = body.clone();
        downgraded["allow_downgrade"] = json!(true);
        let (st, v) = s.post(path, Some(&poor), downgraded).await;
        assert_eq!(st, 202, "{body}: {v}");
    }
}
on_both_databases!(errors, errors_are_json_with_rc);

async fn accounts_and_transfers(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (st, reg) = s.post("/register", None, json!({"username": "newbie"})).await;
    assert_eq!(st, 201, "{reg}");
    let key = reg["api_key"].as_str().unwrap_or_default().to_string();
    assert_eq!(key.len(), 22);
    let (_, me) = s.get("/find_user", Some(&key)).await;
    assert_eq!(me["username"], format!("newbie#{}", reg["id"]));
    assert_eq!(me["pseudonymous"], true);
    let (st, v) = s.post("/register", None, json!({"username": "bad#name"})).await;
    assert_eq!((st, v["rc"].as_str()), (400, Some("InvalidUsername")));
    // The public horde's rc names for names too long or profane.
    for (body, path, rc) in [
        (json!({"username": "x".repeat(31)}), "/register", "TooLongUserName"),
        (json!({"username": "sh1t happens"}), "/register", "ProfaneUserName"),
        (json!({"name": "w".repeat(101)}), "/generate/text/pop", "TooLongWorkerName"),
        (json!({"name": "the-f.u.c.k-worker"}), "/generate/text/pop", "ProfaneWorkerName"),
    ] {
        let key = (path != "/register").then_some(key.as_str());
        let (st, v) = s.post(path, key, body.clone()).await;
        assert_eq!((st, v["rc"].as_str()), (400, Some(rc)), "{body}: {v}");
    }
    let (st, _) = s.post("/register", None, json!({"username": "second"})).await;
    assert_eq!(st, 201);

    let (alice, alice_id) = s.user("alice", 200.0, false, false).await;
    let (bob, bob_id) = s.user("bob", 100.0, false, false).await;
    let (moder, _) = s.user("mod", 0.0, true, true).await;
    let rc = |v: &Value| v["rc"].as_str().unwrap_or("").to_string();

    let (st, v) = s
        .post(
            "/kudos/transfer",
            Some(&alice),
            json!({"username": format!("bob#{bob_id}"), "amount": 50}),
        )
        .await;
    assert_eq!((st, v["transferred"].as_f64()), (200, Some(50.0)), "{v}");
    let (_, a) = s.get("/find_user", Some(&alice)).await;
    let (_, b) = s.get("/find_user", Some(&bob)).await;
    assert_eq!((a["kudos"].as_f64(), b["kudos"].as_f64()), (Some(150.0), Some(150.0)));
    assert_eq!(
        (a["kudos_details"]["gifted"].as_f64(), b["kudos_details"]["received"].as_f64()),
        (Some(-50.0), Some(50.0))
    );
    let (st, v) = s
        .post(
            "/kudos/transfer",
            Some(&bob),
            json!({"username": format!("alice#{alice_id}"), "amount": 5}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (400, "TooFastKudosTransfers"));
    let (st, v) = s
        .post(
            "/kudos/transfer",
            Some(&alice),
            json!({"username": format!("alice#{alice_id}"), "amount": 5}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (400, "KudosTransferToSelf"));
    let (st, v) = s
        .post("/kudos/transfer", Some(&alice), json!({"username": "Anonymous#0", "amount": 5}))
        .await;
    assert_eq!((st, rc(&v).as_str()), (400, "KudosTransferToAnon"));
    let (st, v) = s
        .post(
            "/kudos/transfer",
            Some("0000000000"),
            json!({"username": format!("bob#{bob_id}"), "amount": 5}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (403, "KudosTransferFromAnon"));
    let (st, v) = s
        .post(
            "/kudos/transfer",
            Some(&alice),
            json!({"username": format!("bob#{bob_id}"), "amount": 126}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (400, "KudosTransferNotEnough"));
    let (st, v) = s
        .post(
            "/kudos/transfer",
            Some(&alice),
            json!({"username": format!("bob#{bob_id}"), "amount": -3}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (400, "NegativeKudosTransfer"));
    let (st, v) = s
        .post("/kudos/transfer", Some(&alice), json!({"username": "ghost#99999", "amount": 1}))
        .await;
    assert_eq!((st, rc(&v).as_str()), (404, "UserNotFound"));

    // Self fields by the user; moderator fields only by moderators.
    let (st, v) = s
        .send(
            Method::PUT,
            &format!("/users/{alice_id}"),
            Some(&alice),
            json!({"username": "alicia", "public_workers": true}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["username"], "alicia");
    let (st, v) = s
        .send(Method::PUT, &format!("/users/{alice_id}"), Some(&alice), json!({"trusted": true}))
        .await;
    assert_eq!((st, rc(&v).as_str()), (403, "NotModerator"));
    let (st, v) = s
        .send(
            Method::PUT,
            &format!("/users/{alice_id}"),
            Some(&bob),
            json!({"username": "hacked"}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (403, "NotModerator"));
    let (st, v) = s.send(Method::PUT, &format!("/users/{alice_id}"), Some(&moder), json!({})).await;
    assert_eq!((st, rc(&v).as_str()), (400, "NoUserModSelected"));
    let (st, v) = s
        .send(
            Method::PUT,
            &format!("/users/{alice_id}"),
            Some(&moder),
            json!({"kudos": 25, "trusted": true, "concurrency": 40}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["new_kudos"].as_f64(), v["trusted"].as_bool(), v["concurrency"].as_i64()),
        (Some(175.0), Some(true), Some(40))
    );

    let (st, public) = s.get(&format!("/users/{alice_id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(public["username"], format!("alicia#{alice_id}"));
    assert!(public.get("contact").is_none() && public.get("active_generations").is_none());
    let (_, own) = s.get(&format!("/users/{alice_id}"), Some(&alice)).await;
    assert!(own.get("active_generations").is_some());
    let (_, list) = s.get("/users?sort=kudos", None).await;
    let names: Vec<&str> = list
        .as_array()
        .map(|l| l.iter().filter_map(|u| u["username"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names.first().copied(), Some(format!("alicia#{alice_id}").as_str()), "{names:?}");
    let (_, anon) = s.get("/users/0", None).await;
    assert_eq!(anon["username"], "Anonymous#0");
}
on_both_databases!(accounts, accounts_and_transfers);

async fn worker_management(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (owner, _) = s.user("owner", 10.0, false, false).await;
    let (stranger, _) = s.user("stranger", 10.0, false, false).await;
    let (moder, _) = s.user("mod", 0.0, true, true).await;
    let (req, _) = s.user("req", 500.0, false, false).await;
    let rc = |v: &Value| v["rc"].as_str().unwrap_or("").to_string();
    let (_, idle) = s.post("/generate/text/pop", Some(&owner), json!({"name": "w-a"})).await;
    assert_eq!(idle["id"], Value::Null);
    let (_, w) = s.get("/workers/name/w-a", None).await;
    let wid = w["id"].as_str().unwrap_or_default().to_string();

    let (st, v) = s
        .send(
            Method::PUT,
            &format!("/workers/{wid}"),
            Some(&stranger),
            json!({"maintenance": true}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (403, "NotOwner"));
    let (st, v) = s
        .send(Method::PUT, &format!("/workers/{wid}"), Some(&owner), json!({"paused": true}))
        .await;
    assert_eq!((st, rc(&v).as_str()), (403, "NotModerator"));
    let (st, v) = s.send(Method::PUT, &format!("/workers/{wid}"), Some(&owner), json!({})).await;
    assert_eq!((st, rc(&v).as_str()), (400, "NoWorkerModSelected"));
    let (st, v) = s
        .send(
            Method::PUT,
            &format!("/workers/{wid}"),
            Some(&owner),
            json!({"info": "x".repeat(1001)}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .send(
            Method::PUT,
            &format!("/workers/{wid}"),
            Some(&owner),
            json!({"maintenance": true, "info": "my GPU"}),
        )
        .await;
    assert_eq!(
        (st, v["maintenance"].as_bool(), v["info"].as_str()),
        (200, Some(true), Some("my GPU"))
    );

    // In maintenance, an idle pop answers 403 with "maintenance mode"; the owner's requests still go through.
    let (_, acc) = s.post("/generate/text/async", Some(&req), json!({"prompt": "x"})).await;
    let (st, v) = s.post("/generate/text/pop", Some(&owner), json!({"name": "w-a"})).await;
    assert_eq!((st, rc(&v).as_str()), (403, "WorkerMaintenance"));
    assert!(v["message"].as_str().is_some_and(|m| m.contains("maintenance mode")));
    let (_, own_req) = s.post("/generate/text/async", Some(&owner), json!({"prompt": "mine"})).await;
    let (st, pop) = s.post("/generate/text/pop", Some(&owner), json!({"name": "w-a"})).await;
    assert_eq!(st, 200);
    assert_eq!(pop["payload"]["prompt"], "mine");
    // A worker with a job in flight cannot be deleted.
    let (st, v) = s.send(Method::DELETE, &format!("/workers/{wid}"), Some(&owner), json!({})).await;
    assert_eq!((st, rc(&v).as_str()), (423, "Locked"));
    let (st, _) = s
        .post(
            "/generate/text/submit",
            Some(&owner),
            json!({"id": pop["id"], "generation": "done"}),
        )
        .await;
    assert_eq!(st, 200);
    let _ = own_req;

    // Back from maintenance, it serves others.
    let (st, _) = s
        .send(
            Method::PUT,
            &format!("/workers/{wid}"),
            Some(&owner),
            json!({"maintenance": false, "name": "w-renamed"}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, pop) = s.post("/generate/text/pop", Some(&owner), json!({"name": "w-renamed"})).await;
    assert_eq!(st, 200);
    assert_eq!(pop["payload"]["prompt"], "x");
    let (st, _) = s
        .post(
            "/generate/text/submit",
            Some(&owner),
            json!({"id": pop["id"], "generation": "g", "state": "faulted"}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, status) = s
        .get(&format!("/generate/text/status/{}", acc["id"].as_str().unwrap_or_default()), None)
        .await;
    assert_eq!((status["restarted"].as_i64(), status["waiting"].as_i64()), (Some(1), Some(1)));

    // Moderators can pause; cancel by DELETE.
    let (st, v) = s
        .send(Method::PUT, &format!("/workers/{wid}"), Some(&moder), json!({"paused": true}))
        .await;
    assert_eq!((st, v["paused"].as_bool()), (200, Some(true)));
    let (st, cancelled) = s
        .send(
            Method::DELETE,
            &format!("/generate/text/status/{}", acc["id"].as_str().unwrap_or_default()),
            None,
            json!({}),
        )
        .await;
    assert_eq!((st, cancelled["waiting"].as_i64()), (200, Some(1)));
    let (_, status) = s
        .get(&format!("/generate/text/status/{}", acc["id"].as_str().unwrap_or_default()), None)
        .await;
    assert_eq!((status["waiting"].as_i64(), status["done"].as_bool()), (Some(0), Some(true)));

    let (st, v) = s.send(Method::DELETE, &format!("/workers/{wid}"), Some(&stranger), json!({})).await;
    assert_eq!((st, rc(&v).as_str()), (403, "NotOwner"));
    let (st, v) = s.send(Method::DELETE, &format!("/workers/{wid}"), Some(&owner), json!({})).await;
    assert_eq!((st, v["deleted_name"].as_str()), (200, Some("w-renamed")));
    let (st, _) = s.get(&format!("/workers/{wid}"), None).await;
    assert_eq!(st, 404);

    // Untrusted users run at most 4 workers.
    for i in 0..4 {
        let (st, _) = s
            .post("/generate/text/pop", Some(&stranger), json!({"name": format!("s-{i}")}))
            .await;
        assert_eq!(st, 200);
    }
    let (st, v) = s.post("/generate/text/pop", Some(&stranger), json!({"name": "s-4"})).await;
    assert_eq!((st, rc(&v).as_str()), (403, "TooManyWorkers"));
}
on_both_databases!(workers, worker_management);

async fn state_survives_restart_and_ledger_balances(db: Db) {
    let mut s = server!(db, &["--dev-test-users"]);
    let (req, req_id) = s.user("req", 300.0, false, false).await;
    let (wk, wk_id) = s.user("wk", 0.0, false, false).await;
    for i in 0..5 {
        s.post(
            "/generate/text/async",
            Some(&req),
            json!({"prompt": format!("p{i}"), "params": {"max_length": 50}}),
        )
        .await;
        let (_, pop) = s
            .post("/generate/text/pop", Some(&wk), json!({"name": "persist-w", "models": ["m-13B"]}))
            .await;
        let (st, _) = s
            .post(
                "/generate/text/submit",
                Some(&wk),
                json!({"id": pop["id"], "generation": "w".repeat(200)}),
            )
            .await;
        assert_eq!(st, 200);
    }
    let (_, before_req) = s.get("/find_user", Some(&req)).await;
    let (_, before_wk) = s.get("/find_user", Some(&wk)).await;
    let (_, before_worker) = s.get("/workers/name/persist-w", None).await;
    s.restart();
    let (_, after_req) = s.get("/find_user", Some(&req)).await;
    let (_, after_wk) = s.get("/find_user", Some(&wk)).await;
    assert_eq!(after_req["kudos"], before_req["kudos"]);
    assert_eq!(after_wk["kudos"], before_wk["kudos"]);
    assert_eq!(after_wk["kudos_details"], before_wk["kudos_details"]);
    assert_eq!(after_wk["records"], before_wk["records"]);
    let (_, after_worker) = s.get("/workers/name/persist-w", None).await;
    for f in ["id", "requests_fulfilled", "kudos_rewards", "tokens_generated", "models"] {
        assert_eq!(after_worker[f], before_worker[f], "{f}");
    }
    assert!(s.stop());
    // Every stored balance equals the sum of its ledger postings; all accounts sum to zero.
    let store = horde_core::Store::connect(&s.db_url).await.expect("open store");
    let ledger = store.ledger_balances().await.expect("ledger");
    let stored = store.stored_balances().await.expect("balances");
    for (id, bal) in &stored {
        assert_eq!(ledger.get(&format!("user:{id}")).copied().unwrap_or(0), *bal, "user {id}");
    }
    let (mint, burn) = store.system_balances().await.expect("system");
    assert_eq!(ledger.get("mint").copied().unwrap_or(0), mint);
    assert_eq!(ledger.get("burn").copied().unwrap_or(0), burn);
    assert_eq!(stored.values().sum::<i64>() + mint + burn, 0);
    assert!(stored.get(&req_id).is_some_and(|b| *b < 30_000) && stored.get(&wk_id).is_some_and(|b| *b > 0));
    store.close().await;
}
on_both_databases!(persistence, state_survives_restart_and_ledger_balances);

async fn concurrent_traffic_conserves_kudos(db: Db) {
    // 64 concurrent clients of 16 users: each is charged for requests, rewarded for the jobs its
    // worker serves (some faulted), and transfers kudos to another user, all at once.
    let s = server!(db, &["--dev-test-users"]);
    let mut keys = vec![];
    for i in 0..16 {
        keys.push(s.user(&format!("u{i}"), 400.0, false, false).await);
    }
    let s = std::sync::Arc::new(s);
    let mut tasks = vec![];
    for t in 0..64usize {
        let s = s.clone();
        let (key, _) = keys[t % 16].clone();
        let (_, peer_id) = keys[(t + 1) % 16].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..4 {
                s.post("/generate/text/async", Some(&key), json!({"prompt": "c", "params": {"n": 2}}))
                    .await;
                let (_, pop) = s
                    .post(
                        "/generate/text/pop",
                        Some(&key),
                        json!({"name": format!("cw{}", t % 16), "amount": 2}),
                    )
                    .await;
                if let Some(ids) = pop["ids"].as_array() {
                    for (k, id) in ids.iter().enumerate() {
                        let state = if (i + k).is_multiple_of(4) { "faulted" } else { "ok" };
                        s.post(
                            "/generate/text/submit",
                            Some(&key),
                            json!({"id": id, "generation": "x".repeat(90), "state": state}),
                        )
                        .await;
                    }
                }
                s.post(
                    "/kudos/transfer",
                    Some(&key),
                    json!({"username": format!("u#{peer_id}"), "amount": 1}),
                )
                .await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    s.settle().await;
    for (key, _) in &keys {
        let (_, me) = s.get("/find_user", Some(key)).await;
        // Each user's 4 clients gave 1 kudos 4 times, and received as much from its neighbour.
        let d = &me["kudos_details"];
        assert_eq!((d["gifted"].as_f64(), d["received"].as_f64()), (Some(-16.0), Some(16.0)), "{me}");
        assert!(
            me["records"]["fulfillment"]["text"].as_i64().is_some_and(|n| n > 0),
            "jobs were paid: {me}"
        );
        assert!(
            me["records"]["request"]["text"].as_i64().is_some_and(|n| n > 0),
            "requests were charged: {me}"
        );
    }
    let mut s = std::sync::Arc::try_unwrap(s).ok().expect("sole owner");
    assert!(s.stop());
    let store = horde_core::Store::connect(&s.db_url).await.expect("open store");
    let ledger = store.ledger_balances().await.expect("ledger");
    let stored = store.stored_balances().await.expect("balances");
    let (mint, burn) = store.system_balances().await.expect("system");
    assert_eq!(stored.values().sum::<i64>() + mint + burn, 0, "kudos created or destroyed");
    for (id, bal) in &stored {
        assert_eq!(ledger.get(&format!("user:{id}")).copied().unwrap_or(0), *bal, "user {id}");
    }
    assert!(ledger.len() > 16, "postings were stored");
    assert!(stored.values().all(|b| *b >= 0), "no balance below zero: {stored:?}");
    store.close().await;
}
on_both_databases!(conservation, concurrent_traffic_conserves_kudos);

#[tokio::test]
async fn cors_client_agent_and_ui() {
    let s = server!(Db::Sqlite);
    let r = s
        .client
        .request(Method::OPTIONS, s.api("/generate/text/async"))
        .header("Origin", "https://lite.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "apikey, client-agent, content-type")
        .send()
        .await
        .expect("preflight");
    assert!(r.status().is_success());
    let allowed = r
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    for h in ["apikey", "client-agent", "content-type"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    // Errors carry CORS headers too, and both client agent spellings are accepted.
    let r = s
        .client
        .get(s.api("/generate/text/status/nope"))
        .header("Origin", "https://x")
        .header("client_agent", "sdk:1:x")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("access-control-allow-origin").is_some());
    let r = s
        .client
        .post(s.api("/generate/text/async"))
        .header("Client-Agent", "KoboldAiLite:17")
        .header("apikey", "0000000000")
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    // Without --dev-test-users the test route does not exist.
    let (st, v) = s.post("/dev/test-user", None, json!({"username": "x"})).await;
    assert_eq!((st, v["rc"].as_str()), (404, Some("NotFound")));
    let page = s.client.get(&s.url).send().await.expect("ui").text().await.expect("html");
    assert!(page.contains("<a class=\"brand\" href=\"/\">Horde</a>"), "{page}");
}

#[tokio::test]
async fn user_create_cli_prints_a_working_key() {
    let dir = std::env::temp_dir().join(format!("horde-cli-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_horde"))
        .args([
            "user",
            "create",
            "--name",
            "cli-admin",
            "--kudos",
            "123",
            "--moderator",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout.lines().last().unwrap_or_default().trim().to_string();
    assert_eq!(key.len(), 22, "{stdout}");
    let mut s = Server::start(Db::Sqlite, &[]).await.expect("server");
    // Point the server at the CLI's data dir.
    assert!(s.stop());
    s.db_url = format!("sqlite://{}?mode=rwc", dir.join("horde.db").display());
    s.start_again();
    let (st, me) = s.get("/find_user", Some(&key)).await;
    assert_eq!(st, 200);
    assert_eq!((me["kudos"].as_f64(), me["moderator"].as_bool()), (Some(123.0), Some(true)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn dev_test_user_refreshes_roles_balance_and_key() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (k1, id1) = s.user("tester", 50.0, true, true).await;
    let (k2, id2) = s.user("tester", 75.0, false, true).await;
    assert_eq!(id1, id2);
    assert_ne!(k1, k2);
    let (st, _) = s.get("/find_user", Some(&k1)).await;
    assert_eq!(st, 401, "the old key was replaced");
    let (_, me) = s.get("/find_user", Some(&k2)).await;
    assert_eq!((me["kudos"].as_f64(), me["moderator"].as_bool()), (Some(75.0), Some(false)));
}

async fn account_deletion(db: Db) {
    let mut s = server!(db, &["--dev-test-users"]);
    let (alice, alice_id) = s.user("leaver", 20.0, false, false).await;
    let (bob, _) = s.user("stayer", 20.0, false, false).await;
    let (moderator, moderator_id) = s.user("deleter_mod", 0.0, true, true).await;
    let rc = |v: &Value| v["rc"].as_str().unwrap_or("").to_string();
    let path = format!("/users/{alice_id}");
    let (st, v) = s.send(Method::DELETE, &path, None, json!({})).await;
    assert_eq!(st, 401, "{v}");
    let (st, v) = s.send(Method::DELETE, &path, Some(&bob), json!({})).await;
    assert_eq!((st, rc(&v).as_str()), (403, "NotModerator"));
    let (st, v) = s
        .send(Method::DELETE, &format!("/users/{moderator_id}"), Some(&moderator), json!({}))
        .await;
    assert_eq!((st, rc(&v).as_str()), (403, "DeleteModerator"));
    let (st, v) = s.send(Method::DELETE, "/users/999999", Some(&moderator), json!({})).await;
    assert_eq!((st, rc(&v).as_str()), (404, "UserNotFound"));

    let (st, v) = s.send(Method::DELETE, &path, Some(&alice), json!({})).await;
    assert_eq!((st, v["message"].as_str()), (200, Some("OK")), "{v}");
    // Kept across a restart: still deleted, still refused.
    s.restart();
    let (_, me) = s.get("/find_user", Some(&alice)).await;
    assert_eq!(me["deleted"], json!(true), "{me}");
    let (st, v) = s.post("/generate/text/async", Some(&alice), json!({"prompt": "x"})).await;
    assert_eq!((st, rc(&v).as_str()), (403, "DeletedUser"));
    let (st, v) = s.post("/generate/text/pop", Some(&alice), json!({"name": "leaver-w"})).await;
    assert_eq!((st, rc(&v).as_str()), (403, "DeletedUser"));
    let (st, v) = s
        .post(
            "/kudos/transfer",
            Some(&bob),
            json!({"username": format!("leaver#{alice_id}"), "amount": 1}),
        )
        .await;
    assert_eq!((st, rc(&v).as_str()), (403, "DeletedUser"));
    let (st, v) = s.send(Method::DELETE, &path, Some(&alice), json!({})).await;
    assert!(st == 200 && v["message"].as_str().is_some_and(|m| m.contains("30 days")), "{v}");

    // Taken back by the account itself.
    let (st, v) = s.send(Method::PUT, &path, Some(&alice), json!({"undelete": true})).await;
    assert_eq!((st, v["undelete"].as_bool()), (200, Some(true)), "{v}");
    let (st, _) = s.post("/generate/text/async", Some(&alice), json!({"prompt": "x"})).await;
    assert_eq!(st, 202);
    assert!(s.stop());
}
on_both_databases!(deletion, account_deletion);

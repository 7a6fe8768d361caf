//! The OpenAPI document covers the whole API, the docs UI is served, and schemathesis (PyPI),
//! driven by that document, finds no server error. Schemathesis runs in its own venv (kept in the
//! target dir); without python3 or PyPI that part is skipped, unless HORDE_REQUIRE_COMPAT=1 (CI).

mod common;
#[path = "../../compat/python_venv.rs"]
mod python_venv;

use std::path::Path;
use std::process::Command;

use common::{Db, Server};
use serde_json::{json, Value};

const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Every operation the API serves, as (method, path under /api/v2).
const OPERATIONS: &[(&str, &str)] = &[
    ("post", "/generate/text/async"),
    ("get", "/generate/text/status/{id}"),
    ("delete", "/generate/text/status/{id}"),
    ("post", "/generate/text/pop"),
    ("post", "/generate/text/submit"),
    ("post", "/generate/text/progress"),
    ("get", "/generate/text/stream/{id}"),
    ("post", "/generate/async"),
    ("get", "/generate/check/{id}"),
    ("get", "/generate/status/{id}"),
    ("delete", "/generate/status/{id}"),
    ("post", "/generate/pop"),
    ("post", "/generate/submit"),
    ("post", "/generate/rate/{id}"),
    ("post", "/interrogate/async"),
    ("get", "/interrogate/status/{id}"),
    ("delete", "/interrogate/status/{id}"),
    ("post", "/interrogate/pop"),
    ("post", "/interrogate/submit"),
    ("put", "/images/{token}"),
    ("get", "/images/{token}"),
    ("get", "/filters"),
    ("put", "/filters"),
    ("post", "/filters"),
    ("get", "/filters/regex"),
    ("get", "/filters/{id}"),
    ("patch", "/filters/{id}"),
    ("delete", "/filters/{id}"),
    ("put", "/operations/ipaddr"),
    ("get", "/operations/ipaddr"),
    ("post", "/operations/ipaddr"),
    ("delete", "/operations/ipaddr"),
    ("get", "/operations/ipaddr/{ipaddr}"),
    ("put", "/operations/block_worker_ipaddr/{worker_id}"),
    ("delete", "/operations/block_worker_ipaddr/{worker_id}"),
    ("get", "/find_user"),
    ("get", "/users"),
    ("get", "/users/{id}"),
    ("put", "/users/{id}"),
    ("delete", "/users/{id}"),
    ("post", "/kudos/transfer"),
    ("post", "/kudos/award"),
    ("post", "/register"),
    ("post", "/dev/test-user"),
    ("get", "/workers"),
    ("get", "/workers/name/{name}"),
    ("get", "/workers/{id}"),
    ("put", "/workers/{id}"),
    ("delete", "/workers/{id}"),
    ("get", "/status/heartbeat"),
    ("get", "/status/models"),
    ("get", "/status/models/{name}"),
    ("get", "/status/performance"),
    ("get", "/stats/img/totals"),
    ("get", "/stats/img/models"),
    ("get", "/stats/text/totals"),
    ("get", "/stats/text/models"),
    ("get", "/status/modes"),
    ("put", "/status/modes"),
    ("get", "/status/news"),
    ("get", "/documents/{document}"),
    ("get", "/styles/image"),
    ("post", "/styles/image"),
    ("get", "/styles/image/{style_id}"),
    ("patch", "/styles/image/{style_id}"),
    ("delete", "/styles/image/{style_id}"),
    ("get", "/styles/image_by_name/{style_name}"),
    ("post", "/styles/image/{style_id}/example"),
    ("patch", "/styles/image/{style_id}/example/{example_id}"),
    ("delete", "/styles/image/{style_id}/example/{example_id}"),
    ("get", "/styles/text"),
    ("post", "/styles/text"),
    ("get", "/styles/text/{style_id}"),
    ("patch", "/styles/text/{style_id}"),
    ("delete", "/styles/text/{style_id}"),
    ("get", "/styles/text_by_name/{style_name}"),
    ("get", "/collections"),
    ("post", "/collections"),
    ("get", "/collections/{collection_id}"),
    ("patch", "/collections/{collection_id}"),
    ("delete", "/collections/{collection_id}"),
    ("get", "/collection_by_name/{collection_name}"),
    ("get", "/teams"),
    ("post", "/teams"),
    ("get", "/teams/{team_id}"),
    ("patch", "/teams/{team_id}"),
    ("delete", "/teams/{team_id}"),
    ("put", "/sharedkeys"),
    ("get", "/workers/messages"),
    ("post", "/workers/messages"),
    ("get", "/workers/messages/{message_id}"),
    ("delete", "/workers/messages/{message_id}"),
    ("get", "/sharedkeys/{sharedkey_id}"),
    ("patch", "/sharedkeys/{sharedkey_id}"),
    ("delete", "/sharedkeys/{sharedkey_id}"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_lists_every_operation_with_its_schemas() {
    let s = Server::start(Db::Sqlite, &[]).await.expect("server");
    let r = s.client.get(format!("{}/api/v2/openapi.json", s.url)).send().await.expect("GET");
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("json");
    // The same document at the public horde's path.
    let public = s.client.get(format!("{}/api/swagger.json", s.url)).send().await.expect("GET");
    assert_eq!(public.status(), 200);
    assert_eq!(public.json::<Value>().await.expect("json"), doc);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().expect("paths");
    let mut served = 0;
    for (path, item) in paths {
        served += item.as_object().map_or(0, |o| o.keys().filter(|k| *k != "parameters").count());
        assert!(path.starts_with("/api/v2/"), "{path}");
    }
    for (method, path) in OPERATIONS {
        let op = &doc["paths"][format!("/api/v2{path}")][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"]["200"].is_object() || op["responses"]["201"].is_object() || op["responses"]["202"].is_object());
    }
    assert_eq!(
        served,
        OPERATIONS.len(),
        "an operation is served but not listed here, or the reverse"
    );
    // Bodies refer to the wire types, with their real field names.
    let gen = &doc["components"]["schemas"]["GenerateImageRequest"]["properties"];
    for field in ["prompt", "params", "nsfw", "censor_nsfw", "models", "r2", "webhook"] {
        assert!(gen[field].is_object(), "GenerateImageRequest.{field}");
    }
    assert!(doc["components"]["schemas"]["ImagePopRequest"]["properties"]["blacklist"].is_object());
    let alchemy = &doc["components"]["schemas"]["AlchemyAsyncRequest"]["properties"];
    for field in ["forms", "source_image", "slow_workers", "trusted_workers", "webhook"] {
        assert!(alchemy[field].is_object(), "AlchemyAsyncRequest.{field}");
    }
    let pop = &doc["components"]["schemas"]["AlchemyPopRequest"]["properties"];
    for field in [
        "name",
        "forms",
        "amount",
        "priority_usernames",
        "max_tiles",
        "threads",
        "bridge_agent",
    ] {
        assert!(pop[field].is_object(), "AlchemyPopRequest.{field}");
    }
    assert!(doc["components"]["securitySchemes"]["apikey"]["in"] == "header");
    assert_eq!(doc["paths"]["/api/v2/generate/pop"]["post"]["security"], json!([{"apikey": []}]));

    let ui = s.client.get(format!("{}/api/", s.url)).send().await.expect("GET /api/");
    assert_eq!(ui.status(), 200);
    let html = ui.text().await.expect("html");
    assert!(html.to_lowercase().contains("swagger"), "docs UI");
    let init = s
        .client
        .get(format!("{}/api/swagger-initializer.js", s.url))
        .send()
        .await
        .expect("js");
    assert!(
        init.text().await.expect("js").contains("/api/v2/openapi.json"),
        "the UI loads our document"
    );
    // Unknown API paths still answer JSON errors, not the docs UI.
    let (st, v) = s.get("/no/such/route", None).await;
    assert_eq!((st, v["rc"].as_str()), (404, Some("NotFound")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let python = match python_venv::python_venv(Path::new(env!("CARGO_TARGET_TMPDIR")), "schemathesis-venv", &[SCHEMATHESIS]) {
        Ok(p) => p,
        Err(e) => {
            assert!(std::env::var("HORDE_REQUIRE_COMPAT").is_err(), "schemathesis cannot run: {e}");
            eprintln!("skipping schemathesis: {e}");
            return;
        }
    };
    let Some(s) = Server::start(Db::Sqlite, &["--dev-test-users"]).await else {
        return;
    };
    // A moderator key reaches every operation; real ids let the id routes get past 404.
    let (key, user_id) = s.user("fuzzer", 100_000.0, true, true).await;
    let (_, text) = s.post("/generate/text/async", Some(&key), json!({"prompt": "a"})).await;
    let (_, image) = s.post("/generate/async", Some(&key), json!({"prompt": "a"})).await;
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let (_, alchemy) = s
        .post(
            "/interrogate/async",
            Some(&key),
            json!({"forms": [{"name": "caption"}], "source_image": png}),
        )
        .await;
    let alchemy_id = alchemy["id"].as_str().expect("alchemy id");
    let (_, filters) = s.get("/filters", Some(&key)).await;
    let text_id = text["id"].as_str().expect("text id");
    // Streams of a request that is not done stay open: fuzz the stream with a finished one.
    let (_, ended) = s.post("/generate/text/async", Some(&key), json!({"prompt": "b"})).await;
    let ended_id = ended["id"].as_str().expect("text id");
    let (st, _) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/generate/text/status/{ended_id}"),
            None,
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let image_id = image["id"].as_str().expect("image id");
    let filter_id = filters[0]["id"].as_i64().expect("a shipped filter");
    let config = format!(
        r#"
[[operations]]
include-path-regex = "/generate/text/status/"
parameters = {{ id = "{text_id}" }}

[[operations]]
include-path-regex = "/generate/text/stream/"
parameters = {{ id = "{ended_id}" }}

[[operations]]
include-path-regex = "/generate/(check|status|rate)/"
parameters = {{ id = "{image_id}" }}

[[operations]]
include-path-regex = "/interrogate/status/"
parameters = {{ id = "{alchemy_id}" }}

[[operations]]
include-path-regex = "/filters/[{{]"
parameters = {{ id = "{filter_id}" }}

[[operations]]
include-path-regex = "/users/[{{]"
parameters = {{ id = "{user_id}" }}
"#
    );
    let config_path = s.dir.join("schemathesis.toml");
    std::fs::write(&config_path, config).expect("config");
    let schemathesis = python.with_file_name("schemathesis");
    let out = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config_path)
        .arg("run")
        .arg(format!("{}/api/v2/openapi.json", s.url))
        // One worker: with two threads, CPython 3.11's `ast` module (parsing lambda sources for
        // hypothesis's reprs) now and then fails with "AST constructor recursion depth mismatch",
        // an error of the tool, not of the server.
        .args(["--checks", "not_a_server_error", "--max-examples", "60", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--header", &format!("apikey:{key}")])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(&s.dir)
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: String = stdout
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    assert!(out.status.success(), "schemathesis found failures:\n{stdout}\n{stderr}");
    let tested = format!("Tested: {}", OPERATIONS.len());
    assert!(stdout.contains(&tested), "every operation was exercised:\n{summary}");
    eprintln!("{summary}");
    // The server is still up and answering.
    let (st, _) = s.get("/status/heartbeat", None).await;
    assert_eq!(st, 200);
}

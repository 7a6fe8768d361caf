//! Answers at the edges of the API: malformed server-function arguments, wrong methods, rate-limit
//! waits, `proxied_account` from ordinary accounts, usernames with invisible formatting.

mod common;

use common::Db;
use serde_json::{json, Value};

/// Malformed JSON or wrong types sent to a web UI server function answer 400 with the JSON error
/// body, not 500; the horde's own refusals keep their status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_functions_answer_400_to_malformed_arguments() {
    let s = server!(Db::Sqlite);
    let cases: &[(&str, &str)] = &[
        ("transfer", "{bad"),
        ("transfer", ""),
        ("transfer", "[]"),
        ("transfer", r#"{"api_key": 5, "to": "x#1", "amount": 1}"#),
        ("transfer", r#"{"api_key": "k", "to": "x#1", "amount": "lots"}"#),
        ("transfer", r#"{"api_key": "k", "to": "x#1"}"#),
        ("register", r#"{"username": ["a"]}"#),
        ("register", "null"),
        ("submit_text", r#"{"api_key": "", "request": 7}"#),
        ("account", "\"just a string\""),
    ];
    for (name, body) in cases {
        let r = s
            .client
            .post(format!("{}/ui/api/{name}", s.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!((status, v["rc"].as_str()), (400, Some("ValidationError")), "{name} {body}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{name} {body}: {v}");
    }
    // Well-formed arguments reach the horde, whose refusal keeps its own status.
    let r = s
        .client
        .post(format!("{}/ui/api/transfer", s.url))
        .json(&json!({"api_key": "0000000000", "to": "nobody#999", "amount": 1.0}))
        .send()
        .await
        .expect("POST");
    assert_ne!(r.status().as_u16(), 400);
    assert_ne!(r.status().as_u16(), 500);
}

/// A wrong method answers 405 with `{message, rc}` and the `Allow` header, on the API, the web
/// UI's server functions and the OpenAI-compatible routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_answers_json_405() {
    let s = server!(Db::Sqlite);
    for (method, path, allowed) in [
        (reqwest::Method::DELETE, "/api/v2/status/heartbeat", "GET"),
        (reqwest::Method::PUT, "/api/v2/generate/text/async", "POST"),
        (reqwest::Method::GET, "/ui/api/transfer", "POST"),
        (reqwest::Method::POST, "/v1/models", "GET"),
    ] {
        let r = s
            .client
            .request(method.clone(), format!("{}{path}", s.url))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        let allow = r
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(allow.contains(allowed), "{method} {path}: Allow {allow:?}");
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(v["rc"].as_str(), Some("MethodNotAllowed"), "{method} {path}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
}

/// A refusal's wait is rounded up to whole seconds, never "0 s", on the API's limiter and on the
/// server functions' one, and `Retry-After` says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_waits_are_at_least_one_second() {
    let s = server!(Db::Sqlite, &["--rate-limit", "default=2/s ip"]);
    let ui = format!("{}/ui/api/overview", s.url);
    for (method, url) in [(reqwest::Method::GET, s.api("/status/models")), (reqwest::Method::POST, ui)] {
        let mut refused = None;
        for _ in 0..6 {
            let r = s
                .client
                .request(method.clone(), &url)
                .json(&json!({}))
                .send()
                .await
                .expect("request");
            if r.status().as_u16() == 429 {
                refused = Some(r);
                break;
            }
        }
        let r = refused.unwrap_or_else(|| panic!("{url}: never limited"));
        let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let message = v["message"].as_str().unwrap_or_default();
        // At 2/s the wait is under half a second: rounded up, it is one.
        assert!(message.contains("Try again in 1 s."), "{url}: {message}");
        assert_eq!(retry_after.as_deref(), Some("1"), "{url}");
    }
}

/// `proxied_account` comes from service accounts only; this horde has none, so an ordinary
/// account's request carrying one is refused like the public horde refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxied_account_needs_a_service_account() {
    let s = server!(Db::Sqlite, &["--dev-test-users"]);
    let (key, _) = s.user("proxy", 1000.0, false, true).await;
    for path in ["/generate/text/async", "/generate/async"] {
        let (st, v) = s
            .post(
                path,
                Some(&key),
                json!({"prompt": "p", "proxied_account": "someone", "dry_run": true}),
            )
            .await;
        assert_eq!((st, v["rc"].as_str()), (400, Some("OnlyServiceAccountProxy")), "{path}: {v}");
        let (st, v) = s.post(path, Some(&key), json!({"prompt": "p", "dry_run": true})).await;
        assert_eq!(st, 200, "{path} without proxied_account: {v}");
    }
}

/// Usernames with bidirectional overrides, isolates or zero-width characters are refused (a name
/// that reads as another one); the refusal does not echo them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_refuse_bidirectional_controls() {
    let s = server!(Db::Sqlite);
    for c in [
        '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200B}', '\u{200F}',
    ] {
        let name = format!("gpj{c}exe");
        let (st, v) = s.post("/register", None, json!({ "username": name })).await;
        assert_eq!((st, v["rc"].as_str()), (400, Some("InvalidUsername")), "U+{:04X}: {v}", c as u32);
        assert!(!v["message"].as_str().unwrap_or_default().contains(c), "{v}");
    }
    let (st, v) = s.post("/register", None, json!({"username": "Zoë 日本"})).await;
    assert_eq!(st, 201, "{v}");
}

//! The web UI as the horde binary serves it: pages rendered on the server, the browser bundle
//! under content-hashed names (compressed, cached for a year), and the server functions the pages
//! call. When scripts/test.sh built the bundle first it sets HORDE_REQUIRE_SITE=1 and the bundle
//! must be there; the browser itself is driven by the Playwright tests in end2end/.

mod common;

use common::Db;
use serde_json::{json, Value};

fn require_site() -> bool {
    std::env::var("HORDE_REQUIRE_SITE").is_ok_and(|v| v == "1")
}

/// The `/pkg/...` URLs a page links.
fn bundle_urls(html: &str) -> Vec<String> {
    let mut urls: Vec<String> = html
        .match_indices("/pkg/horde")
        .filter_map(|(i, _)| html[i..].split(['"', '\'']).next().map(str::to_string))
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_on_the_server_and_link_a_hashed_bundle() {
    let s = server!(Db::Sqlite);
    let mut pages = Vec::new();
    for (path, bundle, marker) in [
        ("/", "horde-write", "name=\"prompt\""),
        ("/images", "horde-images", "<h1>Images</h1>"),
        ("/account", "horde-account", "<h1>Account</h1>"),
        ("/workers", "horde-workers", "<h1>Workers &amp; status</h1>"),
    ] {
        let r = s.client.get(format!("{}{path}", s.url)).send().await.expect("GET page");
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/html"));
        let html = r.text().await.expect("body");
        assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(html.contains(marker), "{path}: {marker} missing");
        // Links are plain: each page is its own document, with its own bundle.
        assert!(
            html.contains(&format!("<a href=\"{path}\" aria-current=\"page\">")),
            "{path}: no current link"
        );
        pages.push((path, bundle, bundle_urls(&html)));
    }
    let r = s.client.get(format!("{}/no-such-page", s.url)).send().await.expect("GET");
    assert_eq!(r.status(), 404);
    if pages.iter().all(|(_, _, urls)| urls.is_empty()) {
        assert!(!require_site(), "the pages link no bundle though scripts/build-site.sh ran");
        return;
    }
    for (path, bundle, urls) in &pages {
        // Its own JS and WASM, and the shared styles: nothing of the other pages.
        assert_eq!(urls.len(), 3, "{path}: {urls:?}");
        for ext in ["js", "wasm"] {
            assert!(
                urls.iter()
                    .any(|u| u.starts_with(&format!("/pkg/{bundle}.")) && u.ends_with(&format!(".{ext}"))),
                "{path}: no {bundle} .{ext} in {urls:?}"
            );
        }
    }
    let urls = &pages[0].2;
    for ext in ["js", "wasm", "css"] {
        let url = urls
            .iter()
            .find(|u| u.ends_with(&format!(".{ext}")))
            .unwrap_or_else(|| panic!("no .{ext} in {urls:?}"));
        // <name>.<12 hex>.<ext>
        let (name, hash) = url
            .trim_start_matches("/pkg/")
            .trim_end_matches(&format!(".{ext}"))
            .rsplit_once('.')
            .unwrap_or_else(|| panic!("{url} has no hash"));
        assert!(hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{url}");
        let r = s
            .client
            .get(format!("{}{url}", s.url))
            .header("accept-encoding", "br, gzip")
            .send()
            .await
            .expect("GET bundle file");
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["cache-control"], "public, max-age=31536000, immutable");
        assert_eq!(r.headers()["content-encoding"], "br", "{url} is served compressed");
        let kind = r.headers()["content-type"].to_str().unwrap_or_default().to_string();
        let expected = match ext {
            "js" => "javascript",
            "wasm" => "application/wasm",
            _ => "text/css",
        };
        assert!(kind.contains(expected), "{url}: {kind}");
        // The build's precompressed copy is what is sent (always for JS and CSS).
        let site = std::env::var("HORDE_SITE_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site").to_string());
        let precompressed = std::path::Path::new(&site).join(format!("pkg/{name}.{ext}.br"));
        let body = r.bytes().await.expect("body");
        if ext != "wasm" {
            assert!(precompressed.exists() || !require_site(), "{} missing", precompressed.display());
        }
        if let Ok(expected) = std::fs::read(&precompressed) {
            assert_eq!(body.as_ref(), expected.as_slice(), "{url} is the precompressed copy");
        }
        let gz = s
            .client
            .get(format!("{}{url}", s.url))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("GET bundle file");
        assert_eq!(gz.headers()["content-encoding"], "gzip", "{url}");
    }
    let r = s
        .client
        .get(format!("{}/pkg/horde-write.000000000000.js", s.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_functions_reach_the_core() {
    let s = server!(Db::Sqlite);
    // Arguments go as a JSON object, as the pages send them.
    let call = |name: &'static str, args: Value| {
        let (client, url) = (s.client.clone(), format!("{}/ui/api/{name}", s.url));
        async move {
            let r = client.post(url).json(&args).send().await.expect("server function");
            let status = r.status().as_u16();
            (status, r.text().await.expect("body"))
        }
    };
    let (status, body) = call("overview", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let overview: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(overview["version"], env!("CARGO_PKG_VERSION"));
    assert!(overview["text_models"].as_array().is_some_and(Vec::is_empty));
    let (status, body) = call("text_choices", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON"),
        json!({"models": [], "workers": []})
    );
    let (status, body) = call("image_choices", json!({})).await;
    assert_eq!((status, body.as_str()), (200, "[]"));

    // Anonymous by default.
    let (status, body) = call("account", json!({"api_key": ""})).await;
    assert_eq!(status, 200, "{body}");
    let anon: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(anon["anonymous"], true);

    // Registration answers a key that then names the account.
    let (status, body) = call("register", json!({"username": "ui-tester"})).await;
    assert_eq!(status, 200, "{body}");
    let key: Value = serde_json::from_str(&body).expect("JSON");
    let api_key = key["api_key"].as_str().expect("key").to_string();
    let (status, body) = call("account", json!({"api_key": api_key})).await;
    assert_eq!(status, 200, "{body}");
    let me: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(me["username"], key["username"]);
    assert_eq!(me["anonymous"], false);

    // The core's errors come back as errors, with its message.
    let (status, body) = call("account", json!({"api_key": "not-a-key"})).await;
    assert_eq!(status, 401, "the REST API's status for an unknown key");
    assert!(body.to_lowercase().contains("api key"), "{body}");
    let (status, body) = call("text_status", json!({"id": "00000000-0000-0000-0000-000000000000"})).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.is_empty());

    // Alchemy (the studios' captions and upscales): queued with a `data:` URI, followed, and a
    // file that is not an image refused with the API's message.
    const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let image = format!("data:image/png;base64,{PNG_1X1}");
    let (status, body) = call(
        "submit_alchemy",
        json!({"api_key": api_key, "source_image": image, "form": "caption"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let queued: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(queued["possible"], false, "no alchemist is online");
    let id = queued["id"].as_str().expect("id").to_string();
    let (status, body) = call("alchemy_progress", json!({"id": id})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("JSON"),
        json!({"state": "waiting", "done": false, "form_state": "waiting", "caption": "", "image": ""})
    );
    let (status, body) = call(
        "submit_alchemy",
        json!({"api_key": api_key, "source_image": "bm90IGFuIGltYWdl", "form": "caption"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        "submit_alchemy",
        json!({"api_key": api_key, "source_image": image, "form": "vectorise"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = call("alchemy_progress", json!({"id": "00000000-0000-0000-0000-000000000000"})).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_functions_count_in_the_api_rate_limit_groups() {
    let s = server!(
        Db::Sqlite,
        &["--rate-limit", "register=1/min ip", "--rate-limit", "default=3/min ip"]
    );
    let register = |name: &'static str| {
        let (client, url) = (s.client.clone(), format!("{}/ui/api/register", s.url));
        async move { client.post(url).json(&json!({"username": name})).send().await.expect("register") }
    };
    assert_eq!(register("first-ui-user").await.status(), 200);
    let refused = register("second-ui-user").await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.expect("JSON 429");
    assert_eq!(body["rc"], "TooManyRequests");
    // Server functions without a group of their own count in `default`; pages are not limited.
    for i in 0..4 {
        let r = s
            .client
            .post(format!("{}/ui/api/overview", s.url))
            .json(&json!({}))
            .send()
            .await
            .expect("overview");
        assert_eq!(r.status(), if i < 3 { 200 } else { 429 }, "call {i}");
    }
    let page = s.client.get(format!("{}/", s.url)).send().await.expect("page");
    assert_eq!(page.status(), 200);
}

/// Pages rendered at once on a multi-threaded server: no render may panic when it ends on another
/// thread than it began (a thread-local value of the writing studio once did, about one render
/// in a hundred under load). The server's log is read for panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pages_rendered_concurrently_never_panic() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("horde-render-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let log = dir.join("stderr.log");
    let mut child = std::process::Command::new(std::env::var_os("HORDE_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_horde").into()))
        .args(["serve", "--port", "0", "--no-rate-limits", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start horde");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address");
    let base = line.trim().rsplit(' ').next().unwrap_or_default().to_string();
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let renders = (0..100).map(|i| {
            let url = format!("{base}{}", ["/", "/images", "/workers", "/account"][i % 4]);
            let client = client.clone();
            async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
        });
        for status in futures_util::future::join_all(renders).await {
            assert_eq!(status.ok(), Some(200));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!stderr.contains("panicked"), "a render panicked:\n{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

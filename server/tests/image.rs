//! Image generation over HTTP against the real `horde` binary, on SQLite and on PostgreSQL:
//! round trips with base64 and upload-link results, check fields, cancel, expiry, the memory cap,
//! webhooks and ratings.

mod common;

use base64::Engine;
use common::{Db, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn webp(seed: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, seed]))
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::WebP)
        .expect("webp");
    bytes
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn image_pop(name: &str) -> Value {
    json!({"name": name, "models": ["stable_diffusion"], "max_pixels": 1048576, "amount": 4,
           "bridge_agent": "AI Horde Worker reGen:10.0.0:https://example.invalid", "allow_img2img": true})
}

async fn kudos_of(s: &Server, key: &str) -> f64 {
    let (_, me) = s.get("/find_user", Some(key)).await;
    me["kudos"].as_f64().unwrap_or(f64::NAN)
}

async fn round_trip(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (req_key, _) = s.user("img_requester", 1000.0, false, false).await;
    let (wk_key, _) = s.user("img_volunteer", 0.0, false, false).await;
    let baseline = json!({"prompt": "a lighthouse", "params": {"steps": 50, "sampler_name": "k_euler", "cfg_scale": 7.5, "width": 512, "height": 512}, "dry_run": true});
    let (st, dry) = s.post("/generate/async", Some(&req_key), baseline).await;
    assert_eq!((st, dry["kudos"].as_f64()), (200, Some(12.0)), "{dry}");

    let body = json!({"prompt": "a lighthouse ### fog", "params": {"steps": 50, "sampler_name": "k_euler", "cfg_scale": 7.5, "n": 2, "seed": "7"}});
    let mut dry_body = body.clone();
    dry_body["dry_run"] = json!(true);
    let (_, dry2) = s.post("/generate/async", Some(&req_key), dry_body).await;
    let before = kudos_of(&s, &req_key).await;
    let (st, accepted) = s.post("/generate/async", Some(&req_key), body).await;
    assert_eq!(st, 202, "{accepted}");
    assert_eq!(accepted["kudos"], dry2["kudos"]);
    assert!(accepted["message"].as_str().is_some_and(|m| m.contains("No available workers")));
    let id = accepted["id"].as_str().unwrap_or_default().to_string();
    let (st, check) = s.get(&format!("/generate/check/{id}"), None).await;
    assert_eq!(st, 200);
    for f in ["finished", "processing", "restarted", "waiting", "wait_time", "queue_position"] {
        assert!(check[f].is_i64(), "{f}: {check}");
    }
    for f in ["done", "faulted", "is_possible"] {
        assert!(check[f].is_boolean(), "{f}: {check}");
    }
    assert_eq!((check["waiting"].as_i64(), check["is_possible"].as_bool()), (Some(2), Some(false)));
    assert!(check.get("generations").is_none());

    let (st, job) = s.post("/generate/pop", Some(&wk_key), image_pop("painter")).await;
    assert_eq!(st, 200, "{job}");
    let ids: Vec<String> = job["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    assert_eq!(ids.len(), 2, "{job}");
    assert_eq!(job["payload"]["n_iter"], 2);
    assert_eq!(job["payload"]["ddim_steps"], 50);
    assert_eq!(job["payload"]["seed"], "7");
    assert_eq!(job["payload"]["prompt"], "a lighthouse ### fog");
    assert!(job["payload"].get("n").is_none() && job["payload"].get("steps").is_none());
    assert!(job["ttl"].as_i64().is_some_and(|t| t >= 150));
    let uploads: Vec<String> = job["r2_uploads"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    assert_eq!(uploads.len(), 2);
    assert_eq!(job["r2_upload"].as_str(), Some(uploads[0].as_str()));
    assert!(uploads[0].starts_with(&s.url), "{} vs {}", uploads[0], s.url);

    // Job 1 through its upload link (PUT raw WebP, then "R2"); job 2 inline as base64.
    let (img1, img2) = (webp(1), webp(2));
    let put = s.client.put(&uploads[0]).body(img1.clone()).send().await.expect("put");
    assert_eq!(put.status().as_u16(), 200);
    let bad = s
        .client
        .put(uploads[0].replace("/images/", "/images/x"))
        .body(img1.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(bad.status().as_u16(), 404);
    let (st, r) = s
        .post(
            "/generate/submit",
            Some(&wk_key),
            json!({"id": ids[0], "generation": "R2", "state": "ok", "seed": 7}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["reward"].as_f64(), Some(10.0));
    let (st, r) = s
        .post(
            "/generate/submit",
            Some(&wk_key),
            json!({"id": ids[1], "generation": b64(&img2), "state": "ok", "seed": 8}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let (st, r) = s
        .post(
            "/generate/submit",
            Some(&wk_key),
            json!({"id": ids[1], "generation": b64(&img2), "state": "ok", "seed": 8}),
        )
        .await;
    assert_eq!((st, r["rc"].as_str()), (400, Some("DuplicateGen")));
    s.settle().await;
    let after = kudos_of(&s, &req_key).await;
    assert!(
        (before - after - dry2["kudos"].as_f64().unwrap_or(0.0)).abs() < 1e-9,
        "charged {} vs dry run {dry2}",
        before - after
    );
    assert_eq!(kudos_of(&s, &wk_key).await, 20.0);

    let (st, status) = s.get(&format!("/generate/status/{id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(status["done"], true);
    assert_eq!(status["shared"], false);
    let gens = status["generations"].as_array().cloned().unwrap_or_default();
    assert_eq!(gens.len(), 2);
    for (g, bytes, seed) in [(&gens[0], &img1, "7"), (&gens[1], &img2, "8")] {
        assert_eq!(g["seed"], seed);
        assert_eq!(g["worker_name"], "painter");
        assert_eq!(g["censored"], false);
        let url = g["img"].as_str().unwrap_or_default();
        assert!(url.starts_with("http://"), "{g}");
        let got = s.client.get(url).send().await.expect("get");
        assert_eq!(got.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/webp"));
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
    }
    // A download link does not work as an upload link.
    let url = gens[0]["img"].as_str().unwrap_or_default();
    let put = s.client.put(url).body(img2.clone()).send().await.expect("put");
    assert_eq!(put.status().as_u16(), 404);

    // Base64 results for r2: false (what KoboldAI Lite sends).
    let (_, acc) = s
        .post(
            "/generate/async",
            Some(&req_key),
            json!({"prompt": "b", "r2": false, "params": {"steps": 10}}),
        )
        .await;
    let id2 = acc["id"].as_str().unwrap_or_default().to_string();
    let (_, job) = s.post("/generate/pop", Some(&wk_key), image_pop("painter")).await;
    let jid = job["id"].as_str().unwrap_or_default().to_string();
    s.post(
        "/generate/submit",
        Some(&wk_key),
        json!({"id": jid, "generation": b64(&img1), "state": "ok", "seed": 1}),
    )
    .await;
    let (_, status) = s.get(&format!("/generate/status/{id2}"), None).await;
    assert_eq!(status["generations"][0]["img"].as_str(), Some(b64(&img1).as_str()));

    // Cancel a waiting request; models and workers list the image worker.
    let (_, acc) = s
        .post("/generate/async", Some(&req_key), json!({"prompt": "c", "models": ["unserved"]}))
        .await;
    let id3 = acc["id"].as_str().unwrap_or_default().to_string();
    let (st, del) = s.send(Method::DELETE, &format!("/generate/status/{id3}"), None, json!({})).await;
    assert_eq!((st, del["waiting"].as_i64()), (200, Some(1)));
    let (_, check) = s.get(&format!("/generate/check/{id3}"), None).await;
    assert_eq!((check["waiting"].as_i64(), check["done"].as_bool()), (Some(0), Some(true)));
    let (_, models) = s.get("/status/models", None).await;
    assert!(
        models
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == "stable_diffusion" && m["type"] == "image")),
        "{models}"
    );
    let (_, workers) = s.get("/workers?type=image", None).await;
    assert!(
        workers.as_array().is_some_and(|w| w
            .iter()
            .any(|w| w["name"] == "painter" && w["type"] == "image" && w["max_pixels"] == 1048576)),
        "{workers}"
    );
    // A text pop under the image worker's name is refused.
    let (st, e) = s
        .post("/generate/text/pop", Some(&wk_key), json!({"name": "painter", "models": ["m"]}))
        .await;
    assert_eq!((st, e["rc"].as_str()), (400, Some("PolymorphicNameConflict")));

    // Errors are JSON with their rc.
    let (st, e) = s
        .post("/generate/async", Some(&req_key), json!({"prompt": "x", "params": {"width": 500}}))
        .await;
    assert_eq!((st, e["rc"].as_str()), (400, Some("InvalidSize")));
    let (st, e) = s
        .post(
            "/generate/async",
            Some(&req_key),
            json!({"prompt": "x", "webhook": "http://example.com/hook"}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (400, Some("WebhookNotHttps")));
    let (st, e) = s.get("/generate/check/00000000-0000-0000-0000-000000000000", None).await;
    assert_eq!((st, e["rc"].as_str()), (404, Some("RequestNotFound")));
    let (st, e) = s.post("/generate/pop", Some("0000000000"), image_pop("anon")).await;
    assert_eq!((st, e["rc"].as_str()), (403, Some("AnonForbiddenWorker")));
    let (st, e) = s
        .post(
            &format!("/generate/rate/{id}"),
            None,
            json!({"ratings": [{"id": ids[0], "rating": 8}]}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (400, Some("AestheticsNotPublic")));
}

on_both_databases!(image_round_trip, round_trip);

async fn expiry_and_memory_cap(db: Db) {
    let s = server!(
        db,
        &[
            "--dev-test-users",
            "--request-expiry-minutes",
            "0.05",
            "--reap-interval-ms",
            "100",
            "--image-memory-mib",
            "0.02"
        ]
    );
    let (req_key, _) = s.user("cap_requester", 1000.0, false, false).await;
    let (wk_key, _) = s.user("cap_volunteer", 0.0, false, false).await;
    let (_, acc) = s
        .post("/generate/async", Some(&req_key), json!({"prompt": "a", "params": {"n": 2}}))
        .await;
    let id = acc["id"].as_str().unwrap_or_default().to_string();
    let (_, job) = s.post("/generate/pop", Some(&wk_key), image_pop("capped")).await;
    let ids: Vec<String> = job["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    assert_eq!(ids.len(), 2);
    // A noisy PNG bigger than the 20 KiB cap: refused cleanly, nothing lost.
    let mut big = Vec::new();
    image::RgbImage::from_fn(128, 128, |x, y| {
        image::Rgb([(x * 31 + y * 17) as u8, (x * y) as u8, ((x ^ y) * 3) as u8])
    })
    .write_to(&mut std::io::Cursor::new(&mut big), image::ImageFormat::Png)
    .expect("png");
    assert!(big.len() > 20 * 1024, "{}", big.len());
    let (st, e) = s
        .post(
            "/generate/submit",
            Some(&wk_key),
            json!({"id": ids[0], "generation": b64(&big), "state": "ok", "seed": 1}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (503, Some("ImageStoreFull")), "{e}");
    let (st, _) = s
        .post(
            "/generate/submit",
            Some(&wk_key),
            json!({"id": ids[0], "generation": b64(&webp(1)), "state": "ok", "seed": 1}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, check) = s.get(&format!("/generate/check/{id}"), None).await;
    assert_eq!(check["finished"], 1);
    // 3 seconds after its last activity the request and its images are gone.
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    let (st, e) = s.get(&format!("/generate/status/{id}"), None).await;
    assert_eq!((st, e["rc"].as_str()), (404, Some("RequestNotFound")));
    let (st, e) = s
        .post(
            "/generate/submit",
            Some(&wk_key),
            json!({"id": ids[1], "generation": b64(&webp(2)), "state": "ok", "seed": 1}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (404, Some("InvalidJobID")));
}

on_both_databases!(image_expiry_and_memory_cap, expiry_and_memory_cap);

/// A webhook receiver on loopback: collects the JSON bodies POSTed to it.
async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = sock.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            if let Ok(v) = serde_json::from_str::<Value>(&body[..len]) {
                                let _ = tx.send(v);
                            }
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}/hook"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_announce_finished_jobs() {
    let s = server!(Db::Sqlite, &["--dev-test-users", "--dev-loopback-webhooks"]);
    let (req_key, _) = s.user("hook_requester", 1000.0, false, false).await;
    let (wk_key, _) = s.user("hook_volunteer", 0.0, false, false).await;
    let (hook, mut rx) = receiver().await;
    let (st, acc) = s
        .post(
            "/generate/async",
            Some(&req_key),
            json!({"prompt": "a", "r2": false, "webhook": hook}),
        )
        .await;
    assert_eq!(st, 202, "{acc}");
    let (_, job) = s.post("/generate/pop", Some(&wk_key), image_pop("hooked")).await;
    let jid = job["id"].as_str().unwrap_or_default().to_string();
    let img = webp(3);
    s.post(
        "/generate/submit",
        Some(&wk_key),
        json!({"id": jid, "generation": b64(&img), "state": "ok", "seed": 4}),
    )
    .await;
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("webhook within 10 s")
        .expect("body");
    assert_eq!(got["id"].as_str(), Some(jid.as_str()));
    assert_eq!(got["request"], acc["id"]);
    assert_eq!(got["img"].as_str(), Some(b64(&img).as_str()));
    assert_eq!(got["worker_name"], "hooked");
    assert!(got["kudos"].as_f64().is_some_and(|k| k > 0.0));

    // Text requests announce theirs too.
    let (st, acc) = s
        .post(
            "/generate/text/async",
            Some(&req_key),
            json!({"prompt": "hi", "webhook": hook, "models": ["m"]}),
        )
        .await;
    assert_eq!(st, 202, "{acc}");
    let (_, job) = s
        .post("/generate/text/pop", Some(&wk_key), json!({"name": "hooked-text", "models": ["m"]}))
        .await;
    let jid = job["id"].as_str().unwrap_or_default().to_string();
    s.post(
        "/generate/text/submit",
        Some(&wk_key),
        json!({"id": jid, "generation": "hello", "state": "ok"}),
    )
    .await;
    let got = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("webhook within 10 s")
        .expect("body");
    assert_eq!((got["id"].as_str(), got["text"].as_str()), (Some(jid.as_str()), Some("hello")));
}

//! Shared keys over HTTP on every backend: their owner manages them; anyone holding one
//! generates on the owner's kudos within the key's limits, with the public horde's rc codes.

mod common;

use base64::Engine;
use common::{Db, Server};
use reqwest::Method;
use serde_json::{json, Value};

/// A small WebP, base64-encoded, as a worker's result.
fn webp_b64() -> String {
    let mut bytes = Vec::new();
    image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 16, y as u8 * 16, 9]))
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::WebP)
        .expect("webp");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn rc(v: &Value) -> &str {
    v["rc"].as_str().unwrap_or("")
}

async fn kudos_of(s: &Server, key: &str) -> f64 {
    let (_, me) = s.get("/find_user", Some(key)).await;
    me["kudos"].as_f64().unwrap_or(f64::NAN)
}

async fn shared_keys(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (owner, owner_id) = s.user("key_owner", 1000.0, false, false).await;
    let (other, _) = s.user("key_other", 100.0, false, false).await;
    let (painter, _) = s.user("key_painter", 0.0, false, false).await;

    let (st, k) = s
        .send(
            Method::PUT,
            "/sharedkeys",
            Some(&owner),
            json!({"name": "for friends", "kudos": 60, "max_image_steps": 20, "max_image_pixels": 262144, "max_text_tokens": 100}),
        )
        .await;
    assert_eq!(st, 200, "{k}");
    let id = k["id"].as_str().expect("key id").to_string();
    assert_eq!(k["username"], format!("key_owner#{owner_id}"));
    assert_eq!((k["kudos"].as_i64(), k["utilized"].as_i64()), (Some(60), Some(0)));
    assert!(k.get("expiry").is_none(), "{k}");
    let path = format!("/sharedkeys/{id}");
    let (st, d) = s.get(&path, None).await;
    assert_eq!((st, d["name"].as_str()), (200, Some("for friends")));

    // Per-job limits (400), then a request within them, paid by the owner and counted by the key.
    let (st, v) = s
        .post(
            "/generate/async",
            Some(&id),
            json!({"prompt": "a", "params": {"steps": 21, "width": 512, "height": 512}}),
        )
        .await;
    assert_eq!((st, rc(&v)), (400, "BadRequest"), "{v}");
    let (st, v) = s
        .post(
            "/generate/async",
            Some(&id),
            json!({"prompt": "a", "params": {"steps": 10, "width": 576, "height": 512}}),
        )
        .await;
    assert_eq!((st, rc(&v)), (400, "BadRequest"), "{v}");
    let (st, v) = s
        .post(
            "/generate/text/async",
            Some(&id),
            json!({"prompt": "a", "params": {"max_length": 101}}),
        )
        .await;
    assert_eq!((st, rc(&v)), (400, "BadRequest"), "{v}");
    let (st, dry) = s
        .post(
            "/generate/async",
            Some(&id),
            json!({"prompt": "a", "params": {"steps": 10}, "dry_run": true}),
        )
        .await;
    assert_eq!(st, 200, "{dry}");
    let owner_before = kudos_of(&s, &owner).await;
    let (st, acc) = s
        .post(
            "/generate/async",
            Some(&id),
            json!({"prompt": "a lighthouse", "params": {"steps": 10}}),
        )
        .await;
    assert_eq!(st, 202, "{acc}");
    let price = acc["kudos"].as_f64().unwrap_or(0.0);
    assert!(price > 0.0, "{acc}");
    let (_, d) = s.get(&path, None).await;
    let spent = price.ceil() as i64;
    assert_eq!(
        (d["utilized"].as_i64(), d["kudos"].as_i64()),
        (Some(spent), Some(60 - spent)),
        "{d}"
    );
    let (st, job) = s
        .post(
            "/generate/pop",
            Some(&painter),
            json!({"name": "key-painter", "models": ["stable_diffusion"], "max_pixels": 1048576,
                   "bridge_agent": "AI Horde Worker reGen:10.0.0:https://example.invalid"}),
        )
        .await;
    assert_eq!(st, 200, "{job}");
    let (st, v) = s
        .post(
            "/generate/submit",
            Some(&painter),
            json!({"id": job["id"], "generation": webp_b64(), "state": "ok", "seed": 1}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    s.settle().await;
    let owner_after = kudos_of(&s, &owner).await;
    assert!(owner_after < owner_before, "the owner pays: {owner_before} -> {owner_after}");
    let (_, painter_me) = s.get("/find_user", Some(&painter)).await;
    assert!(painter_me["kudos"].as_f64().unwrap_or(0.0) > 0.0);

    // A price beyond what the key may still spend: 403 SharedKeyInsufficientKudos; an empty key: SharedKeyEmpty.
    let (st, _) = s.send(Method::PATCH, &path, Some(&owner), json!({"kudos": 1})).await;
    assert_eq!(st, 200);
    let (st, v) = s
        .post(
            "/generate/async",
            Some(&id),
            json!({"prompt": "b", "params": {"steps": 20, "width": 512, "height": 512}}),
        )
        .await;
    assert_eq!((st, rc(&v)), (403, "SharedKeyInsufficientKudos"), "{v}");
    let (st, _) = s.send(Method::PATCH, &path, Some(&owner), json!({"kudos": 0})).await;
    assert_eq!(st, 200);
    let (st, v) = s.post("/generate/text/async", Some(&id), json!({"prompt": "b"})).await;
    assert_eq!((st, rc(&v)), (403, "SharedKeyEmpty"), "{v}");

    // Expiry is shown as a date; management is the owner's.
    let (st, d) = s.send(Method::PATCH, &path, Some(&owner), json!({"expiry": 3, "kudos": -1})).await;
    assert_eq!(st, 200, "{d}");
    assert!(d["expiry"].as_str().is_some_and(|e| e.ends_with("-0000")), "{d}");
    let (st, v) = s.send(Method::PATCH, &path, Some(&owner), json!({})).await;
    assert_eq!((st, rc(&v)), (400, "NoSharedKeyModSelected"));
    let (st, v) = s.send(Method::PATCH, &path, Some(&owner), json!({"max_text_tokens": 501})).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.send(Method::PATCH, &path, Some(&other), json!({"kudos": 5})).await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
    let (st, v) = s.send(Method::DELETE, &path, Some(&other), json!({})).await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
    let (st, _) = s.send(Method::DELETE, &path, Some(&owner), json!({})).await;
    assert_eq!(st, 200);
    let (st, v) = s.get(&path, None).await;
    assert_eq!((st, rc(&v)), (401, "InvalidAPIKey"));
    let (st, v) = s.post("/generate/text/async", Some(&id), json!({"prompt": "c"})).await;
    assert_eq!((st, rc(&v)), (401, "InvalidAPIKey"));

    // At most three keys for an account that is not trusted.
    for _ in 0..3 {
        let (st, _) = s.send(Method::PUT, "/sharedkeys", Some(&other), json!({})).await;
        assert_eq!(st, 200);
    }
    let (st, v) = s.send(Method::PUT, "/sharedkeys", Some(&other), json!({})).await;
    assert_eq!((st, rc(&v)), (403, "Forbidden"));
}
on_both_databases!(shared_key_round_trip, shared_keys);

//! Alchemy over HTTP against the real `horde` binary, with a scripted alchemist, on every
//! backend: a text form and an image form (through its upload link) from async to status,
//! kudos charged and rewarded, `skipped`, cancel, expiry and bad input.

mod common;

use base64::Engine;
use common::{Db, Server};
use image::ImageEncoder;
use reqwest::Method;
use serde_json::{json, Value};

fn webp(seed: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, seed]))
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::WebP)
        .expect("webp");
    bytes
}

/// A PNG of noise larger than any JSON body (10 MiB): an upscaled result as big as real ones get.
fn large_png() -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    let img = image::RgbImage::from_fn(2048, 1800, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let [a, b, c, _] = state.to_le_bytes();
        image::Rgb([a, b, c])
    });
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut bytes,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    )
    .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
    .expect("png");
    bytes
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn alchemist_pop(name: &str, forms: &[&str]) -> Value {
    json!({"name": name, "forms": forms, "amount": 4, "threads": 1, "max_tiles": 16,
           "priority_usernames": [], "bridge_agent": "horde-worker:1:https://example.invalid"})
}

async fn kudos_of(s: &Server, key: &str) -> f64 {
    let (_, me) = s.get("/find_user", Some(key)).await;
    me["kudos"].as_f64().unwrap_or(f64::NAN)
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f[field].as_str().map(String::from))
        .collect()
}

async fn round_trip(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (req_key, _) = s.user("alc_requester", 100.0, false, false).await;
    let (wk_key, _) = s.user("alc_volunteer", 0.0, false, false).await;
    let source = webp(9);
    let before = kudos_of(&s, &req_key).await;
    // As KoboldAI Lite sends it: a data URI.
    let body = json!({"forms": [{"name": "caption"}, {"name": "RealESRGAN_x4plus", "payload": {"facefixer_strength": 0.5}}],
                      "source_image": format!("data:image/webp;base64,{}", b64(&source))});
    let (st, acc) = s.post("/interrogate/async", Some(&req_key), body).await;
    assert_eq!(st, 202, "{acc}");
    let id = acc["id"].as_str().unwrap_or_default().to_string();
    let (st, status) = s.get(&format!("/interrogate/status/{id}"), None).await;
    assert_eq!((st, status["state"].as_str()), (200, Some("waiting")), "{status}");

    // An alchemist serving only captions gets only the caption.
    let (st, popped) = s
        .post("/interrogate/pop", Some(&wk_key), alchemist_pop("reader", &["caption"]))
        .await;
    assert_eq!(st, 200, "{popped}");
    let forms = popped["forms"].clone();
    assert_eq!(strings(&forms, "form"), vec!["caption"], "{popped}");
    assert!(forms[0].get("r2_upload").is_none(), "{popped}");
    let src = forms[0]["source_image"].as_str().unwrap_or_default().to_string();
    assert!(src.starts_with(&s.url), "{src}");
    let got = s.client.get(&src).send().await.expect("get source");
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), source.as_slice());
    let caption_id = strings(&forms, "id")[0].clone();
    let (_, status) = s.get(&format!("/interrogate/status/{id}"), None).await;
    assert_eq!(status["state"], "processing", "{status}");
    let (_, perf) = s.get("/status/performance", None).await;
    assert_eq!(
        (perf["queued_forms"].as_f64(), perf["interrogator_count"].as_i64()),
        (Some(1.0), Some(1)),
        "{perf}"
    );
    assert_eq!(status["forms"][0]["state"], "processing");
    assert_eq!(status["forms"][1]["state"], "waiting");
    // Nothing left for it: an idle answer with why-not counters.
    let (st, idle) = s
        .post("/interrogate/pop", Some(&wk_key), alchemist_pop("reader", &["caption"]))
        .await;
    assert_eq!(st, 200, "{idle}");
    assert_eq!(idle["forms"], json!([]));
    assert!(idle["skipped"].is_object(), "{idle}");
    let (st, r) = s
        .post(
            "/interrogate/submit",
            Some(&wk_key),
            json!({"id": caption_id, "result": {"caption": "a gradient"}, "state": "ok"}),
        )
        .await;
    assert_eq!((st, r["reward"].as_f64()), (200, Some(1.0)), "{r}");
    let (st, r) = s
        .post(
            "/interrogate/submit",
            Some(&wk_key),
            json!({"id": caption_id, "result": {"caption": "x"}}),
        )
        .await;
    assert_eq!((st, r["rc"].as_str()), (400, Some("DuplicateGen")), "{r}");
    let (_, status) = s.get(&format!("/interrogate/status/{id}"), None).await;
    assert_eq!(status["state"], "waiting", "{status}");
    assert_eq!(status["forms"][0]["result"], json!({"caption": "a gradient"}));

    // An upscaler: the image goes to its upload link, the submit says "R2".
    let (_, popped) = s
        .post("/interrogate/pop", Some(&wk_key), alchemist_pop("upscaler", &["RealESRGAN_x4plus"]))
        .await;
    let form = popped["forms"][0].clone();
    assert_eq!(form["form"], "RealESRGAN_x4plus", "{popped}");
    assert_eq!(form["payload"]["facefixer_strength"], 0.5);
    let upload = form["r2_upload"].as_str().unwrap_or_default().to_string();
    assert!(upload.starts_with(&s.url), "{popped}");
    let fid = form["id"].as_str().unwrap_or_default().to_string();
    let (st, e) = s
        .post(
            "/interrogate/submit",
            Some(&wk_key),
            json!({"id": fid, "result": {"RealESRGAN_x4plus": "R2"}}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (400, Some("ImageNotUploaded")), "{e}");
    let big = large_png();
    assert!(big.len() > 10 * 1024 * 1024, "{} bytes", big.len());
    let put = s.client.put(&upload).body(big.clone()).send().await.expect("put");
    assert_eq!(put.status().as_u16(), 200);
    let (st, r) = s
        .post(
            "/interrogate/submit",
            Some(&wk_key),
            json!({"id": fid, "result": {"RealESRGAN_x4plus": "R2"}, "state": "ok"}),
        )
        .await;
    assert_eq!((st, r["reward"].as_f64()), (200, Some(3.0)), "{r}");
    s.settle().await;
    let (_, status) = s.get(&format!("/interrogate/status/{id}"), None).await;
    assert_eq!(status["state"], "done", "{status}");
    let link = status["forms"][1]["result"]["RealESRGAN_x4plus"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let got = s.client.get(&link).send().await.expect("get result");
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), big.as_slice());
    // Charged: each form's price, 1 kudos per form and 1 more with slow workers (the
    // default), and the 1 kudos request tax: (1+2) + (3+2) + 1.
    let charged = before - kudos_of(&s, &req_key).await;
    assert!((charged - 9.0).abs() < 1e-9, "charged {charged}");
    assert_eq!(kudos_of(&s, &wk_key).await, 4.0);
    let (_, workers) = s.get("/workers?type=interrogation", None).await;
    assert!(
        workers
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w["name"] == "reader" && w["type"] == "interrogation")),
        "{workers}"
    );

    // A request for trusted workers only is skipped by an untrusted owner's alchemist, and said so.
    let (_, acc) = s
        .post(
            "/interrogate/async",
            Some(&req_key),
            json!({"forms": [{"name": "caption"}], "source_image": b64(&source), "trusted_workers": true}),
        )
        .await;
    let (_, idle) = s
        .post("/interrogate/pop", Some(&wk_key), alchemist_pop("reader", &["caption"]))
        .await;
    assert_eq!(
        (idle["forms"].clone(), idle["skipped"]["untrusted"].as_u64()),
        (json!([]), Some(1)),
        "{idle}"
    );
    let trusted_only = acc["id"].as_str().unwrap_or_default().to_string();
    s.send(Method::DELETE, &format!("/interrogate/status/{trusted_only}"), None, json!({}))
        .await;

    // A faulted form waits again; cancel stops what has not started.
    let (_, acc) = s
        .post(
            "/interrogate/async",
            Some(&req_key),
            json!({"forms": [{"name": "nsfw"}, {"name": "interrogation"}], "source_image": b64(&source)}),
        )
        .await;
    let id2 = acc["id"].as_str().unwrap_or_default().to_string();
    let (_, popped) = s.post("/interrogate/pop", Some(&wk_key), alchemist_pop("reader", &["nsfw"])).await;
    let nid = popped["forms"][0]["id"].as_str().unwrap_or_default().to_string();
    let (st, r) = s
        .post(
            "/interrogate/submit",
            Some(&wk_key),
            json!({"id": nid, "result": {}, "state": "faulted"}),
        )
        .await;
    assert_eq!((st, r["reward"].as_f64()), (200, Some(0.0)), "{r}");
    let (_, status) = s.get(&format!("/interrogate/status/{id2}"), None).await;
    assert_eq!(status["forms"][0]["state"], "waiting", "{status}");
    let (st, del) = s.send(Method::DELETE, &format!("/interrogate/status/{id2}"), None, json!({})).await;
    assert_eq!(st, 200, "{del}");
    let (_, status) = s.get(&format!("/interrogate/status/{id2}"), None).await;
    assert_eq!(
        (status["state"].as_str(), status["forms"][0]["state"].as_str()),
        (Some("partial"), Some("cancelled")),
        "{status}"
    );
    let (_, idle) = s.post("/interrogate/pop", Some(&wk_key), alchemist_pop("reader", &["nsfw"])).await;
    assert_eq!(idle["forms"], json!([]), "{idle}");
}

on_both_databases!(alchemy_round_trip, round_trip);

async fn expiry_and_bad_input(db: Db) {
    let s = server!(
        db,
        &["--dev-test-users", "--request-expiry-minutes", "0.05", "--reap-interval-ms", "100"]
    );
    let (req_key, _) = s.user("alc_bad", 100.0, false, false).await;
    let (wk_key, _) = s.user("alc_bad_worker", 0.0, false, false).await;
    let img = b64(&webp(1));
    for (body, rc) in [
        (
            json!({"forms": [{"name": "caption"}], "source_image": "bm90IGFuIGltYWdl"}),
            "InvalidSourceImage",
        ),
        (json!({"forms": [{"name": "vectorise"}], "source_image": img}), "ValidationError"),
        (json!({"forms": [], "source_image": img}), "ValidationError"),
        (
            json!({"forms": (0..21).map(|_| json!({"name": "nsfw"})).collect::<Vec<_>>(), "source_image": img}),
            "TooManyForms",
        ),
        (
            json!({"forms": [{"name": "caption"}], "source_image": "https://example.com/a.png"}),
            "SourceImageUrlUnsupported",
        ),
    ] {
        let (st, e) = s.post("/interrogate/async", Some(&req_key), body).await;
        assert_eq!((st, e["rc"].as_str()), (400, Some(rc)), "{e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    let huge = "A".repeat(8 * 1024 * 1024);
    let (st, e) = s
        .post(
            "/interrogate/async",
            Some(&req_key),
            json!({"forms": [{"name": "caption"}], "source_image": huge}),
        )
        .await;
    assert!(st == 400 || st == 413, "{st} {e}");
    let (st, e) = s
        .post(
            "/interrogate/pop",
            Some(&wk_key),
            json!({"name": "w", "forms": ["caption"], "max_tiles": 0}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (400, Some("ValidationError")), "{e}");

    let (_, acc) = s
        .post(
            "/interrogate/async",
            Some(&req_key),
            json!({"forms": [{"name": "caption"}], "source_image": img}),
        )
        .await;
    let id = acc["id"].as_str().unwrap_or_default().to_string();
    let (_, popped) = s
        .post("/interrogate/pop", Some(&wk_key), alchemist_pop("slowpoke", &["caption"]))
        .await;
    let fid = popped["forms"][0]["id"].as_str().unwrap_or_default().to_string();
    let src = popped["forms"][0]["source_image"].as_str().unwrap_or_default().to_string();
    // 3 seconds after its last activity the request, its image and its forms are gone.
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    let (st, e) = s.get(&format!("/interrogate/status/{id}"), None).await;
    assert_eq!((st, e["rc"].as_str()), (404, Some("RequestNotFound")), "{e}");
    let got = s.client.get(&src).send().await.expect("get");
    assert_eq!(got.status().as_u16(), 404);
    let (st, e) = s
        .post(
            "/interrogate/submit",
            Some(&wk_key),
            json!({"id": fid, "result": {"caption": "late"}}),
        )
        .await;
    assert_eq!((st, e["rc"].as_str()), (404, Some("InvalidJobID")), "{e}");
}

on_both_databases!(alchemy_expiry_and_bad_input, expiry_and_bad_input);

/// Every form the horde serves goes from async to a finished status through a scripted alchemist:
/// the three that answer JSON and the eight post-processors that answer an uploaded image.
async fn every_form(db: Db) {
    let s = server!(db, &["--dev-test-users"]);
    let (req_key, _) = s.user("alc_every", 500.0, false, false).await;
    let (wk_key, _) = s.user("alc_every_wk", 0.0, false, false).await;
    let source = webp(5);
    let json_forms = [
        ("caption", json!({"caption": "a gradient"})),
        ("nsfw", json!({"nsfw": false})),
        (
            "interrogation",
            json!({"interrogation": {"tags": [{"text": "gradient", "confidence": 0.9}]}}),
        ),
    ];
    let image_forms = [
        "GFPGAN",
        "CodeFormers",
        "RealESRGAN_x4plus",
        "RealESRGAN_x2plus",
        "RealESRGAN_x4plus_anime_6B",
        "NMKD_Siax",
        "4x_AnimeSharp",
        "strip_background",
    ];
    let all: Vec<&str> = json_forms.iter().map(|(f, _)| *f).chain(image_forms).collect();
    for form in all {
        let (st, acc) = s
            .post(
                "/interrogate/async",
                Some(&req_key),
                json!({"forms": [{"name": form}], "source_image": b64(&source)}),
            )
            .await;
        assert_eq!(st, 202, "{form}: {acc}");
        let id = acc["id"].as_str().unwrap_or_default().to_string();
        let (_, popped) = s
            .post("/interrogate/pop", Some(&wk_key), alchemist_pop("every-form", &[form]))
            .await;
        let job = &popped["forms"][0];
        assert_eq!(job["form"], form, "{popped}");
        let fid = job["id"].as_str().unwrap_or_default().to_string();
        let result = match json_forms.iter().find(|(f, _)| *f == form) {
            Some((_, r)) => r.clone(),
            None => {
                let upload = job["r2_upload"].as_str().unwrap_or_default().to_string();
                let put = s.client.put(&upload).body(webp(6)).send().await.expect("put");
                assert_eq!(put.status().as_u16(), 200, "{form}");
                json!({ form: "R2" })
            }
        };
        let (st, r) = s
            .post(
                "/interrogate/submit",
                Some(&wk_key),
                json!({"id": fid, "result": result, "state": "ok"}),
            )
            .await;
        assert_eq!(st, 200, "{form}: {r}");
        s.settle().await;
        let (_, status) = s.get(&format!("/interrogate/status/{id}"), None).await;
        assert_eq!(status["state"], "done", "{form}: {status}");
        let got = &status["forms"][0]["result"][form];
        match json_forms.iter().find(|(f, _)| *f == form) {
            Some((_, r)) => assert_eq!(got, &r[form], "{form}: {status}"),
            None => assert!(got.as_str().is_some_and(|l| l.starts_with(&s.url)), "{form}: {status}"),
        }
    }
}

on_both_databases!(alchemy_every_form, every_form);

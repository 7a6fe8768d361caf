//! `/stats/img/*` and `/stats/text/*` over HTTP on every backend: finished jobs counted per
//! window and model, kept across a restart, `model_state` checked.

mod common;

use base64::Engine;
use common::{Db, Server};
use serde_json::json;

fn webp() -> String {
    let mut bytes = Vec::new();
    image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 16, y as u8 * 16, 7]))
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::WebP)
        .expect("webp");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One text job of 100 tokens on `m-13B`, and one 512×512 20-step image on `sd`.
async fn generate(s: &Server, req: &str, wk: &str) {
    let (st, _) = s
        .post(
            "/generate/text/async",
            Some(req),
            json!({"prompt": "p", "params": {"max_length": 100}}),
        )
        .await;
    assert_eq!(st, 202);
    let (_, pop) = s
        .post(
            "/generate/text/pop",
            Some(wk),
            json!({"name": "stats-text", "models": ["m-13B"], "max_length": 512}),
        )
        .await;
    let (st, r) = s
        .post(
            "/generate/text/submit",
            Some(wk),
            json!({"id": pop["id"], "generation": "w".repeat(400)}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let (st, _) = s
        .post(
            "/generate/async",
            Some(req),
            json!({"prompt": "a", "models": ["sd"], "r2": false, "params": {"width": 512, "height": 512, "steps": 20}}),
        )
        .await;
    assert_eq!(st, 202);
    let (_, pop) = s
        .post(
            "/generate/pop",
            Some(wk),
            json!({"name": "stats-image", "models": ["sd"], "max_pixels": 262144, "bridge_agent": "AI Horde Worker reGen:9.0.0:x"}),
        )
        .await;
    let (st, r) = s
        .post(
            "/generate/submit",
            Some(wk),
            json!({"id": pop["id"], "generation": webp(), "state": "ok", "seed": 1}),
        )
        .await;
    assert_eq!(st, 200, "{pop} {r}");
}

async fn stats(db: Db) {
    let mut s = server!(db, &["--dev-test-users"]);
    let (req, _) = s.user("stats_req", 500.0, false, false).await;
    let (wk, _) = s.user("stats_wk", 0.0, false, false).await;
    let (st, empty) = s.get("/stats/img/totals", None).await;
    assert_eq!(st, 200);
    assert_eq!(empty["total"], json!({"images": 0, "ps": 0}), "{empty}");
    generate(&s, &req, &wk).await;
    generate(&s, &req, &wk).await;
    s.settle().await;

    let (_, img) = s.get("/stats/img/totals", None).await;
    let two_images = json!({"images": 2, "ps": 2 * 512 * 512 * 20});
    for window in ["minute", "hour", "day", "month", "total"] {
        assert_eq!(img[window], two_images, "{window}: {img}");
    }
    let (_, text) = s.get("/stats/text/totals", None).await;
    assert_eq!(text["day"], json!({"requests": 2, "tokens": 200}), "{text}");
    let (_, models) = s.get("/stats/img/models", None).await;
    assert_eq!(models["day"], json!({"sd": 2}), "{models}");
    assert_eq!(models["total"], json!({"sd": 2}), "{models}");
    let (_, models) = s.get("/stats/text/models?model_state=all", None).await;
    assert_eq!(models["month"], json!({"m-13B": 2}), "{models}");
    let (_, custom) = s.get("/stats/text/models?model_state=custom", None).await;
    assert_eq!(custom, json!({"day": {}, "month": {}, "total": {}}));
    let (st, bad) = s.get("/stats/img/models?model_state=weird", None).await;
    assert_eq!((st, bad["rc"].as_str()), (400, Some("ValidationError")), "{bad}");

    // Stored: the day, month and total figures survive a restart (minute and hour are this
    // process's own).
    s.restart();
    let (_, img) = s.get("/stats/img/totals", None).await;
    for window in ["day", "month", "total"] {
        assert_eq!(img[window], two_images, "{window} after a restart: {img}");
    }
    let (_, models) = s.get("/stats/text/models", None).await;
    assert_eq!(models["total"], json!({"m-13B": 2}), "{models}");
    generate(&s, &req, &wk).await;
    s.settle().await;
    let (_, text) = s.get("/stats/text/totals", None).await;
    assert_eq!(text["total"], json!({"requests": 3, "tokens": 300}), "{text}");
    assert!(s.stop());
}
on_both_databases!(generation_stats, stats);

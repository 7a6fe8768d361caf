//! Prompts and generations (text, images, alchemy results and source images) never reach the logs, even at debug level, and never
//! reach the database; the image timings kept for the kudos model hold only the payload's shape.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_and_generations_stay_out_of_logs_and_storage() {
    let dir = std::env::temp_dir().join(format!("horde-privacy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let log = std::fs::File::create(dir.join("stderr.log")).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_horde"))
        .args([
            "serve",
            "--port",
            "0",
            "--dev-test-users",
            "--no-rate-limits",
            "--flush-interval-ms",
            "20",
            "--data-dir",
        ])
        .arg(&dir)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address");
    let base = format!("{}/api/v2", line.trim().rsplit(' ').next().unwrap_or_default());
    let c = reqwest::Client::new();
    let (_, user) = post(&c, format!("{base}/dev/test-user"), None, json!({"username": "p"})).await;
    let api_key = user["api_key"].as_str().unwrap_or_default().to_string();
    let key = Some(api_key.as_str());
    let prompt_marker = "SECRET-PROMPT-7f3a9c";
    let text_marker = "SECRET-GENERATION-41b2e8";
    let (_, acc) = post(
        &c,
        format!("{base}/generate/text/async"),
        key,
        json!({"prompt": format!("tell me {prompt_marker}")}),
    )
    .await;
    let (_, pop) = post(&c, format!("{base}/generate/text/pop"), key, json!({"name": "pw"})).await;
    assert_eq!(pop["payload"]["prompt"], format!("tell me {prompt_marker}"));
    let (st, _) = post(
        &c,
        format!("{base}/generate/text/submit"),
        key,
        json!({"id": pop["id"], "generation": text_marker}),
    )
    .await;
    assert_eq!(st, 200);
    let status = get(
        &c,
        format!("{base}/generate/text/status/{}", acc["id"].as_str().unwrap_or_default()),
    )
    .await;
    assert_eq!(status["generations"][0]["text"], text_marker);
    // An image round trip: the prompt and the image bytes stay in memory too.
    let image_marker = "SECRET-IMAGE-PROMPT-c0ffee";
    let mut png = Vec::new();
    image::RgbImage::from_fn(48, 48, |x, y| {
        image::Rgb([(x * 37 + y * 11) as u8, (x * y + 7) as u8, ((x ^ y) * 5) as u8])
    })
    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
    .expect("png");
    let png_b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let (_, acc_img) = post(
        &c,
        format!("{base}/generate/async"),
        key,
        json!({"prompt": format!("paint {image_marker}"), "r2": false}),
    )
    .await;
    let (_, job) = post(
        &c,
        format!("{base}/generate/pop"),
        key,
        json!({"name": "pi", "models": ["stable_diffusion"]}),
    )
    .await;
    assert_eq!(job["payload"]["prompt"], format!("paint {image_marker}"));
    let (st, _) = post(
        &c,
        format!("{base}/generate/submit"),
        key,
        json!({"id": job["id"], "generation": png_b64, "seed": 3}),
    )
    .await;
    assert_eq!(st, 200);
    let status = get(&c, format!("{base}/generate/status/{}", acc_img["id"].as_str().unwrap_or_default())).await;
    assert_eq!(status["generations"][0]["img"].as_str(), Some(png_b64.as_str()));
    // An alchemy round trip: the source image and the caption stay in memory too.
    let caption_marker = "SECRET-CAPTION-5e6f70";
    let (st, acc_alc) = post(
        &c,
        format!("{base}/interrogate/async"),
        key,
        json!({"forms": [{"name": "caption"}], "source_image": png_b64}),
    )
    .await;
    assert_eq!(st, 202, "{acc_alc}");
    let (_, popped) = post(
        &c,
        format!("{base}/interrogate/pop"),
        key,
        json!({"name": "pa", "forms": ["caption"]}),
    )
    .await;
    let (st, _) = post(
        &c,
        format!("{base}/interrogate/submit"),
        key,
        json!({"id": popped["forms"][0]["id"], "result": {"caption": caption_marker}}),
    )
    .await;
    assert_eq!(st, 200);
    let status = get(
        &c,
        format!("{base}/interrogate/status/{}", acc_alc["id"].as_str().unwrap_or_default()),
    )
    .await;
    assert_eq!(status["forms"][0]["result"]["caption"], caption_marker);
    // A request body that fails to parse is not echoed into logs either.
    let _ = c
        .post(format!("{base}/generate/text/async"))
        .header("apikey", &api_key)
        .body(format!("{{\"prompt\": \"{prompt_marker}"))
        .send()
        .await;
    // A prompt the filter refuses is not kept or logged either.
    let refused_marker = "SECRET-REFUSED-9d8e7f";
    let (st, _) = post(
        &c,
        format!("{base}/generate/async"),
        key,
        json!({"prompt": format!("child nude {refused_marker}"), "replacement_filter": false}),
    )
    .await;
    assert_eq!(st, 400);
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert!(child.wait().expect("wait").success());

    // The timings recorded for the kudos model export as CSV: shape only.
    let export = dir.join("timings.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_horde"))
        .args(["kudos-model", "export", "--data-dir"])
        .arg(&dir)
        .arg("--out")
        .arg(&export)
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(&export).expect("csv");
    assert_eq!(csv.lines().count(), 2, "header and one timing: {csv}");
    assert!(csv.lines().nth(1).is_some_and(|l| l.starts_with("512,512,30,k_euler_a,")), "{csv}");

    let logs = std::fs::read_to_string(dir.join("stderr.log")).expect("logs");
    assert!(logs.contains("horde listening"), "logs were captured");
    assert!(!logs.contains(prompt_marker), "a prompt reached the logs");
    assert!(!logs.contains(text_marker), "a generation reached the logs");
    assert!(!logs.contains(image_marker), "an image prompt reached the logs");
    assert!(!logs.contains(refused_marker), "a refused prompt reached the logs");
    assert!(!logs.contains(caption_marker), "an alchemy result reached the logs");
    for entry in std::fs::read_dir(&dir).expect("dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        let hay = String::from_utf8_lossy(&bytes);
        assert!(
            !hay.contains(prompt_marker)
                && !hay.contains(text_marker)
                && !hay.contains(image_marker)
                && !hay.contains(refused_marker)
                && !hay.contains(caption_marker),
            "{} holds a prompt or generation",
            path.display()
        );
        let middle = &png[png.len() / 2..png.len() / 2 + 48];
        assert!(
            !bytes.windows(middle.len()).any(|w| w == middle),
            "{} holds image bytes",
            path.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// POSTs `body` (with `key` as `apikey` when given); the status and the JSON answer (`null` when
/// there is none).
async fn post(c: &reqwest::Client, url: String, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = c.post(url).json(&body);
    if let Some(k) = key {
        req = req.header("apikey", k);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(c: &reqwest::Client, url: String) -> Value {
    c.get(url).send().await.expect("request").json().await.expect("json")
}

//! Acceptance of alchemy: a requester gets an image interrogated (`nsfw`, the real open_nsfw
//! model) and upscaled (`RealESRGAN_x2plus`, a tiny random-weight RRDBNet the test writes) through
//! the horde's real HTTP API (the server's router on SQLite), served by the real
//! `horde-worker --alchemist` binary, with its background cut out (`strip_background`, a tiny
//! random-weight U²-Net), and the kudos move: the requester pays each form's price,
//! its fees and the request tax; the worker's owner earns the prices. Without the open_nsfw model
//! the test skips with a message, unless HORDE_REQUIRE_MODELS=1.

mod common;

use std::io::Cursor;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// A small PNG with structure (a gradient and a square), `width`×`height`.
fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let inside = (8..16).contains(&x) && (4..12).contains(&y);
        image::Rgb([(x * 9) as u8, (y * 13) as u8, if inside { 220 } else { 30 }])
    });
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .expect("encode the PNG");
    bytes
}

async fn kudos_of(f: &common::Fixture, key: &str) -> f64 {
    let me: Value = f
        .http
        .get(format!("{}/api/v2/find_user", f.base))
        .header("apikey", key)
        .send()
        .await
        .expect("find_user")
        .json()
        .await
        .expect("json");
    me["kudos"].as_f64().unwrap_or_else(|| panic!("no kudos in {me}"))
}

async fn alchemy_status(f: &common::Fixture, id: &str) -> Value {
    f.http
        .get(format!("{}/api/v2/interrogate/status/{id}", f.base))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json")
}

/// The image a done form's result links to (the form's upload through the horde's image link).
async fn download(f: &common::Fixture, form: &Value, name: &str) -> image::DynamicImage {
    let link = form["result"][name].as_str().unwrap_or_else(|| panic!("no image link in {form}"));
    assert!(link.starts_with(&f.base), "{link}");
    let got = f.http.get(link).send().await.expect("download the result");
    assert_eq!(got.status().as_u16(), 200, "{link}");
    let bytes = got.bytes().await.expect("bytes");
    image::load_from_memory(&bytes).expect("the result is an image")
}

/// The worker's log so far (for failure messages).
fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The worker process, killed if the test fails before stopping it (an orphan would keep the
/// test's output open).
struct Worker(Option<Child>);

impl Worker {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the worker runs")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `horde-worker --alchemist` named `name` as the fixture's owner, with `args`, its log
/// at `log_path`.
fn start_worker(f: &common::Fixture, name: &str, args: &[std::ffi::OsString], log_path: &Path) -> Worker {
    let log = std::fs::File::create(log_path).expect("worker log");
    let child = Command::new(env!("CARGO_BIN_EXE_horde-worker"))
        .args(["--url", &f.base, "--api-key", &f.owner_key, "--name", name, "--alchemist"])
        .args(args)
        .env("RUST_LOG", "info")
        .stderr(log)
        .spawn()
        .expect("start the worker");
    Worker(Some(child))
}

/// Sends `forms` on `source` as the requester; returns the request's id.
async fn interrogate(f: &common::Fixture, forms: &[&str], source: &[u8]) -> String {
    let forms: Vec<Value> = forms.iter().map(|name| json!({ "name": name })).collect();
    let body = json!({
        "forms": forms,
        "source_image": base64::engine::general_purpose::STANDARD.encode(source),
    });
    let resp = f
        .http
        .post(format!("{}/api/v2/interrogate/async", f.base))
        .header("apikey", &f.requester_key)
        .json(&body)
        .send()
        .await
        .expect("async");
    assert_eq!(resp.status().as_u16(), 202);
    let accepted: Value = resp.json().await.expect("json");
    accepted["id"].as_str().unwrap_or_else(|| panic!("no id in {accepted}")).to_string()
}

/// The request's status once done, failing at once (with the worker's log) if the worker dies or
/// faults a form, or after a minute.
async fn wait_done(f: &common::Fixture, id: &str, worker: &mut Worker, log_path: &Path) -> Value {
    let started = Instant::now();
    loop {
        let s = alchemy_status(f, id).await;
        if s["state"] == "done" {
            return s;
        }
        let died = worker.child().try_wait().ok().flatten();
        let faulted = log_of(log_path).contains("reporting it as faulted");
        if died.is_some() || faulted || started.elapsed() > Duration::from_secs(60) {
            panic!("not done ({died:?}, {s}); worker log:\n{}", log_of(log_path));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops the worker with SIGINT and checks that it exits cleanly.
async fn stop(mut worker: Worker, log_path: &Path) {
    let Some(mut child) = worker.0.take() else { return };
    let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "clean exit on SIGINT: {status:?}; log:\n{}", log_of(log_path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_gets_an_image_interrogated_and_upscaled_by_the_worker_binary() {
    let Some(nsfw_model) = common::fetched_model("open-nsfw.onnx", None) else {
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("alchemist-serving");
    std::fs::create_dir_all(&dir).expect("dir");
    let upscaler = dir.join("x2.safetensors");
    common::write_tiny_rrdbnet(&upscaler, 2, 1, 21, &[]);
    let u2net = dir.join("u2net.safetensors");
    common::write_tiny_u2net(&u2net, 22, &[]);

    let f = common::horde().await;
    let requester_before = kudos_of(&f, &f.requester_key).await;
    let owner_before = kudos_of(&f, &f.owner_key).await;
    let log_path = dir.join("worker.log");
    let mut nsfw_arg = std::ffi::OsString::from("--nsfw-model=");
    nsfw_arg.push(&nsfw_model);
    let mut child = start_worker(
        &f,
        "alchemist-e2e",
        &[
            nsfw_arg,
            format!("--upscaler=RealESRGAN_x2plus={}", upscaler.display()).into(),
            format!("--background-model={}", u2net.display()).into(),
        ],
        &log_path,
    );

    // As KoboldAI Lite sends an image: base64 (here bare; the round-trip tests cover data URIs).
    let (width, height) = (24u32, 16u32);
    let id = interrogate(&f, &["nsfw", "RealESRGAN_x2plus", "strip_background"], &png(width, height)).await;
    let status = wait_done(&f, &id, &mut child, &log_path).await;
    let form = |name: &str| -> Value {
        status["forms"]
            .as_array()
            .and_then(|forms| forms.iter().find(|x| x["form"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} form in {status}"))
    };
    let nsfw = form("nsfw");
    assert_eq!(nsfw["state"], "done", "{status}");
    assert!(nsfw["result"]["nsfw"].is_boolean(), "{status}");
    // A gradient with a square is not explicit.
    assert_eq!(nsfw["result"]["nsfw"], false, "{status}");
    let upscaled = form("RealESRGAN_x2plus");
    assert_eq!(upscaled["state"], "done", "{status}");
    let image = download(&f, &upscaled, "RealESRGAN_x2plus").await;
    assert_eq!((image.width(), image.height()), (2 * width, 2 * height));
    let cut = form("strip_background");
    assert_eq!(cut["state"], "done", "{status}");
    let image = download(&f, &cut, "strip_background").await;
    assert_eq!((image.width(), image.height()), (width, height));
    assert!(image.color().has_alpha(), "the cutout has an alpha channel");

    // Kudos: nsfw 1, the x2 upscale of one 512×512 tile 3 and the cutout 3, each with the form
    // fee twice (slow workers, the default), and the request tax of 1: (1+2) + (3+2) + (3+2) + 1
    // charged; the owner earns the prices, 1 + 3 + 3.
    let charged = requester_before - kudos_of(&f, &f.requester_key).await;
    assert!((charged - 14.0).abs() < 1e-9, "requester charged {charged}");
    let earned = kudos_of(&f, &f.owner_key).await - owner_before;
    assert!((earned - 7.0).abs() < 1e-9, "owner earned {earned}");
    let worker = f.worker("alchemist-e2e").await;
    assert_eq!(worker["type"], "interrogation", "{worker}");

    stop(child, &log_path).await;
    assert_eq!(f.worker("alchemist-e2e").await["maintenance_mode"], true, "maintenance on exit");
}

/// The worker counts an image's 512×512 tiles as the horde does (by area): a 600×200 image is
/// one tile, so a worker taking one tile at most, which the horde hands the form to, runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_every_form_the_horde_matches_to_its_max_tiles() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("alchemist-tiles");
    std::fs::create_dir_all(&dir).expect("dir");
    let u2net = dir.join("u2net.safetensors");
    common::write_tiny_u2net(&u2net, 23, &[]);
    let f = common::horde().await;
    let log_path = dir.join("worker.log");
    let mut child = start_worker(
        &f,
        "one-tile",
        &["--max-tiles=1".into(), format!("--background-model={}", u2net.display()).into()],
        &log_path,
    );
    let id = interrogate(&f, &["strip_background"], &png(600, 200)).await;
    let status = wait_done(&f, &id, &mut child, &log_path).await;
    let image = download(&f, &status["forms"][0], "strip_background").await;
    assert_eq!((image.width(), image.height()), (600, 200));
    stop(child, &log_path).await;
}

//! End to end: the alchemy bridge against a scripted fake horde (our horde has no
//! `/interrogate` routes yet) that hands out forms, serves their source image, takes uploads and
//! records submits: `nsfw` with the real open_nsfw model, a post-processed image through its
//! upload link, a form whose source cannot be downloaded reported as faulted, `caption` answered
//! with a (tiny, random-weight) BLIP's caption, and the pop saying what the worker can do.

mod common;

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use burn::prelude::Device;
use horde_protocol::alchemy::{AlchemyPopForm, AlchemyPopRequest, AlchemySubmitRequest};
use horde_worker::alchemy::Alchemist;
use horde_worker::alchemy_bridge::{AlchemyBridge, AlchemyStats};
use horde_worker::diffusion::weights::Checkpoint;
use horde_worker::nsfw::OpenNsfw;
use horde_worker::{AlchemyBackend, AlchemyJob, FormResult, WorkerConfig};
use serde_json::{json, Value};

/// What the fake horde has and has seen.
#[derive(Default)]
struct Script {
    /// Forms still to hand out.
    queue: VecDeque<AlchemyPopForm>,
    /// Source images by path.
    sources: HashMap<String, Vec<u8>>,
    pops: Vec<AlchemyPopRequest>,
    submits: Vec<AlchemySubmitRequest>,
    uploads: HashMap<String, Vec<u8>>,
    maintenance: bool,
}

type Shared = Arc<Mutex<Script>>;

fn script(s: &Shared) -> std::sync::MutexGuard<'_, Script> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

async fn pop(State(s): State<Shared>, Json(req): Json<AlchemyPopRequest>) -> Json<Value> {
    let mut s = script(&s);
    let forms = req.forms.clone().unwrap_or_default();
    s.pops.push(req);
    let next = s.queue.iter().position(|f| forms.contains(&f.form));
    match next.and_then(|i| s.queue.remove(i)) {
        Some(form) => Json(json!({ "forms": [form] })),
        None => Json(json!({ "skipped": {} })),
    }
}

async fn submit(State(s): State<Shared>, Json(req): Json<AlchemySubmitRequest>) -> Json<Value> {
    let reward = if req.state.as_deref() == Some("faulted") { 0.0 } else { 2.5 };
    script(&s).submits.push(req);
    Json(json!({ "reward": reward }))
}

async fn source(State(s): State<Shared>, Path(name): Path<String>) -> Result<Vec<u8>, axum::http::StatusCode> {
    script(&s).sources.get(&name).cloned().ok_or(axum::http::StatusCode::NOT_FOUND)
}

async fn upload(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) {
    script(&s).uploads.insert(id, body.to_vec());
}

async fn worker(Path(_name): Path<String>) -> Json<Value> {
    Json(json!({ "id": "worker-1" }))
}

async fn modify_worker(State(s): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    script(&s).maintenance = body["maintenance"] == json!(true);
    Json(body)
}

/// The fake horde: its origin and what it has seen.
async fn fake_horde(shared: Shared) -> String {
    let app = Router::new()
        .route("/api/v2/interrogate/pop", post(pop))
        .route("/api/v2/interrogate/submit", post(submit))
        .route("/api/v2/workers/name/{name}", get(worker))
        .route("/api/v2/workers/{id}", put(modify_worker))
        .route("/sources/{name}", get(source))
        .route("/uploads/{id}", put(upload))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

fn config(base: &str) -> WorkerConfig {
    let args = horde_worker::config::Args {
        url: Some(base.to_string()),
        api_key: Some("owner-key".into()),
        name: Some("alchemist".into()),
        alchemist: true,
        max_tiles: Some(4),
        ..Default::default()
    };
    let mut cfg = WorkerConfig::resolve(args).expect("config");
    cfg.idle_interval = Duration::from_millis(50);
    cfg
}

fn form(base: &str, id: &str, name: &str, source: &str) -> AlchemyPopForm {
    AlchemyPopForm {
        id: id.into(),
        form: name.into(),
        payload: None,
        source_image: Some(format!("{base}/sources/{source}")),
        r2_upload: horde_protocol::alchemy::is_post_processor(name).then(|| format!("{base}/uploads/{id}")),
    }
}

fn png(image: &image::RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).expect("png");
    out.into_inner()
}

/// Runs `backend` against the fake horde until `want` forms were submitted; the submits, the
/// uploads and the bridge's counters.
async fn serve(
    shared: Shared,
    base: &str,
    backend: Arc<dyn AlchemyBackend>,
    want: usize,
) -> (Vec<AlchemySubmitRequest>, HashMap<String, Vec<u8>>, AlchemyStats) {
    let bridge = AlchemyBridge::new(config(base), backend).expect("bridge");
    let (stop, running) = common::in_background(|shutdown| async move { bridge.run(shutdown).await });
    let start = Instant::now();
    while script(&shared).submits.len() < want {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out waiting for {want} submits");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let stats = running.await.expect("bridge ends");
    let s = script(&shared);
    assert!(s.maintenance, "the worker enters maintenance on shutdown");
    (s.submits.clone(), s.uploads.clone(), stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsfw_forms_are_answered_with_the_open_nsfw_model() {
    let Some(path) = common::fetched_model("open-nsfw.onnx", None) else {
        return;
    };
    let classifier = OpenNsfw::load(&path).expect("open_nsfw loads");
    // The classifier's own fixture images and the package's scores for them.
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/open-nsfw.safetensors");
    let ck = Checkpoint::open_files(&[fixture], &Device::flex()).expect("fixture loads");
    let shared: Shared = Arc::default();
    let base = fake_horde(shared.clone()).await;
    let mut scores = vec![];
    for i in 0..3 {
        let (values, shape) = ck.values(&format!("full.{i}")).expect("image");
        let pixels: Vec<u8> = values.iter().map(|&v| v as u8).collect();
        let image = image::RgbImage::from_raw(shape[1] as u32, shape[0] as u32, pixels).expect("image");
        scores.push(ck.values(&format!("full.{i}.scores")).expect("scores").0[1]);
        let mut s = script(&shared);
        s.sources.insert(format!("{i}.png"), png(&image));
        s.queue.push_back(form(&base, &format!("form-{i}"), "nsfw", &format!("{i}.png")));
    }
    // A threshold in the widest gap between the package's scores, so that both answers occur
    // (our resize and JPEG codec move a score by up to 0.03: open_nsfw.rs).
    let mut sorted = scores.clone();
    sorted.sort_by(f32::total_cmp);
    let (gap, threshold) = sorted
        .windows(2)
        .map(|w| (w[1] - w[0], (w[0] + w[1]) / 2.0))
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a });
    assert!(gap > 0.06, "the fixture's scores {scores:?} are too close together");
    let want: HashMap<String, bool> = (0..3).map(|i| (format!("form-{i}"), scores[i] > threshold)).collect();
    let backend = Alchemist::new(4).with_nsfw(Box::new(classifier), threshold);
    let (submits, uploads, stats) = serve(shared.clone(), &base, Arc::new(backend), 3).await;
    assert!(want.values().any(|&v| v) && want.values().any(|&v| !v), "both answers: {want:?}");
    for s in &submits {
        assert_eq!(s.state.as_deref(), Some("ok"), "{s:?}");
        assert_eq!(s.result, json!({ "nsfw": want[&s.id] }), "{}", s.id);
    }
    assert!(uploads.is_empty());
    assert_eq!((stats.forms_done, stats.forms_faulted, stats.kudos), (3, 0, 7.5));
    let pop = &script(&shared).pops[0];
    assert_eq!(
        (pop.forms.clone(), pop.max_tiles, pop.amount, pop.name.as_deref()),
        (Some(vec!["nsfw".to_string()]), Some(4), Some(1), Some("alchemist"))
    );
}

/// Mirrors the image left to right, as a post-processor; says `false` for `nsfw`.
struct Mirror;

impl AlchemyBackend for Mirror {
    fn forms(&self) -> Vec<String> {
        vec!["nsfw".into(), "RealESRGAN_x2plus".into()]
    }
    fn max_tiles(&self) -> i64 {
        4
    }
    fn run(&self, job: &AlchemyJob) -> Result<FormResult, String> {
        let image = image::load_from_memory(&job.source).map_err(|e| e.to_string())?.to_rgb8();
        if job.form == "nsfw" {
            return Ok(FormResult::Value(json!(false)));
        }
        let mirrored = image::imageops::flip_horizontal(&image);
        let mut out = Cursor::new(Vec::new());
        image::codecs::webp::WebPEncoder::new_lossless(&mut out)
            .encode(
                mirrored.as_raw(),
                mirrored.width(),
                mirrored.height(),
                image::ExtendedColorType::Rgb8,
            )
            .map_err(|e| e.to_string())?;
        Ok(FormResult::Image(out.into_inner()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_processed_images_go_to_the_upload_link_and_missing_sources_fault() {
    let shared: Shared = Arc::default();
    let base = fake_horde(shared.clone()).await;
    let source = image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([(x * 10) as u8, (y * 15) as u8, 7]));
    {
        let mut s = script(&shared);
        s.sources.insert("a.png".into(), png(&source));
        s.queue.push_back(form(&base, "up", "RealESRGAN_x2plus", "a.png"));
        s.queue.push_back(form(&base, "gone", "nsfw", "missing.png"));
        // A form this worker did not offer is never handed to it.
        s.queue.push_back(form(&base, "other", "caption", "a.png"));
    }
    let (submits, uploads, stats) = serve(shared.clone(), &base, Arc::new(Mirror), 2).await;
    let by_id: HashMap<&str, &AlchemySubmitRequest> = submits.iter().map(|s| (s.id.as_str(), s)).collect();
    assert_eq!(by_id["up"].result, json!({ "RealESRGAN_x2plus": "R2" }));
    assert_eq!(by_id["up"].state.as_deref(), Some("ok"));
    let uploaded = image::load_from_memory_with_format(&uploads["up"], image::ImageFormat::WebP)
        .expect("a WebP was uploaded")
        .to_rgb8();
    assert_eq!(uploaded, image::imageops::flip_horizontal(&source));
    assert_eq!(by_id["gone"].state.as_deref(), Some("faulted"));
    assert!(!by_id.contains_key("other"));
    assert_eq!(script(&shared).queue.len(), 1, "the caption form stays queued");
    assert_eq!((stats.forms_done, stats.forms_faulted), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upscaler_form_uploads_the_upscaled_image_and_too_many_tiles_fault() {
    let file = std::env::temp_dir().join(format!("alchemy-rrdbnet-{}.safetensors", std::process::id()));
    common::write_tiny_rrdbnet(&file, 4, 1, 21, &[]);
    let load = || horde_worker::upscale::RrdbNet::load(&file, &Device::flex()).expect("the tiny RRDBNet loads");
    let shared: Shared = Arc::default();
    let base = fake_horde(shared.clone()).await;
    let small = image::RgbImage::from_fn(20, 12, |x, y| image::Rgb([(x * 12) as u8, (y * 20) as u8, 99]));
    // 513×513 pixels: two 512×512 tiles by area (as the horde counts them), over this worker's one.
    let wide = image::RgbImage::from_pixel(513, 513, image::Rgb([1, 2, 3]));
    {
        let mut s = script(&shared);
        s.sources.insert("small.png".into(), png(&small));
        s.sources.insert("wide.png".into(), png(&wide));
        s.queue.push_back(form(&base, "x4", "RealESRGAN_x4plus", "small.png"));
        s.queue.push_back(form(&base, "too-big", "RealESRGAN_x4plus", "wide.png"));
    }
    let backend = Alchemist::new(1).with_upscaler("RealESRGAN_x4plus", load());
    let (submits, uploads, stats) = serve(shared.clone(), &base, Arc::new(backend), 2).await;
    let by_id: HashMap<&str, &AlchemySubmitRequest> = submits.iter().map(|s| (s.id.as_str(), s)).collect();
    assert_eq!(by_id["x4"].result, json!({ "RealESRGAN_x4plus": "R2" }));
    let uploaded = image::load_from_memory_with_format(&uploads["x4"], image::ImageFormat::WebP)
        .expect("a WebP was uploaded")
        .to_rgb8();
    let direct = load()
        .upscale(&horde_worker::diffusion::pipeline::RgbImage {
            width: 20,
            height: 12,
            pixels: small.into_raw(),
        })
        .expect("upscales");
    assert_eq!((uploaded.width(), uploaded.height()), (80, 48));
    assert_eq!(uploaded.into_raw(), direct.pixels, "the upload is the network's image, losslessly");
    assert_eq!(by_id["too-big"].state.as_deref(), Some("faulted"));
    assert!(!uploads.contains_key("too-big"));
    assert_eq!((stats.forms_done, stats.forms_faulted), (1, 1));
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strip_background_uploads_an_rgba_cutout() {
    let file = std::env::temp_dir().join(format!("alchemy-u2net-{}.safetensors", std::process::id()));
    common::write_tiny_u2net(&file, 3, &[]);
    let load = || horde_worker::u2net::U2Net::load(&file, &Device::flex()).expect("the tiny U²-Net loads");
    let shared: Shared = Arc::default();
    let base = fake_horde(shared.clone()).await;
    let source = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 200]));
    {
        let mut s = script(&shared);
        s.sources.insert("photo.png".into(), png(&source));
        s.queue.push_back(form(&base, "cut", "strip_background", "photo.png"));
    }
    let backend = Alchemist::new(4).with_background_remover(load());
    assert_eq!(backend.forms(), vec!["strip_background".to_string()]);
    let (submits, uploads, stats) = serve(shared.clone(), &base, Arc::new(backend), 1).await;
    assert_eq!(submits[0].result, json!({ "strip_background": "R2" }));
    let uploaded = image::load_from_memory_with_format(&uploads["cut"], image::ImageFormat::WebP).expect("a WebP was uploaded");
    assert!(uploaded.color().has_alpha(), "the cutout keeps its alpha");
    let direct = load()
        .strip_background(&horde_worker::diffusion::pipeline::RgbImage {
            width: 40,
            height: 30,
            pixels: source.into_raw(),
        })
        .expect("cutout");
    assert_eq!(uploaded.to_rgba8(), direct, "the upload is the network's cutout, losslessly");
    assert_eq!(stats.forms_done, 1);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caption_forms_are_answered_with_the_blip_caption() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("alchemy-blip");
    common::write_tiny_blip(&dir, 11);
    let load = || horde_worker::caption::Captioner::load(&dir, &Device::flex()).expect("the tiny BLIP loads");
    let shared: Shared = Arc::default();
    let base = fake_horde(shared.clone()).await;
    let source = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 120]));
    {
        let mut s = script(&shared);
        s.sources.insert("photo.png".into(), png(&source));
        s.queue.push_back(form(&base, "cap", "caption", "photo.png"));
        s.queue.push_back(form(&base, "cap-gone", "caption", "missing.png"));
    }
    let backend = Alchemist::new(4).with_captioner(load());
    assert_eq!(backend.forms(), vec!["caption".to_string()]);
    let (submits, uploads, stats) = serve(shared.clone(), &base, Arc::new(backend), 2).await;
    let by_id: HashMap<&str, &AlchemySubmitRequest> = submits.iter().map(|s| (s.id.as_str(), s)).collect();
    let direct = load()
        .caption(&horde_worker::diffusion::pipeline::RgbImage {
            width: 40,
            height: 30,
            pixels: source.into_raw(),
        })
        .expect("caption");
    assert!(!direct.is_empty());
    assert_eq!(by_id["cap"].result, json!({ "caption": direct }), "the public horde's shape");
    assert_eq!(by_id["cap"].state.as_deref(), Some("ok"));
    assert_eq!(by_id["cap-gone"].state.as_deref(), Some("faulted"));
    assert!(uploads.is_empty(), "a caption uploads nothing");
    assert_eq!((stats.forms_done, stats.forms_faulted), (1, 1));
    assert_eq!(script(&shared).pops[0].forms, Some(vec!["caption".to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_serves_alchemy_alone_and_stops_cleanly() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("alchemy-e2e");
    std::fs::create_dir_all(&dir).expect("dir");
    let (u2net, rrdbnet) = (dir.join("u2net.safetensors"), dir.join("x4.safetensors"));
    common::write_tiny_u2net(&u2net, 1, &[]);
    common::write_tiny_rrdbnet(&rrdbnet, 4, 1, 2, &[]);
    let blip = dir.join("blip");
    common::write_tiny_blip(&blip, 11);
    let shared: Shared = Arc::default();
    let base = fake_horde(shared.clone()).await;
    let source = image::RgbImage::from_pixel(16, 16, image::Rgb([50, 60, 70]));
    {
        let mut s = script(&shared);
        s.sources.insert("s.png".into(), png(&source));
        s.queue.push_back(form(&base, "bg", "strip_background", "s.png"));
        s.queue.push_back(form(&base, "up", "RealESRGAN_x4plus", "s.png"));
        s.queue.push_back(form(&base, "cap", "caption", "s.png"));
    }
    let log_path = dir.join("worker.log");
    let log = std::fs::File::create(&log_path).expect("worker log");
    let upscaler = format!("RealESRGAN_x4plus={}", rrdbnet.display());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_horde-worker"))
        .args([
            "--url",
            &base,
            "--api-key",
            "k",
            "--name",
            "bin-alchemist",
            "--alchemist",
            "--max-tiles",
            "2",
        ])
        .arg("--background-model")
        .arg(&u2net)
        .args(["--upscaler", &upscaler])
        .arg("--caption-model")
        .arg(&blip)
        .env("RUST_LOG", "info")
        .stderr(log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the worker");
    let started = Instant::now();
    while script(&shared).submits.len() < 3 {
        let died = child.try_wait().ok().flatten();
        assert!(
            died.is_none() && started.elapsed() < Duration::from_secs(120),
            "no submits ({died:?}); worker log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::process::Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert!(out.status.success(), "clean exit on SIGINT: {:?}", out.status);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("alchemy: forms done 3, faulted 0"), "{summary}");
    let s = script(&shared);
    assert!(s.maintenance);
    let pop = &s.pops[0];
    assert_eq!(
        (pop.forms.clone(), pop.max_tiles, pop.name.as_deref()),
        (
            Some(vec![
                "RealESRGAN_x4plus".to_string(),
                "strip_background".to_string(),
                "caption".to_string()
            ]),
            Some(2),
            Some("bin-alchemist")
        )
    );
    assert_eq!(s.uploads.len(), 2);
    let caption = s.submits.iter().find(|x| x.id == "cap").expect("the caption was submitted");
    assert!(
        caption.result["caption"].as_str().is_some_and(|c| !c.is_empty()),
        "{:?}",
        caption.result
    );
}

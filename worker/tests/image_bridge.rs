//! End to end: an in-process horde, the image bridge on the tiny diffusers fixture, and a client
//! asking for images: a text-to-image batch uploaded to the horde's links, an img2img request
//! answered inline, and the NSFW censor's black image.

mod common;

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::horde;
use horde_worker::device::Compute;
use horde_worker::diffusion::pipeline::RgbImage;
use horde_worker::image_bridge::{ImageBridge, ImageBridgeStats};
use horde_worker::image_model::{Censor, ImageModels, NsfwClassifier};
use horde_worker::post_processing::PostProcessors;
use serde_json::{json, Value};

fn tiny_sd() -> Vec<(String, PathBuf)> {
    vec![(
        "tiny-sd".into(),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-sd"),
    )]
}

fn models() -> ImageModels {
    ImageModels::load(&tiny_sd(), &Compute::Burn(burn::prelude::Device::flex()), Some(512 * 512)).expect("tiny model loads")
}

/// Says every image is NSFW.
struct Everything;

impl NsfwClassifier for Everything {
    fn nsfw_probability(&self, _image: &RgbImage) -> Result<f32, String> {
        Ok(0.99)
    }
}

fn start(bridge: ImageBridge) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<ImageBridgeStats>) {
    common::in_background(|shutdown| async move { bridge.run(shutdown).await })
}

async fn post(f: &common::Fixture, body: Value) -> String {
    let resp = f
        .http
        .post(format!("{}/api/v2/generate/async", f.base))
        .header("apikey", &f.requester_key)
        .json(&body)
        .send()
        .await
        .expect("async");
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("json");
    assert_eq!(status, 202, "{v}");
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

async fn finished(f: &common::Fixture, id: &str) -> Value {
    finished_while(f, id, |_| {}).await
}

/// The status once the request is done; `waiting(check)` runs after each unfinished check (and
/// may panic, e.g. when the worker died).
async fn finished_while(f: &common::Fixture, id: &str, mut waiting: impl FnMut(&Value)) -> Value {
    let start = Instant::now();
    loop {
        let check: Value = f
            .http
            .get(format!("{}/api/v2/generate/check/{id}", f.base))
            .send()
            .await
            .expect("check")
            .json()
            .await
            .expect("json");
        if check["done"] == json!(true) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "timed out: {check}");
        waiting(&check);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f.http
        .get(format!("{}/api/v2/generate/status/{id}", f.base))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json")
}

/// The WebP of a generation: fetched from its link, or decoded from base64.
async fn image_of(f: &common::Fixture, generation: &Value) -> image::RgbImage {
    let img = generation["img"].as_str().expect("img");
    let bytes = if img.starts_with("http") {
        f.http
            .get(img)
            .send()
            .await
            .expect("download")
            .bytes()
            .await
            .expect("bytes")
            .to_vec()
    } else {
        base64::engine::general_purpose::STANDARD.decode(img).expect("base64")
    };
    image::load_from_memory_with_format(&bytes, image::ImageFormat::WebP)
        .expect("a WebP")
        .to_rgb8()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_generated_images_back() {
    let f = horde().await;
    let (stop, running) = start(ImageBridge::new(f.config("painter", 1), Arc::new(models())).expect("bridge"));
    let id = post(
        &f,
        json!({"prompt": "a red apple on a table ### blurry", "models": ["tiny-sd"], "r2": true,
               "params": {"width": 64, "height": 64, "steps": 3, "sampler_name": "k_euler_a", "karras": true, "cfg_scale": 5.0, "n": 2, "seed": "42"}}),
    )
    .await;
    let status = finished(&f, &id).await;
    let generations = status["generations"].as_array().expect("generations");
    assert_eq!(generations.len(), 2, "{status}");
    let mut images = vec![];
    for g in generations {
        assert_eq!(
            (g["model"].as_str(), g["worker_name"].as_str(), g["censored"].as_bool()),
            (Some("tiny-sd"), Some("painter"), Some(false)),
            "{g}"
        );
        let image = image_of(&f, g).await;
        assert_eq!(image.dimensions(), (64, 64));
        images.push(image);
    }
    let mut seeds: Vec<&str> = generations.iter().filter_map(|g| g["seed"].as_str()).collect();
    seeds.sort();
    assert_eq!(seeds, ["42", "43"]);
    assert_ne!(images[0], images[1], "two seeds, two images");
    assert!(images[0].pixels().any(|p| p.0 != [0, 0, 0]), "not a black image");

    // img2img, answered inline (r2 false).
    let mut source = Cursor::new(Vec::new());
    image::RgbImage::from_fn(80, 48, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, 128]))
        .write_to(&mut source, image::ImageFormat::Png)
        .expect("png");
    let id = post(
        &f,
        json!({"prompt": "a watercolour", "models": ["tiny-sd"], "r2": false,
               "source_image": base64::engine::general_purpose::STANDARD.encode(source.get_ref()), "source_processing": "img2img",
               "params": {"width": 64, "height": 64, "steps": 4, "sampler_name": "k_dpmpp_2m", "denoising_strength": 0.5, "seed": "7"}}),
    )
    .await;
    let status = finished(&f, &id).await;
    let g = &status["generations"][0];
    assert!(!g["img"].as_str().unwrap_or_default().starts_with("http"), "inline base64: {g}");
    assert_eq!(image_of(&f, g).await.dimensions(), (64, 64));

    let _ = stop.send(());
    let stats = running.await.expect("bridge task");
    assert_eq!((stats.images_done, stats.images_faulted, stats.images_censored), (3, 0, 0));
    let worker: Value = f
        .http
        .get(format!("{}/api/v2/workers/name/painter", f.base))
        .send()
        .await
        .expect("worker")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (worker["type"].as_str(), worker["maintenance_mode"].as_bool()),
        (Some("image"), Some(true)),
        "{worker}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_censor_replaces_nsfw_images_of_sfw_requests() {
    let f = horde().await;
    let censored = models().with_censor(Censor {
        classifier: Box::new(Everything),
        threshold: 0.7,
    });
    let (stop, running) = start(ImageBridge::new(f.config("careful", 1), Arc::new(censored)).expect("bridge"));
    // SFW with censoring: the classifier's verdict applies.
    let id = post(&f, json!({"prompt": "a beach", "nsfw": false, "censor_nsfw": true, "models": ["tiny-sd"], "params": {"width": 64, "height": 64, "steps": 2}})).await;
    let status = finished(&f, &id).await;
    let g = &status["generations"][0];
    assert_eq!(g["censored"], json!(true), "{g}");
    assert!(
        g["gen_metadata"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["type"] == "censorship" && m["value"] == "nsfw")),
        "{g}"
    );
    assert!(image_of(&f, g).await.pixels().all(|p| p.0 == [0, 0, 0]), "black");
    // An NSFW request is not censored, whatever the classifier says.
    let id = post(
        &f,
        json!({"prompt": "a beach", "nsfw": true, "models": ["tiny-sd"], "params": {"width": 64, "height": 64, "steps": 2}}),
    )
    .await;
    let status = finished(&f, &id).await;
    assert_eq!(status["generations"][0]["censored"], json!(false), "{status}");
    let _ = stop.send(());
    let stats = running.await.expect("bridge task");
    assert_eq!((stats.images_done, stats.images_censored), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_serves_images_and_stops_cleanly() {
    let f = horde().await;
    let log_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("image-e2e-worker.log");
    let log = std::fs::File::create(&log_path).expect("worker log");
    let model = format!("tiny-sd={}", tiny_sd()[0].1.display());
    let upscaler_file = std::env::temp_dir().join(format!("image-e2e-rrdbnet-{}.safetensors", std::process::id()));
    common::write_tiny_rrdbnet(&upscaler_file, 2, 1, 5, &[]);
    let upscaler = format!("RealESRGAN_x2plus={}", upscaler_file.display());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_horde-worker"))
        .args([
            "--url",
            &f.base,
            "--api-key",
            &f.owner_key,
            "--name",
            "image-e2e",
            "--image-model",
            &model,
            "--max-pixels",
            "16384",
            "--upscaler",
            &upscaler,
        ])
        .env("RUST_LOG", "info")
        .stderr(log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the worker");
    // The upscaler given to the image worker serves the request's post-processing: 2× the size.
    let id = post(&f, json!({"prompt": "a lighthouse", "models": ["tiny-sd"], "params": {"width": 64, "height": 128, "steps": 2, "sampler_name": "DDIM", "post_processing": ["RealESRGAN_x2plus"]}})).await;
    let started = Instant::now();
    let status = finished_while(&f, &id, |check| {
        let died = child.try_wait().ok().flatten();
        if died.is_some() || started.elapsed() > Duration::from_secs(120) {
            panic!(
                "no image ({died:?}, {check}); worker log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
    })
    .await;
    assert_eq!(image_of(&f, &status["generations"][0]).await.dimensions(), (128, 256));
    let _ = std::fs::remove_file(&upscaler_file);
    let _ = std::process::Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert!(out.status.success(), "clean exit on SIGINT: {:?}", out.status);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("images: done 1, censored 0, faulted 0"), "{summary}");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        log.contains("no --nsfw-model"),
        "says that censoring falls back to black images: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_processing_upscales_generated_images_and_notes_what_it_skipped() {
    let f = horde().await;
    let file = std::env::temp_dir().join(format!("image-pp-rrdbnet-{}.safetensors", std::process::id()));
    common::write_tiny_rrdbnet(&file, 4, 1, 11, &[]);
    let load = || horde_worker::upscale::RrdbNet::load(&file, &burn::prelude::Device::flex()).expect("the tiny RRDBNet loads");
    let upscalers = PostProcessors::default().with_upscaler("RealESRGAN_x4plus", load());
    let bridge = ImageBridge::new(f.config("finisher", 1), Arc::new(models()))
        .expect("bridge")
        .with_post_processors(upscalers);
    let (stop, running) = start(bridge);
    let params = json!({"width": 64, "height": 64, "steps": 2, "sampler_name": "k_euler", "seed": "5"});
    let mut upscaled_params = params.clone();
    upscaled_params["post_processing"] = json!(["GFPGAN", "RealESRGAN_x4plus"]);
    // The same generation twice, once with post-processing: the upscaled image is the network's
    // upscale of the plain one, and the face fixer this worker lacks is skipped and said so.
    let plain = post(&f, json!({"prompt": "a fox", "models": ["tiny-sd"], "params": params})).await;
    let plain = finished(&f, &plain).await;
    let upscaled = post(&f, json!({"prompt": "a fox", "models": ["tiny-sd"], "params": upscaled_params})).await;
    let upscaled = finished(&f, &upscaled).await;
    let plain_image = image_of(&f, &plain["generations"][0]).await;
    let g = &upscaled["generations"][0];
    let got = image_of(&f, g).await;
    assert_eq!(got.dimensions(), (256, 256), "{g}");
    let direct = load()
        .upscale(&RgbImage {
            width: 64,
            height: 64,
            pixels: plain_image.into_raw(),
        })
        .expect("upscales");
    assert_eq!(got.into_raw(), direct.pixels, "the upscaler's output, losslessly");
    let notes = g["gen_metadata"].as_array().cloned().unwrap_or_default();
    assert!(
        notes
            .iter()
            .any(|m| m["type"] == "information" && m["value"] == "see_ref" && m["ref"].as_str().is_some_and(|r| r.contains("GFPGAN"))),
        "{g}"
    );
    let _ = stop.send(());
    let stats = running.await.expect("bridge task");
    assert_eq!((stats.images_done, stats.images_faulted), (2, 0));
    let _ = std::fs::remove_file(&file);
}

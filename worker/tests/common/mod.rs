//! An in-process horde (the server's router on an in-memory database) for worker tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use horde_core::{AccountSpec, Horde, HordeConfig, Store, SystemClock};
use horde_server::api::rate_limits::RateLimits;
use horde_server::api::{router, serve, ApiOptions};
use horde_worker::WorkerConfig;
use serde_json::{json, Value};

/// The shutdown signal a bridge's `run` waits on.
pub type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs a bridge loop in the background (`run` gets its shutdown signal) until the returned
/// sender fires.
pub fn in_background<T, F>(run: impl FnOnce(Shutdown) -> F) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<T>)
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown: Shutdown = Box::pin(async move {
        let _ = stopped.await;
    });
    (stop, tokio::spawn(run(shutdown)))
}

/// A model `scripts/fetch-models.sh` puts in the cache (`HORDE_MODEL_CACHE`, default
/// `~/.cache/horde/models`), or the file the environment variable `override_var` names. `None`
/// (the test skips, saying so) when it is missing, unless HORDE_REQUIRE_MODELS is set (CI), which
/// makes that a failure.
pub fn fetched_model(file: &str, override_var: Option<&str>) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let path = override_var
        .and_then(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(|| horde_worker::text_model::model_cache().join(file));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("HORDE_REQUIRE_MODELS").is_err(),
        "HORDE_REQUIRE_MODELS is set but {} is missing (run scripts/fetch-models.sh)",
        path.display()
    );
    eprintln!("skipping: {} is missing (run scripts/fetch-models.sh)", path.display());
    None
}

pub struct Fixture {
    pub base: String,
    pub owner_key: String,
    pub requester_key: String,
    pub http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn horde() -> Fixture {
    let store = Store::connect("sqlite::memory:").await.expect("store");
    let horde = Horde::open(store, HordeConfig::default(), Arc::new(SystemClock), Some("test-secret".into()))
        .await
        .expect("horde");
    let (_, owner_key) = horde
        .create_account(AccountSpec {
            username: "owner".into(),
            ..Default::default()
        })
        .await
        .expect("owner");
    let (_, requester_key) = horde
        .create_account(AccountSpec {
            username: "req".into(),
            kudos: 500.0,
            ..Default::default()
        })
        .await
        .expect("requester");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Tests send requests faster than the public per-IP limits allow.
    let options = ApiOptions {
        rate_limits: RateLimits::off(),
        ..ApiOptions::default()
    };
    let app = router(horde, options);
    tokio::spawn(async move {
        let _ = serve(listener, app, async {
            let _ = stopped.await;
        })
        .await;
    });
    Fixture {
        base,
        owner_key,
        requester_key,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Fixture {
    pub fn config(&self, name: &str, threads: usize) -> WorkerConfig {
        WorkerConfig {
            url: self.base.clone(),
            api_key: self.owner_key.clone(),
            name: name.into(),
            models: vec![],
            max_length: 512,
            max_context_length: 4096,
            threads,
            priority_usernames: vec![],
            nsfw: true,
            censorlist: vec![],
            device: "cpu".into(),
            f16_weights: false,
            gpu_layers: None,
            image_models: vec![],
            max_pixels: None,
            extra_slow_worker: false,
            nsfw_model: None,
            nsfw_threshold: 0.7,
            alchemist: false,
            max_tiles: horde_worker::config::DEFAULT_MAX_TILES,
            upscalers: vec![],
            background_model: None,
            idle_interval: Duration::from_millis(50),
        }
    }

    /// Sends any text request body as the requester; returns its id.
    pub async fn request_with(&self, body: Value) -> String {
        let v: Value = self
            .http
            .post(format!("{}/api/v2/generate/text/async", self.base))
            .header("apikey", &self.requester_key)
            .json(&body)
            .send()
            .await
            .expect("async")
            .json()
            .await
            .expect("json");
        v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
    }

    pub async fn request(&self, prompt: &str) -> String {
        self.request_with(json!({"prompt": prompt})).await
    }

    pub async fn status(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/api/v2/generate/text/status/{id}", self.base))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json")
    }

    pub async fn wait_for(&self, id: &str, what: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = self.status(id).await;
            if what(&s) {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "timed out waiting on {id}: {s}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    pub async fn worker(&self, name: &str) -> Value {
        self.http
            .get(format!("{}/api/v2/workers/name/{name}", self.base))
            .send()
            .await
            .expect("worker")
            .json()
            .await
            .expect("json")
    }
}

/// The wgpu device (the default adapter) if it computes; else `None` with a message saying why,
/// or a failure where `HORDE_REQUIRE_GPU_SMOKE` is set (CI, which installs Mesa's software
/// Vulkan).
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> Option<burn::prelude::Device> {
    use burn::prelude::*;
    let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
    let probe = device.clone();
    let works = std::panic::catch_unwind(move || {
        let t = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &probe);
        t.mul_scalar(2.0).into_data().try_to_vec::<f32>().ok()
    });
    if matches!(&works, Ok(Some(v)) if v[..] == [2.0, 4.0]) {
        return Some(device);
    }
    let why = match works {
        Ok(v) => format!("a probe computed {v:?}"),
        Err(_) => "no wgpu adapter (burn panicked while starting it)".to_string(),
    };
    assert!(
        std::env::var("HORDE_REQUIRE_GPU_SMOKE").is_err(),
        "HORDE_REQUIRE_GPU_SMOKE is set but wgpu does not run: {why}"
    );
    eprintln!("skipping: {why}; install Mesa's software Vulkan (mesa-vulkan-drivers) to run these tests");
    None
}

/// A small seeded generator (an LCG), so random weights reproduce.
pub struct Rng(pub u64);

impl Rng {
    /// `n` values uniform in `[-scale, scale)`.
    pub fn values(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((self.0 >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }
}

/// Every value within `tol` × the largest wanted magnitude (at least 1); a value that is not
/// finite is never within. Prints the largest and root-mean-square differences.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let (worst, at) = got
        .iter()
        .zip(want)
        .enumerate()
        .map(|(i, (g, w))| (if g.is_finite() { (g - w).abs() } else { f32::INFINITY }, i))
        .fold((0f32, 0), |a, b| if b.0 > a.0 { b } else { a });
    let rms = (got.iter().zip(want).map(|(g, w)| (g - w) * (g - w)).sum::<f32>() / got.len().max(1) as f32).sqrt();
    eprintln!("{what}: largest difference {worst:.2e}, root mean square {rms:.2e} (scale {scale:.2})");
    assert!(
        worst <= tol * scale,
        "{what}: |difference| {worst} at {at} (got {}, want {}), bound {}",
        got[at],
        want[at],
        tol * scale
    );
}

/// Writes a tiny random-weight RRDBNet (Real-ESRGAN's names; 8 features, growth 4, `blocks`
/// blocks) of `scale` 4, 2 or 1 to `path` as safetensors, with `extra` tensors beside it (f32).
pub fn write_tiny_rrdbnet(path: &std::path::Path, scale: usize, blocks: usize, seed: u64, extra: &[(&str, Vec<usize>, Vec<f32>)]) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (nf, gc) = (8usize, 4usize);
    let in_ch = 3 * (4 / scale) * (4 / scale);
    let mut convs: Vec<(String, usize, usize)> = vec![("conv_first".into(), in_ch, nf)];
    for b in 0..blocks {
        for r in 1..=3 {
            for j in 1..=5 {
                let cin = nf + (j - 1) * gc;
                let cout = if j == 5 { nf } else { gc };
                convs.push((format!("body.{b}.rdb{r}.conv{j}"), cin, cout));
            }
        }
    }
    for name in ["conv_body", "conv_up1", "conv_up2", "conv_hr"] {
        convs.push((name.into(), nf, nf));
    }
    convs.push(("conv_last".into(), nf, 3));
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = vec![];
    for (name, cin, cout) in convs {
        // Small weights keep activations in range through the residual chain.
        let bound = 1.0 / ((cin * 9) as f32).sqrt();
        let w = (0..cout * cin * 9).map(|_| rng.random_range(-bound..bound)).collect();
        let b = (0..cout).map(|_| rng.random_range(-0.05..0.05)).collect();
        tensors.push((format!("{name}.weight"), vec![cout, cin, 3, 3], w));
        tensors.push((format!("{name}.bias"), vec![cout], b));
    }
    tensors.extend(extra.iter().map(|(n, s, v)| (n.to_string(), s.clone(), v.clone())));
    write_safetensors(path, tensors);
}

/// Writes f32 `tensors` (name, shape, values) to `path` as safetensors.
pub fn write_safetensors(path: &std::path::Path, tensors: Vec<(String, Vec<usize>, Vec<f32>)>) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).expect("view"),
            )
        })
        .collect();
    let data = safetensors::serialize(views, None).expect("serialize");
    std::fs::write(path, data).expect("write the safetensors file");
}

/// Writes a tiny random-weight U²-Net (U²-Net's names and block layout; 4 channels between
/// stages, 2 inside blocks, random batch-norm statistics) to `path` as safetensors, with `extra`
/// tensors beside it.
pub fn write_tiny_u2net(path: &std::path::Path, seed: u64, extra: &[(&str, Vec<usize>, Vec<f32>)]) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (c, mid) = (4usize, 2usize);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = vec![];
    let mut conv = |tensors: &mut Vec<(String, Vec<usize>, Vec<f32>)>, name: &str, cin: usize, cout: usize, k: usize, bn: bool| {
        let bound = 1.0 / ((cin * k * k) as f32).sqrt();
        let (w, b) = if bn {
            (format!("{name}.conv_s1.weight"), format!("{name}.conv_s1.bias"))
        } else {
            (format!("{name}.weight"), format!("{name}.bias"))
        };
        tensors.push((
            w,
            vec![cout, cin, k, k],
            (0..cout * cin * k * k).map(|_| rng.random_range(-bound..bound)).collect(),
        ));
        tensors.push((b, vec![cout], (0..cout).map(|_| rng.random_range(-0.1..0.1)).collect()));
        if bn {
            let mut stat = |lo: f32, hi: f32| -> Vec<f32> { (0..cout).map(|_| rng.random_range(lo..hi)).collect() };
            let (g, be, m, v) = (stat(0.5, 1.5), stat(-0.1, 0.1), stat(-0.1, 0.1), stat(0.5, 1.5));
            tensors.push((format!("{name}.bn_s1.weight"), vec![cout], g));
            tensors.push((format!("{name}.bn_s1.bias"), vec![cout], be));
            tensors.push((format!("{name}.bn_s1.running_mean"), vec![cout], m));
            tensors.push((format!("{name}.bn_s1.running_var"), vec![cout], v));
        }
    };
    // (stage, levels, input channels)
    let stages = [
        ("stage1", 7, 3),
        ("stage2", 6, c),
        ("stage3", 5, c),
        ("stage4", 4, c),
        ("stage5", 4, c),
        ("stage6", 4, c),
        ("stage5d", 4, 2 * c),
        ("stage4d", 4, 2 * c),
        ("stage3d", 5, 2 * c),
        ("stage2d", 6, 2 * c),
        ("stage1d", 7, 2 * c),
    ];
    for (stage, levels, cin) in stages {
        conv(&mut tensors, &format!("{stage}.rebnconvin"), cin, c, 3, true);
        conv(&mut tensors, &format!("{stage}.rebnconv1"), c, mid, 3, true);
        for k in 2..=levels {
            conv(&mut tensors, &format!("{stage}.rebnconv{k}"), mid, mid, 3, true);
        }
        for k in 2..levels {
            conv(&mut tensors, &format!("{stage}.rebnconv{k}d"), 2 * mid, mid, 3, true);
        }
        conv(&mut tensors, &format!("{stage}.rebnconv1d"), 2 * mid, c, 3, true);
    }
    for i in 1..=6 {
        conv(&mut tensors, &format!("side{i}"), c, 1, 3, false);
    }
    conv(&mut tensors, "outconv", 6, 1, 1, false);
    tensors.extend(extra.iter().map(|(n, s, v)| (n.to_string(), s.clone(), v.clone())));
    write_safetensors(path, tensors);
}

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
    let path = override_var.and_then(std::env::var_os).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        std::env::var_os("HORDE_MODEL_CACHE")
            .map(PathBuf::from)
            .unwrap_or(home.join(".cache/horde/models"))
            .join(file)
    });
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

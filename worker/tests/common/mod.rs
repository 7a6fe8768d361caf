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
            caption_model: None,
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

/// The vocabulary of the tiny BLIP's tokenizer: BERT's special tokens at BERT's ids (`[SEP]` 3
/// here), words and a `##` piece, then `[DEC]` (the caption's start) and `[MASK]`.
pub const TINY_BLIP_VOCAB: [&str; 40] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "cat", "dog", "on", "the", "red", "blue", "sitting", "table", "with", "##s", "bird", "tree",
    "in", "sky", "green", "man", "woman", "holding", "street", "car", "of", "picture", "small", "big", "house", "field", "grass", "water",
    "boat", "snow", "white", "black", "near", "[DEC]", "[MASK]",
];

/// Writes a tiny random-weight BLIP captioning checkout to `dir`: `config.json` (ViT of 16
/// features, 2 heads, 2 layers on 32×32 images in 8×8 patches; BERT decoder of 16 features,
/// 2 heads, 2 layers, 40 tokens), `model.safetensors` under Hugging Face's names and a WordPiece
/// `tokenizer.json` over `TINY_BLIP_VOCAB`.
pub fn write_tiny_blip(dir: &std::path::Path, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    std::fs::create_dir_all(dir).expect("model dir");
    let (d, ff, layers, vocab, positions, patch, size) = (16usize, 32usize, 2usize, 40usize, 40usize, 8usize, 32usize);
    let config = serde_json::json!({
        "architectures": ["BlipForConditionalGeneration"],
        "text_config": {
            "vocab_size": vocab, "hidden_size": d, "encoder_hidden_size": d, "intermediate_size": ff,
            "num_attention_heads": 2, "num_hidden_layers": layers, "max_position_embeddings": positions,
            "layer_norm_eps": 1e-12, "bos_token_id": 38, "sep_token_id": 3, "pad_token_id": 0, "hidden_act": "gelu"
        },
        "vision_config": {
            "hidden_size": d, "intermediate_size": ff, "num_attention_heads": 2, "num_hidden_layers": layers,
            "image_size": size, "patch_size": patch, "layer_norm_eps": 1e-5, "hidden_act": "gelu"
        }
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = vec![];
    let mut random = |name: String, shape: Vec<usize>, lo: f32, hi: f32| {
        let n = shape.iter().product();
        let values = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        tensors.push((name, shape, values));
    };
    let linear = |random: &mut dyn FnMut(String, Vec<usize>, f32, f32), name: &str, i: usize, o: usize| {
        let bound = 1.0 / (i as f32).sqrt();
        random(format!("{name}.weight"), vec![o, i], -bound, bound);
        random(format!("{name}.bias"), vec![o], -0.1, 0.1);
    };
    let norm = |random: &mut dyn FnMut(String, Vec<usize>, f32, f32), name: &str| {
        random(format!("{name}.weight"), vec![d], 0.8, 1.2);
        random(format!("{name}.bias"), vec![d], -0.1, 0.1);
    };
    let v = "vision_model";
    let bound = 1.0 / ((3 * patch * patch) as f32).sqrt();
    random(
        format!("{v}.embeddings.patch_embedding.weight"),
        vec![d, 3, patch, patch],
        -bound,
        bound,
    );
    random(format!("{v}.embeddings.patch_embedding.bias"), vec![d], -0.1, 0.1);
    random(format!("{v}.embeddings.class_embedding"), vec![1, 1, d], -1.0, 1.0);
    random(
        format!("{v}.embeddings.position_embedding"),
        vec![1, (size / patch).pow(2) + 1, d],
        -0.5,
        0.5,
    );
    for l in 0..layers {
        let p = format!("{v}.encoder.layers.{l}");
        norm(&mut random, &format!("{p}.layer_norm1"));
        linear(&mut random, &format!("{p}.self_attn.qkv"), d, 3 * d);
        linear(&mut random, &format!("{p}.self_attn.projection"), d, d);
        norm(&mut random, &format!("{p}.layer_norm2"));
        linear(&mut random, &format!("{p}.mlp.fc1"), d, ff);
        linear(&mut random, &format!("{p}.mlp.fc2"), ff, d);
    }
    norm(&mut random, &format!("{v}.post_layernorm"));
    let t = "text_decoder.bert";
    random(format!("{t}.embeddings.word_embeddings.weight"), vec![vocab, d], -1.0, 1.0);
    random(format!("{t}.embeddings.position_embeddings.weight"), vec![positions, d], -0.5, 0.5);
    norm(&mut random, &format!("{t}.embeddings.LayerNorm"));
    for l in 0..layers {
        let p = format!("{t}.encoder.layer.{l}");
        for block in ["attention", "crossattention"] {
            for part in ["query", "key", "value"] {
                linear(&mut random, &format!("{p}.{block}.self.{part}"), d, d);
            }
            linear(&mut random, &format!("{p}.{block}.output.dense"), d, d);
            norm(&mut random, &format!("{p}.{block}.output.LayerNorm"));
        }
        linear(&mut random, &format!("{p}.intermediate.dense"), d, ff);
        linear(&mut random, &format!("{p}.output.dense"), ff, d);
        norm(&mut random, &format!("{p}.output.LayerNorm"));
    }
    let h = "text_decoder.cls.predictions";
    linear(&mut random, &format!("{h}.transform.dense"), d, d);
    norm(&mut random, &format!("{h}.transform.LayerNorm"));
    random(format!("{h}.decoder.weight"), vec![vocab, d], -1.0, 1.0);
    random(format!("{h}.bias"), vec![vocab], -0.5, 0.5);
    write_safetensors(&dir.join("model.safetensors"), tensors);
    let special = |t: &str| t.starts_with('[');
    let added: Vec<serde_json::Value> = TINY_BLIP_VOCAB
        .iter()
        .enumerate()
        .filter(|(_, t)| special(t))
        .map(|(id, t)| {
            serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true})
        })
        .collect();
    let vocab_map: serde_json::Map<String, serde_json::Value> = TINY_BLIP_VOCAB
        .iter()
        .enumerate()
        .map(|(id, t)| (t.to_string(), serde_json::json!(id)))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": null,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100, "vocab": vocab_map}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).expect("tokenizer.json");
}

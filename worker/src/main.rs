//! `horde-worker`: joins a horde, pops text jobs (a GGUF model on the host engine or burn) and
//! image jobs (a Stable Diffusion 1.5 diffusers checkout on burn) and, with `--alchemist`, alchemy
//! forms (`nsfw` with open_nsfw), runs them and submits the results.
//! SIGINT/SIGTERM puts the worker in maintenance, finishes running jobs, then exits.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use horde_worker::alchemy::Alchemist;
use horde_worker::alchemy_bridge::AlchemyBridge;
use horde_worker::caption::Captioner;
use horde_worker::config::{Args, WorkerConfig};
use horde_worker::image_bridge::ImageBridge;
use horde_worker::image_model::{Censor, ImageModels};
use horde_worker::nsfw::OpenNsfw;
use horde_worker::post_processing::PostProcessors;
use horde_worker::text_model::{TextModel, TextModels};
use horde_worker::u2net::U2Net;
use horde_worker::upscale::RrdbNet;
use horde_worker::Bridge;

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("horde-worker: {message}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut cfg = match WorkerConfig::resolve(args) {
        Ok(c) => c,
        Err(e) => return fail(2, e),
    };
    if cfg.models.is_empty() && cfg.image_models.is_empty() && !cfg.alchemist {
        return fail(
            2,
            "no model given: pass --model PATH.gguf (scripts/fetch-models.sh fetches the default one), --image-model NAME=DIR and/or --alchemist",
        );
    }
    let compute = match horde_worker::device::select(&cfg.device) {
        Ok(d) => d,
        Err(e) => return fail(2, e),
    };
    let mut text = vec![];
    for spec in &cfg.models {
        match TextModel::load_offloaded(spec, &compute, cfg.f16_weights, cfg.gpu_layers) {
            Ok(m) => {
                tracing::info!(model = %m.name, "loaded");
                text.push(m);
            }
            // A model that cannot be loaded is a failure of the run, not of its arguments.
            Err(e) => return fail(1, format!("cannot load {spec}: {e}")),
        }
    }
    let images = if cfg.image_models.is_empty() {
        tracing::info!(
            "no image model: this worker offers no image generation. Stable Diffusion weights cannot be downloaded here; \
             pass --image-model NAME=DIR with a Stable-Diffusion-1.5-compatible diffusers checkout to serve images"
        );
        None
    } else {
        let mut models = match ImageModels::load(&cfg.image_models, &compute, cfg.max_pixels) {
            Ok(m) => m.extra_slow(cfg.extra_slow_worker),
            Err(e) => return fail(2, format!("cannot load the image models: {e}")),
        };
        match &cfg.nsfw_model {
            Some(path) => match OpenNsfw::load(path) {
                Ok(classifier) => {
                    models = models.with_censor(Censor {
                        classifier: Box::new(classifier),
                        threshold: cfg.nsfw_threshold,
                    });
                }
                Err(e) => return fail(2, format!("cannot load the NSFW model {}: {e}", path.display())),
            },
            None => tracing::warn!(
                "no --nsfw-model: every image of a job that asks for the NSFW censor will be replaced by a black one \
                 (scripts/fetch-models.sh fetches open-nsfw.onnx)"
            ),
        }
        for (name, dir) in &cfg.image_models {
            tracing::info!(model = %name, dir = %dir.display(), "image model loaded");
        }
        Some(models)
    };
    // Post-processors (upscalers, background removal) serve the alchemist's forms and image
    // requests' `post_processing` alike, on the burn device given (burn's CPU backend for the
    // host engine).
    let post_device = match &compute {
        horde_worker::device::Compute::Burn(d) => d.clone(),
        horde_worker::device::Compute::Host => burn::prelude::Device::flex(),
    };
    let mut post = PostProcessors::default();
    for (form, path) in &cfg.upscalers {
        match RrdbNet::load(path, &post_device) {
            Ok(net) => post = post.with_upscaler(form, net),
            Err(e) => return fail(2, format!("cannot load the upscaler {}: {e}", path.display())),
        }
    }
    if let Some(path) = &cfg.background_model {
        match U2Net::load(path, &post_device) {
            Ok(net) => post = post.with_background_remover(net),
            Err(e) => return fail(2, format!("cannot load the background model {}: {e}", path.display())),
        }
    }
    if !post.is_empty() {
        tracing::info!(post_processors = ?post.names(), "post-processors ready");
    }
    let alchemist = if cfg.alchemist {
        let mut alchemist = Alchemist::new(cfg.max_tiles).with_post_processors(post.clone());
        if let Some(path) = &cfg.nsfw_model {
            match OpenNsfw::load(path) {
                Ok(classifier) => alchemist = alchemist.with_nsfw(Box::new(classifier), cfg.nsfw_threshold),
                Err(e) => return fail(2, format!("cannot load the NSFW model {}: {e}", path.display())),
            }
        }
        let device = post_device.clone();
        if let Some(dir) = &cfg.caption_model {
            match Captioner::load(dir, &device) {
                Ok(captioner) => alchemist = alchemist.with_captioner(captioner),
                Err(e) => return fail(2, format!("cannot load the captioning model {}: {e}", dir.display())),
            }
        }
        let forms = horde_worker::AlchemyBackend::forms(&alchemist);
        if forms.is_empty() {
            return fail(
                2,
                "--alchemist has no form to serve: pass --nsfw-model open-nsfw.onnx (scripts/fetch-models.sh fetches it) \
                 --upscaler FORM=FILE, --background-model FILE and/or --caption-model DIR",
            );
        }
        tracing::info!(forms = ?forms, "alchemist ready");
        Some(alchemist)
    } else {
        None
    };
    let text_models = (!text.is_empty()).then(|| TextModels::new(text, cfg.threads));
    cfg.models = vec![];
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(1, e),
    };
    runtime.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let shutdown = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => return fail(1, e),
        };
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        // A horde worker has one kind: with both kinds of model, the image worker gets a suffix.
        let mut image_cfg = cfg.clone();
        if text_models.is_some() {
            image_cfg.name = format!("{}-image", cfg.name);
        }
        let mut alchemy_cfg = cfg.clone();
        if text_models.is_some() || images.is_some() {
            alchemy_cfg.name = format!("{}-alchemist", cfg.name);
        }
        let text_bridge = match text_models.map(|m| Bridge::new(cfg, Arc::new(m))).transpose() {
            Ok(b) => b,
            Err(e) => return fail(2, e),
        };
        let image_bridge = match images
            .map(|m| ImageBridge::new(image_cfg, Arc::new(m)).map(|b| b.with_post_processors(post)))
            .transpose()
        {
            Ok(b) => b,
            Err(e) => return fail(2, e),
        };
        let alchemy_bridge = match alchemist.map(|a| AlchemyBridge::new(alchemy_cfg, Arc::new(a))).transpose() {
            Ok(b) => b,
            Err(e) => return fail(2, e),
        };
        let text_run = async {
            if let Some(b) = &text_bridge {
                let stats = b.run(until_stopped(stopped.clone())).await;
                println!(
                    "text: jobs done {}, faulted {}, {:.1} tokens/s, {:.2} kudos earned",
                    stats.jobs_done,
                    stats.jobs_faulted,
                    stats.tokens_per_sec(),
                    stats.kudos
                );
            }
        };
        let image_run = async {
            if let Some(b) = &image_bridge {
                let stats = b.run(until_stopped(stopped.clone())).await;
                println!(
                    "images: done {}, censored {}, faulted {}, {:.2} kudos earned",
                    stats.images_done, stats.images_censored, stats.images_faulted, stats.kudos
                );
            }
        };
        let alchemy_run = async {
            if let Some(b) = &alchemy_bridge {
                let stats = b.run(until_stopped(stopped.clone())).await;
                println!(
                    "alchemy: forms done {}, faulted {}, {:.2} kudos earned",
                    stats.forms_done, stats.forms_faulted, stats.kudos
                );
            }
        };
        tokio::join!(text_run, image_run, alchemy_run);
        ExitCode::SUCCESS
    })
}

/// Resolves on SIGINT or SIGTERM; handlers are installed before it returns.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async move {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

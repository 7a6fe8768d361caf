//! Worker settings from the command line, the environment and a TOML file, in that order of
//! precedence.

use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// Command line (each option also from its environment variable).
#[derive(Debug, Default, Parser)]
#[command(
    name = "horde-worker",
    version,
    about = "Joins a horde (ours or the public AI Horde), pops text and image jobs, generates and submits them."
)]
pub struct Args {
    /// TOML file with any of the settings below (keys as the long option names, with underscores).
    #[arg(long, env = "HORDE_WORKER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The horde: its origin (https://aihorde.net) or API base (http://127.0.0.1:7001/api/).
    #[arg(long, env = "HORDE_URL")]
    pub url: Option<String>,
    /// API key of the account the worker earns kudos for (keys may begin with `-`).
    #[arg(long, env = "HORDE_API_KEY", hide_env_values = true, allow_hyphen_values = true)]
    pub api_key: Option<String>,
    /// Worker name, unique on the horde.
    #[arg(long, env = "HORDE_WORKER_NAME")]
    pub name: Option<String>,
    /// Model to serve (repeatable): `[NAME=]PATH` of a GGUF file (llama, qwen2, gemma3 or phi3
    /// architecture; F32/F16/BF16, Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 or K-quants such as Q4_K_M), a Hugging
    /// Face Llama directory, or a model name in the model cache. Served as NAME, or as the file name
    /// without its quantization suffix (gemma-3-270m-q4_k_m.gguf serves gemma-3-270m).
    #[arg(long = "model", env = "HORDE_MODELS", value_delimiter = ',')]
    pub models: Vec<String>,
    /// Longest generation accepted, in tokens (default 512).
    #[arg(long, env = "HORDE_MAX_LENGTH")]
    pub max_length: Option<i64>,
    /// Longest context accepted, in tokens (default 2048).
    #[arg(long, env = "HORDE_MAX_CONTEXT_LENGTH")]
    pub max_context_length: Option<i64>,
    /// Jobs generated at the same time (default 1). A text model runs them as one batch: each
    /// forward pass takes a token of every job, so the jobs share each read of the weights.
    #[arg(long, env = "HORDE_WORKER_THREADS")]
    pub threads: Option<usize>,
    /// Users (alias#id) whose requests this worker serves first (repeatable).
    #[arg(long = "priority-username", env = "HORDE_PRIORITY_USERNAMES", value_delimiter = ',')]
    pub priority_usernames: Vec<String>,
    /// Accept NSFW requests (default true).
    #[arg(long, env = "HORDE_NSFW")]
    pub nsfw: Option<bool>,
    /// File of words, one per line: prompts containing them get NSFW post-processing on this worker.
    #[arg(long, env = "HORDE_CENSORLIST")]
    pub censorlist: Option<PathBuf>,
    /// Inference device: cpu (default: the host engine's quantized kernels on x86-64 with AVX2,
    /// else burn's CPU backend), host, flex (burn's CPU backend), wgpu or cuda[:N] (GPU ones need
    /// the matching build feature).
    #[arg(long, env = "HORDE_DEVICE")]
    pub device: Option<String>,
    /// Keep f32 model matrices in f16 (half their memory, faster decoding; results differ
    /// slightly). Quantized GGUF matrices stay quantized on the CPU.
    #[arg(long, env = "HORDE_F16_WEIGHTS")]
    pub f16_weights: Option<bool>,
    /// With a GPU device: only the first K layers of a text model on it, the other layers and
    /// the LM head on the CPU engine (partial offload, for a card smaller than the model).
    /// Default: all layers on the device.
    #[arg(long, env = "HORDE_GPU_LAYERS")]
    pub gpu_layers: Option<usize>,
    /// Image model to serve, as NAME=DIR: a Stable-Diffusion-1.5-compatible diffusers checkout
    /// (tokenizer/, text_encoder/, unet/, vae/ with safetensors) announced as NAME (repeatable).
    /// Without one the worker serves no images.
    #[arg(long = "image-model", env = "HORDE_IMAGE_MODELS", value_delimiter = ',')]
    pub image_models: Vec<String>,
    /// Largest image (width × height) accepted (default 262144 = 512×512 on a GPU, 65536 =
    /// 256×256 on the CPU, where a 512×512 image takes minutes).
    #[arg(long, env = "HORDE_MAX_PIXELS")]
    pub max_pixels: Option<i64>,
    /// Announce the worker as extra slow: the horde gives it three times longer to finish a job,
    /// and only requests that allow extra-slow workers (default false).
    #[arg(long, env = "HORDE_EXTRA_SLOW_WORKER")]
    pub extra_slow_worker: Option<bool>,
    /// The open_nsfw classifier (open-nsfw.onnx; scripts/fetch-models.sh fetches it) that censors
    /// images of jobs asking for it. Without it such images are always replaced by black ones.
    #[arg(long, env = "HORDE_NSFW_MODEL")]
    pub nsfw_model: Option<PathBuf>,
    /// NSFW probability above which a censored job's image is replaced, and above which the
    /// alchemist's `nsfw` form answers true (default 0.7).
    #[arg(long, env = "HORDE_NSFW_THRESHOLD")]
    pub nsfw_threshold: Option<f32>,
    /// Also serve alchemy (image interrogation and post-processing, `/interrogate/pop`) with the
    /// forms this worker has models for: `nsfw` with --nsfw-model, each --upscaler,
    /// `strip_background` with --background-model and `caption` with --caption-model. Alone or
    /// beside text and image models; the alchemist announces itself as NAME-alchemist when it runs beside them.
    #[arg(long, env = "HORDE_ALCHEMIST")]
    pub alchemist: bool,
    /// The most 512×512 tiles an image the alchemist post-processes may cover, counted by area as
    /// the horde counts them (1 to 256, default 16).
    #[arg(long, env = "HORDE_MAX_TILES")]
    pub max_tiles: Option<i64>,
    /// An upscaler the alchemist serves, and image requests' `post_processing` on this worker's
    /// image models, as FORM=FILE (repeatable): FORM a post-processor name
    /// of the horde (RealESRGAN_x4plus, RealESRGAN_x2plus, RealESRGAN_x4plus_anime_6B,
    /// 4x_AnimeSharp, …), FILE the RRDBNet weights as safetensors with Real-ESRGAN's names
    /// (conv_first, body.N.rdbK.convJ, …; `params_ema.` prefix allowed).
    #[arg(long = "upscaler", env = "HORDE_UPSCALERS", value_delimiter = ',')]
    pub upscalers: Vec<String>,
    /// U²-Net weights (safetensors with U²-Net's names: stage1.rebnconvin.conv_s1.weight, …,
    /// outconv.weight; u2net or u2netp) for the alchemist's `strip_background` form and image
    /// requests' `strip_background` post-processing.
    #[arg(long, env = "HORDE_BACKGROUND_MODEL")]
    pub background_model: Option<PathBuf>,
    /// A BLIP captioning checkout directory (Hugging Face's Salesforce/blip-image-captioning-base
    /// or -large: config.json, model.safetensors, tokenizer.json) for the alchemist's `caption`
    /// form.
    #[arg(long, env = "HORDE_CAPTION_MODEL")]
    pub caption_model: Option<PathBuf>,
}

/// The same settings in a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    pub max_length: Option<i64>,
    pub max_context_length: Option<i64>,
    pub threads: Option<usize>,
    #[serde(default)]
    pub priority_usernames: Vec<String>,
    pub nsfw: Option<bool>,
    pub censorlist: Option<PathBuf>,
    pub device: Option<String>,
    pub f16_weights: Option<bool>,
    pub gpu_layers: Option<usize>,
    #[serde(default)]
    pub image_models: Vec<String>,
    pub max_pixels: Option<i64>,
    pub extra_slow_worker: Option<bool>,
    pub nsfw_model: Option<PathBuf>,
    pub nsfw_threshold: Option<f32>,
    pub alchemist: Option<bool>,
    pub max_tiles: Option<i64>,
    #[serde(default)]
    pub upscalers: Vec<String>,
    pub background_model: Option<PathBuf>,
    pub caption_model: Option<PathBuf>,
}

/// open_nsfw's usual cut-off.
pub const DEFAULT_NSFW_THRESHOLD: f32 = 0.7;
/// The public horde's default `max_tiles` for alchemists (512×512 tiles per image).
pub const DEFAULT_MAX_TILES: i64 = 16;

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub url: String,
    pub api_key: String,
    pub name: String,
    pub models: Vec<String>,
    pub max_length: i64,
    pub max_context_length: i64,
    pub threads: usize,
    pub priority_usernames: Vec<String>,
    pub nsfw: bool,
    pub censorlist: Vec<String>,
    /// Inference device (`cpu`, `host`, `flex`, `wgpu`, `cuda[:N]`).
    pub device: String,
    /// Model matrices in f16.
    pub f16_weights: bool,
    /// Layers of a text model on a burn device (`None`: all); the rest on the host engine.
    pub gpu_layers: Option<usize>,
    /// Image models: announced name and diffusers directory.
    pub image_models: Vec<(String, PathBuf)>,
    /// Largest width × height of an image job (`None`: by device, see `Args::max_pixels`).
    pub max_pixels: Option<i64>,
    /// `extra_slow_worker` in image pops.
    pub extra_slow_worker: bool,
    /// open_nsfw ONNX file.
    pub nsfw_model: Option<PathBuf>,
    pub nsfw_threshold: f32,
    /// Serve alchemy forms.
    pub alchemist: bool,
    /// `max_tiles` in alchemy pops.
    pub max_tiles: i64,
    /// Alchemy upscalers: the form served and its RRDBNet safetensors.
    pub upscalers: Vec<(String, PathBuf)>,
    /// U²-Net safetensors for `strip_background`.
    pub background_model: Option<PathBuf>,
    /// BLIP checkout directory for `caption`.
    pub caption_model: Option<PathBuf>,
    /// Wait between pops when the horde has nothing for this worker.
    pub idle_interval: std::time::Duration,
}

/// Why settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, String),
    #[error("missing setting: {0} (use --{1}, the environment or the config file)")]
    Missing(&'static str, &'static str),
    #[error("{0}")]
    Invalid(String),
}

impl WorkerConfig {
    /// Merges command line / environment over the config file, then applies defaults.
    pub fn resolve(args: Args) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse(path.clone(), e.to_string()))?
            }
            None => FileConfig::default(),
        };
        let url = args.url.or(file.url).ok_or(ConfigError::Missing("url", "url"))?;
        let api_key = args.api_key.or(file.api_key).ok_or(ConfigError::Missing("api_key", "api-key"))?;
        let name = args.name.or(file.name).ok_or(ConfigError::Missing("name", "name"))?;
        let models = if args.models.is_empty() { file.models } else { args.models };
        let priority_usernames = if args.priority_usernames.is_empty() {
            file.priority_usernames
        } else {
            args.priority_usernames
        };
        let max_length = args.max_length.or(file.max_length).unwrap_or(512);
        let max_context_length = args.max_context_length.or(file.max_context_length).unwrap_or(2048);
        let threads = args.threads.or(file.threads).unwrap_or(1);
        if !(1..=50).contains(&threads) {
            return Err(ConfigError::Invalid("threads must be between 1 and 50".into()));
        }
        if max_length < 1 || max_context_length < max_length {
            return Err(ConfigError::Invalid("need 1 ≤ max_length ≤ max_context_length".into()));
        }
        if let Some(bad) = priority_usernames.iter().find(|u| !u.contains('#')) {
            return Err(ConfigError::Invalid(format!("priority username '{bad}' must look like alias#id")));
        }
        let censorlist = match args.censorlist.or(file.censorlist) {
            Some(path) => std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::Read(path.clone(), e))?
                .lines()
                .map(|l| l.trim().to_lowercase())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect(),
            None => vec![],
        };
        let image_specs = if args.image_models.is_empty() {
            file.image_models
        } else {
            args.image_models
        };
        let image_models = image_specs
            .iter()
            .map(|spec| match spec.split_once('=') {
                Some((name, dir)) if !name.trim().is_empty() && !dir.trim().is_empty() => {
                    Ok((name.trim().to_string(), PathBuf::from(dir.trim())))
                }
                _ => Err(ConfigError::Invalid(format!("image model '{spec}' must look like NAME=DIR"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_pixels = args.max_pixels.or(file.max_pixels);
        if max_pixels.is_some_and(|p| p < 64 * 64) {
            return Err(ConfigError::Invalid("max_pixels must be at least 4096 (64×64)".into()));
        }
        let nsfw_threshold = args.nsfw_threshold.or(file.nsfw_threshold).unwrap_or(DEFAULT_NSFW_THRESHOLD);
        if !(0.0..=1.0).contains(&nsfw_threshold) {
            return Err(ConfigError::Invalid("nsfw_threshold must be between 0 and 1".into()));
        }
        let max_tiles = args.max_tiles.or(file.max_tiles).unwrap_or(DEFAULT_MAX_TILES);
        if !(1..=256).contains(&max_tiles) {
            return Err(ConfigError::Invalid("max_tiles must be between 1 and 256".into()));
        }
        let upscaler_specs = if args.upscalers.is_empty() {
            file.upscalers
        } else {
            args.upscalers
        };
        let upscalers = upscaler_specs
            .iter()
            .map(|spec| match spec.split_once('=') {
                Some((form, path)) if horde_protocol::alchemy::is_post_processor(form.trim()) && !path.trim().is_empty() => {
                    Ok((form.trim().to_string(), PathBuf::from(path.trim())))
                }
                _ => Err(ConfigError::Invalid(format!(
                    "upscaler '{spec}' must look like FORM=FILE with FORM a post-processor such as RealESRGAN_x4plus"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            upscalers,
            background_model: args.background_model.or(file.background_model),
            caption_model: args.caption_model.or(file.caption_model),
            alchemist: args.alchemist || file.alchemist.unwrap_or(false),
            max_tiles,
            image_models,
            max_pixels,
            extra_slow_worker: args.extra_slow_worker.or(file.extra_slow_worker).unwrap_or(false),
            nsfw_model: args.nsfw_model.or(file.nsfw_model),
            nsfw_threshold,
            url,
            api_key,
            name,
            models,
            max_length,
            max_context_length,
            threads,
            priority_usernames,
            nsfw: args.nsfw.or(file.nsfw).unwrap_or(true),
            censorlist,
            device: args.device.or(file.device).unwrap_or_else(|| "cpu".into()),
            f16_weights: args.f16_weights.or(file.f16_weights).unwrap_or(false),
            gpu_layers: args.gpu_layers.or(file.gpu_layers),
            idle_interval: std::time::Duration::from_secs(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_may_begin_with_a_hyphen() {
        // Keys are URL-safe base64, so about one in 32 begins with `-`.
        let args = Args::try_parse_from(["horde-worker", "--api-key", "-AbCdEfGhIjKlMnOpQrStU", "--name", "w"]).expect("args");
        assert_eq!(args.api_key.as_deref(), Some("-AbCdEfGhIjKlMnOpQrStU"));
    }

    #[test]
    fn command_line_wins_over_file_and_defaults_apply() {
        let dir = std::env::temp_dir().join(format!("hw-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("worker.toml");
        let words = dir.join("censor.txt");
        std::fs::write(&words, "# comment\nBadWord\n\nother\n").expect("write");
        std::fs::write(
            &file,
            format!(
                "url = \"http://file\"\napi_key = \"k\"\nname = \"from-file\"\nmodels = [\"a\"]\nthreads = 2\ncensorlist = \"{}\"\n",
                words.display()
            ),
        )
        .expect("write");
        let args = Args::try_parse_from([
            "horde-worker",
            "--config",
            file.to_str().unwrap_or_default(),
            "--name",
            "cli",
            "--max-length",
            "64",
            "--image-model",
            "sd=/models/sd15",
            "--gpu-layers",
            "12",
            "--alchemist",
            "--upscaler",
            "RealESRGAN_x4plus=/models/x4.safetensors",
        ])
        .expect("args");
        let c = WorkerConfig::resolve(args).expect("resolves");
        assert_eq!(
            (c.url.as_str(), c.name.as_str(), c.threads, c.max_length, c.max_context_length),
            ("http://file", "cli", 2, 64, 2048)
        );
        assert_eq!(c.models, vec!["a".to_string()]);
        assert_eq!(c.censorlist, vec!["badword".to_string(), "other".to_string()]);
        assert!(c.nsfw);
        assert_eq!(c.image_models, vec![("sd".to_string(), PathBuf::from("/models/sd15"))]);
        assert_eq!((c.max_pixels, c.extra_slow_worker, c.nsfw_threshold), (None, false, 0.7));
        assert_eq!(c.gpu_layers, Some(12));
        assert_eq!((c.alchemist, c.max_tiles), (true, DEFAULT_MAX_TILES));
        assert_eq!(
            c.upscalers,
            vec![("RealESRGAN_x4plus".to_string(), PathBuf::from("/models/x4.safetensors"))]
        );
        let args = Args::try_parse_from([
            "horde-worker",
            "--url",
            "u",
            "--api-key",
            "k",
            "--name",
            "n",
            "--image-model",
            "no-dir",
        ])
        .expect("args");
        assert!(matches!(WorkerConfig::resolve(args), Err(ConfigError::Invalid(_))));
        std::fs::write(&file, "url = \"u\"\nunknown_key = 1\n").expect("write");
        let args = Args::try_parse_from(["horde-worker", "--config", file.to_str().unwrap_or_default()]).expect("args");
        assert!(matches!(WorkerConfig::resolve(args), Err(ConfigError::Parse(..))));
        let args = Args::try_parse_from(["horde-worker", "--url", "u", "--api-key", "k"]).expect("args");
        assert!(matches!(WorkerConfig::resolve(args), Err(ConfigError::Missing("name", _))));
        let args = Args::try_parse_from(["horde-worker", "--url", "u", "--api-key", "k", "--name", "n", "--max-tiles", "0"]).expect("args");
        assert!(matches!(WorkerConfig::resolve(args), Err(ConfigError::Invalid(_))));
        let args = Args::try_parse_from([
            "horde-worker",
            "--url",
            "u",
            "--api-key",
            "k",
            "--name",
            "n",
            "--upscaler",
            "caption=x",
        ])
        .expect("args");
        assert!(matches!(WorkerConfig::resolve(args), Err(ConfigError::Invalid(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

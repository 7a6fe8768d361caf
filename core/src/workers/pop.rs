//! A worker's pop request, validated, with the public horde's effective defaults.

use horde_protocol::alchemy::AlchemyPopRequest;
use horde_protocol::image::ImagePopRequest;
use horde_protocol::text::TextPopRequest;

use super::{validate_worker_name, ImageCapabilities, WorkerKind};
use crate::accounts::parse_user_reference;
use crate::{HordeError, Result};

/// Models a text worker may declare (the rest are ignored).
pub const MAX_POP_MODELS: usize = 200;
/// Models an image worker may declare (the rest are ignored).
pub const MAX_IMAGE_POP_MODELS: usize = 300;
/// Censorlist words an image worker may declare, and their length.
pub const MAX_BLACKLIST_WORDS: usize = 200;
pub const MAX_BLACKLIST_WORD_CHARS: usize = 15;

/// What a worker declares each time it asks for work.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WorkerPop {
    pub name: String,
    pub models: Vec<String>,
    pub max_length: i64,
    pub max_context_length: i64,
    pub priority_user_ids: Vec<i64>,
    pub nsfw: bool,
    pub bridge_agent: String,
    pub threads: i64,
    pub amount: u32,
    pub require_upfront_kudos: bool,
    pub extra_slow_worker: bool,
    pub softprompts: Vec<String>,
    pub kind: WorkerKind,
    /// Image workers' capabilities.
    pub image: Option<ImageCapabilities>,
    /// It renders chat messages itself (pop extension `messages-v1`).
    pub wants_messages: bool,
}

/// The fields text and image pops share, checked.
struct CommonPop {
    name: String,
    models: Vec<String>,
    priority_user_ids: Vec<i64>,
    bridge_agent: String,
    threads: i64,
    amount: u32,
}

#[allow(clippy::too_many_arguments)]
fn common(
    name: Option<String>,
    models: Option<Vec<String>>,
    max_models: usize,
    priority_usernames: Option<Vec<String>>,
    bridge_agent: Option<String>,
    threads: Option<i64>,
    amount: Option<i64>,
) -> Result<CommonPop> {
    let name = validate_worker_name(name.as_deref().unwrap_or(""))?;
    let mut models: Vec<String> = models
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    models.truncate(max_models);
    if models.iter().any(|m| m.len() > 255 || m.contains('\0')) {
        return Err(HordeError::Validation("Model names must be at most 255 characters.".into()));
    }
    let threads = threads.unwrap_or(1);
    if !(1..=50).contains(&threads) {
        return Err(HordeError::Validation("threads must be between 1 and 50.".into()));
    }
    let amount = amount.unwrap_or(1);
    if !(1..=20).contains(&amount) {
        return Err(HordeError::Validation("amount must be between 1 and 20.".into()));
    }
    let mut priority_user_ids = Vec::new();
    for u in priority_usernames.unwrap_or_default() {
        match parse_user_reference(&u).filter(|_| u.contains('#')) {
            Some(id) => priority_user_ids.push(id),
            None => return Err(HordeError::InvalidPriorityUsername(u.chars().take(60).collect())),
        }
    }
    let bridge_agent = bridge_agent.unwrap_or_else(|| "unknown:0:unknown".into());
    if bridge_agent.chars().count() > 1000 || bridge_agent.contains('\0') {
        return Err(HordeError::Validation("bridge_agent may be at most 1000 characters.".into()));
    }
    Ok(CommonPop {
        name,
        models,
        priority_user_ids,
        bridge_agent,
        threads,
        amount: amount as u32,
    })
}

/// A pop of `$kind` from the fields every kind's pop request shares (they share the names),
/// checked by `common`; the kind's own fields at their defaults.
macro_rules! common_pop {
    ($p:ident, $max_models:expr, $kind:expr) => {
        common(
            $p.name,
            $p.models,
            $max_models,
            $p.priority_usernames,
            $p.bridge_agent,
            $p.threads,
            $p.amount,
        )
        .map(|c| WorkerPop {
            name: c.name,
            models: c.models,
            max_length: 512,
            max_context_length: 2048,
            priority_user_ids: c.priority_user_ids,
            nsfw: $p.nsfw.unwrap_or(true),
            bridge_agent: c.bridge_agent,
            threads: c.threads,
            amount: c.amount,
            require_upfront_kudos: $p.require_upfront_kudos.unwrap_or(false),
            extra_slow_worker: $p.extra_slow_worker.unwrap_or(false),
            softprompts: vec![],
            kind: $kind,
            image: None,
            wants_messages: false,
        })
    };
}

impl TryFrom<ImagePopRequest> for WorkerPop {
    type Error = HordeError;

    fn try_from(p: ImagePopRequest) -> Result<Self> {
        let pop = common_pop!(p, MAX_IMAGE_POP_MODELS, WorkerKind::Image)?;
        let max_pixels = p.max_pixels.unwrap_or(512 * 512);
        if !(64 * 64..=16 * 3072 * 3072).contains(&max_pixels) {
            return Err(HordeError::Validation("max_pixels must be between 4096 and 150994944.".into()));
        }
        let blacklist: Vec<String> = p
            .blacklist
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.trim().to_lowercase().chars().take(MAX_BLACKLIST_WORD_CHARS).collect::<String>())
            .filter(|w| !w.is_empty())
            .take(MAX_BLACKLIST_WORDS)
            .collect();
        let image = ImageCapabilities {
            max_pixels,
            blacklist,
            allow_img2img: p.allow_img2img.unwrap_or(true),
            allow_painting: p.allow_painting.unwrap_or(true),
            allow_post_processing: p.allow_post_processing.unwrap_or(true),
            allow_controlnet: p.allow_controlnet.unwrap_or(false),
            allow_lora: p.allow_lora.unwrap_or(false),
            limit_max_steps: p.limit_max_steps.unwrap_or(false),
        };
        Ok(WorkerPop { image: Some(image), ..pop })
    }
}

/// Forms an alchemist may declare (the rest are ignored).
pub const MAX_POP_FORMS: usize = 50;
/// `max_tiles` when an alchemist sends none (the public horde's parser default).
pub const DEFAULT_MAX_TILES: i64 = 80;
/// Pixels in one tile of `max_tiles`.
pub const TILE_PIXELS: i64 = 512 * 512;

/// An alchemist's pop: its forms are its models; its `max_tiles` is kept as the most pixels it
/// post-processes (`image.max_pixels`, tiles of 512×512).
impl TryFrom<AlchemyPopRequest> for WorkerPop {
    type Error = HordeError;

    fn try_from(p: AlchemyPopRequest) -> Result<Self> {
        let c = common(
            p.name,
            p.forms,
            MAX_POP_FORMS,
            p.priority_usernames,
            p.bridge_agent,
            p.threads,
            p.amount,
        )?;
        let max_tiles = p.max_tiles.unwrap_or(DEFAULT_MAX_TILES);
        if !(1..=256).contains(&max_tiles) {
            return Err(HordeError::Validation("max_tiles must be between 1 and 256.".into()));
        }
        Ok(WorkerPop {
            name: c.name,
            models: c.models,
            max_length: 512,
            max_context_length: 2048,
            priority_user_ids: c.priority_user_ids,
            nsfw: true,
            bridge_agent: c.bridge_agent,
            threads: c.threads,
            amount: c.amount,
            require_upfront_kudos: false,
            extra_slow_worker: false,
            softprompts: vec![],
            kind: WorkerKind::Alchemist,
            image: Some(ImageCapabilities {
                max_pixels: max_tiles * TILE_PIXELS,
                ..ImageCapabilities::default()
            }),
            wants_messages: false,
        })
    }
}

impl TryFrom<TextPopRequest> for WorkerPop {
    type Error = HordeError;

    fn try_from(p: TextPopRequest) -> Result<Self> {
        let pop = common_pop!(p, MAX_POP_MODELS, WorkerKind::Text)?;
        let max_length = p.max_length.unwrap_or(512);
        let max_context_length = p.max_context_length.unwrap_or(2048);
        if !(1..=1_048_576).contains(&max_length) || !(1..=1_048_576).contains(&max_context_length) {
            return Err(HordeError::Validation(
                "max_length and max_context_length must be between 1 and 1048576.".into(),
            ));
        }
        Ok(WorkerPop {
            max_length,
            max_context_length,
            softprompts: p.softprompts.unwrap_or_default(),
            wants_messages: p
                .extensions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|e| e == horde_protocol::text::EXTENSION_MESSAGES),
            ..pop
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let p: TextPopRequest = serde_json::from_value(serde_json::json!({"name": "w", "models": ["m"]})).expect("json");
        let w = WorkerPop::try_from(p).expect("valid");
        assert_eq!(
            (w.max_length, w.max_context_length, w.threads, w.amount, w.nsfw),
            (512, 2048, 1, 1, true)
        );
        let p: TextPopRequest = serde_json::from_value(serde_json::json!({"name": "w", "priority_usernames": ["bob"]})).expect("json");
        assert_eq!(WorkerPop::try_from(p).err().map(|e| e.rc()), Some("InvalidPriorityUsername"));
        let p: TextPopRequest = serde_json::from_value(serde_json::json!({"name": "w", "amount": 21})).expect("json");
        assert_eq!(WorkerPop::try_from(p).err().map(|e| e.rc()), Some("ValidationError"));
        let p: TextPopRequest = serde_json::from_value(serde_json::json!({"models": ["m"]})).expect("json");
        assert_eq!(WorkerPop::try_from(p).err().map(|e| e.rc()), Some("InvalidWorkerName"));
    }

    #[test]
    fn image_defaults_and_censorlist() {
        let p: ImagePopRequest =
            serde_json::from_value(serde_json::json!({"name": "w", "models": ["m"], "blacklist": ["  Blood ", "averyveryverylongword!"]}))
                .expect("json");
        let w = WorkerPop::try_from(p).expect("valid");
        let i = w.image.expect("image capabilities");
        assert_eq!(i.max_pixels, 262_144);
        assert!(i.allow_img2img && i.allow_painting && i.allow_post_processing && !i.allow_lora && !i.allow_controlnet);
        assert_eq!(i.blacklist, vec!["blood".to_string(), "averyveryverylo".to_string()]);
        assert_eq!(w.kind, WorkerKind::Image);
        let p: ImagePopRequest = serde_json::from_value(serde_json::json!({"name": "w", "max_pixels": 10})).expect("json");
        assert!(WorkerPop::try_from(p).is_err());
    }
}

//! Alchemy: image interrogation (caption, interrogation, nsfw) and post-processing (upscalers,
//! face fixers, background removal) of a requester's image, each asked-for form one job of the
//! request. Built on the generic lifecycle (`crate::lifecycle`): this module brings the request,
//! its matching and its `RequestKind`.

pub mod lifecycle;
pub mod matching;
pub mod request;

pub use lifecycle::AlchemyJobResult;
pub use request::AlchemyRequest;

use horde_protocol::alchemy::is_post_processor;
use serde_json::{Map, Value};

use crate::kudos::Centikudos;
use crate::scheduler::queue::QueueKind;

/// Alchemy requests in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlchemyKind;

/// The forms this horde serves (`horde-worker --alchemist` runs them): interrogations first,
/// then post-processors.
pub const SERVED_FORMS: [&str; 11] = [
    "caption",
    "interrogation",
    "nsfw",
    "GFPGAN",
    "CodeFormers",
    "RealESRGAN_x4plus",
    "RealESRGAN_x2plus",
    "RealESRGAN_x4plus_anime_6B",
    "NMKD_Siax",
    "4x_AnimeSharp",
    "strip_background",
];

/// Uptime reward of an alchemist every ten minutes online (the public horde's 40 kudos).
pub const UPTIME_REWARD: Centikudos = 40 * 100;
/// What a requester pays per form beside the form's price (and as much again with
/// `slow_workers`, as the public horde charges).
pub const FORM_FEE: Centikudos = 100;
/// Seconds a worker has for one form before it is handed out again (the public horde's 3 min).
pub const FORM_TTL_SECS: u64 = 180;

/// A form's price, paid to the worker: 1 kudos for `caption`, `nsfw` and the other
/// descriptions, 3 for `interrogation`, 3 per 512×512 tile of the image for post-processors.
pub fn form_price(form: &str, tiles: i64) -> Centikudos {
    if is_post_processor(form) {
        300 * tiles.max(1)
    } else if form == "interrogation" {
        300
    } else {
        100
    }
}

/// What matching needs of an alchemy request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlchemyNeeds {
    /// Tiles of 512×512 of the source image (post-processors need a worker taking as many).
    pub tiles: i64,
}

/// A finished form: what the worker answered (an uploaded image's form maps to `"R2"`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlchemyOutput {
    /// The form's name.
    pub form: String,
    /// Keyed by form name, as the worker sent it (kept in memory only).
    #[serde(with = "json_map")]
    pub result: Map<String, Value>,
    /// The result is an image, held in the image store under the job's id.
    pub image: bool,
}

/// A JSON object kept as its text in snapshots and the log (CBOR has no `serde_json::Value`
/// round trip for every number).
mod json_map {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::{Map, Value};

    pub fn serialize<S: Serializer>(m: &Map<String, Value>, s: S) -> Result<S::Ok, S::Error> {
        serde_json::to_string(m).map_err(serde::ser::Error::custom)?.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

impl QueueKind for AlchemyKind {
    type Request = AlchemyRequest;
    type Needs = AlchemyNeeds;
    type Output = AlchemyOutput;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_priced_as_the_public_horde_prices_them() {
        assert_eq!(form_price("caption", 4), 100);
        assert_eq!(form_price("nsfw", 4), 100);
        assert_eq!(form_price("interrogation", 4), 300);
        assert_eq!(form_price("RealESRGAN_x4plus", 4), 1200);
        assert_eq!(form_price("GFPGAN", 1), 300);
        assert_eq!(form_price("strip_background", 0), 300);
        assert!(SERVED_FORMS.iter().all(|f| horde_protocol::alchemy::is_known_form(f)));
    }
}

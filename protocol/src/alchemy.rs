//! Alchemy (image interrogation and post-processing): the requester's `/interrogate/async` and
//! `/interrogate/status/{id}`, the worker's `/interrogate/pop` and `/interrogate/submit`. Field
//! names are the public AI Horde's (`ModelInterrogationInputStable`, `InterrogationStatus`,
//! `InterrogationPopInput`, `InterrogationPopPayload`, `SubmitInputStable`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Forms that describe the image (their result is data, no image).
pub const INTERROGATION_FORMS: [&str; 7] = ["caption", "interrogation", "nsfw", "vectorize", "palette", "describe", "aesthetic"];

/// Post-processors the public horde knows, with the kudos factor it gives each (upscalers cost
/// 5% more); their result is an image, uploaded to the form's `r2_upload` link.
pub const POST_PROCESSORS: [(&str, f64); 16] = [
    ("GFPGAN", 1.0),
    ("RealESRGAN_x4plus", 1.05),
    ("RealESRGAN_x2plus", 1.05),
    ("RealESRGAN_x4plus_anime_6B", 1.05),
    ("NMKD_Siax", 1.05),
    ("4x_AnimeSharp", 1.05),
    ("CodeFormers", 1.0),
    ("strip_background", 1.0),
    ("4xNomos8kSC", 1.05),
    ("4xLSDIRplus", 1.05),
    ("4xNomosWebPhoto_RealPLKSR", 1.05),
    ("4xNomos2_realplksr_dysample", 1.05),
    ("4xNomos2_hq_dat2", 1.05),
    ("2xModernSpanimationV1", 1.05),
    ("GFPGANv1.3", 1.0),
    ("RestoreFormer", 1.0),
];

/// Whether `form` is a post-processor (its result is an uploaded image).
pub fn is_post_processor(form: &str) -> bool {
    POST_PROCESSORS.iter().any(|(name, _)| *name == form)
}

/// Whether the public horde knows `form`.
pub fn is_known_form(form: &str) -> bool {
    INTERROGATION_FORMS.contains(&form) || is_post_processor(form)
}

/// The result value a worker submits for a post-processed image it uploaded to `r2_upload`.
pub const UPLOADED: &str = "R2";

/// One form a requester asks for (`ModelInterrogationFormStable`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemyForm {
    pub name: String,
    /// Form settings (`facefixer_strength`, caption's `num_beams`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub payload: Option<Map<String, Value>>,
}

/// `POST /interrogate/async` (`ModelInterrogationInputStable`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemyAsyncRequest {
    #[serde(default)]
    pub forms: Vec<AlchemyForm>,
    /// The image: a public URL, or base64 (a data URI or bare), as KoboldAI Lite sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_image: Option<String>,
    /// Allow slower workers (default true; false costs more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_workers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_workers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

/// The answer to `POST /interrogate/async` (`RequestInterrogationResponse`), status 202.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemyAsyncResponse {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One form of `GET|DELETE /interrogate/status/{id}` (`InterrogationFormStatus`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemyFormStatus {
    pub form: String,
    /// `waiting`, `processing`, `done`, `faulted` or `cancelled`.
    pub state: String,
    /// Keyed by form name: `{"caption": "…"}`, `{"nsfw": true}`, `{"RealESRGAN_x4plus": URL}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<Map<String, Value>>,
}

/// `GET|DELETE /interrogate/status/{id}` (`InterrogationStatus`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemyStatusResponse {
    /// `waiting`, `processing`, `partial`, `done`, `faulted` or `cancelled`.
    pub state: String,
    #[serde(default)]
    pub forms: Vec<AlchemyFormStatus>,
}

/// `POST /interrogate/pop` (`InterrogationPopInput`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemyPopRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_usernames: Option<Vec<String>>,
    /// The forms this worker can run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forms: Option<Vec<String>>,
    /// Forms to pop at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<i64>,
    /// The most 512×512 tiles this worker post-processes in one image (1..=256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tiles: Option<i64>,
}

/// One popped form (`InterrogationPopFormPayload`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemyPopForm {
    /// The form's id, to submit its result.
    pub id: String,
    /// The form's name (`caption`, `nsfw`, `RealESRGAN_x4plus`, …).
    pub form: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub payload: Option<Map<String, Value>>,
    /// Where to download the source image from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_image: Option<String>,
    /// Where to PUT a post-processor's WebP (then submit `{form: "R2"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2_upload: Option<String>,
}

/// Why waiting forms were not given to this worker (`NoValidInterrogationsFound`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemySkipped {
    #[serde(default, deserialize_with = "count", skip_serializing_if = "is_zero")]
    pub worker_id: u64,
    #[serde(default, deserialize_with = "count", skip_serializing_if = "is_zero")]
    pub untrusted: u64,
    #[serde(default, deserialize_with = "count", skip_serializing_if = "is_zero")]
    pub bridge_version: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A count sent as an integer or, as the public API's examples do, an integral float (`0.0`).
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let v = Option::<f64>::deserialize(deserializer)?.unwrap_or(0.0);
    if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
        Ok(v as u64)
    } else {
        Err(serde::de::Error::custom(format!("{v} is not a count")))
    }
}

/// The answer to `POST /interrogate/pop` (`InterrogationPopPayload`): the popped forms, or none
/// and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemyPopResponse {
    #[serde(default)]
    pub forms: Vec<AlchemyPopForm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<AlchemySkipped>,
}

/// `POST /interrogate/submit` (`SubmitInputStable`); the answer is `text::SubmitResponse`
/// (`{reward}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlchemySubmitRequest {
    pub id: String,
    /// Keyed by form name (`{"caption": "…"}`, `{"nsfw": false}`, `{"RealESRGAN_x4plus": "R2"}`).
    /// Old clients send a string here (the public swagger's type), which hordes ignore.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub result: Value,
    /// `ok` (default) or `faulted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses `example` as `T`, serializes it again and parses that: the same value both times,
    /// and the serialized JSON keeps every field the example had.
    fn round_trip<T>(example: Value) -> T
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let parsed: T = serde_json::from_value(example.clone()).expect("parses the public API's example");
        let again = serde_json::to_value(&parsed).expect("serializes");
        let reparsed: T = serde_json::from_value(again.clone()).expect("parses its own JSON");
        assert_eq!(parsed, reparsed);
        if let (Some(want), Some(got)) = (example.as_object(), again.as_object()) {
            for key in want.keys() {
                assert!(got.contains_key(key), "{key} lost: {again}");
            }
        }
        parsed
    }

    #[test]
    fn async_request_and_answer() {
        let r: AlchemyAsyncRequest = round_trip(json!({
            "forms": [{"name": "caption", "payload": {"additionalProp1": "", "additionalProp2": ""}},
                      {"name": "RealESRGAN_x4plus", "payload": {"facefixer_strength": 0.5}}],
            "source_image": "https://example.com/a.webp",
            "slow_workers": true,
            "trusted_workers": false,
            "webhook": "https://haidra.net/00000000-0000-0000-0000-000000000000"
        }));
        assert_eq!(r.forms.len(), 2);
        assert_eq!(
            r.forms[1].payload.as_ref().and_then(|p| p["facefixer_strength"].as_f64()),
            Some(0.5)
        );
        // KoboldAI Lite: one form without payload, the image as base64.
        let lite: AlchemyAsyncRequest =
            serde_json::from_value(json!({"forms": [{"name": "caption"}], "source_image": "iVBORw0KGgo="})).expect("lite");
        assert_eq!((lite.forms[0].name.as_str(), lite.slow_workers), ("caption", None));
        let a: AlchemyAsyncResponse = round_trip(json!({"id": "00000000-0000-0000-0000-000000000000", "message": ""}));
        assert_eq!(a.id, "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn status_with_results_of_each_kind() {
        let s: AlchemyStatusResponse = round_trip(json!({
            "state": "partial",
            "forms": [
                {"form": "caption", "state": "done", "result": {"caption": "a cat on a mat"}},
                {"form": "nsfw", "state": "done", "result": {"nsfw": false}},
                {"form": "RealESRGAN_x4plus", "state": "processing"}
            ]
        }));
        assert_eq!(
            s.forms[0].result.as_ref().map(|r| r["caption"].clone()),
            Some(json!("a cat on a mat"))
        );
        assert_eq!(s.forms[2].result, None);
        // The public example's shape (results of any JSON type).
        round_trip::<AlchemyStatusResponse>(json!({
            "state": "", "forms": [{"form": "", "state": "", "result": {"additionalProp1": {}}}]
        }));
    }

    #[test]
    fn pop_request_and_answers() {
        let p: AlchemyPopRequest = round_trip(json!({
            "name": "", "priority_usernames": [""], "forms": ["caption"], "amount": 1,
            "bridge_agent": "AI Horde Worker:24:https://github.com/db0/AI-Horde-Worker", "threads": 1, "max_tiles": 16
        }));
        assert_eq!((p.forms, p.max_tiles), (Some(vec!["caption".to_string()]), Some(16)));
        let got: AlchemyPopResponse = round_trip(json!({
            "forms": [{"id": "", "form": "caption", "payload": {"additionalProp1": ""}, "source_image": "", "r2_upload": ""}],
            "skipped": {"worker_id": 0.0, "untrusted": 0.0, "bridge_version": 0}
        }));
        assert_eq!(got.forms[0].form, "caption");
        assert_eq!(got.skipped, Some(AlchemySkipped::default()));
        let none: AlchemyPopResponse = serde_json::from_value(json!({"skipped": {"untrusted": 2}})).expect("nothing popped");
        assert!(none.forms.is_empty());
        assert_eq!(none.skipped.map(|s| s.untrusted), Some(2));
        assert!(serde_json::from_value::<AlchemySkipped>(json!({"untrusted": 0.5})).is_err());
    }

    #[test]
    fn submit_takes_results_by_form_name() {
        let s: AlchemySubmitRequest = round_trip(json!({"id": "f", "result": {"RealESRGAN_x4plus": "R2"}, "state": "ok"}));
        assert_eq!(s.result["RealESRGAN_x4plus"], json!(UPLOADED));
        // The public example sends the swagger's string.
        let old: AlchemySubmitRequest = round_trip(json!({"id": "", "result": "", "state": ""}));
        assert_eq!(old.result, json!(""));
    }

    #[test]
    fn forms_are_told_apart() {
        assert!(is_post_processor("RealESRGAN_x2plus") && is_post_processor("strip_background"));
        assert!(!is_post_processor("caption") && is_known_form("caption") && is_known_form("GFPGAN"));
        assert!(!is_known_form("vectorise"));
    }
}

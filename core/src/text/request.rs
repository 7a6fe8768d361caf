//! Turns a wire request into a `TextRequest` whose every bound has been checked once. Defaults are
//! the public horde's effective (parser) defaults.

use horde_protocol::text::{GenerateTextRequest, TextParams};

use crate::request_checks::{check_f, check_i, wire_options, RequestOptions};
use crate::{HordeError, Result};

/// Largest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 4 * 1024 * 1024;

/// A validated text request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TextRequest {
    pub prompt: String,
    /// Validated params with `n`, `max_length` and `max_context_length` filled in; sent to workers.
    pub params: TextParams,
    /// What every kind of request may ask (`n`, models, workers, ...).
    pub options: RequestOptions,
    pub max_length: i64,
    pub max_context_length: i64,
    pub validated_backends: bool,
    pub softprompt: Option<String>,
    /// A chat request's messages (OpenAI-compatible API); `prompt` then holds them as a generic
    /// transcript. Sent to workers that render chat templates themselves.
    pub messages: Option<Vec<horde_protocol::text::ChatMessage>>,
}

impl std::ops::Deref for TextRequest {
    type Target = RequestOptions;
    fn deref(&self) -> &RequestOptions {
        &self.options
    }
}

impl TryFrom<GenerateTextRequest> for TextRequest {
    type Error = HordeError;

    fn try_from(req: GenerateTextRequest) -> Result<Self> {
        let prompt = req.prompt.unwrap_or_default();
        if prompt.trim().is_empty() {
            return Err(HordeError::MissingPrompt);
        }
        if prompt.contains('\0') {
            return Err(HordeError::NulByteInPayload);
        }
        if prompt.len() > MAX_PROMPT_CHARS {
            return Err(HordeError::Validation(format!(
                "The prompt may be at most {MAX_PROMPT_CHARS} bytes."
            )));
        }
        if req.extra_source_images.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(HordeError::Validation(
                "extra_source_images are not accepted for text requests.".into(),
            ));
        }
        let mut p = req.params.unwrap_or_default();
        check_i("n", p.n, 1, 20)?;
        check_i("max_context_length", p.max_context_length, 80, 1_048_576)?;
        check_i("max_length", p.max_length, 16, 4096)?;
        check_f("rep_pen", p.rep_pen, 1.0, 3.0)?;
        check_i("rep_pen_range", p.rep_pen_range, 0, 4096)?;
        check_f("rep_pen_slope", p.rep_pen_slope, 0.0, 10.0)?;
        check_f("temperature", p.temperature, 0.0, 5.0)?;
        check_f("tfs", p.tfs, 0.0, 1.0)?;
        check_f("top_a", p.top_a, 0.0, 1.0)?;
        check_i("top_k", p.top_k, 0, 200)?;
        check_f("top_p", p.top_p, 0.001, 1.0)?;
        check_f("typical", p.typical, 0.0, 1.0)?;
        check_f("min_p", p.min_p, 0.0, 1.0)?;
        check_f("smoothing_factor", p.smoothing_factor, 0.0, 10.0)?;
        check_f("dynatemp_range", p.dynatemp_range, 0.0, 5.0)?;
        check_f("dynatemp_exponent", p.dynatemp_exponent, 0.0, 5.0)?;
        check_i("sampler_seed", p.sampler_seed, 0, i32::MAX as i64)?;
        if let Some(order) = &p.sampler_order {
            let mut distinct = order.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() < 7 {
                return Err(HordeError::MissingFullSamplerOrder);
            }
            if order.iter().any(|s| !(0..=6).contains(s)) {
                return Err(HordeError::Validation(
                    "params.sampler_order entries must be between 0 and 6.".into(),
                ));
            }
        }
        if let Some(stops) = &mut p.stop_sequence {
            let mut seen = std::collections::HashSet::new();
            stops.retain(|s| seen.insert(s.clone()));
            if stops.len() > 128 {
                return Err(HordeError::TooManyStopSequences);
            }
            if stops.iter().map(|s| s.chars().count()).sum::<usize>() > 2000 {
                return Err(HordeError::ExcessiveStopSequence);
            }
            if stops.iter().any(|s| s.contains('\0')) {
                return Err(HordeError::NulByteInPayload);
            }
        }
        let n = p.n.unwrap_or(1) as u32;
        let max_context_length = p.max_context_length.unwrap_or(2048);
        let max_length = p.max_length.unwrap_or(80);
        if max_length > max_context_length {
            return Err(HordeError::TokenOverflow {
                max_length,
                max_context_length,
            });
        }
        p.n = Some(1);
        p.max_length = Some(max_length);
        p.max_context_length = Some(max_context_length);

        let options = RequestOptions::parse(wire_options!(req, Some(i64::from(n))), &[])?;
        let softprompt = req.softprompt.filter(|s| !s.is_empty());
        Ok(TextRequest {
            prompt,
            params: p,
            options,
            max_length,
            max_context_length,
            validated_backends: req.validated_backends.unwrap_or(false),
            softprompt,
            messages: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn req(json: serde_json::Value) -> Result<TextRequest> {
        let wire: GenerateTextRequest = serde_json::from_value(json).map_err(|e| HordeError::Validation(e.to_string()))?;
        TextRequest::try_from(wire)
    }

    #[test]
    fn defaults_are_filled() {
        let r = req(serde_json::json!({"prompt": "hi"})).expect("valid");
        assert_eq!((r.n, r.max_length, r.max_context_length), (1, 80, 2048));
        assert!(r.slow_workers && !r.trusted_workers && !r.worker_blacklist);
        assert_eq!(r.params.n, Some(1));
        assert_eq!(r.params.max_length, Some(80));
    }

    #[test]
    fn bounds_are_enforced() {
        let rc = |v| req(v).err().map(|e| e.rc());
        assert_eq!(rc(serde_json::json!({"prompt": ""})), Some("MissingPrompt"));
        assert_eq!(rc(serde_json::json!({"prompt": "a\u{0}b"})), Some("NulByteInPayload"));
        assert_eq!(rc(serde_json::json!({"prompt": "a", "params": {"n": 21}})), Some("ValidationError"));
        assert_eq!(
            rc(serde_json::json!({"prompt": "a", "params": {"max_length": 8}})),
            Some("ValidationError")
        );
        assert_eq!(
            rc(serde_json::json!({"prompt": "a", "params": {"temperature": 9.0}})),
            Some("ValidationError")
        );
        assert_eq!(
            rc(serde_json::json!({"prompt": "a", "params": {"top_p": 0.0}})),
            Some("ValidationError")
        );
        assert_eq!(
            rc(serde_json::json!({"prompt": "a", "params": {"max_length": 512, "max_context_length": 256}})),
            Some("TokenOverflow")
        );
        assert_eq!(
            rc(serde_json::json!({"prompt": "a", "params": {"sampler_order": [1, 2, 3]}})),
            Some("MissingFullSamplerOrder")
        );
        let many: Vec<String> = (0..129).map(|i| format!("s{i}")).collect();
        assert_eq!(
            rc(serde_json::json!({"prompt": "a", "params": {"stop_sequence": many}})),
            Some("TooManyStopSequences")
        );
        assert_eq!(
            rc(serde_json::json!({"prompt": "a", "params": {"stop_sequence": ["x".repeat(2001)]}})),
            Some("ExcessiveStopSequence")
        );
        assert_eq!(rc(serde_json::json!({"prompt": "a", "workers": ["nope"]})), Some("ValidationError"));
    }

    #[test]
    fn unknown_params_are_dropped_and_lists_deduplicated() {
        let r = req(serde_json::json!({"prompt": "a", "params": {"mirostat": 2, "sampler_seed": 5, "stop_sequence": ["x", "x", "y"]}}))
            .expect("valid");
        let v = serde_json::to_value(&r.params).expect("serializes");
        assert!(v.get("mirostat").is_none());
        // KoboldAI's seed is kept (the OpenAI-compatible API's `seed` maps to it).
        assert_eq!(v.get("sampler_seed"), Some(&serde_json::json!(5)));
        assert_eq!(r.params.stop_sequence, Some(vec!["x".to_string(), "y".to_string()]));
    }

    #[test]
    fn blacklist_needs_workers() {
        let r = req(serde_json::json!({"prompt": "a", "worker_blacklist": true})).expect("valid");
        assert!(!r.worker_blacklist);
        let id = Uuid::new_v4().to_string();
        let r = req(serde_json::json!({"prompt": "a", "worker_blacklist": true, "workers": [id]})).expect("valid");
        assert!(r.worker_blacklist);
    }
}

//! A style applied to a request, as the public horde does: the style's template takes the
//! user's prompt (`{p}`) and, for images, its negative part (`{np}`, what follows `###`); the
//! style's params replace the request's, which keeps its `n` (and its width and height where
//! the style gives none); the style's models and nsfw flag replace the request's.

use horde_protocol::image::GenerateImageRequest;
use horde_protocol::text::GenerateTextRequest;
use serde_json::{Map, Value};

use super::Style;
use crate::{HordeError, Result};

/// `template` with each `{p}` and `{np}` replaced, in one pass (text put in is not searched
/// again, and other braces stay as they are).
pub fn fill_template(template: &str, p: &str, np: &str) -> String {
    let mut out = String::with_capacity(template.len() + p.len() + np.len());
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("{p}") {
            out.push_str(p);
            rest = r;
        } else if let Some(r) = rest.strip_prefix("{np}") {
            out.push_str(np);
            rest = r;
        } else {
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
    }
    out
}

/// The style's params with the request's `n`, and the request's `keep` fields where the style
/// has none.
fn merged_params<T: serde::Serialize>(style: &Style, user: Option<&T>, keep: &[&str]) -> Result<Value> {
    let user = match user {
        Some(u) => serde_json::to_value(u).map_err(|e| HordeError::Internal(format!("params: {e}")))?,
        None => Value::Object(Map::new()),
    };
    let mut params = match &style.params {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    params.remove("n");
    if let Some(n) = user.get("n").filter(|v| !v.is_null()) {
        params.insert("n".into(), n.clone());
    }
    for k in keep {
        if !params.contains_key(*k) {
            if let Some(v) = user.get(*k).filter(|v| !v.is_null()) {
                params.insert((*k).to_string(), v.clone());
            }
        }
    }
    Ok(Value::Object(params))
}

fn from_params<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| HordeError::Validation(format!("the style's params: {e}")))
}

/// Applies an image style to `req`.
pub fn apply_image(style: &Style, req: &mut GenerateImageRequest) -> Result<()> {
    let prompt = req.prompt.clone().unwrap_or_default();
    let (positive, mut negative) = match prompt.split_once("###") {
        Some((p, n)) => (p.to_string(), n.to_string()),
        None => (prompt, String::new()),
    };
    if !style.prompt.contains("###") && !negative.is_empty() {
        negative = format!("###{negative}");
    }
    req.prompt = Some(fill_template(&style.prompt, &positive, &negative));
    req.params = Some(from_params(merged_params(style, req.params.as_ref(), &["width", "height"])?)?);
    req.models = Some(style.models.clone());
    req.nsfw = Some(style.nsfw);
    Ok(())
}

/// Applies a text style to `req`.
pub fn apply_text(style: &Style, req: &mut GenerateTextRequest) -> Result<()> {
    let prompt = req.prompt.clone().unwrap_or_default();
    req.prompt = Some(fill_template(&style.prompt, &prompt, ""));
    req.params = Some(from_params(merged_params(style, req.params.as_ref(), &[])?)?);
    req.models = Some(style.models.clone());
    req.nsfw = Some(style.nsfw);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::styles::StyleKind;
    use serde_json::json;

    fn style(kind: StyleKind, prompt: &str, params: Value) -> Style {
        Style {
            id: "s".into(),
            kind,
            user_id: 1,
            creator: "a#1".into(),
            name: "s".into(),
            info: String::new(),
            prompt: prompt.into(),
            params,
            models: vec!["styled_model".into()],
            tags: vec![],
            public: true,
            nsfw: false,
            use_count: 0,
            created_ms: 0,
            examples: vec![],
            sharedkey_id: None,
        }
    }

    #[test]
    fn the_public_hordes_example_comes_out_the_same() {
        let s = style(
            StyleKind::Image,
            "{p}, impasto impressionism###no blur, {np}",
            json!({"width": 1024, "height": 512, "steps": 8, "sampler_name": "k_euler_a"}),
        );
        let mut req: GenerateImageRequest = serde_json::from_value(json!({
            "prompt": "robots###organic",
            "params": {"width": 768, "height": 768, "steps": 30, "sampler_name": "k_euler", "n": 2},
            "models": ["stable_diffusion"],
            "nsfw": true
        }))
        .expect("request");
        apply_image(&s, &mut req).expect("applied");
        assert_eq!(req.prompt.as_deref(), Some("robots, impasto impressionism###no blur, organic"));
        let p = req.params.expect("params");
        assert_eq!((p.width, p.height, p.steps, p.n), (Some(1024), Some(512), Some(8), Some(2)));
        assert_eq!(p.sampler_name.as_deref(), Some("k_euler_a"));
        assert_eq!(req.models, Some(vec!["styled_model".to_string()]));
        assert_eq!(req.nsfw, Some(false));
    }

    #[test]
    fn a_negative_prompt_gets_its_separator_when_the_template_has_none() {
        let s = style(StyleKind::Image, "{p} in oil{np}", json!({}));
        let mut req = GenerateImageRequest {
            prompt: Some("a cat###dogs".into()),
            ..Default::default()
        };
        apply_image(&s, &mut req).expect("applied");
        assert_eq!(req.prompt.as_deref(), Some("a cat in oil###dogs"));
        let mut req = GenerateImageRequest {
            prompt: Some("a cat".into()),
            ..Default::default()
        };
        apply_image(&s, &mut req).expect("applied");
        assert_eq!(req.prompt.as_deref(), Some("a cat in oil"));
    }

    #[test]
    fn the_users_size_stays_where_the_style_gives_none_and_other_braces_stay() {
        let s = style(StyleKind::Image, "{p} {seed} {np}", json!({"steps": 12}));
        let mut req: GenerateImageRequest =
            serde_json::from_value(json!({"prompt": "{np}", "params": {"width": 640, "height": 576, "steps": 40}})).expect("request");
        apply_image(&s, &mut req).expect("applied");
        assert_eq!(req.prompt.as_deref(), Some("{np} {seed} "));
        let p = req.params.expect("params");
        assert_eq!((p.width, p.height, p.steps), (Some(640), Some(576), Some(12)));
    }

    #[test]
    fn a_text_style_wraps_the_prompt_and_sets_params_and_models() {
        let s = style(
            StyleKind::Text,
            "### Instruction:\n{p}\n### Response:",
            json!({"max_length": 80, "n": 5}),
        );
        let mut req: GenerateTextRequest =
            serde_json::from_value(json!({"prompt": "hi", "params": {"max_length": 300, "n": 1}})).expect("request");
        apply_text(&s, &mut req).expect("applied");
        assert_eq!(req.prompt.as_deref(), Some("### Instruction:\nhi\n### Response:"));
        let p = req.params.expect("params");
        assert_eq!((p.max_length, p.n), (Some(80), Some(1)));
        assert_eq!(req.models, Some(vec!["styled_model".to_string()]));
    }
}

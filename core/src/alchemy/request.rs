//! An alchemy request as validated: its forms (each one job), its source image and what it asks
//! of workers, and which forms are in flight or done.

use base64::Engine;
use horde_protocol::alchemy::{is_post_processor, AlchemyAsyncRequest};
use uuid::Uuid;

use super::SERVED_FORMS;
use crate::config::HordeConfig;
use crate::image::request::{check_source_image, image_dimensions, SourceImage};
use crate::request_checks::{RequestOptions, WireOptions};
use crate::workers::pop::TILE_PIXELS;
use crate::{HordeError, Result};

/// Most entries a request's `forms` may have (a form named twice counts once, as the public
/// horde takes it, but is refused beyond this).
pub const MAX_FORMS: usize = 20;
/// Most characters of a form's payload, as JSON.
pub const MAX_PAYLOAD_CHARS: usize = 10_000;

/// One asked-for form.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FormSpec {
    pub name: String,
    /// Its payload as JSON text (an object), if any.
    pub payload: Option<String>,
}

/// A validated alchemy request.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AlchemyRequest {
    /// `n` is the number of forms, `models` their names.
    pub options: RequestOptions,
    pub forms: Vec<FormSpec>,
    /// The image, as sent (base64); its bytes are held in the image store under `source_key`
    /// while the request lives.
    pub source: SourceImage,
    /// The image store's key of the source image (its download link's id).
    pub source_key: Uuid,
    /// Tiles of 512×512 the image covers (rounded up).
    pub tiles: i64,
    /// Forms (bit `i` for `forms[i]`) handed to a worker and not yet back.
    pub in_flight: u32,
    /// Forms finished.
    pub done: u32,
}

impl std::ops::Deref for AlchemyRequest {
    type Target = RequestOptions;
    fn deref(&self) -> &RequestOptions {
        &self.options
    }
}

impl AlchemyRequest {
    /// Checks a requester's `/interrogate/async`: a source image as base64 (a data URI or bare;
    /// URLs are refused as for image requests), one to `MAX_FORMS` forms this horde serves (each
    /// kept once). `source_key` is the new key of its image in the store.
    pub fn parse(req: AlchemyAsyncRequest, cfg: &HordeConfig, source_key: Uuid) -> Result<Self> {
        if req.forms.is_empty() {
            return Err(HordeError::Validation("forms must name at least one form.".into()));
        }
        if req.forms.len() > MAX_FORMS {
            return Err(HordeError::rejected(
                "TooManyForms",
                format!("At most {MAX_FORMS} forms may be requested at once."),
            ));
        }
        let mut forms: Vec<FormSpec> = Vec::with_capacity(req.forms.len());
        for f in req.forms {
            let name = f.name.trim().to_string();
            if !SERVED_FORMS.contains(&name.as_str()) {
                return Err(HordeError::Validation(format!(
                    "Unknown form '{}'; this horde serves {}.",
                    name.chars().take(40).collect::<String>(),
                    SERVED_FORMS.join(", ")
                )));
            }
            if forms.iter().any(|g| g.name == name) {
                // The public horde keeps the first of a form named twice.
                continue;
            }
            let payload = match f.payload {
                Some(p) if !p.is_empty() => {
                    let text = serde_json::Value::Object(p).to_string();
                    if text.chars().count() > MAX_PAYLOAD_CHARS || text.contains('\0') {
                        return Err(HordeError::Validation(format!(
                            "A form's payload may be at most {MAX_PAYLOAD_CHARS} characters."
                        )));
                    }
                    Some(text)
                }
                _ => None,
            };
            forms.push(FormSpec { name, payload });
        }
        let b64 = req
            .source_image
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| HordeError::Validation("source_image is required.".into()))?;
        let source = check_source_image("source_image", &b64, cfg.max_source_image_bytes)?;
        let (w, h) = base64::engine::general_purpose::STANDARD
            .decode(&source.base64)
            .ok()
            .and_then(|b| image_dimensions(&b))
            .ok_or_else(|| HordeError::rejected("InvalidSourceImage", "source_image is not a WebP, PNG or JPEG image."))?;
        let pixels = w as i64 * h as i64;
        let tiles = (pixels + TILE_PIXELS - 1) / TILE_PIXELS;
        let wire = WireOptions {
            n: Some(forms.len() as i64),
            models: Some(forms.iter().map(|f| f.name.clone()).collect()),
            trusted_workers: req.trusted_workers,
            slow_workers: req.slow_workers,
            webhook: req.webhook,
            ..WireOptions::default()
        };
        let options = RequestOptions::parse(wire, &[])?;
        Ok(Self {
            options,
            forms,
            source,
            source_key,
            tiles: tiles.max(1),
            in_flight: 0,
            done: 0,
        })
    }

    /// The index of form `name`.
    pub fn form_index(&self, name: &str) -> Option<usize> {
        self.forms.iter().position(|f| f.name == name)
    }

    /// Forms neither in flight nor done, as a bit set.
    pub fn waiting(&self) -> u32 {
        let all = if self.forms.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << self.forms.len()) - 1
        };
        all & !self.in_flight & !self.done
    }

    /// Whether the form at `index` is a post-processor (its result is an image).
    pub fn is_image_form(&self, index: usize) -> bool {
        self.forms.get(index).is_some_and(|f| is_post_processor(&f.name))
    }

    /// Waiting forms a worker serving `models` and up to `max_pixels` may take, in request order.
    pub fn servable(&self, models: &[String], max_pixels: i64) -> Vec<usize> {
        let waiting = self.waiting();
        (0..self.forms.len())
            .filter(|i| waiting & (1 << i) != 0)
            .filter(|i| models.contains(&self.forms[*i].name))
            .filter(|i| !self.is_image_form(*i) || self.tiles * TILE_PIXELS <= max_pixels)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A 1×1 PNG.
    pub(crate) const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

    fn parse(v: serde_json::Value) -> Result<AlchemyRequest> {
        let r: AlchemyAsyncRequest = serde_json::from_value(v).expect("json");
        AlchemyRequest::parse(r, &HordeConfig::default(), Uuid::nil())
    }

    #[test]
    fn forms_and_image_are_checked() {
        let r = parse(json!({"forms": [{"name": "caption"}, {"name": "RealESRGAN_x4plus"}], "source_image": PNG_1X1})).expect("valid");
        assert_eq!((r.n, r.tiles, r.waiting()), (2, 1, 0b11));
        assert_eq!(r.servable(&["caption".into()], 512 * 512), vec![0]);
        assert_eq!(r.servable(&["RealESRGAN_x4plus".into(), "caption".into()], 512 * 512), vec![0, 1]);
        let rc = |v| parse(v).err().map(|e| e.rc());
        assert_eq!(
            rc(json!({"forms": [{"name": "vectorise"}], "source_image": PNG_1X1})),
            Some("ValidationError")
        );
        assert_eq!(rc(json!({"forms": [], "source_image": PNG_1X1})), Some("ValidationError"));
        let twice = parse(json!({"forms": [{"name": "caption"}, {"name": "caption"}], "source_image": PNG_1X1})).expect("valid");
        assert_eq!(twice.forms.len(), 1);
        let many: Vec<_> = (0..21).map(|_| json!({"name": "nsfw"})).collect();
        assert_eq!(rc(json!({"forms": many, "source_image": PNG_1X1})), Some("TooManyForms"));
        assert_eq!(
            rc(json!({"forms": [{"name": "caption"}], "source_image": "bm90IGFuIGltYWdl"})),
            Some("InvalidSourceImage")
        );
        assert_eq!(rc(json!({"forms": [{"name": "caption"}]})), Some("ValidationError"));
        assert_eq!(
            rc(json!({"forms": [{"name": "caption"}], "source_image": "https://example.com/a.png"})),
            Some("SourceImageUrlUnsupported")
        );
    }
}

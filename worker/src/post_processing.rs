//! Post-processors: the models that change a finished image (RRDBNet upscalers such as
//! `RealESRGAN_x4plus`, U²-Net `strip_background`), loaded once and shared by the alchemist's
//! forms and the image bridge's `post_processing` (an image request's `params.post_processing`).
//!
//! A generated image goes through the request's post-processors in the public horde's order:
//! face fixers first, then the upscaler, and `strip_background` last (its cut-out has an alpha
//! channel). A post-processor this worker has no model for is skipped, and the image says so in
//! its `gen_metadata` (`{"type": "information", "value": "see_ref", "ref": "…"}`) rather than
//! failing a generation that is otherwise done.

use std::sync::Arc;

use horde_protocol::text::GenMetadata;

use crate::diffusion::pipeline::RgbImage;
use crate::image_model::encode_webp;
use crate::u2net::U2Net;
use crate::upscale::RrdbNet;

/// The face fixers the public horde knows (run before upscaling when a worker has them).
pub const FACE_FIXERS: [&str; 3] = ["GFPGAN", "GFPGANv1.3", "CodeFormers"];

/// The post-processing models one worker has, shared by everything that uses them.
#[derive(Clone, Default)]
pub struct PostProcessors {
    /// Upscalers by the post-processor name they serve.
    upscalers: Vec<(String, Arc<RrdbNet>)>,
    background: Option<Arc<U2Net>>,
}

/// What post-processing made of an image, and what it says about the post-processors it skipped.
pub struct Processed {
    /// The new image as lossless WebP (RGBA after `strip_background`); `None` when every
    /// post-processor asked for was skipped and the image is unchanged.
    pub webp: Option<Vec<u8>>,
    pub metadata: Vec<GenMetadata>,
}

impl PostProcessors {
    /// Serves the upscaler `name` (`RealESRGAN_x4plus`, …) with `net`.
    pub fn with_upscaler(mut self, name: &str, net: RrdbNet) -> Self {
        self.upscalers.push((name.to_string(), Arc::new(net)));
        self
    }

    /// Serves `strip_background` with `net`.
    pub fn with_background_remover(mut self, net: U2Net) -> Self {
        self.background = Some(Arc::new(net));
        self
    }

    /// Whether there is no model at all.
    pub fn is_empty(&self) -> bool {
        self.upscalers.is_empty() && self.background.is_none()
    }

    /// The post-processor names served, upscalers first.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.upscalers.iter().map(|(n, _)| n.clone()).collect();
        if self.background.is_some() {
            names.push("strip_background".into());
        }
        names
    }

    /// The upscaler serving `name`.
    pub fn upscaler(&self, name: &str) -> Option<&RrdbNet> {
        self.upscalers.iter().find(|(n, _)| n == name).map(|(_, net)| net.as_ref())
    }

    /// The background remover, if any.
    pub fn background(&self) -> Option<&U2Net> {
        self.background.as_deref()
    }

    /// `image` through the post-processors `names` asks for, in the horde's order. Skipped ones
    /// are noted in the metadata.
    pub fn apply(&self, image: &RgbImage, names: &[String]) -> Result<Processed, String> {
        let mut metadata = vec![];
        let mut skip = |name: &str| {
            metadata.push(GenMetadata {
                kind: "information".into(),
                value: "see_ref".into(),
                reference: Some(format!("post-processor {name} is not available on this worker; skipped")),
            });
        };
        let rank = |name: &str| match name {
            n if FACE_FIXERS.contains(&n) => 0,
            "strip_background" => 2,
            _ => 1,
        };
        let mut ordered: Vec<&String> = names.iter().collect();
        ordered.sort_by_key(|n| rank(n));
        ordered.dedup();
        let mut current: Option<RgbImage> = None;
        let mut cut: Option<image::RgbaImage> = None;
        for name in ordered {
            let input = current.as_ref().unwrap_or(image);
            if name == "strip_background" {
                match self.background() {
                    Some(net) => cut = Some(net.strip_background(input)?),
                    None => skip(name),
                }
            } else if let Some(net) = self.upscaler(name) {
                current = Some(net.upscale(input)?);
            } else {
                skip(name);
            }
        }
        let webp = match (cut, current) {
            (Some(cut), _) => Some(encode_rgba_webp(&cut)?),
            (None, Some(upscaled)) => Some(encode_webp(&upscaled)?),
            (None, None) => None,
        };
        Ok(Processed { webp, metadata })
    }
}

/// Lossless WebP of an RGBA image.
pub fn encode_rgba_webp(image: &image::RgbaImage) -> Result<Vec<u8>, String> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgba8)
        .map_err(|e| format!("WebP encoding failed: {e}"))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_post_processors_are_skipped_and_noted() {
        let image = RgbImage {
            width: 2,
            height: 2,
            pixels: vec![7; 12],
        };
        let none = PostProcessors::default();
        assert!(none.is_empty());
        let p = none
            .apply(&image, &["strip_background".into(), "CodeFormers".into(), "CodeFormers".into()])
            .expect("applies");
        assert!(p.webp.is_none(), "unchanged");
        let refs: Vec<String> = p.metadata.iter().filter_map(|m| m.reference.clone()).collect();
        assert_eq!(refs.len(), 2, "{refs:?}");
        assert!(refs[0].contains("CodeFormers"), "face fixers first: {refs:?}");
        assert!(refs[1].contains("strip_background"), "background last: {refs:?}");
        assert!(p.metadata.iter().all(|m| m.kind == "information" && m.value == "see_ref"));
        assert!(none.apply(&image, &[]).expect("applies").metadata.is_empty());
    }
}

//! The forms this worker runs for `--alchemist`, on burn: `nsfw` with the open_nsfw classifier
//! (the same one that censors generated images), RRDBNet upscalers (`RealESRGAN_x4plus`, …) and
//! U²-Net background removal (`strip_background`) and BLIP captions (`caption`) from
//! operator-supplied weights. Each form decodes the popped source image, runs its model and
//! answers a `FormResult`.

use crate::backend::{AlchemyBackend, AlchemyJob, FormResult};
use crate::caption::Captioner;
use crate::diffusion::pipeline::RgbImage;
use crate::image_model::{encode_webp, NsfwClassifier};
use crate::post_processing::{encode_rgba_webp, PostProcessors};
use crate::u2net::U2Net;
use crate::upscale::RrdbNet;

pub use crate::config::DEFAULT_MAX_TILES;

/// Largest side of a source image, in pixels (decoding a bigger one would take too much memory).
pub const MAX_SOURCE_SIDE: u32 = 8192;

/// The forms one worker serves.
pub struct Alchemist {
    nsfw: Option<(Box<dyn NsfwClassifier>, f32)>,
    /// Upscalers and the background remover, shared with the image bridge.
    post: PostProcessors,
    captioner: Option<Captioner>,
    max_tiles: i64,
}

impl Alchemist {
    /// No form yet; post-processed images may have up to `max_tiles` 512×512 tiles.
    pub fn new(max_tiles: i64) -> Self {
        Self {
            nsfw: None,
            post: PostProcessors::default(),
            captioner: None,
            max_tiles,
        }
    }

    /// Serves the post-processing form `form` (`RealESRGAN_x4plus`, …) with `net`.
    pub fn with_upscaler(mut self, form: &str, net: RrdbNet) -> Self {
        self.post = self.post.with_upscaler(form, net);
        self
    }

    /// Serves a form for each of `post`'s models (upscalers, `strip_background`).
    pub fn with_post_processors(mut self, post: PostProcessors) -> Self {
        self.post = post;
        self
    }

    /// Serves `nsfw`: an image is NSFW when `classifier` scores it above `threshold`.
    pub fn with_nsfw(mut self, classifier: Box<dyn NsfwClassifier>, threshold: f32) -> Self {
        self.nsfw = Some((classifier, threshold));
        self
    }

    /// Serves `strip_background` with `net`.
    pub fn with_background_remover(mut self, net: U2Net) -> Self {
        self.post = self.post.with_background_remover(net);
        self
    }

    /// Serves `caption` with `captioner`.
    pub fn with_captioner(mut self, captioner: Captioner) -> Self {
        self.captioner = Some(captioner);
        self
    }

    /// `caption`: the caption as a string, submitted as `{"caption": text}`.
    fn caption(&self, image: &RgbImage) -> Result<FormResult, String> {
        let captioner = self.captioner.as_ref().ok_or("this worker has no captioning model")?;
        Ok(FormResult::Value(serde_json::Value::String(captioner.caption(image)?)))
    }

    fn check_tiles(&self, image: &RgbImage) -> Result<(), String> {
        let tiles = tiles(image.width, image.height);
        if tiles > self.max_tiles {
            return Err(format!(
                "the image covers {tiles} tiles of 512×512, over this worker's {}",
                self.max_tiles
            ));
        }
        Ok(())
    }

    fn strip_background(&self, image: &RgbImage) -> Result<FormResult, String> {
        let net = self.post.background().ok_or("this worker has no background remover")?;
        self.check_tiles(image)?;
        Ok(FormResult::Image(encode_rgba_webp(&net.strip_background(image)?)?))
    }

    fn upscale(&self, net: &RrdbNet, image: &RgbImage) -> Result<FormResult, String> {
        self.check_tiles(image)?;
        Ok(FormResult::Image(encode_webp(&net.upscale(image)?)?))
    }

    fn nsfw(&self, image: &RgbImage) -> Result<FormResult, String> {
        let (classifier, threshold) = self.nsfw.as_ref().ok_or("this worker has no NSFW model")?;
        let p = classifier.nsfw_probability(image)?;
        Ok(FormResult::Value(serde_json::Value::Bool(p > *threshold)))
    }
}

/// Decodes a source image (PNG, JPEG or WebP; alpha dropped).
pub fn decode(bytes: &[u8]) -> Result<RgbImage, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("the source image cannot be read: {e}"))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("the source image cannot be decoded: {e}"))?;
    if w.max(h) > MAX_SOURCE_SIDE {
        return Err(format!("the source image is {w}×{h}, over {MAX_SOURCE_SIDE} pixels a side"));
    }
    let decoded = image::load_from_memory(bytes)
        .map_err(|e| format!("the source image cannot be decoded: {e}"))?
        .to_rgb8();
    Ok(RgbImage {
        width: decoded.width() as usize,
        height: decoded.height() as usize,
        pixels: decoded.into_raw(),
    })
}

/// 512×512 tiles an image of `width` × `height` counts as: its area in tiles, rounded up (at
/// least 1), as the horde counts them when it matches a form to a worker's `max_tiles` and prices
/// it (the public horde's `image_tiles`). Counting whole tiles per side instead would refuse forms
/// the horde hands out (a 600×200 image is 1 tile to the horde, 2 per side).
pub fn tiles(width: usize, height: usize) -> i64 {
    ((width * height).div_ceil(512 * 512) as i64).max(1)
}

impl AlchemyBackend for Alchemist {
    fn forms(&self) -> Vec<String> {
        let mut forms = vec![];
        if self.nsfw.is_some() {
            forms.push("nsfw".to_string());
        }
        forms.extend(self.post.names());
        if self.captioner.is_some() {
            forms.push("caption".to_string());
        }
        forms
    }

    fn max_tiles(&self) -> i64 {
        self.max_tiles
    }

    fn run(&self, job: &AlchemyJob) -> Result<FormResult, String> {
        let image = decode(&job.source)?;
        match job.form.as_str() {
            "nsfw" => self.nsfw(&image),
            "strip_background" => self.strip_background(&image),
            "caption" => self.caption(&image),
            other => match self.post.upscaler(other) {
                Some(net) => self.upscale(net, &image),
                None => Err(format!("this worker does not run the form {other}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(f32);

    impl NsfwClassifier for Fixed {
        fn nsfw_probability(&self, _image: &RgbImage) -> Result<f32, String> {
            Ok(self.0)
        }
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(width, height, image::Rgb([10, 20, 30]))
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("png");
        out.into_inner()
    }

    fn job(form: &str, source: Vec<u8>) -> AlchemyJob {
        AlchemyJob {
            id: "f".into(),
            form: form.into(),
            payload: Default::default(),
            source,
        }
    }

    #[test]
    fn nsfw_answers_by_the_threshold_and_other_forms_are_refused() {
        let none = Alchemist::new(DEFAULT_MAX_TILES);
        assert!(none.forms().is_empty());
        assert!(none.run(&job("nsfw", png(8, 8))).is_err());
        let low = Alchemist::new(4).with_nsfw(Box::new(Fixed(0.2)), 0.7);
        let high = Alchemist::new(4).with_nsfw(Box::new(Fixed(0.9)), 0.7);
        assert_eq!((low.forms(), low.max_tiles()), (vec!["nsfw".to_string()], 4));
        assert_eq!(low.run(&job("nsfw", png(8, 8))), Ok(FormResult::Value(serde_json::json!(false))));
        assert_eq!(high.run(&job("nsfw", png(8, 8))), Ok(FormResult::Value(serde_json::json!(true))));
        assert!(high.run(&job("caption", png(8, 8))).is_err());
        assert!(high.run(&job("nsfw", b"not an image".to_vec())).is_err());
    }

    #[test]
    fn tiles_round_up() {
        assert_eq!((tiles(512, 512), tiles(513, 512), tiles(1024, 1025), tiles(1, 1)), (1, 2, 5, 1));
        // By area, as the horde counts: not whole tiles per side.
        assert_eq!((tiles(600, 200), tiles(2049, 1900), tiles(0, 0)), (1, 15, 1));
    }
}

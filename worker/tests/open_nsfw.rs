//! The open_nsfw classifier imported from its ONNX file (fetched by `scripts/fetch-models.sh`)
//! against onnxruntime's scores (`compat/open_nsfw_fixtures.py`). Without the file the tests skip
//! with a message, unless HORDE_REQUIRE_MODELS=1 (set by `.ci/run`).

mod common;

use std::path::PathBuf;

use burn::prelude::*;
use horde_worker::diffusion::pipeline::RgbImage;
use horde_worker::diffusion::weights::Checkpoint;
use horde_worker::image_model::NsfwClassifier;
use horde_worker::nsfw::OpenNsfw;

fn model_path() -> Option<PathBuf> {
    common::fetched_model("open-nsfw.onnx", None)
}

fn fixture() -> Checkpoint {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/open-nsfw.safetensors");
    Checkpoint::open_files(&[path], &Device::flex()).expect("fixture loads")
}

fn image(ck: &Checkpoint, name: &str) -> RgbImage {
    let (values, shape) = ck.values(name).expect("image");
    RgbImage {
        width: shape[1],
        height: shape[0],
        pixels: values.iter().map(|&v| v as u8).collect(),
    }
}

#[test]
fn the_network_matches_onnxruntime() {
    let Some(path) = model_path() else { return };
    let model = OpenNsfw::load(&path).expect("open_nsfw loads");
    let ck = fixture();
    for i in 0..3 {
        let crop = image(&ck, &format!("crop.{i}"));
        let got = model.run(model.input_from_crop(&crop.pixels)).expect("runs")[0];
        let want = ck.values(&format!("crop.{i}.scores")).expect("scores").0;
        for k in 0..2 {
            assert!((got[k] - want[k]).abs() < 1e-4, "image {i}: {got:?} vs onnxruntime {want:?}");
        }
    }
}

#[test]
fn the_whole_classification_is_close_to_the_package() {
    let Some(path) = model_path() else { return };
    let model = OpenNsfw::load(&path).expect("open_nsfw loads");
    let ck = fixture();
    for i in 0..3 {
        let full = image(&ck, &format!("full.{i}"));
        let got = model.nsfw_probability(&full).expect("classifies");
        let want = ck.values(&format!("full.{i}.scores")).expect("scores").0[1];
        // The resize and JPEG codec are the image crate's, not Pillow's and libjpeg's.
        eprintln!("image {i}: nsfw {got:.5}, the package {want:.5}");
        assert!((got - want).abs() < 0.03, "image {i}: {got} vs the package's {want}");
    }
}

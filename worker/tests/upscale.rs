//! The RRDBNet upscaler against an independent numpy forward pass (`compat/rrdbnet_reference.py`)
//! on tiny random-weight networks the test writes (x4 with two blocks, x2 with pixel-unshuffle),
//! and tiled upscaling against one pass over the whole image.

mod common;
mod numpy_reference;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::prelude::Device;
use horde_worker::diffusion::pipeline::RgbImage;
use horde_worker::upscale::RrdbNet;
use rand::{Rng, SeedableRng};

fn random_image(width: usize, height: usize, seed: u64) -> RgbImage {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    RgbImage {
        width,
        height,
        pixels: (0..width * height * 3).map(|_| rng.random::<u8>()).collect(),
    }
}

/// `[1, 3, h, w]` in [0, 1], as the network takes it.
fn planes(image: &RgbImage) -> Vec<f32> {
    let mut out = vec![0f32; image.pixels.len()];
    let plane = image.width * image.height;
    for (i, &p) in image.pixels.iter().enumerate() {
        out[(i % 3) * plane + i / 3] = f32::from(p) / 255.0;
    }
    out
}

fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rrdbnet");
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// The numpy reference's output for `file` (weights and `input`).
fn reference(python: &Path, file: &Path) -> Vec<f32> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/rrdbnet_reference.py");
    let out = file.with_extension("out.f32");
    let status = Command::new(python)
        .arg(&script)
        .arg(file)
        .arg(&out)
        .env("OPENBLAS_NUM_THREADS", "1")
        .status()
        .expect("run the numpy reference");
    assert!(status.success(), "the numpy reference failed");
    std::fs::read(&out)
        .expect("reference output")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn matches_numpy(scale: usize, blocks: usize, (width, height): (usize, usize)) {
    let Some(python) = numpy_reference::python() else { return };
    let image = random_image(width, height, 7 + scale as u64);
    let file = dir().join(format!("x{scale}.safetensors"));
    common::write_tiny_rrdbnet(
        &file,
        scale,
        blocks,
        scale as u64,
        &[("input", vec![1, 3, height, width], planes(&image))],
    );
    let net = RrdbNet::load(&file, &Device::flex()).expect("the tiny RRDBNet loads");
    assert_eq!(net.scale(), scale);
    let got = net.upscale_values(&image, 1 << 20, 0).expect("upscales");
    let want = reference(&python, &file);
    assert_eq!(got.len(), 3 * width * height * scale * scale);
    common::assert_close(&format!("x{scale} output"), &got, &want, 1e-4);
}

#[test]
fn x4_matches_numpy() {
    matches_numpy(4, 2, (13, 9));
}

#[test]
fn x2_with_pixel_unshuffle_matches_numpy() {
    matches_numpy(2, 1, (12, 10));
}

#[test]
fn tiles_with_enough_context_give_the_whole_image_pass() {
    let file = dir().join("tiles.safetensors");
    common::write_tiny_rrdbnet(&file, 4, 1, 11, &[]);
    let net = RrdbNet::load(&file, &Device::flex()).expect("loads");
    let image = random_image(21, 14, 3);
    let whole = net.upscale_values(&image, 1 << 20, 0).expect("whole");
    // One block's receptive field is 17 input pixels each way: 20 of context covers it.
    let tiled = net.upscale_values(&image, 8, 20).expect("tiled");
    common::assert_close("tiled", &tiled, &whole, 1e-5);
    // Without context the tiles' borders differ: the tiling is real.
    let bare = net.upscale_values(&image, 8, 0).expect("bare");
    assert!(bare.iter().zip(&whole).any(|(a, b)| (a - b).abs() > 1e-3));
    let out = net.upscale(&image).expect("upscale");
    assert_eq!((out.width, out.height, out.pixels.len()), (84, 56, 84 * 56 * 3));
    // x2 on odd sizes pads by repeating the edge and crops it off again.
    let file = dir().join("odd.safetensors");
    common::write_tiny_rrdbnet(&file, 2, 1, 5, &[]);
    let net = RrdbNet::load(&file, &Device::flex()).expect("loads");
    let out = net.upscale(&random_image(7, 5, 1)).expect("odd");
    assert_eq!((out.width, out.height), (14, 10));
}

//! U²-Net (background removal) against an independent numpy forward pass
//! (`compat/u2net_reference.py`) on a tiny random-weight network the test writes, at a size whose
//! pooling rounds odd sides up; and the cutout's alpha.

mod common;
mod numpy_reference;

use std::path::Path;
use std::process::Command;

use burn::prelude::*;
use horde_worker::diffusion::pipeline::RgbImage;
use horde_worker::u2net::{cutout, U2Net};
use rand::{Rng, SeedableRng};

#[test]
fn the_saliency_map_matches_numpy() {
    let Some(python) = numpy_reference::python() else { return };
    let size = 48;
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let input: Vec<f32> = (0..3 * size * size).map(|_| rng.random_range(-2.0..2.0)).collect();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("u2net");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("tiny.safetensors");
    common::write_tiny_u2net(&file, 9, &[("input", vec![1, 3, size, size], input.clone())]);
    let net = U2Net::load(&file, &Device::flex()).expect("the tiny U²-Net loads");
    let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, size, size]), &Device::flex());
    let got: Vec<f32> = net.forward(x).into_data().try_into_vec::<f32>().expect("f32");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/u2net_reference.py");
    let out = dir.join("tiny.out.f32");
    let status = Command::new(&python)
        .arg(&script)
        .arg(&file)
        .arg(&out)
        .env("OPENBLAS_NUM_THREADS", "1")
        .status()
        .expect("run the numpy reference");
    assert!(status.success(), "the numpy reference failed");
    let want: Vec<f32> = std::fs::read(&out)
        .expect("reference output")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(got.len(), size * size);
    common::assert_close("saliency", &got, &want, 1e-4);
    // Not a constant map: the comparison means something.
    let (lo, hi) = want.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(hi - lo > 1e-3, "map spans {lo}..{hi}");
    // The whole pipeline gives a mask of the image's size.
    let image = RgbImage {
        width: 30,
        height: 20,
        pixels: (0..30 * 20 * 3).map(|i| (i * 7 % 256) as u8).collect(),
    };
    let mask = net.mask(&image, 32).expect("mask");
    assert_eq!(mask.len(), 600);
    assert!(mask.iter().any(|&a| a > 128) && mask.iter().any(|&a| a < 128), "a stretched mask");
}

#[test]
fn the_cutout_fades_colour_with_the_mask() {
    let image = RgbImage {
        width: 2,
        height: 1,
        pixels: vec![200, 100, 50, 10, 20, 30],
    };
    let cut = cutout(&image, &[255, 0]).expect("cutout");
    assert_eq!(cut.into_raw(), vec![200, 100, 50, 255, 0, 0, 0, 0]);
    let half = cutout(&image, &[128, 128]).expect("cutout");
    assert_eq!(half.into_raw()[..4], [100, 50, 25, 128]);
}

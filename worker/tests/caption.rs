//! BLIP captioning (`caption` form) against an independent numpy forward pass
//! (`compat/blip_reference.py`) on a tiny random-weight checkout the test writes: the decoder's
//! logits for a token sequence, the greedy caption, the image's preprocessing, and the caption
//! detokenized without special tokens.

mod common;
mod numpy_reference;

use std::path::Path;
use std::process::Command;

use burn::prelude::*;
use horde_worker::caption::{normalized_pixels, Captioner};
use horde_worker::diffusion::pipeline::RgbImage;
use rand::{Rng, SeedableRng};

const SIZE: usize = 32;

#[test]
fn the_logits_and_the_greedy_caption_match_numpy() {
    let Some(python) = numpy_reference::python() else { return };
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("blip");
    let model_dir = base.join("tiny");
    common::write_tiny_blip(&model_dir, 11);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let pixels: Vec<f32> = (0..3 * SIZE * SIZE).map(|_| rng.random_range(-2.0..2.0)).collect();
    let ids: Vec<u32> = vec![38, 4, 5, 11, 7, 8, 12, 3];
    let inputs = base.join("inputs.safetensors");
    common::write_safetensors(
        &inputs,
        vec![
            ("pixel_values".into(), vec![1, 3, SIZE, SIZE], pixels.clone()),
            ("input_ids".into(), vec![ids.len()], ids.iter().map(|&i| i as f32).collect()),
        ],
    );
    let device = Device::flex();
    let captioner = Captioner::load(&model_dir, &device).expect("the tiny BLIP loads");
    let model = captioner.model();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, SIZE, SIZE]), &device);
    let image = model.encode_image(x).expect("image embeddings");
    let got: Vec<f32> = model
        .logits(&ids, &image)
        .expect("logits")
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32");
    let greedy = model.greedy(&image, 12).expect("greedy");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compat/blip_reference.py");
    let out = base.join("reference");
    let status = Command::new(&python)
        .arg(&script)
        .arg(&model_dir)
        .arg(&inputs)
        .arg(&out)
        .arg("12")
        .env("OPENBLAS_NUM_THREADS", "1")
        .status()
        .expect("run the numpy reference");
    assert!(status.success(), "the numpy reference failed");
    let want: Vec<f32> = std::fs::read(out.with_extension("f32"))
        .expect("reference logits")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(got.len(), ids.len() * 40);
    common::assert_close("BLIP logits", &got, &want, 1e-4);
    // Positions see different prefixes: the comparison covers the causal mask.
    assert!((got[0] - got[40]).abs() > 1e-3);
    let want_greedy: Vec<u32> =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("greedy.json")).expect("greedy")).expect("json");
    assert_eq!(greedy, want_greedy);
    assert!(!greedy.is_empty(), "a caption of at least one token");
}

#[test]
fn images_are_resized_and_normalized_as_blip_does() {
    // A flat colour stays flat through the bicubic resize; each channel is (v/255 - mean)/std.
    let image = RgbImage {
        width: 50,
        height: 20,
        pixels: [255u8, 0, 128].repeat(50 * 20),
    };
    let x = normalized_pixels(&image, SIZE).expect("pixels");
    assert_eq!(x.len(), 3 * SIZE * SIZE);
    let want = [
        (1.0 - 0.481_454_66) / 0.268_629_54,
        (0.0 - 0.457_827_5) / 0.261_302_6,
        (128.0 / 255.0 - 0.408_210_73) / 0.275_777_1,
    ];
    for c in 0..3 {
        let plane = &x[c * SIZE * SIZE..(c + 1) * SIZE * SIZE];
        assert!(plane.iter().all(|v| (v - want[c]).abs() < 1e-4), "channel {c}: {}", plane[0]);
    }
    let bad = RgbImage {
        width: 4,
        height: 4,
        pixels: vec![0; 5],
    };
    assert!(normalized_pixels(&bad, SIZE).is_err());
}

#[test]
fn a_caption_is_the_greedy_tokens_as_words() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("blip-words");
    common::write_tiny_blip(&dir, 11);
    let device = Device::flex();
    let captioner = Captioner::load(&dir, &device).expect("the tiny BLIP loads");
    let image = RgbImage {
        width: 40,
        height: 30,
        pixels: (0..40 * 30 * 3).map(|i| (i * 13 % 256) as u8).collect(),
    };
    let caption = captioner.caption(&image).expect("caption");
    let size = captioner.model().image_size();
    let x = Tensor::<4>::from_data(
        TensorData::new(normalized_pixels(&image, size).expect("pixels"), [1, 3, size, size]),
        &device,
    );
    let ids = captioner
        .model()
        .greedy(&captioner.model().encode_image(x).expect("embeds"), 30)
        .expect("greedy");
    // Special tokens are dropped, `##` pieces join the word before them.
    let mut words: Vec<String> = vec![];
    for &id in &ids {
        let token = common::TINY_BLIP_VOCAB[id as usize];
        match token.strip_prefix("##") {
            Some(piece) => match words.last_mut() {
                Some(w) => w.push_str(piece),
                None => words.push(piece.to_string()),
            },
            None if token.starts_with('[') => {}
            None => words.push(token.to_string()),
        }
    }
    assert!(!words.is_empty(), "greedy tokens {ids:?}");
    assert_eq!(caption, words.join(" "));
}

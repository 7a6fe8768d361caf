use super::*;

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    random_bytes(n * 2, seed)
        .chunks_exact(2)
        .map(|b| (u16::from_le_bytes([b[0], b[1]]) as f32 / 65535.0 - 0.5) * 3.0)
        .collect()
}

const BLOCK_KINDS: [TensorType; 11] = [
    TensorType::Q4_0,
    TensorType::Q4_1,
    TensorType::Q5_0,
    TensorType::Q5_1,
    TensorType::Q8_0,
    TensorType::Q2_K,
    TensorType::Q3_K,
    TensorType::Q4_K,
    TensorType::Q5_K,
    TensorType::Q6_K,
    TensorType::Q8_K,
];

#[test]
fn blocks_unpack_and_pack_back_to_the_same_bytes() {
    for kind in BLOCK_KINDS {
        let bytes = kind.block().1;
        for seed in 0..20 {
            let raw = random_bytes(bytes, seed);
            let mut block = Unpacked::zero();
            unpack(kind, &raw, &mut block);
            let mut again = vec![];
            pack(kind, &block, &mut again);
            // Q8_K's sums per 16 are derived from the values: random bytes do not hold them.
            let compared = if kind == TensorType::Q8_K { 260 } else { bytes };
            assert_eq!(again.len(), bytes, "{kind:?}");
            if raw[..compared] != again[..compared] {
                // f16 NaN payloads may not survive f32; only compare finite scales' blocks.
                let mut values = vec![];
                dequantize_into(kind, &raw, &mut values);
                if values.iter().all(|v| v.is_finite()) {
                    panic!("{kind:?} seed {seed}: {raw:?} packed back as {again:?}");
                }
            }
        }
    }
}

#[test]
fn known_blocks_decode_to_ggml_values() {
    // Q4_0: d = 0.5, byte 0x71: element 0 = (1 - 8)·0.5, element 16 = (7 - 8)·0.5.
    let mut raw = vec![0x00, 0x38, 0x71];
    raw.extend([0x88; 15]);
    let mut out = vec![];
    dequantize_into(TensorType::Q4_0, &raw, &mut out);
    assert_eq!((out[0], out[16], out[1]), (-3.5, -0.5, 0.0));
    // Q5_0: d = 1, high bit of element 0 set, bits of element 16 too: 16 + 1 - 16, 16 + 2 - 16.
    let mut raw = vec![0x00, 0x3c];
    raw.extend((1u32 | 1 << 16).to_le_bytes());
    raw.push(0x21);
    raw.extend([0; 15]);
    out.clear();
    dequantize_into(TensorType::Q5_0, &raw, &mut out);
    assert_eq!((out[0], out[16], out[1], out[17]), (1.0, 2.0, -16.0, -16.0));
    // Q6_K: d = 1, scale 2 for elements 0..16, ql 0x0f and qh 0: (15 - 32)·2.
    let mut raw = vec![0x0f; 128];
    raw.extend([0; 64]);
    raw.extend([2; 16]);
    raw.extend([0x00, 0x3c]);
    out.clear();
    dequantize_into(TensorType::Q6_K, &raw, &mut out);
    assert_eq!((out.len(), out[0], out[64]), (256, -34.0, -64.0));
    // BF16 is the upper half of an f32.
    out.clear();
    dequantize_into(TensorType::BF16, &[0x80, 0x3f, 0x40, 0xc0], &mut out);
    assert_eq!(out, [1.0, -3.0]);
}

#[test]
fn encoding_round_trips_within_the_formats_step() {
    // Largest error allowed, as a fraction of the largest |value|: half a step of the format's
    // values (step = range / levels), plus for K-quants half a step of the quantized sub-block
    // scales and minimums, plus the f16 rounding of the scales.
    let symmetric = |half: f32| 0.5 / (half - 0.5) + 1e-3;
    let symmetric_k = |half: f32, levels: f32| (0.5 + half / (2.0 * levels)) / (half - 0.5) + 1e-3;
    let with_min_k = |top: f32, levels: f32| 1.0 / top + (2.0 / top + 1.0) / (2.0 * levels) + 1e-3;
    let cases = [
        (TensorType::F32, 0.0),
        (TensorType::F16, 1e-3),
        (TensorType::BF16, 4e-3),
        (TensorType::Q8_0, 0.5 / 127.0 + 1e-3),
        (TensorType::Q8_K, 0.5 / 127.0 + 1e-5),
        (TensorType::Q6_K, symmetric_k(32.0, 127.0)),
        (TensorType::Q5_0, symmetric(16.0)),
        (TensorType::Q5_1, 1.0 / 31.0 + 1e-3),
        (TensorType::Q5_K, with_min_k(31.0, 63.0)),
        (TensorType::Q4_0, symmetric(8.0)),
        (TensorType::Q4_1, 1.0 / 15.0 + 1e-3),
        (TensorType::Q4_K, with_min_k(15.0, 63.0)),
        (TensorType::Q3_K, symmetric_k(4.0, 31.0)),
        (TensorType::Q2_K, with_min_k(3.0, 15.0)),
    ];
    for (kind, tolerance) in cases {
        let xs = values(512, kind.code() as u64 + 1);
        let raw = encode(kind, &xs);
        assert_eq!(raw.len(), 512 / kind.block().0 * kind.block().1, "{kind:?}");
        let mut back = vec![];
        dequantize_into(kind, &raw, &mut back);
        let err = xs.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let amax = xs.iter().fold(0f32, |a, x| a.max(x.abs()));
        assert!(err <= tolerance * amax, "{kind:?}: off by {err}, allowed {}", tolerance * amax);
        // A block of zeros stays zeros, and a partial block is padded.
        let mut zeros = vec![];
        dequantize_into(kind, &encode(kind, &[0.0; 3]), &mut zeros);
        assert!(zeros.iter().all(|z| *z == 0.0), "{kind:?}: {zeros:?}");
    }
}

//! `DeviceMatrix` on burn's flex CPU backend (every build has it): the host-dequantized path.
//! The kernels themselves are tested on wgpu in `tests/gpu_kernels.rs`.

use super::*;
use crate::gguf::TensorType;
use crate::quants::encode;

fn sample(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 8;
            (v % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

#[test]
fn flex_matrices_are_decoded_on_the_host_and_multiply_like_the_host() {
    let device = Device::flex();
    let (rows, cols, tokens) = (5, 256, 3);
    for kind in [TensorType::Q4_K, TensorType::Q8_0, TensorType::F16] {
        let m = QuantMatrix::new(kind, rows, cols, encode(kind, &sample(rows * cols, 1))).expect("matrix");
        let x = sample(tokens * cols, 2);
        let mut expected = vec![0f32; tokens * rows];
        m.matmul(&x, &mut expected);
        let d = DeviceMatrix::upload(&m, &device).expect("upload");
        assert!(!d.is_encoded());
        assert_eq!((d.rows(), d.cols(), d.device_bytes()), (rows, cols, rows * cols * 4));
        let x = Tensor::<2>::from_data(TensorData::new(x, [tokens, cols]), &device);
        let got = d.matmul(x).into_data().try_to_vec::<f32>().expect("f32");
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() < 1e-3 * (1.0 + e.abs()), "{kind:?}: {g} vs {e}");
        }
    }
}

#[test]
fn matrices_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<DeviceMatrix>();
}

#[test]
fn tiled_matrices_are_refused() {
    let m = QuantMatrix::new(TensorType::Q4_0, 16, 32, encode(TensorType::Q4_0, &sample(16 * 32, 3)))
        .expect("matrix")
        .tiled();
    assert!(DeviceMatrix::upload(&m, &Device::flex()).is_err());
}

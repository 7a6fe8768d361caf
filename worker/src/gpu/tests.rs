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

#[test]
fn attention_launch_shapes_fit_the_shared_memory() {
    use super::attention::launch_shape;
    let budget = (32 << 10) - 512;
    // Gemma 3 270M decode (4 query heads per key/value head of 256), SmolLM2 prefill, SD's VAE.
    assert_eq!(launch_shape(4, 256, 256, budget), Some((4, 16)));
    assert_eq!(launch_shape(76, 64, 64, budget), Some((8, 32)));
    assert_eq!(launch_shape(4096, 512, 512, budget), Some((1, 8)));
    assert_eq!(launch_shape(1, 20_000, 20_000, budget), None);
    for total in [1, 3, 8, 100] {
        for (d, vd) in [
            (16, 16),
            (40, 40),
            (64, 64),
            (80, 80),
            (128, 128),
            (160, 160),
            (256, 256),
            (512, 512),
            (64, 128),
        ] {
            let (rows, tile) = launch_shape(total, d, vd, budget).expect("fits");
            assert!(rows.is_power_of_two() && rows <= total.next_power_of_two() && rows <= 8);
            assert!(tile.is_power_of_two() && tile <= 32);
            let bytes = 4 * (rows * d + tile * (d + 4).max(vd) + rows * 32);
            assert!(bytes <= budget, "{total} rows, {d}/{vd}: {bytes} bytes");
        }
    }
}

#[test]
fn fused_attention_is_for_cubecl_devices_only() {
    use super::attention::{fused_attention, has_fused_attention, AttentionMask};
    let device = Device::flex();
    assert!(!has_fused_attention(&device));
    let t = || Tensor::<4>::zeros([1, 2, 1, 16], &device);
    assert!(fused_attention(t(), t(), t(), 2, 0.25, AttentionMask::Full, DType::F32).is_none());
}

//! Rotary embeddings on burn tensors: the cos/sin of a batch's rows (each row its own sequence's
//! position) and rotating heads by them.

use burn::prelude::*;

use super::super::config::{LlamaConfig, Rotary};
use super::super::rope::Frequencies;

/// cos and sin `[rows, dims / 2]` of the positions of a batch's rows: for each sequence
/// `(start, tokens)`, positions `start..start + tokens`, sequences one after the other.
pub(super) fn batch_angles(f: &Frequencies, half: usize, sequences: &[(usize, usize)], device: &Device) -> (Tensor<2>, Tensor<2>) {
    let rows: usize = sequences.iter().map(|(_, t)| t).sum();
    let (mut cos, mut sin) = (Vec::with_capacity(rows * half), Vec::with_capacity(rows * half));
    for &(start, t) in sequences {
        let (c, s) = f.angles(start, t);
        cos.extend(c);
        sin.extend(s);
    }
    (
        Tensor::from_data(TensorData::new(cos, [rows, half]), device),
        Tensor::from_data(TensorData::new(sin, [rows, half]), device),
    )
}

/// Rotates `[rows, heads, head_dim]` by the angles of its rows (`cos`, `sin`: `[rows, dims/2]`).
pub(super) fn rotate(c: &LlamaConfig, x: Tensor<3>, cos: &Tensor<2>, sin: &Tensor<2>) -> Tensor<3> {
    let [t, h, hd] = x.dims();
    let (dims, half) = (c.rope.dims, c.rope.dims / 2);
    let rotated = x.clone().narrow(2, 0, dims);
    let rotated = match c.rope.style {
        Rotary::Interleaved => {
            let (cos, sin) = (cos.clone().reshape([t, 1, half, 1]), sin.clone().reshape([t, 1, half, 1]));
            let pairs = rotated.reshape([t, h, half, 2]);
            let x0 = pairs.clone().narrow(3, 0, 1);
            let x1 = pairs.narrow(3, 1, 1);
            let r0 = x0.clone() * cos.clone() - x1.clone() * sin.clone();
            let r1 = x0 * sin + x1 * cos;
            Tensor::cat(vec![r0, r1], 3).reshape([t, h, dims])
        }
        Rotary::RotateHalf => {
            let (cos, sin) = (cos.clone().reshape([t, 1, half]), sin.clone().reshape([t, 1, half]));
            let x0 = rotated.clone().narrow(2, 0, half);
            let x1 = rotated.narrow(2, half, half);
            let r0 = x0.clone() * cos.clone() - x1.clone() * sin.clone();
            let r1 = x0 * sin + x1 * cos;
            Tensor::cat(vec![r0, r1], 2)
        }
    };
    if dims == hd {
        rotated
    } else {
        Tensor::cat(vec![rotated, x.narrow(2, dims, hd - dims)], 2)
    }
}

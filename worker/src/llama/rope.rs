//! Rotary position embeddings: the frequencies of a model's layers (with Llama 3's per-frequency
//! divisors and linear scaling), the angles of positions, and rotating heads by them. Both
//! engines take their cos/sin from here.

use super::config::{LlamaConfig, Rotary};
use super::Weights;
use crate::gguf::GgufError;

/// Angle per position of each rotated pair: `scale · base^(-2i/dims) / factor_i`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Frequencies(Vec<f64>);

impl Frequencies {
    fn new(base: f64, dims: usize, position_scale: f64, divisors: Option<&[f32]>) -> Self {
        Self(
            (0..dims / 2)
                .map(|i| {
                    let divisor = divisors.and_then(|d| d.get(i)).map_or(1.0, |d| *d as f64);
                    position_scale * base.powf(-((2 * i) as f64) / dims as f64) / divisor
                })
                .collect(),
        )
    }

    /// cos and sin of positions `start..start + n`, `[n][dims / 2]` each.
    pub(super) fn angles(&self, start: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
        let mut cos = Vec::with_capacity(n * self.0.len());
        let mut sin = Vec::with_capacity(n * self.0.len());
        for pos in start..start + n {
            for f in &self.0 {
                let (s, c) = (pos as f64 * f).sin_cos();
                cos.push(c as f32);
                sin.push(s as f32);
            }
        }
        (cos, sin)
    }
}

/// The frequencies of a model's global layers, and of its local (sliding-window) layers.
#[derive(Debug, Clone)]
pub(super) struct LayerFrequencies {
    pub global: Frequencies,
    pub local: Option<Frequencies>,
}

impl LayerFrequencies {
    /// Reads `rope_freqs.weight` (Llama 3's divisors) if the model has it.
    pub(super) fn load(c: &LlamaConfig, w: &dyn Weights) -> Result<Self, GgufError> {
        for long_rope in ["rope_factors_long.weight", "rope_factors_short.weight"] {
            if w.has(long_rope) {
                return Err(GgufError::Invalid(format!(
                    "{long_rope}: LongRoPE scaling (Phi-3 128k models) is not supported; use a 4k-context model"
                )));
            }
        }
        let divisors = match w.tensor("rope_freqs.weight")? {
            Some((d, _)) if d.len() == c.rope.dims / 2 => Some(d),
            Some((d, shape)) => {
                return Err(GgufError::Invalid(format!(
                    "tensor rope_freqs.weight has shape {shape:?} ({} values), expected [{}]",
                    d.len(),
                    c.rope.dims / 2
                )))
            }
            None => None,
        };
        Ok(Self {
            global: Frequencies::new(c.rope.base, c.rope.dims, c.rope.position_scale, divisors.as_deref()),
            local: c
                .sliding_window
                .as_ref()
                .map(|s| Frequencies::new(s.local_base, c.rope.dims, 1.0, None)),
        })
    }
}

/// Rotates each head of `head_dim` values in `v` in place by one position's angles (`cos`,
/// `sin`: `[dims / 2]`); elements past `2 · cos.len()` in a head stay as they are.
pub(super) fn rotate(style: Rotary, v: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in v.chunks_exact_mut(head_dim) {
        for i in 0..half {
            let (a, b) = match style {
                Rotary::Interleaved => (2 * i, 2 * i + 1),
                Rotary::RotateHalf => (i, i + half),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos[i] - x1 * sin[i];
            head[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divisors_and_scaling_slow_the_rotation() {
        let plain = Frequencies::new(10_000.0, 4, 1.0, None);
        assert_eq!(plain.0, vec![1.0, 0.01]);
        let divided = Frequencies::new(10_000.0, 4, 0.5, Some(&[1.0, 4.0]));
        assert_eq!(divided.0, vec![0.5, 0.00125]);
        let (cos, sin) = plain.angles(2, 1);
        assert!((cos[0] - 2f32.cos()).abs() < 1e-6 && (sin[1] - 0.02f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn styles_pair_different_elements() {
        let (cos, sin) = ([0.0f32, 1.0], [1.0f32, 0.0]);
        // A quarter turn of the first pair only.
        let mut v = [1.0f32, 2.0, 3.0, 4.0];
        rotate(Rotary::Interleaved, &mut v, 4, &cos, &sin);
        assert_eq!(v, [-2.0, 1.0, 3.0, 4.0]);
        let mut v = [1.0f32, 2.0, 3.0, 4.0];
        rotate(Rotary::RotateHalf, &mut v, 4, &cos, &sin);
        assert_eq!(v, [-3.0, 2.0, 1.0, 4.0]);
        // Partial rotary: only the first 2 of 4 elements rotate.
        let mut v = [1.0f32, 2.0, 3.0, 4.0];
        rotate(Rotary::RotateHalf, &mut v, 4, &cos[..1], &sin[..1]);
        assert_eq!(v, [-2.0, 1.0, 3.0, 4.0]);
    }
}

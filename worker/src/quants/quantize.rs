//! A simple quantizer: each block's scales from its extreme values, each value rounded to the
//! nearest step. Enough for tests and tools to write any encoding; llama.cpp searches for scales
//! with smaller errors.

use super::{Geometry, Unpacked};
use crate::gguf::TensorType;

/// `x` through f16, as the file will hold it.
fn via_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// The value of largest magnitude, with its sign.
fn extreme(xs: &[f32]) -> f32 {
    xs.iter().fold(0f32, |a, x| if x.abs() > a.abs() { *x } else { a })
}

fn round_clamped(x: f32, lo: i32, hi: i32) -> i8 {
    if x.is_finite() {
        (x.round() as i32).clamp(lo, hi) as i8
    } else {
        0
    }
}

/// One block of `kind` (`xs` has the block's elements) in unpacked form.
pub(super) fn quantize(kind: TensorType, geo: Geometry, xs: &[f32]) -> Unpacked {
    let mut b = Unpacked::zero();
    // Unsigned values 0..=top (with minimums), or signed -half..half-1 (without).
    let top = (1i32 << geo.bits) - 1;
    let half = 1i32 << (geo.bits - 1);
    match kind {
        TensorType::Q8_0 | TensorType::Q8_K => {
            let amax = xs.iter().fold(0f32, |a, x| a.max(x.abs()));
            b.d = if kind == TensorType::Q8_0 {
                via_f16(amax / 127.0)
            } else {
                amax / 127.0
            };
            let inv = if b.d > 0.0 { 1.0 / b.d } else { 0.0 };
            xs.iter()
                .zip(b.q.iter_mut())
                .for_each(|(x, q)| *q = round_clamped(x * inv, -127, 127));
        }
        TensorType::Q4_0 | TensorType::Q5_0 => {
            // The extreme value maps to -half + 1/2 (rounded to -half), the other side at most to
            // half - 1/2 (clamped to half - 1): no value is off by more than half a step.
            b.d = via_f16(extreme(xs) / -(half as f32 - 0.5));
            let inv = if b.d != 0.0 { 1.0 / b.d } else { 0.0 };
            xs.iter()
                .zip(b.q.iter_mut())
                .for_each(|(x, q)| *q = round_clamped(x * inv, -half, half - 1));
        }
        TensorType::Q4_1 | TensorType::Q5_1 => {
            let min = xs.iter().fold(f32::INFINITY, |a, x| a.min(*x));
            let max = xs.iter().fold(f32::NEG_INFINITY, |a, x| a.max(*x));
            b.d = via_f16((max - min) / top as f32);
            b.dmin = via_f16(min);
            b.mins[0] = -1;
            let inv = if b.d > 0.0 { 1.0 / b.d } else { 0.0 };
            xs.iter()
                .zip(b.q.iter_mut())
                .for_each(|(x, q)| *q = round_clamped((x - b.dmin) * inv, 0, top));
        }
        TensorType::Q2_K | TensorType::Q4_K | TensorType::Q5_K => {
            // Per sub-block: x ≈ step·q − low, with low = −min(0, min x) ≥ 0; steps and lows
            // quantized to 4 (Q2_K) or 6 bits against the block's d and dmin.
            let levels = if kind == TensorType::Q2_K { 15 } else { 63 };
            let subs = xs.len() / geo.sub;
            let mut steps = [0f32; 16];
            let mut lows = [0f32; 16];
            for (s, xs) in xs.chunks_exact(geo.sub).enumerate() {
                let min = xs.iter().fold(0f32, |a, x| a.min(*x));
                let max = xs.iter().fold(0f32, |a, x| a.max(*x));
                steps[s] = (max - min) / top as f32;
                lows[s] = -min;
            }
            b.d = via_f16(steps[..subs].iter().fold(0f32, |a, x| a.max(*x)) / levels as f32);
            b.dmin = via_f16(lows[..subs].iter().fold(0f32, |a, x| a.max(*x)) / levels as f32);
            for (s, xs) in xs.chunks_exact(geo.sub).enumerate() {
                b.scales[s] = if b.d > 0.0 {
                    round_clamped((steps[s] / b.d).ceil(), 0, levels)
                } else {
                    0
                };
                b.mins[s] = if b.dmin > 0.0 {
                    round_clamped(lows[s] / b.dmin, 0, levels)
                } else {
                    0
                };
                let step = b.d * b.scales[s] as f32;
                let low = b.dmin * b.mins[s] as f32;
                let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
                for (x, q) in xs.iter().zip(b.q[s * geo.sub..].iter_mut()) {
                    *q = round_clamped((x + low) * inv, 0, top);
                }
            }
        }
        TensorType::Q3_K | TensorType::Q6_K => {
            // Per sub-block a signed step (the extreme value maps to -half + 1/2, as for Q4_0),
            // quantized to 6 bits
            // (Q3_K, -32..31) or 8 bits (Q6_K) against the block's d.
            let levels = if kind == TensorType::Q3_K { 31 } else { 127 };
            let subs = xs.len() / geo.sub;
            let mut steps = [0f32; 16];
            for (s, xs) in xs.chunks_exact(geo.sub).enumerate() {
                steps[s] = extreme(xs) / -(half as f32 - 0.5);
            }
            b.d = via_f16(steps[..subs].iter().fold(0f32, |a, x| a.max(x.abs())) / levels as f32);
            for (s, xs) in xs.chunks_exact(geo.sub).enumerate() {
                b.scales[s] = if b.d > 0.0 {
                    round_clamped(steps[s] / b.d, -levels, levels)
                } else {
                    0
                };
                let step = b.d * b.scales[s] as f32;
                let inv = if step != 0.0 { 1.0 / step } else { 0.0 };
                for (x, q) in xs.iter().zip(b.q[s * geo.sub..].iter_mut()) {
                    *q = round_clamped(x * inv, -half, half - 1);
                }
            }
        }
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => {}
    }
    b
}

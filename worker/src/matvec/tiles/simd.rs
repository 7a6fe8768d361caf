//! The tile kernel, written once over `Lanes` and compiled per encoding (const parameters, so
//! the inner loops hold no branches) and per instruction set.

use std::arch::x86_64::*;
use std::ops::Range;

use super::lanes::{Avx2, Avx512, Lanes};
use super::{shape, QuantizedVector, Shape, TILE};
use crate::gguf::TensorType;

/// How far ahead of the block being computed its successors are prefetched, in bytes.
const AHEAD: usize = 4096;

/// `out[t] = tiles · xs[t]` for every token `t` (`out` is `[tokens][rows]`) with AVX-512 BW,
/// and VNNI's fused multiply-add of pairs when `vnni`. `tiled` holds `rows.div_ceil(16)` tiles
/// of `nb` blocks of `kind`. Tokens go four at a time through each tile, which is read from
/// memory once for them.
///
/// # Safety
/// The CPU must have AVX-512 F and BW, F16C and FMA, and VNNI when `vnni` is set.
pub(in crate::matvec) unsafe fn avx512(vnni: bool, kind: TensorType, nb: usize, tiled: &[u8], xs: &[&QuantizedVector], out: &mut [f32]) {
    if vnni {
        with_vnni(kind, nb, tiled, xs, out)
    } else {
        without_vnni(kind, nb, tiled, xs, out)
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c,fma")]
unsafe fn with_vnni(kind: TensorType, nb: usize, tiled: &[u8], xs: &[&QuantizedVector], out: &mut [f32]) {
    by_groups::<Avx512<true>>(kind, nb, tiled, xs, out);
}

#[target_feature(enable = "avx512f,avx512bw,f16c,fma")]
unsafe fn without_vnni(kind: TensorType, nb: usize, tiled: &[u8], xs: &[&QuantizedVector], out: &mut [f32]) {
    by_groups::<Avx512<false>>(kind, nb, tiled, xs, out);
}

/// `avx512` with AVX2, 8 rows at a time.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(in crate::matvec) unsafe fn avx2(kind: TensorType, nb: usize, tiled: &[u8], xs: &[&QuantizedVector], out: &mut [f32]) {
    by_groups::<Avx2>(kind, nb, tiled, xs, out);
}

/// Runs the kernel of `kind` over groups of four tokens, then the rest one by one, a tile at a
/// time: every group multiplies one tile before the next tile is read, so a batch of more than
/// four tokens reads the weights from memory once, not once per group (a task's rows of a large
/// matrix, such as an LM head, do not stay in the cache from one group to the next).
#[inline(always)]
unsafe fn by_groups<V: Lanes>(kind: TensorType, nb: usize, tiled: &[u8], xs: &[&QuantizedVector], out: &mut [f32]) {
    let Some(s) = shape(kind) else { return };
    let rows = out.len() / xs.len().max(1);
    let tiles = if xs.len() > 4 { 1 } else { rows.div_ceil(TILE) };
    for first in (0..rows.div_ceil(TILE)).step_by(tiles) {
        let tiles = first..(first + tiles).min(rows.div_ceil(TILE));
        by_groups_of_tiles::<V>(kind, &s, nb, tiled, xs, rows, tiles, out);
    }
}

/// `by_groups` on the tiles `tiles` only.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn by_groups_of_tiles<V: Lanes>(
    kind: TensorType,
    s: &Shape,
    nb: usize,
    tiled: &[u8],
    xs: &[&QuantizedVector],
    rows: usize,
    tiles: Range<usize>,
    out: &mut [f32],
) {
    let mut done = 0;
    while done < xs.len() {
        let g = if xs.len() - done >= 4 { 4 } else { 1 };
        let (xs, out) = (&xs[done..done + g], &mut out[done * rows..(done + g) * rows]);
        let tiles = tiles.clone();
        // LOW, HIGH, SUB, OFFSET, MINS, SCALES, D32 (see `run`).
        macro_rules! kinds {
            ($g:literal) => {
                match kind {
                    TensorType::Q4_0 => run::<V, $g, 4, 0, 32, 8, 0, false, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q4_1 => run::<V, $g, 4, 0, 32, 0, 1, false, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q5_0 => run::<V, $g, 4, 1, 32, 16, 0, false, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q5_1 => run::<V, $g, 4, 1, 32, 0, 1, false, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q8_0 => run::<V, $g, 8, 0, 32, 0, 0, false, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q2_K => run::<V, $g, 2, 0, 16, 0, 2, true, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q3_K => run::<V, $g, 2, 1, 16, 4, 0, true, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q4_K => run::<V, $g, 4, 0, 32, 0, 2, true, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q5_K => run::<V, $g, 4, 1, 32, 0, 2, true, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q6_K => run::<V, $g, 4, 2, 16, 32, 0, true, false>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::Q8_K => run::<V, $g, 8, 0, 32, 0, 0, false, true>(s, nb, tiled, xs, tiles.clone(), out),
                    TensorType::F32 | TensorType::F16 | TensorType::BF16 => {}
                }
            };
        }
        if g == 4 {
            kinds!(4)
        } else {
            kinds!(1)
        }
        done += g;
    }
}

/// The kernel of one encoding for `G` tokens on the tiles `tiles` (`out` is `[G][rows]`):
/// - `LOW`: bits of the low plane (2, 4 or 8, 8 being signed values), `HIGH`: high planes;
/// - `SUB`: columns per integer scale (16 or 32); `OFFSET`: subtracted from the stored values;
/// - `MINS`: 0 none, 1 a `dmin` added per block (Q4_1, Q5_1), 2 integer minimums per sub-block
///   times `dmin`, subtracted; `SCALES`: integer scales per sub-block; `D32`: `d` in f32.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn run<
    V: Lanes,
    const G: usize,
    const LOW: u32,
    const HIGH: u32,
    const SUB: usize,
    const OFFSET: i32,
    const MINS: u8,
    const SCALES: bool,
    const D32: bool,
>(
    s: &Shape,
    nb: usize,
    tiled: &[u8],
    xs: &[&QuantizedVector],
    tiles: Range<usize>,
    out: &mut [f32],
) {
    let rows = out.len() / G;
    let elements = s.geo.elements;
    // Independent running sums per token, so consecutive multiply-adds need not wait for each
    // other: chains 0–1 for the first 16 columns of a group, 2–3 for the last 16.
    // (Macros, not closures: a closure is a function of its own, compiled without the caller's
    // target features, so the intrinsics in it would not be inlined.)
    macro_rules! chain {
        ($j:expr) => {
            2 * ($j / 8) + if G == 1 { $j % 2 } else { 0 }
        };
    }
    // Loops over the pairs of a group are written out in full (`each!`), so every pair's chain
    // is a constant and the sums stay in registers: a `for` over 16 pairs was left rolled by the
    // compiler for Q8_0, which then kept the sums on the stack, a store and a load per pair.
    macro_rules! each {
        ($c:ident in [$($n:literal),*] $body:block) => {
            $({
                #[allow(non_upper_case_globals)]
                const $c: usize = $n;
                $body
            })*
        };
    }
    for t in tiles {
        for part in 0..TILE / V::ROWS {
            let first = t * TILE + part * V::ROWS;
            if first >= rows {
                break;
            }
            let mut acc = [V::zero_f(); G];
            for b in 0..nb {
                let p = tiled.as_ptr().add((t * nb + b) * s.bytes);
                // The weights are read once, in order: ask for the bytes `AHEAD` further on now,
                // so they arrive while this block is computed.
                let ahead = p.wrapping_add(AHEAD);
                for line in (0..s.bytes).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line) as *const i8);
                }
                let d = if D32 {
                    V::floats(p.add(part * V::ROWS * 4))
                } else {
                    V::halves(p.add(part * V::ROWS * 2))
                };
                let dmin = if MINS > 0 {
                    V::halves(p.add(s.dmin_at + part * V::ROWS * 2))
                } else {
                    V::zero_f()
                };
                // Per row of the part: its lanes' bytes in a per-sub-block row of 16.
                macro_rules! per_sub {
                    ($at:expr, $sub:expr) => {
                        p.add($at + $sub * TILE + part * V::ROWS)
                    };
                }
                for g in 0..elements / 32 {
                    let values = p.add(s.values_at + g * s.group_bytes);
                    let planes = values.add(TILE * 4 * LOW as usize);
                    macro_rules! plane {
                        ($h:expr) => {
                            V::load(planes.add($h as usize * TILE * 4 + part * V::ROWS * 4))
                        };
                    }
                    let at = b * elements + g * 32;
                    let mut sums = [[V::zero_i(); 4]; G];
                    macro_rules! add_pair {
                        ($j:expr, $w:expr) => {{
                            let (j, w): (usize, V::I) = ($j, $w);
                            for (tok, sums) in sums.iter_mut().enumerate() {
                                let x = V::pair(xs[tok].q.as_ptr().add(at + 2 * j));
                                sums[chain!(j)] = V::dot(sums[chain!(j)], w, x);
                            }
                        }};
                    }
                    macro_rules! chunk {
                        ($c:expr) => {
                            values.add($c * 32 + part * V::ROWS * 2)
                        };
                    }
                    match LOW {
                        8 => {
                            each!(c in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
                                add_pair!(c, V::widen_i8(chunk!(c)));
                            });
                        }
                        4 => {
                            let high = [
                                if HIGH > 0 { plane!(0) } else { V::zero_i() },
                                if HIGH > 1 { plane!(1) } else { V::zero_i() },
                            ];
                            each!(c in [0, 1, 2, 3, 4, 5, 6, 7] {
                                let v = V::widen_u8(chunk!(c));
                                let (mut lo, mut hi) = (V::bits(v, 0, 0x0f), V::bits(v, 4, 0x0f));
                                for h in 0..HIGH {
                                    lo = V::merge_bit(lo, high[h as usize], c as u32, 4 + h);
                                    hi = V::merge_bit(hi, high[h as usize], 8 + c as u32, 4 + h);
                                }
                                add_pair!(c, lo);
                                add_pair!(8 + c, hi);
                            });
                        }
                        _ => {
                            let high = if HIGH > 0 { plane!(0) } else { V::zero_i() };
                            each!(c in [0, 1, 2, 3] {
                                let v = V::widen_u8(chunk!(c));
                                each!(m in [0, 1, 2, 3] {
                                    let j = c + 4 * m;
                                    let mut w = V::bits(v, 2 * m as u32, 3);
                                    if HIGH > 0 {
                                        w = V::merge_bit(w, high, j as u32, 2);
                                    }
                                    add_pair!(j, w);
                                });
                            });
                        }
                    }
                    // Scales of the group's two halves (the same when SUB is 32).
                    let sub = g * 32 / SUB;
                    macro_rules! scale {
                        ($sub:expr) => {
                            if SCALES {
                                V::mul(d, V::small_ints(per_sub!(s.scales_at, $sub)))
                            } else {
                                d
                            }
                        };
                    }
                    let (scale_lo, scale_hi) = (scale!(sub), if SUB == 16 { scale!(sub + 1) } else { d });
                    macro_rules! min {
                        ($sub:expr) => {
                            V::mul(dmin, V::small_ints(per_sub!(s.mins_at, $sub)))
                        };
                    }
                    for (tok, sums) in sums.iter().enumerate() {
                        let x = xs[tok];
                        let x_scale = V::splat(*x.scale.get_unchecked(at / 32));
                        let (qsum_lo, qsum_hi) = (*x.qsum16.get_unchecked(at / 16), *x.qsum16.get_unchecked(at / 16 + 1));
                        let (sum_lo, sum_hi) = (*x.sum16.get_unchecked(at / 16), *x.sum16.get_unchecked(at / 16 + 1));
                        let (lo, hi) = (V::add_i(sums[0], sums[1]), V::add_i(sums[2], sums[3]));
                        let a = &mut acc[tok];
                        if SUB == 16 {
                            let (lo, hi) = if OFFSET != 0 {
                                (V::sub_splat(lo, OFFSET * qsum_lo), V::sub_splat(hi, OFFSET * qsum_hi))
                            } else {
                                (lo, hi)
                            };
                            *a = V::fmadd(V::to_f(lo), V::mul(scale_lo, x_scale), *a);
                            *a = V::fmadd(V::to_f(hi), V::mul(scale_hi, x_scale), *a);
                            if MINS == 2 {
                                *a = V::fnmadd(min!(sub), V::splat(sum_lo), *a);
                                *a = V::fnmadd(min!(sub + 1), V::splat(sum_hi), *a);
                            }
                        } else {
                            let mut dot = V::add_i(lo, hi);
                            if OFFSET != 0 {
                                dot = V::sub_splat(dot, OFFSET * (qsum_lo + qsum_hi));
                            }
                            *a = V::fmadd(V::to_f(dot), V::mul(scale_lo, x_scale), *a);
                            match MINS {
                                1 => *a = V::fmadd(dmin, V::splat(sum_lo + sum_hi), *a),
                                2 => *a = V::fnmadd(min!(sub), V::splat(sum_lo + sum_hi), *a),
                                _ => {}
                            }
                        }
                    }
                }
            }
            let n = V::ROWS.min(rows - first);
            for (tok, acc) in acc.iter().enumerate() {
                let mut lanes = [0f32; TILE];
                V::store(*acc, lanes.as_mut_ptr());
                out[tok * rows + first..][..n].copy_from_slice(&lanes[..n]);
            }
        }
    }
}

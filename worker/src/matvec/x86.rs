//! AVX-512 and AVX2 kernels for matrices in rows (f32, f16, bf16, Q4_0, Q4_1, Q8_0; other
//! encodings go through `super::scalar`, and are tiled by `prepared`). Rows are taken four at a time, so each activation load serves four
//! rows and four independent accumulator chains keep the FMA units busy; leftover rows go one
//! by one through the same code. Every function here is `unsafe`: the caller checks that the CPU
//! has the instructions and passes whole rows (see `super::Rows`).

use std::arch::x86_64::*;

use super::Rows;
use crate::gguf::TensorType;

/// f16 at `p` → f32 (F16C).
#[inline(always)]
unsafe fn half(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((p as *const u16).read_unaligned() as i32)))
}

/// Runs `group::<4>` over whole groups of four rows, then `group::<1>` over the rest.
macro_rules! by_groups {
    ($m:expr, $out:expr, $group:ident $(, $arg:expr)*) => {{
        let m: &Rows<'_> = $m;
        let out: &mut [f32] = $out;
        let mut r = 0;
        while r + 4 <= out.len() {
            let got = $group::<4>(m.data.as_ptr().add(r * m.row_bytes), m.row_bytes $(, $arg)*);
            out[r..r + 4].copy_from_slice(&got);
            r += 4;
        }
        while r < out.len() {
            out[r] = $group::<1>(m.data.as_ptr().add(r * m.row_bytes), m.row_bytes $(, $arg)*)[0];
            r += 1;
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// AVX-512: 16 lanes.

#[target_feature(enable = "avx512f,f16c")]
pub(super) unsafe fn avx512(m: &Rows<'_>, x: &[f32], sums: &[f32], out: &mut [f32]) {
    let (xp, nb) = (x.as_ptr(), m.cols / 32);
    match m.kind {
        TensorType::Q4_1 => by_groups!(m, out, q4_512, nb, xp, sums.as_ptr(), true),
        TensorType::Q4_0 => by_groups!(m, out, q4_512, nb, xp, sums.as_ptr(), false),
        TensorType::Q8_0 => by_groups!(m, out, q8_512, nb, xp),
        TensorType::F16 => by_groups!(m, out, f16_512, x),
        TensorType::BF16 => by_groups!(m, out, bf16_512, x),
        TensorType::F32 => by_groups!(m, out, f32_512, x),
        _ => super::scalar::rows(m, x, sums, out),
    }
}

#[inline(always)]
unsafe fn q4_512<const R: usize>(base: *const u8, stride: usize, nb: usize, x: *const f32, sums: *const f32, q41: bool) -> [f32; R] {
    let (qs_at, block) = if q41 { (4, 20) } else { (2, 18) };
    let low = _mm512_set1_epi32(0x0f);
    let mut acc = [_mm512_setzero_ps(); R];
    let mut offset = [0f32; R];
    for b in 0..nb {
        let x0 = _mm512_loadu_ps(x.add(b * 32));
        let x1 = _mm512_loadu_ps(x.add(b * 32 + 16));
        let s = *sums.add(b);
        for (r, (acc, offset)) in acc.iter_mut().zip(offset.iter_mut()).enumerate() {
            let p = base.add(r * stride + b * block);
            // d (and m for Q4_1) in lanes 0 and 1.
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
            // Byte j holds element j (low nibble) and element j + 16 (high nibble).
            let q = _mm512_cvtepu8_epi32(_mm_loadu_si128(p.add(qs_at) as *const __m128i));
            let lo = _mm512_cvtepi32_ps(_mm512_and_si512(q, low));
            let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(q));
            let t = _mm512_fmadd_ps(hi, x1, _mm512_mul_ps(lo, x0));
            *acc = _mm512_fmadd_ps(t, _mm512_broadcastss_ps(dm), *acc);
            let off = if q41 {
                _mm_cvtss_f32(_mm_movehdup_ps(dm))
            } else {
                -8.0 * _mm_cvtss_f32(dm)
            };
            *offset += off * s;
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]) + offset[r])
}

#[inline(always)]
unsafe fn q8_512<const R: usize>(base: *const u8, stride: usize, nb: usize, x: *const f32) -> [f32; R] {
    let mut acc = [_mm512_setzero_ps(); R];
    for b in 0..nb {
        let x0 = _mm512_loadu_ps(x.add(b * 32));
        let x1 = _mm512_loadu_ps(x.add(b * 32 + 16));
        for (r, acc) in acc.iter_mut().enumerate() {
            let p = base.add(r * stride + b * 34);
            let q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(2) as *const __m128i)));
            let q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p.add(18) as *const __m128i)));
            let t = _mm512_fmadd_ps(q1, x1, _mm512_mul_ps(q0, x0));
            *acc = _mm512_fmadd_ps(t, _mm512_set1_ps(half(p)), *acc);
        }
    }
    std::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]))
}

#[inline(always)]
unsafe fn f16_512<const R: usize>(base: *const u8, stride: usize, x: &[f32]) -> [f32; R] {
    let n = x.len() / 16 * 16;
    let mut acc = [_mm512_setzero_ps(); R];
    for c in (0..n).step_by(16) {
        let xv = _mm512_loadu_ps(x.as_ptr().add(c));
        for (r, acc) in acc.iter_mut().enumerate() {
            let w = _mm512_cvtph_ps(_mm256_loadu_si256(base.add(r * stride + c * 2) as *const __m256i));
            *acc = _mm512_fmadd_ps(w, xv, *acc);
        }
    }
    std::array::from_fn(|r| {
        let tail: f32 = (n..x.len()).map(|c| half(base.add(r * stride + c * 2)) * x[c]).sum();
        _mm512_reduce_add_ps(acc[r]) + tail
    })
}

/// bf16 at `p` → f32 (its upper half).
#[inline(always)]
unsafe fn brain(p: *const u8) -> f32 {
    f32::from_bits(((p as *const u16).read_unaligned() as u32) << 16)
}

#[inline(always)]
unsafe fn bf16_512<const R: usize>(base: *const u8, stride: usize, x: &[f32]) -> [f32; R] {
    let n = x.len() / 16 * 16;
    let mut acc = [_mm512_setzero_ps(); R];
    for c in (0..n).step_by(16) {
        let xv = _mm512_loadu_ps(x.as_ptr().add(c));
        for (r, acc) in acc.iter_mut().enumerate() {
            let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(base.add(r * stride + c * 2) as *const __m256i));
            *acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32::<16>(h)), xv, *acc);
        }
    }
    std::array::from_fn(|r| {
        let tail: f32 = (n..x.len()).map(|c| brain(base.add(r * stride + c * 2)) * x[c]).sum();
        _mm512_reduce_add_ps(acc[r]) + tail
    })
}

#[inline(always)]
unsafe fn f32_512<const R: usize>(base: *const u8, stride: usize, x: &[f32]) -> [f32; R] {
    let n = x.len() / 16 * 16;
    let mut acc = [_mm512_setzero_ps(); R];
    for c in (0..n).step_by(16) {
        let xv = _mm512_loadu_ps(x.as_ptr().add(c));
        for (r, acc) in acc.iter_mut().enumerate() {
            let w = _mm512_loadu_ps(base.add(r * stride + c * 4) as *const f32);
            *acc = _mm512_fmadd_ps(w, xv, *acc);
        }
    }
    std::array::from_fn(|r| {
        let row = base.add(r * stride) as *const f32;
        let tail: f32 = (n..x.len()).map(|c| row.add(c).read_unaligned() * x[c]).sum();
        _mm512_reduce_add_ps(acc[r]) + tail
    })
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA: 8 lanes.

#[inline(always)]
unsafe fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn avx2(m: &Rows<'_>, x: &[f32], sums: &[f32], out: &mut [f32]) {
    let (xp, nb) = (x.as_ptr(), m.cols / 32);
    match m.kind {
        TensorType::Q4_1 => by_groups!(m, out, q4_256, nb, xp, sums.as_ptr(), true),
        TensorType::Q4_0 => by_groups!(m, out, q4_256, nb, xp, sums.as_ptr(), false),
        TensorType::Q8_0 => by_groups!(m, out, q8_256, nb, xp),
        TensorType::F16 => by_groups!(m, out, f16_256, x),
        TensorType::BF16 => by_groups!(m, out, bf16_256, x),
        TensorType::F32 => by_groups!(m, out, f32_256, x),
        _ => super::scalar::rows(m, x, sums, out),
    }
}

#[inline(always)]
unsafe fn widen(bytes: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes))
}

#[inline(always)]
unsafe fn q4_256<const R: usize>(base: *const u8, stride: usize, nb: usize, x: *const f32, sums: *const f32, q41: bool) -> [f32; R] {
    let (qs_at, block) = if q41 { (4, 20) } else { (2, 18) };
    let low = _mm_set1_epi8(0x0f);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut offset = [0f32; R];
    for b in 0..nb {
        let xs = [0, 8, 16, 24].map(|i| _mm256_loadu_ps(x.add(b * 32 + i)));
        let s = *sums.add(b);
        for (r, (acc, offset)) in acc.iter_mut().zip(offset.iter_mut()).enumerate() {
            let p = base.add(r * stride + b * block);
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
            let bytes = _mm_loadu_si128(p.add(qs_at) as *const __m128i);
            let lo = _mm_and_si128(bytes, low);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(bytes), low);
            let mut t = _mm256_mul_ps(widen(lo), xs[0]);
            t = _mm256_fmadd_ps(widen(_mm_srli_si128::<8>(lo)), xs[1], t);
            t = _mm256_fmadd_ps(widen(hi), xs[2], t);
            t = _mm256_fmadd_ps(widen(_mm_srli_si128::<8>(hi)), xs[3], t);
            *acc = _mm256_fmadd_ps(t, _mm256_broadcastss_ps(dm), *acc);
            let off = if q41 {
                _mm_cvtss_f32(_mm_movehdup_ps(dm))
            } else {
                -8.0 * _mm_cvtss_f32(dm)
            };
            *offset += off * s;
        }
    }
    std::array::from_fn(|r| hsum256(acc[r]) + offset[r])
}

#[inline(always)]
unsafe fn q8_256<const R: usize>(base: *const u8, stride: usize, nb: usize, x: *const f32) -> [f32; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    for b in 0..nb {
        let xs = [0, 8, 16, 24].map(|i| _mm256_loadu_ps(x.add(b * 32 + i)));
        for (r, acc) in acc.iter_mut().enumerate() {
            let p = base.add(r * stride + b * 34);
            let q = |i: usize| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p.add(2 + 8 * i) as *const __m128i)));
            let mut t = _mm256_mul_ps(q(0), xs[0]);
            t = _mm256_fmadd_ps(q(1), xs[1], t);
            t = _mm256_fmadd_ps(q(2), xs[2], t);
            t = _mm256_fmadd_ps(q(3), xs[3], t);
            *acc = _mm256_fmadd_ps(t, _mm256_set1_ps(half(p)), *acc);
        }
    }
    std::array::from_fn(|r| hsum256(acc[r]))
}

#[inline(always)]
unsafe fn f16_256<const R: usize>(base: *const u8, stride: usize, x: &[f32]) -> [f32; R] {
    let n = x.len() / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); R];
    for c in (0..n).step_by(8) {
        let xv = _mm256_loadu_ps(x.as_ptr().add(c));
        for (r, acc) in acc.iter_mut().enumerate() {
            let w = _mm256_cvtph_ps(_mm_loadu_si128(base.add(r * stride + c * 2) as *const __m128i));
            *acc = _mm256_fmadd_ps(w, xv, *acc);
        }
    }
    std::array::from_fn(|r| {
        let tail: f32 = (n..x.len()).map(|c| half(base.add(r * stride + c * 2)) * x[c]).sum();
        hsum256(acc[r]) + tail
    })
}

#[inline(always)]
unsafe fn bf16_256<const R: usize>(base: *const u8, stride: usize, x: &[f32]) -> [f32; R] {
    let n = x.len() / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); R];
    for c in (0..n).step_by(8) {
        let xv = _mm256_loadu_ps(x.as_ptr().add(c));
        for (r, acc) in acc.iter_mut().enumerate() {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(base.add(r * stride + c * 2) as *const __m128i));
            *acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32::<16>(h)), xv, *acc);
        }
    }
    std::array::from_fn(|r| {
        let tail: f32 = (n..x.len()).map(|c| brain(base.add(r * stride + c * 2)) * x[c]).sum();
        hsum256(acc[r]) + tail
    })
}

#[inline(always)]
unsafe fn f32_256<const R: usize>(base: *const u8, stride: usize, x: &[f32]) -> [f32; R] {
    let n = x.len() / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); R];
    for c in (0..n).step_by(8) {
        let xv = _mm256_loadu_ps(x.as_ptr().add(c));
        for (r, acc) in acc.iter_mut().enumerate() {
            let w = _mm256_loadu_ps(base.add(r * stride + c * 4) as *const f32);
            *acc = _mm256_fmadd_ps(w, xv, *acc);
        }
    }
    std::array::from_fn(|r| {
        let row = base.add(r * stride) as *const f32;
        let tail: f32 = (n..x.len()).map(|c| row.add(c).read_unaligned() * x[c]).sum();
        hsum256(acc[r]) + tail
    })
}

#[inline(always)]
unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len() / 8 * 8;
    let mut acc = _mm256_setzero_ps();
    for i in (0..n).step_by(8) {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)), acc);
    }
    hsum256(acc) + (n..a.len()).map(|i| a[i] * b[i]).sum::<f32>()
}

#[inline(always)]
unsafe fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    let n = y.len() / 8 * 8;
    let av = _mm256_set1_ps(a);
    for i in (0..n).step_by(8) {
        let yp = y.as_mut_ptr().add(i);
        _mm256_storeu_ps(yp, _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(yp)));
    }
    for i in n..y.len() {
        y[i] += a * x[i];
    }
}

/// `super::attend` with AVX2 and FMA (same arguments, bounds checked by the caller).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    n: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hd = q.len();
    for (j, s) in scores[..n].iter_mut().enumerate() {
        *s = dot(q, keys.get_unchecked(j * stride..j * stride + hd)) * scale;
    }
    super::softmax(&mut scores[..n]);
    out.fill(0.0);
    for (j, s) in scores[..n].iter().enumerate() {
        axpy(out, *s, values.get_unchecked(j * stride..j * stride + hd));
    }
}

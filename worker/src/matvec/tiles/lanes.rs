//! The vector operations of the tile kernel (`super::simd`), for AVX-512 (a whole tile of 16
//! rows per vector) and AVX2 (half a tile, 8 rows). Every function is `unsafe`: the caller runs
//! with the instructions enabled, and pointers have the bytes read.

use std::arch::x86_64::*;

/// One vector width: integer vectors of 16-bit pairs (`I`, one 32-bit lane per row) and f32
/// vectors (`F`, one lane per row).
pub(super) trait Lanes {
    /// Rows per vector.
    const ROWS: usize;
    type I: Copy;
    type F: Copy;
    unsafe fn zero_i() -> Self::I;
    unsafe fn zero_f() -> Self::F;
    /// `ROWS · 2` bytes, each widened to a 16-bit lane, unsigned.
    unsafe fn widen_u8(p: *const u8) -> Self::I;
    /// `ROWS · 2` bytes, each widened to a 16-bit lane, signed.
    unsafe fn widen_i8(p: *const u8) -> Self::I;
    /// `ROWS · 4` bytes.
    unsafe fn load(p: *const u8) -> Self::I;
    /// `(v >> shift) & mask` in each 16-bit lane.
    unsafe fn bits(v: Self::I, shift: u32, mask: i16) -> Self::I;
    /// `w | (bit j of plane, moved to bit `to`)` in each 16-bit lane.
    unsafe fn merge_bit(w: Self::I, plane: Self::I, j: u32, to: u32) -> Self::I;
    /// The two i16 at `p` in every 32-bit lane.
    unsafe fn pair(p: *const i16) -> Self::I;
    /// `acc + w[2i]·x[2i] + w[2i+1]·x[2i+1]` in each 32-bit lane `i`.
    unsafe fn dot(acc: Self::I, w: Self::I, x: Self::I) -> Self::I;
    unsafe fn add_i(a: Self::I, b: Self::I) -> Self::I;
    /// `a - s` in each 32-bit lane.
    unsafe fn sub_splat(a: Self::I, s: i32) -> Self::I;
    unsafe fn to_f(a: Self::I) -> Self::F;
    /// `ROWS` f16 values.
    unsafe fn halves(p: *const u8) -> Self::F;
    /// `ROWS` f32 values.
    unsafe fn floats(p: *const u8) -> Self::F;
    /// `ROWS` i8 values.
    unsafe fn small_ints(p: *const u8) -> Self::F;
    unsafe fn splat(x: f32) -> Self::F;
    unsafe fn mul(a: Self::F, b: Self::F) -> Self::F;
    /// `a · b + c`.
    unsafe fn fmadd(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// `c - a · b`.
    unsafe fn fnmadd(a: Self::F, b: Self::F, c: Self::F) -> Self::F;
    /// Writes the `ROWS` lanes to `out`.
    unsafe fn store(a: Self::F, out: *mut f32);
}

/// AVX-512 F and BW; with VNNI's `vpdpwssd` when `VNNI`.
pub(super) struct Avx512<const VNNI: bool>;

fn count(n: u32) -> __m128i {
    // SAFETY: SSE2 is part of x86_64.
    unsafe { _mm_cvtsi32_si128(n as i32) }
}

impl<const VNNI: bool> Lanes for Avx512<VNNI> {
    const ROWS: usize = 16;
    type I = __m512i;
    type F = __m512;
    #[inline(always)]
    unsafe fn zero_i() -> __m512i {
        _mm512_setzero_si512()
    }
    #[inline(always)]
    unsafe fn zero_f() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn widen_u8(p: *const u8) -> __m512i {
        _mm512_cvtepu8_epi16(_mm256_loadu_si256(p as *const __m256i))
    }
    #[inline(always)]
    unsafe fn widen_i8(p: *const u8) -> __m512i {
        _mm512_cvtepi8_epi16(_mm256_loadu_si256(p as *const __m256i))
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m512i {
        _mm512_loadu_si512(p as *const _)
    }
    #[inline(always)]
    unsafe fn bits(v: __m512i, shift: u32, mask: i16) -> __m512i {
        _mm512_and_si512(_mm512_srl_epi16(v, count(shift)), _mm512_set1_epi16(mask))
    }
    #[inline(always)]
    unsafe fn merge_bit(w: __m512i, plane: __m512i, j: u32, to: u32) -> __m512i {
        let moved = if j >= to {
            _mm512_srl_epi16(plane, count(j - to))
        } else {
            _mm512_sll_epi16(plane, count(to - j))
        };
        // w | (moved & mask)
        _mm512_ternarylogic_epi32::<0xf8>(w, moved, _mm512_set1_epi16(1 << to))
    }
    #[inline(always)]
    unsafe fn pair(p: *const i16) -> __m512i {
        _mm512_set1_epi32((p as *const i32).read_unaligned())
    }
    #[inline(always)]
    unsafe fn dot(acc: __m512i, w: __m512i, x: __m512i) -> __m512i {
        if VNNI {
            _mm512_dpwssd_epi32(acc, w, x)
        } else {
            _mm512_add_epi32(acc, _mm512_madd_epi16(w, x))
        }
    }
    #[inline(always)]
    unsafe fn add_i(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn sub_splat(a: __m512i, s: i32) -> __m512i {
        _mm512_sub_epi32(a, _mm512_set1_epi32(s))
    }
    #[inline(always)]
    unsafe fn to_f(a: __m512i) -> __m512 {
        _mm512_cvtepi32_ps(a)
    }
    #[inline(always)]
    unsafe fn halves(p: *const u8) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    }
    #[inline(always)]
    unsafe fn floats(p: *const u8) -> __m512 {
        _mm512_loadu_ps(p as *const f32)
    }
    #[inline(always)]
    unsafe fn small_ints(p: *const u8) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(p as *const __m128i)))
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m512 {
        _mm512_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn mul(a: __m512, b: __m512) -> __m512 {
        _mm512_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn store(a: __m512, out: *mut f32) {
        _mm512_storeu_ps(out, a)
    }
}

/// AVX2, FMA and F16C: half a tile per vector.
pub(super) struct Avx2;

impl Lanes for Avx2 {
    const ROWS: usize = 8;
    type I = __m256i;
    type F = __m256;
    #[inline(always)]
    unsafe fn zero_i() -> __m256i {
        _mm256_setzero_si256()
    }
    #[inline(always)]
    unsafe fn zero_f() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn widen_u8(p: *const u8) -> __m256i {
        _mm256_cvtepu8_epi16(_mm_loadu_si128(p as *const __m128i))
    }
    #[inline(always)]
    unsafe fn widen_i8(p: *const u8) -> __m256i {
        _mm256_cvtepi8_epi16(_mm_loadu_si128(p as *const __m128i))
    }
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p as *const __m256i)
    }
    #[inline(always)]
    unsafe fn bits(v: __m256i, shift: u32, mask: i16) -> __m256i {
        _mm256_and_si256(_mm256_srl_epi16(v, count(shift)), _mm256_set1_epi16(mask))
    }
    #[inline(always)]
    unsafe fn merge_bit(w: __m256i, plane: __m256i, j: u32, to: u32) -> __m256i {
        let moved = if j >= to {
            _mm256_srl_epi16(plane, count(j - to))
        } else {
            _mm256_sll_epi16(plane, count(to - j))
        };
        _mm256_or_si256(w, _mm256_and_si256(moved, _mm256_set1_epi16(1 << to)))
    }
    #[inline(always)]
    unsafe fn pair(p: *const i16) -> __m256i {
        _mm256_set1_epi32((p as *const i32).read_unaligned())
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(w, x))
    }
    #[inline(always)]
    unsafe fn add_i(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(a, b)
    }
    #[inline(always)]
    unsafe fn sub_splat(a: __m256i, s: i32) -> __m256i {
        _mm256_sub_epi32(a, _mm256_set1_epi32(s))
    }
    #[inline(always)]
    unsafe fn to_f(a: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(a)
    }
    #[inline(always)]
    unsafe fn halves(p: *const u8) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
    #[inline(always)]
    unsafe fn floats(p: *const u8) -> __m256 {
        _mm256_loadu_ps(p as *const f32)
    }
    #[inline(always)]
    unsafe fn small_ints(p: *const u8) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> __m256 {
        _mm256_set1_ps(x)
    }
    #[inline(always)]
    unsafe fn mul(a: __m256, b: __m256) -> __m256 {
        _mm256_mul_ps(a, b)
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn fnmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fnmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn store(a: __m256, out: *mut f32) {
        _mm256_storeu_ps(out, a)
    }
}

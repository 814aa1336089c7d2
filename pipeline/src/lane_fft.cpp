// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/lane_fft.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <numbers>

#include "target.hpp"
#include "wattpipe/pipeline/metrology.hpp"

namespace wattpipe::pipeline::analysis {

LaneFft::LaneFft(std::size_t n)
    : n_(n), tw_re_(n > 1 ? n - 1 : 0), tw_im_(n > 1 ? n - 1 : 0), rev_(n), avx2_(kernels_avx2()) {
  for (std::size_t half = 1; half < n; half *= 2)
    for (std::size_t k = 0; k < half; ++k) {
      const double a = std::numbers::pi * double(k) / double(half);
      tw_re_[half - 1 + k] = static_cast<float>(std::cos(a));
      tw_im_[half - 1 + k] = static_cast<float>(-std::sin(a));
    }
  const int bits = std::countr_zero(n);
  for (std::size_t j = 0; j < n; ++j) {
    std::uint32_t r = 0;
    for (int b = 0; b < bits; ++b) r |= ((j >> b) & 1u) << (bits - 1 - b);
    rev_[j] = r;
  }
}

namespace {
// The stages after the first, decimation in time. Two radix-2 stages (spans
// h and 2h) at a time, so that each pass over the data does twice the work:
// on a 1024-point AC transform the 32 KiB of data fill the L1 cache, and the
// passes, not the arithmetic, set the time. A last radix-2 stage when the
// count is odd. Twiddles: W_2h^k for span h, W_4h^k = tw[2h - 1 + k] for 2h.
void stages_portable(v4f* re, v4f* im, std::size_t n, const float* tw_re, const float* tw_im) noexcept {
  std::size_t h = 2;
  for (; 4 * h <= n; h *= 4) {
    const float *c1 = tw_re + h - 1, *s1 = tw_im + h - 1, *c2 = tw_re + 2 * h - 1, *s2 = tw_im + 2 * h - 1;
    for (std::size_t i = 0; i < n; i += 4 * h)
      for (std::size_t k = 0; k < h; ++k) {
        v4f* pr = re + i + k;
        v4f* pi = im + i + k;
        const float w1r = c1[k], w1i = s1[k], w2r = c2[k], w2i = s2[k];
        // Span h: (a, b) and (c, d) with W_2h^k.
        const v4f br = pr[h] * w1r - pi[h] * w1i, bi = pr[h] * w1i + pi[h] * w1r;
        const v4f dr = pr[3 * h] * w1r - pi[3 * h] * w1i, di = pr[3 * h] * w1i + pi[3 * h] * w1r;
        const v4f x0r = pr[0] + br, x0i = pi[0] + bi, x1r = pr[0] - br, x1i = pi[0] - bi;
        const v4f x2r = pr[2 * h] + dr, x2i = pi[2 * h] + di, x3r = pr[2 * h] - dr, x3i = pi[2 * h] - di;
        // Span 2h: x2 with W_4h^k, x3 with W_4h^(k+h) = -i W_4h^k.
        const v4f tr = x2r * w2r - x2i * w2i, ti = x2r * w2i + x2i * w2r;
        const v4f ur = x3r * w2i + x3i * w2r, ui = x3i * w2i - x3r * w2r;  // -i W x3
        pr[0] = x0r + tr, pi[0] = x0i + ti, pr[2 * h] = x0r - tr, pi[2 * h] = x0i - ti;
        pr[h] = x1r + ur, pi[h] = x1i + ui, pr[3 * h] = x1r - ur, pi[3 * h] = x1i - ui;
      }
  }
  for (; h < n; h *= 2) {
    const float* cr = tw_re + h - 1;
    const float* ci = tw_im + h - 1;
    for (std::size_t i = 0; i < n; i += 2 * h)
      for (std::size_t k = 0; k < h; ++k) {
        const float wr = cr[k], wi = ci[k];
        v4f* pr = re + i + k;
        v4f* pi = im + i + k;
        const v4f xr = pr[h], xi = pi[h];
        const v4f tr = xr * wr - xi * wi, ti = xr * wi + xi * wr;
        pr[h] = *pr - tr, pi[h] = *pi - ti;
        *pr += tr, *pi += ti;
      }
  }
}

#if defined(__x86_64__)
// {w[0] x4, w[1] x4}
WP_AVX2 inline __m256 spread_pair(const float* w, __m256i spread) noexcept {
  const __m128 two = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w)));  // unaligned 8 bytes
  return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(two), spread);
}

// The same with butterflies k and k + 1 in one 8-float vector (their twiddles
// each spread over its half) and fused multiply-adds.
WP_AVX2 void stages_avx2(v4f* re, v4f* im, std::size_t n, const float* tw_re, const float* tw_im) noexcept {
  const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  float* fr = reinterpret_cast<float*>(re);
  float* fi = reinterpret_cast<float*>(im);
  std::size_t h = 2;
  for (; 4 * h <= n; h *= 4) {
    const std::size_t s = 4 * h;  // floats per span
    for (std::size_t i = 0; i < n; i += 4 * h)
      for (std::size_t k = 0; k < h; k += 2) {
        const __m256 w1r = spread_pair(tw_re + h - 1 + k, spread), w1i = spread_pair(tw_im + h - 1 + k, spread);
        const __m256 w2r = spread_pair(tw_re + 2 * h - 1 + k, spread);
        const __m256 w2i = spread_pair(tw_im + 2 * h - 1 + k, spread);
        float* pr = fr + 4 * (i + k);
        float* pi = fi + 4 * (i + k);
        const __m256 ar = _mm256_loadu_ps(pr), ai = _mm256_loadu_ps(pi);
        const __m256 b0r = _mm256_loadu_ps(pr + s), b0i = _mm256_loadu_ps(pi + s);
        const __m256 cr = _mm256_loadu_ps(pr + 2 * s), ci = _mm256_loadu_ps(pi + 2 * s);
        const __m256 d0r = _mm256_loadu_ps(pr + 3 * s), d0i = _mm256_loadu_ps(pi + 3 * s);
        const __m256 br = _mm256_fmsub_ps(b0r, w1r, _mm256_mul_ps(b0i, w1i));
        const __m256 bi = _mm256_fmadd_ps(b0r, w1i, _mm256_mul_ps(b0i, w1r));
        const __m256 dr = _mm256_fmsub_ps(d0r, w1r, _mm256_mul_ps(d0i, w1i));
        const __m256 di = _mm256_fmadd_ps(d0r, w1i, _mm256_mul_ps(d0i, w1r));
        const __m256 x0r = _mm256_add_ps(ar, br), x0i = _mm256_add_ps(ai, bi);
        const __m256 x1r = _mm256_sub_ps(ar, br), x1i = _mm256_sub_ps(ai, bi);
        const __m256 x2r = _mm256_add_ps(cr, dr), x2i = _mm256_add_ps(ci, di);
        const __m256 x3r = _mm256_sub_ps(cr, dr), x3i = _mm256_sub_ps(ci, di);
        const __m256 tr = _mm256_fmsub_ps(x2r, w2r, _mm256_mul_ps(x2i, w2i));
        const __m256 ti = _mm256_fmadd_ps(x2r, w2i, _mm256_mul_ps(x2i, w2r));
        const __m256 ur = _mm256_fmadd_ps(x3r, w2i, _mm256_mul_ps(x3i, w2r));
        const __m256 ui = _mm256_fmsub_ps(x3i, w2i, _mm256_mul_ps(x3r, w2r));
        _mm256_storeu_ps(pr, _mm256_add_ps(x0r, tr)), _mm256_storeu_ps(pi, _mm256_add_ps(x0i, ti));
        _mm256_storeu_ps(pr + 2 * s, _mm256_sub_ps(x0r, tr)), _mm256_storeu_ps(pi + 2 * s, _mm256_sub_ps(x0i, ti));
        _mm256_storeu_ps(pr + s, _mm256_add_ps(x1r, ur)), _mm256_storeu_ps(pi + s, _mm256_add_ps(x1i, ui));
        _mm256_storeu_ps(pr + 3 * s, _mm256_sub_ps(x1r, ur)), _mm256_storeu_ps(pi + 3 * s, _mm256_sub_ps(x1i, ui));
      }
  }
  for (; h < n; h *= 2) {
    const float* cr = tw_re + h - 1;
    const float* ci = tw_im + h - 1;
    for (std::size_t i = 0; i < n; i += 2 * h)
      for (std::size_t k = 0; k < h; k += 2) {
        const __m256 wr = spread_pair(cr + k, spread), wi = spread_pair(ci + k, spread);
        float* pr = fr + 4 * (i + k);
        float* pi = fi + 4 * (i + k);
        const __m256 xr = _mm256_loadu_ps(pr + 4 * h), xi = _mm256_loadu_ps(pi + 4 * h);
        const __m256 tr = _mm256_fmsub_ps(xr, wr, _mm256_mul_ps(xi, wi));
        const __m256 ti = _mm256_fmadd_ps(xr, wi, _mm256_mul_ps(xi, wr));
        const __m256 ar = _mm256_loadu_ps(pr), ai = _mm256_loadu_ps(pi);
        _mm256_storeu_ps(pr + 4 * h, _mm256_sub_ps(ar, tr));
        _mm256_storeu_ps(pi + 4 * h, _mm256_sub_ps(ai, ti));
        _mm256_storeu_ps(pr, _mm256_add_ps(ar, tr));
        _mm256_storeu_ps(pi, _mm256_add_ps(ai, ti));
      }
  }
}
#endif
}  // namespace

void LaneFft::forward(v4f* re, v4f* im) const noexcept {
  const std::size_t n = n_;
  for (std::size_t j = 0; j < n; ++j)
    if (const std::size_t r = rev_[j]; r > j) {
      std::swap(re[j], re[r]);
      std::swap(im[j], im[r]);
    }
  // First stage: twiddle 1.
  for (std::size_t i = 0; i + 1 < n; i += 2) {
    const v4f ar = re[i], ai = im[i], br = re[i + 1], bi = im[i + 1];
    re[i] = ar + br, im[i] = ai + bi;
    re[i + 1] = ar - br, im[i + 1] = ai - bi;
  }
#if defined(__x86_64__)
  if (avx2_) return stages_avx2(re, im, n, tw_re_.data(), tw_im_.data());
#endif
  stages_portable(re, im, n, tw_re_.data(), tw_im_.data());
}

QuadFft::QuadFft(std::size_t n) : quarter_(n / 4), tw_re_(n / 4), tw_im_(n / 4) {
  for (std::size_t k = 0; k < n / 4; ++k)
    for (int r = 0; r < 4; ++r) {
      const double a = -2 * std::numbers::pi * double(r) * double(k) / double(n);
      tw_re_[k][r] = static_cast<float>(std::cos(a));
      tw_im_[k][r] = static_cast<float>(std::sin(a));
    }
}

namespace {
// Rows a..d become columns: lane l of the result r is lane r of row l.
inline void transpose4(v4f& a, v4f& b, v4f& c, v4f& d) noexcept {
  const v4f t0 = __builtin_shufflevector(a, b, 0, 4, 1, 5), t1 = __builtin_shufflevector(a, b, 2, 6, 3, 7);
  const v4f t2 = __builtin_shufflevector(c, d, 0, 4, 1, 5), t3 = __builtin_shufflevector(c, d, 2, 6, 3, 7);
  a = __builtin_shufflevector(t0, t2, 0, 1, 4, 5), b = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
  c = __builtin_shufflevector(t1, t3, 0, 1, 4, 5), d = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
}

// Four complex values from their real and imaginary parts, interleaved.
inline void store_complex(std::complex<float>* out, v4f re, v4f im) noexcept {
  const v4f lo = __builtin_shufflevector(re, im, 0, 4, 1, 5), hi = __builtin_shufflevector(re, im, 2, 6, 3, 7);
  std::memcpy(static_cast<void*>(out), &lo, sizeof lo);
  std::memcpy(static_cast<void*>(out + 2), &hi, sizeof hi);
}
}  // namespace

void QuadFft::forward(v4f* re, v4f* im, std::complex<float>* out) const noexcept {
  const std::size_t m = quarter_.size();
  quarter_.forward(re, im);
  // X[k + q m] = sum_r W^{rk} Y_r[k] (-i)^{rq}: twiddle the lanes, then a
  // 4-point transform across them, four k at a time (transposed, so that
  // the transform runs across vectors).
  auto twiddled = [&](std::size_t k, v4f& yr, v4f& yi) {
    yr = re[k] * tw_re_[k] - im[k] * tw_im_[k];
    yi = re[k] * tw_im_[k] + im[k] * tw_re_[k];
  };
  std::size_t k = 0;
  for (; k + 4 <= m; k += 4) {
    v4f r0, i0, r1, i1, r2, i2, r3, i3;  // row j: k + j, lanes r
    twiddled(k, r0, i0), twiddled(k + 1, r1, i1), twiddled(k + 2, r2, i2), twiddled(k + 3, r3, i3);
    transpose4(r0, r1, r2, r3);  // now row r: lanes k..k+3
    transpose4(i0, i1, i2, i3);
    const v4f ar = r0 + r2, ai = i0 + i2, br = r0 - r2, bi = i0 - i2;
    const v4f cr = r1 + r3, ci = i1 + i3, dr = r1 - r3, di = i1 - i3;
    store_complex(out + k, ar + cr, ai + ci);
    store_complex(out + k + m, br + di, bi - dr);      // b - i d
    store_complex(out + k + 2 * m, ar - cr, ai - ci);
    store_complex(out + k + 3 * m, br - di, bi + dr);  // b + i d
  }
  for (; k < m; ++k) {  // m < 4
    v4f yr, yi;
    twiddled(k, yr, yi);
    const float ar = yr[0] + yr[2], ai = yi[0] + yi[2], br = yr[0] - yr[2], bi = yi[0] - yi[2];
    const float cr = yr[1] + yr[3], ci = yi[1] + yi[3], dr = yr[1] - yr[3], di = yi[1] - yi[3];
    out[k] = {ar + cr, ai + ci};
    out[k + m] = {br + di, bi - dr};
    out[k + 2 * m] = {ar - cr, ai - ci};
    out[k + 3 * m] = {br - di, bi + dr};
  }
}

}  // namespace wattpipe::pipeline::analysis

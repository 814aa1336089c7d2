// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/lane_fft.hpp"

#include <bit>
#include <cmath>
#include <numbers>

namespace wattpipe::pipeline::analysis {

LaneFft::LaneFft(std::size_t n) : n_(n), cos_(n / 2), sin_(n / 2), rev_(n) {
  for (std::size_t k = 0; k < n / 2; ++k) {
    const double a = 2 * std::numbers::pi * double(k) / double(n);
    cos_[k] = static_cast<float>(std::cos(a));
    sin_[k] = static_cast<float>(std::sin(a));
  }
  const int bits = std::countr_zero(n);
  for (std::size_t j = 0; j < n; ++j) {
    std::uint32_t r = 0;
    for (int b = 0; b < bits; ++b) r |= ((j >> b) & 1u) << (bits - 1 - b);
    rev_[j] = r;
  }
}

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
  // Radix-2 stages, decimation in time.
  for (std::size_t half = 2; half < n; half *= 2) {
    const std::size_t step = n / (2 * half);
    for (std::size_t i = 0; i < n; i += 2 * half)
      for (std::size_t k = 0; k < half; ++k) {
        const float wr = cos_[k * step], wi = -sin_[k * step];
        v4f* pr = re + i + k;
        v4f* pi = im + i + k;
        const v4f xr = pr[half], xi = pi[half];
        const v4f tr = xr * wr - xi * wi, ti = xr * wi + xi * wr;
        pr[half] = *pr - tr, pi[half] = *pi - ti;
        *pr += tr, *pi += ti;
      }
  }
}

QuadFft::QuadFft(std::size_t n) : quarter_(n / 4), tw_re_(n / 4), tw_im_(n / 4) {
  for (std::size_t k = 0; k < n / 4; ++k)
    for (int r = 0; r < 4; ++r) {
      const double a = -2 * std::numbers::pi * double(r) * double(k) / double(n);
      tw_re_[k][r] = static_cast<float>(std::cos(a));
      tw_im_[k][r] = static_cast<float>(std::sin(a));
    }
}

void QuadFft::forward(v4f* re, v4f* im, std::complex<float>* out) const noexcept {
  const std::size_t m = quarter_.size();
  quarter_.forward(re, im);
  // X[k + q m] = sum_r W^{rk} Y_r[k] (-i)^{rq}: twiddle the lanes, then a
  // 4-point transform across them.
  for (std::size_t k = 0; k < m; ++k) {
    const v4f yr = re[k] * tw_re_[k] - im[k] * tw_im_[k];
    const v4f yi = re[k] * tw_im_[k] + im[k] * tw_re_[k];
    const float ar = yr[0] + yr[2], ai = yi[0] + yi[2], br = yr[0] - yr[2], bi = yi[0] - yi[2];
    const float cr = yr[1] + yr[3], ci = yi[1] + yi[3], dr = yr[1] - yr[3], di = yi[1] - yi[3];
    out[k] = {ar + cr, ai + ci};
    out[k + m] = {br + di, bi - dr};      // b - i d
    out[k + 2 * m] = {ar - cr, ai - ci};
    out[k + 3 * m] = {br - di, bi + dr};  // b + i d
  }
}

}  // namespace wattpipe::pipeline::analysis

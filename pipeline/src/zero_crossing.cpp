// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/zero_crossing.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace wattpipe::pipeline {

ZeroCrossingDetector::ZeroCrossingDetector(double sample_rate_hz, double nominal_hz) {
  const double per_cycle = sample_rate_hz / nominal_hz;
  k_ = static_cast<unsigned>(std::clamp(std::lround(per_cycle / 36.0), 2L, 512L));
  step_ = static_cast<std::size_t>(std::clamp(std::lround(per_cycle / 50.0), 4L, 16L));
  hist_.assign(std::bit_ceil(std::size_t{2} * k_ + 2), 0.0f);
  mask_ = hist_.size() - 1;
  for (int j = -int(k_); j < int(k_); ++j) {
    const double s2 = (j + 0.5) * (j + 0.5);
    s0_ += 1, s2_ += s2, s4_ += s2 * s2, s6_ += s2 * s2 * s2;
  }
  inv_de_ = 1 / (s0_ * s4_ - s2_ * s2_);
  inv_dodd_ = 1 / (s2_ * s6_ - s4_ * s4_);
}

void ZeroCrossingDetector::reset(std::uint64_t pos) noexcept {
  pos_ = reset_pos_ = start_ = pos;
  pending_ = kNone;
  armed_ = false;
}

bool ZeroCrossingDetector::refine(std::uint64_t c, double& t) const noexcept {
  // The crossing lies between samples c-1 and c. Fit a cubic by least squares
  // to samples c-K .. c+K-1 around tc = c - 0.5 (abscissae s = j + 0.5 are
  // symmetric, so even and odd terms decouple), then solve it for zero near
  // the middle. A straight line would be biased by the sine's curvature when
  // the crossing sits off-centre (about 5e-3 of a sample at 400 samples per
  // cycle); the cubic term takes that out.
  if (c < reset_pos_ + k_) return false;  // not enough samples before it since the reset
  // The 2K samples side by side first (from the history, then the block):
  // the sums below then run without a branch per sample.
  float ys[1024];
  const std::uint64_t first = c - k_, n = 2 * std::uint64_t{k_};
  const std::uint64_t from_hist = start_ > first ? std::min(start_ - first, n) : 0;
  for (std::uint64_t q = 0; q < from_hist; ++q) ys[q] = hist_[(first + q) & mask_];
  for (std::uint64_t q = from_hist; q < n; ++q) ys[q] = x_[(first + q - start_) * stride_];
  // Samples at s and -s taken together: the even sums of their sum, the odd
  // ones of their difference (half the products, half the chain).
  double y0 = 0, y1 = 0, y2 = 0, y3 = 0;
  for (int j = 0; j < int(k_); ++j) {
    const double s = j + 0.5, s2 = s * s;
    const double hi = ys[k_ + unsigned(j)], lo = ys[k_ - 1 - unsigned(j)];
    const double e = hi + lo, o = hi - lo;
    y0 += e;
    y1 += s * o;
    y2 += s2 * e;
    y3 += s2 * s * o;
  }
  // Even part: [N S2; S2 S4] [a; c2] = [y0; y2]. Odd part: [S2 S4; S4 S6] [b; c3] = [y1; y3].
  const double a = (y0 * s4_ - s2_ * y2) * inv_de_, c2 = (s0_ * y2 - s2_ * y0) * inv_de_;
  const double b = (y1 * s6_ - s4_ * y3) * inv_dodd_, c3 = (s2_ * y3 - s4_ * y1) * inv_dodd_;
  if (!(b > 0)) return false;
  double x = -a / b;
  // Newton from the line's root; it converges in two or three steps, and
  // stops once a step no longer moves x by more than 1e-12 of a sample.
  for (int it = 0; it < 4; ++it) {
    const double f = a + x * (b + x * (c2 + x * c3));
    const double df = b + x * (2 * c2 + 3 * c3 * x);
    if (!(df > 0)) return false;
    const double dx = f / df;
    x -= dx;
    if (std::abs(dx) <= 1e-12) break;
  }
  if (!(std::abs(x) <= k_)) return false;
  t = double(c) - 0.5 + x;
  return true;
}

}  // namespace wattpipe::pipeline

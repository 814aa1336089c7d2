#include "wattpipe/pipeline/zero_crossing.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace wattpipe::pipeline {

ZeroCrossingDetector::ZeroCrossingDetector(double sample_rate_hz, double nominal_hz) {
  const double per_cycle = sample_rate_hz / nominal_hz;
  k_ = static_cast<unsigned>(std::clamp(std::lround(per_cycle / 36.0), 2L, 512L));
  hist_.assign(std::bit_ceil(std::size_t{2} * k_ + 2), 0.0f);
  mask_ = hist_.size() - 1;
  sxx_ = 0;
  for (int j = -int(k_); j < int(k_); ++j) sxx_ += (j + 0.5) * (j + 0.5);
}

void ZeroCrossingDetector::reset(std::uint64_t pos) noexcept {
  pos_ = pos;
  filled_ = 0;
  pending_ = kNone;
  armed_ = false;
}

bool ZeroCrossingDetector::refine(std::uint64_t c, double& t) const noexcept {
  // The crossing lies between samples c-1 and c; fit samples c-K .. c+K-1
  // around tc = c - 0.5, where the abscissae j + 0.5 sum to zero.
  if (filled_ < std::uint64_t{2} * k_ || c < k_) return false;
  double sx = 0, sxy = 0;
  for (int j = -int(k_); j < int(k_); ++j) {
    const double y = hist_[(c + j) & mask_];
    sx += y;
    sxy += (j + 0.5) * y;
  }
  const double a = sx / (2.0 * k_);  // fitted value at tc
  const double b = sxy / sxx_;       // fitted slope per sample
  if (!(b > 0)) return false;
  const double d = -a / b;
  if (!(std::abs(d) <= k_)) return false;
  t = double(c) - 0.5 + d;
  return true;
}

}  // namespace wattpipe::pipeline

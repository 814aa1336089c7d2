// SPDX-License-Identifier: Apache-2.0
// Rising zero crossings of a voltage with sub-sample resolution.
//
// A candidate is the first sample >= 0 after the signal went below -h
// (hysteresis h). It is refined once K samples past it are known: a least-
// squares cubic through the 2K samples around the crossing (a zero-phase low
// pass, Savitzky-Golay order 3) is solved for zero. Harmonics shift every
// crossing by the same amount, so periods stay exact.
//
// Threading: single thread (the processing thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace wattpipe::pipeline {

class ZeroCrossingDetector {
 public:
  // K is about 10 degrees of the nominal cycle, at least 2, at most 512.
  ZeroCrossingDetector(double sample_rate_hz, double nominal_hz);

  [[nodiscard]] unsigned half_width() const noexcept { return k_; }
  // Hysteresis in volts (peak): the signal must fall below -h to arm.
  void set_hysteresis(double h) noexcept { h_ = h; }
  // Forget history (discontinuity in the stream). Next sample is at `pos`.
  void reset(std::uint64_t pos) noexcept;

  // Feeds n samples x[0], x[stride], ... at stream positions pos_, pos_+1, ...
  // Calls on_crossing(t) with the fractional stream position of each refined
  // rising crossing. The samples are read in place; only the last 2K are
  // copied (for crossings that straddle blocks).
  template <typename OnCrossing>
  void feed(const float* x, std::size_t stride, std::size_t n, OnCrossing&& on_crossing) {
    x_ = x;
    stride_ = stride;
    start_ = pos_;
    const std::uint64_t end = pos_ + n;
    double t;
    if (pending_ != kNone && pending_ + k_ <= end) {
      if (refine(pending_, t)) on_crossing(t);
      pending_ = kNone;
    }
    bool armed = armed_;
    const float h = static_cast<float>(-h_);
    // The scan looks at every step_-th sample: arming at -h can be a few
    // samples late without harm (the signal stays below -h for most of the
    // half cycle), and a hit at >= 0 is walked back to the first sample >= 0.
    // Two tight loops, one per state, index and offset stepped together.
    // (Locals: the callback may alias the members, which a loop would reload.)
    const std::size_t sj = step_, step = sj * stride;
    std::size_t j = 0, at = 0;  // at == j * stride
    for (;;) {
      if (!armed) {
        while (j < n && !(x[at] < h)) j += sj, at += step;
        if (j >= n) break;
        armed = true;
        j += sj, at += step;
        continue;
      }
      while (j < n && x[at] < 0.0f) j += sj, at += step;
      if (j >= n) break;
      const std::size_t lo = j >= sj - 1 ? j - (sj - 1) : 0;
      while (j > lo && x[(j - 1) * stride] >= 0.0f) --j;
      armed = false;
      const std::uint64_t c = pos_ + j;
      if (pending_ == kNone) {  // one at a time (another cannot come within ~10 degrees)
        if (c + k_ <= end) {
          if (refine(c, t)) on_crossing(t);
        } else {
          pending_ = c;
        }
      }
      j += sj, at = j * stride;
    }
    armed_ = armed;
    // Keep the last 2K samples for crossings that straddle this block's end.
    const std::size_t keep = std::min<std::size_t>(n, hist_.size());
    for (std::size_t q = n - keep; q < n; ++q) hist_[(pos_ + q) & mask_] = x[q * stride];
    pos_ = end;
  }
  [[nodiscard]] std::uint64_t position() const noexcept { return pos_; }

 private:
  static constexpr std::uint64_t kNone = ~std::uint64_t{0};
  bool refine(std::uint64_t c, double& t) const noexcept;


  unsigned k_;
  // Scan step: 4 samples, up to 16 at 800 samples per cycle and more (the
  // signal stays below -h for about three quarters of a half cycle).
  std::size_t step_;
  double h_ = 14.0;
  std::vector<float> hist_;  // the last samples before the current block
  std::uint64_t mask_;
  std::uint64_t pos_ = 0;
  std::uint64_t reset_pos_ = 0;  // first position after the last reset
  std::uint64_t pending_ = kNone;
  bool armed_ = false;
  const float* x_ = nullptr;  // block being fed
  std::size_t stride_ = 1;
  std::uint64_t start_ = 0;   // its first position
  double s0_ = 0, s2_ = 0, s4_ = 0, s6_ = 0;  // sums of even powers of the fit's abscissae
  double inv_de_ = 0, inv_dodd_ = 0;          // 1 / the determinants of the fit's even and odd parts
};

}  // namespace wattpipe::pipeline

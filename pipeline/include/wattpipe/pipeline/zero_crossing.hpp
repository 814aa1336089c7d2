// Rising zero crossings of a voltage with sub-sample resolution.
//
// A candidate is the first sample >= 0 after the signal went below -h
// (hysteresis h). It is refined once K samples past it are known: a least-
// squares line through the 2K samples around the crossing (a zero-phase low
// pass, Savitzky-Golay order 1) is solved for zero. Harmonics shift every
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
  // rising crossing.
  template <typename OnCrossing>
  void feed(const float* x, std::size_t stride, std::size_t n, OnCrossing&& on_crossing) {
    for (std::size_t j = 0; j < n; ++j) {
      const float v = x[j * stride];
      hist_[pos_ & mask_] = v;
      if (armed_) {
        if (v >= 0.0f) {
          armed_ = false;
          if (pending_ == kNone) pending_ = pos_;
        }
      } else if (v < -h_) {
        armed_ = true;
      }
      ++filled_;
      if (pending_ != kNone && pos_ >= pending_ + k_ - 1) {
        double t;
        if (refine(pending_, t)) on_crossing(t);
        pending_ = kNone;
      }
      ++pos_;
    }
  }

  [[nodiscard]] std::uint64_t position() const noexcept { return pos_; }

 private:
  static constexpr std::uint64_t kNone = ~std::uint64_t{0};
  bool refine(std::uint64_t c, double& t) const noexcept;

  unsigned k_;
  double h_ = 14.0;
  std::vector<float> hist_;
  std::uint64_t mask_;
  std::uint64_t pos_ = 0;
  std::uint64_t filled_ = 0;  // samples in history since reset
  std::uint64_t pending_ = kNone;
  bool armed_ = false;
  double sxx_;  // sum (j + 0.5)^2 over the fit, fixed for a given K
};

}  // namespace wattpipe::pipeline

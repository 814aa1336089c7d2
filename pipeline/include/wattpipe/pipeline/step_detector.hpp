// SPDX-License-Identifier: Apache-2.0
// Current steps in a level series (DC current samples, or one-cycle RMS of an
// AC phase current every half cycle).
//
// A step begins when the level leaves the old settled level by more than the
// threshold. It has settled once the last `hold` samples stay within +-band of
// the step size around their mean, and that stays true for twice as long as
// the move took to get there (so the new level, the mean of the last `hold`
// samples at that point, is the final one). Then, interpolating between
// samples: the start is where the level left +-band around the old level;
// rise time 10 % -> 90 % of the step; settling time from the start until it
// stays within +-band around the new level; overshoot beyond the new level
// in % of the step; largest slope. A move that does not settle within
// `max_s` makes a new level without an event (a drift, not a step).
//
// Threading: one thread (the processing thread).
#pragma once

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <vector>

namespace wattpipe::pipeline {

struct StepConfig {
  double threshold = 5;     // level change that makes a step (A)
  double band = 0.02;       // settling band, fraction of the step size
  double hold_s = 0.02;     // the new level must hold this long
  double max_s = 10;        // a move longer than this is a drift, not a step
};

struct StepResult {
  double t_start_s = 0;     // series time (seconds) where the level left the old band
  double t_10_s = 0;        // 10 % of the step
  double from = 0, to = 0;
  double rise_time_s = 0, settling_time_s = 0;
  double overshoot_percent = 0;
  double max_slope_per_s = 0;  // signed like the step
};

class StepDetector {
 public:
  // Allocates the history for samples spaced at least min_dt_s apart (at
  // most 2^21 samples: max_s is shortened to what that holds). `uniform`:
  // the samples come exactly min_dt_s apart, so their times are not stored.
  void configure(const StepConfig& cfg, double min_dt_s, bool uniform = false);
  // Forget the level (new stream, gap).
  void reset() noexcept;
  // One sample at series time t_s (rising). True when a step completed: `out` filled.
  bool push(double t_s, double x, StepResult& out) noexcept;
  // The common case of a uniform series, inline: a sample within the
  // threshold of the level while nothing moves is only kept. False: not
  // taken; call push() with the sample's time (it does the same and more).
  bool push_quiet(double x) noexcept {
    if (!uniform_ || !have_level_ || moving_ || !(std::fabs(x - level_) <= cfg_.threshold)) return false;
    x_[n_ & mask_] = static_cast<float>(x);
    ++n_;
    return true;
  }
  // push_quiet() over channel `channel` of n interleaved frames of
  // `channels` (2, 6 or 8: a layout's) at once: how many of them, from the
  // first, it took (a block at a time: their extremes decide).
  std::size_t push_quiet_run(const float* frames, unsigned channels, unsigned channel, std::size_t n) noexcept;

 private:
  [[nodiscard]] double x_at(std::uint64_t i) const noexcept { return double(x_[i & mask_]); }
  [[nodiscard]] double t_at(std::uint64_t i) const noexcept {
    return uniform_ ? t_first_ + double(i) * dt_ : t_[i & mask_];
  }
  // Time where the series crosses `level` between samples i and i+1.
  [[nodiscard]] double cross(std::uint64_t i, double level) const noexcept;
  bool settled(StepResult& out) noexcept;

  StepConfig cfg_;
  std::vector<float> x_;  // levels in float: 1e-7 of a level is far below any band
  std::vector<double> t_;  // sample times, unless uniform
  bool uniform_ = false;
  double dt_ = 0, t_first_ = 0;
  std::uint64_t mask_ = 0;
  std::uint64_t n_ = 0;           // samples pushed
  std::uint64_t hold_n_ = 3;      // samples in the hold window
  bool have_level_ = false;
  double level_ = 0;
  bool moving_ = false;
  std::uint64_t trigger_ = 0;     // index of the first sample past the threshold
  double t_candidate_ = -1;       // first time the band held since the trigger; < 0: not yet
};

}  // namespace wattpipe::pipeline

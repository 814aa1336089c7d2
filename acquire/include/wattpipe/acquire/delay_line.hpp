// SPDX-License-Identifier: Apache-2.0
// A channel sampled late (a current sampled after its voltage: the
// calibration's delay-us), undone: the value at frame n is read at n - d by
// linear interpolation, over this block and the last kHist frames before it.
// The processing thread undoes it on every channel it calibrates; the car
// side undoes it on the grid side's currents for its input power, so both
// see the same samples.
//
// Threading: one thread per instance.
#pragma once

#include <array>
#include <cstddef>

namespace wattpipe::acquire {

class DelayLine {
 public:
  static constexpr std::size_t kHist = 64;
  // The longest delay, in frames.
  static constexpr double kMaxFrames = double(kHist - 2);

  // A new stream (start, gap, new rate): the frames before it are taken as `v`.
  void reset(float v) noexcept { hist_.fill(v); }
  // x[0], x[stride], ... (n <= kBlockFrames frames) in place, read d frames
  // earlier (d in [0, kMaxFrames]); keeps the last kHist for the next block.
  void apply(float* x, std::size_t stride, std::size_t n, double d) noexcept;

 private:
  std::array<float, kHist> hist_{};
};

}  // namespace wattpipe::acquire

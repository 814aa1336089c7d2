// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/delay_line.hpp"

#include <algorithm>

#include "wattpipe/acquire/sample_block.hpp"

namespace wattpipe::acquire {

void DelayLine::apply(float* x, std::size_t stride, std::size_t n, double d) noexcept {
  d = std::clamp(d, 0.0, kMaxFrames);
  const std::size_t whole = static_cast<std::size_t>(d);
  const float a = static_cast<float>(d - double(whole));
  std::array<float, kHist + kBlockFrames> ext;
  std::copy(hist_.begin(), hist_.end(), ext.begin());
  for (std::size_t f = 0; f < n; ++f) ext[kHist + f] = x[f * stride];
  for (std::size_t f = 0; f < n; ++f) {
    const std::size_t at = kHist + f - whole;
    x[f * stride] = (1.0f - a) * ext[at] + a * ext[at - 1];
  }
  std::copy(ext.begin() + std::ptrdiff_t(n), ext.begin() + std::ptrdiff_t(n + kHist), hist_.begin());
}

}  // namespace wattpipe::acquire

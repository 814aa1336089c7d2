// SPDX-License-Identifier: Apache-2.0
// Rate limit for log lines that bad input could otherwise turn into a flood.
//
// Threading: one instance per thread (not synchronised).
#pragma once

#include <cstdint>

#include "wattpipe/acquire/clock.hpp"

namespace wattpipe::acquire {

class LogLimit {
 public:
  explicit LogLimit(std::int64_t interval_ns = 1'000'000'000) : interval_ns_(interval_ns) {}

  // Owning thread only. True when a line may be logged now; `suppressed` is
  // then the number of lines swallowed since the last one that was allowed.
  bool allow(std::uint64_t& suppressed) noexcept {
    const std::int64_t now = steady_now_ns();
    if (last_ns_ != 0 && now - last_ns_ < interval_ns_) {
      ++suppressed_;
      return false;
    }
    last_ns_ = now;
    suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  std::int64_t interval_ns_;
  std::int64_t last_ns_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace wattpipe::acquire

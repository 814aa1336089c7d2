// SPDX-License-Identifier: Apache-2.0
// Latency histogram with 1 us buckets up to 100 ms: exact percentiles for
// the range that matters, fixed memory, no allocation after construction.
//
// Threading: record() and percentile() from one thread; merge snapshots by
// copying on that thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace wattpipe::publish {

class LatencyHistogram {
 public:
  LatencyHistogram() : buckets_(kBuckets, 0) {}

  void record(std::int64_t ns) noexcept {
    const std::int64_t us = std::max<std::int64_t>(ns, 0) / 1000;
    ++buckets_[static_cast<std::size_t>(std::min<std::int64_t>(us, kBuckets - 1))];
    max_ns_ = std::max(max_ns_, ns);
    ++count_;
  }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] std::int64_t max_ns() const noexcept { return max_ns_; }
  // Upper edge of the bucket holding quantile q (0..1), in microseconds.
  [[nodiscard]] double percentile_us(double q) const noexcept {
    if (count_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(q * double(count_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      seen += buckets_[b];
      if (seen >= rank) return double(b + 1);
    }
    return double(max_ns_) / 1000.0;
  }

 private:
  static constexpr std::int64_t kBuckets = 100000;
  std::vector<std::uint32_t> buckets_;
  std::int64_t max_ns_ = 0;
  std::uint64_t count_ = 0;
};

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
// Clock helpers: steady time for pacing and latency, UTC for timestamps.
//
// Threading: free functions, callable from any thread.
#pragma once

#include <cerrno>
#include <cstdint>
#include <ctime>

namespace wattpipe::acquire {

inline std::int64_t steady_now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline std::int64_t utc_now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Sleeps until an absolute CLOCK_MONOTONIC time (no drift from relative sleeps).
inline void sleep_until_steady_ns(std::int64_t t_ns) noexcept {
  timespec ts{static_cast<time_t>(t_ns / 1'000'000'000), static_cast<long>(t_ns % 1'000'000'000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Paces a recording in real time: a piece that ends `end_ns` into the
// recording is due that long after the first piece was asked for.
// Threading: one owner.
class Pacer {
 public:
  // Sleeps until the piece is due and returns true; false (after sleeping
  // `timeout_ns`) when it is not due within the timeout.
  bool wait(std::int64_t end_ns, std::int64_t timeout_ns) noexcept {
    const std::int64_t now = steady_now_ns();
    if (start_ < 0) start_ = now - end_ns;
    const std::int64_t due = start_ + end_ns;
    if (due <= now) return true;
    if (due - now > timeout_ns) {
      sleep_until_steady_ns(now + timeout_ns);
      return false;
    }
    sleep_until_steady_ns(due);
    return true;
  }

 private:
  std::int64_t start_ = -1;
};

}  // namespace wattpipe::acquire

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

// Days since 1970-01-01 of a proleptic Gregorian date, and back
// (H. Hinnant's algorithms: exact for any year, no table, no allocation).
constexpr std::int64_t days_from_civil(int y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return std::int64_t{era} * 146097 + std::int64_t{doe} - 719468;
}

// A UTC time in ns since 1970 as calendar fields, rounded down (-1 ns is
// 1969-12-31 23:59:59.999999999); no leap seconds, as in UTC time stamps.
// Every formatter of a UTC time starts here, so they agree on the rounding.
struct UtcFields {
  int year = 1970;
  unsigned month = 1, day = 1, hour = 0, minute = 0, second = 0;
  std::int64_t ns = 0;  // within the second, 0..999 999 999
};

constexpr UtcFields utc_fields(std::int64_t utc_ns) noexcept {
  constexpr std::int64_t kDayNs = 86'400'000'000'000;
  const std::int64_t days = utc_ns >= 0 ? utc_ns / kDayNs : -((-(utc_ns + 1)) / kDayNs) - 1;
  const std::int64_t in_day = utc_ns - days * kDayNs;
  UtcFields f;
  std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  f.day = doy - (153 * mp + 2) / 5 + 1;
  f.month = mp < 10 ? mp + 3 : mp - 9;
  f.year = static_cast<int>(static_cast<std::int64_t>(yoe) + era * 400 + (f.month <= 2));
  const auto sec = static_cast<unsigned>(in_day / 1'000'000'000);
  f.hour = sec / 3600;
  f.minute = sec / 60 % 60;
  f.second = sec % 60;
  f.ns = in_day % 1'000'000'000;
  return f;
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

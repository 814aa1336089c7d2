// SPDX-License-Identifier: Apache-2.0
// Progress with an estimate of the time left, on stderr, only when stderr is
// a terminal (quiet in pipelines, logs and tests).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace wattpipe::tools {

class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), tty_(::isatty(STDERR_FILENO) == 1) {}
  // done and total in any unit (bytes, frames); total 0: unknown.
  void update(double done, double total) {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    if (total > 0 && done > 0) {
      const double left = secs * (total - done) / done;
      std::fprintf(stderr, "\r%s: %5.1f %%, %.0f s left   ", what_.c_str(), 100.0 * done / total, left);
    } else {
      std::fprintf(stderr, "\r%s: %.0f s   ", what_.c_str(), secs);
    }
    std::fflush(stderr);
    shown_ = true;
  }
  ~Progress() {
    if (shown_) std::fprintf(stderr, "\r%*s\r", int(what_.size()) + 32, "");
  }

 private:
  std::string what_;
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

}  // namespace wattpipe::tools

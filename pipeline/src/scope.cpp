// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/scope.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace wattpipe::pipeline {

void ScopeCapture::begin_capture(const acquire::SampleBlock& b, std::size_t f, bool triggered) noexcept {
  ScopeSnapshot& s = out_.back_buffer();
  s.serial = ++serial_;
  s.layout = b.layout;
  s.channels = b.channels;
  s.sample_rate_hz = b.sample_rate_hz;
  span_frames_ = std::max<std::uint64_t>(2, static_cast<std::uint64_t>(std::llround(cfg_.span_s * b.sample_rate_hz)));
  s.columns = static_cast<unsigned>(std::min<std::uint64_t>(kScopeColumns, span_frames_));
  s.column_s = double(span_frames_) / b.sample_rate_hz / s.columns;
  s.t0_utc_ns = b.t0_ns + static_cast<std::int64_t>(std::llround(double(f) * 1e9 / b.sample_rate_hz));
  s.triggered = triggered;
  for (unsigned c = 0; c < s.channels; ++c) {
    std::fill_n(s.min[c].begin(), s.columns, std::numeric_limits<float>::infinity());
    std::fill_n(s.max[c].begin(), s.columns, -std::numeric_limits<float>::infinity());
  }
  start_frame_ = b.first_frame + f;
  u1_peak_ = 0;
  state_ = State::capturing;
}

void ScopeCapture::feed(const acquire::SampleBlock& b, std::int64_t now_steady_ns) noexcept {
  if (b.frames == 0 || !(b.sample_rate_hz > 0)) return;
  // A gap or a new stream (or a source switching layout or rate under way)
  // ends a capture half done; the next one starts afresh.
  if (state_ == State::capturing) {
    const ScopeSnapshot& s = out_.back_buffer();
    if (b.layout != s.layout || b.channels != s.channels || b.sample_rate_hz != s.sample_rate_hz) state_ = State::idle;
  }
  if (state_ != State::idle && b.first_frame != expected_frame_) state_ = State::idle;
  expected_frame_ = b.first_frame + b.frames;
  std::size_t f = 0;
  if (state_ == State::idle) {
    if (now_steady_ns < next_ns_) return;
    next_ns_ = now_steady_ns + cfg_.interval_ns;
    const auto li = acquire::layout_info(b.layout);
    if (li.dc) {
      begin_capture(b, 0, false);
    } else {
      state_ = State::armed;
      armed_frames_ = 0;
      below_ = false;
    }
  }
  if (state_ == State::armed) {
    // Rising zero crossing of U1 after it was below -hysteresis (noise on
    // the zero line does not trigger); none within two spans: free-running.
    const unsigned ch = b.channels;
    for (; f < b.frames; ++f) {
      const float u = b.data[f * ch];
      if (u < -hysteresis_) below_ = true;
      else if (below_ && u >= 0) break;
    }
    armed_frames_ += f;
    if (f < b.frames) {
      begin_capture(b, f, true);
    } else if (armed_frames_ > 2 * static_cast<std::uint64_t>(cfg_.span_s * b.sample_rate_hz) + 2) {
      begin_capture(b, 0, false), f = 0;
    } else {
      return;
    }
  }
  // Capturing: fold frames into their columns.
  ScopeSnapshot& s = out_.back_buffer();
  const unsigned ch = s.channels, cols = s.columns;
  const std::uint64_t end = start_frame_ + span_frames_;
  for (; f < b.frames; ++f) {
    const std::uint64_t k = b.first_frame + f;
    if (k >= end) break;
    const auto col = static_cast<unsigned>((k - start_frame_) * cols / span_frames_);
    const float* x = b.data.data() + f * ch;
    for (unsigned c = 0; c < ch; ++c) {
      s.min[c][col] = std::min(s.min[c][col], x[c]);
      s.max[c][col] = std::max(s.max[c][col], x[c]);
    }
    u1_peak_ = std::max(u1_peak_, std::fabs(x[0]));
  }
  if (b.first_frame + f >= end) {
    hysteresis_ = 0.02f * u1_peak_;
    out_.publish();
    state_ = State::idle;
  }
}

}  // namespace wattpipe::pipeline

// SPDX-License-Identifier: Apache-2.0
// The oscilloscope view of the live page (docs/web.md): a few cycles of raw,
// calibrated samples, triggered on U1's rising zero crossing (AC) or taken
// as they come (DC), reduced to at most kScopeColumns columns holding each
// channel's minimum and maximum, so that no ripple peak is lost however
// high the sample rate.
//
// Threading: ScopeCapture::feed() on the processing thread only; it fills the
// back buffer of a TripleBuffer that one reader (the web thread) takes. It
// captures at most once per interval, so between captures a block costs a
// clock read.
#pragma once

#include <array>
#include <cstdint>

#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/pipeline/triple_buffer.hpp"

namespace wattpipe::pipeline {

inline constexpr unsigned kScopeColumns = 1000;

struct ScopeSnapshot {
  std::uint64_t serial = 0;          // +1 per capture
  acquire::Layout layout = acquire::Layout::ac3n;
  unsigned channels = 0, columns = 0;
  double sample_rate_hz = 0;
  double column_s = 0;               // time per column
  std::int64_t t0_utc_ns = 0;        // time of column 0's start (the trigger for AC)
  bool triggered = false;            // AC: started at a rising zero crossing of U1
  // [channel][column]; columns past `columns` are unused.
  std::array<std::array<float, kScopeColumns>, acquire::kMaxChannels> min{}, max{};
};

struct ScopeConfig {
  double span_s = 0.04;                   // time shown
  std::int64_t interval_ns = 50'000'000;  // at most one capture per interval (20/s)
};

class ScopeCapture {
 public:
  ScopeCapture(ScopeConfig cfg, TripleBuffer<ScopeSnapshot>& out) : cfg_(cfg), out_(out) {}
  // Every calibrated block, in stream order.
  void feed(const acquire::SampleBlock& b, std::int64_t now_steady_ns) noexcept;

 private:
  enum class State { idle, armed, capturing };
  void begin_capture(const acquire::SampleBlock& b, std::size_t f, bool triggered) noexcept;

  ScopeConfig cfg_;
  TripleBuffer<ScopeSnapshot>& out_;
  State state_ = State::idle;
  std::int64_t next_ns_ = 0;            // steady time of the next capture
  std::uint64_t serial_ = 0;
  std::uint64_t start_frame_ = 0, span_frames_ = 0, expected_frame_ = 0;
  std::uint64_t armed_frames_ = 0;      // frames waited for a trigger
  float hysteresis_ = 0;                // U1 must go below -hysteresis_ before a trigger
  bool below_ = false;                  // ... and has
  float u1_peak_ = 0;                   // of the last capture
};

}  // namespace wattpipe::pipeline

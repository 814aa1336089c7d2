// SPDX-License-Identifier: Apache-2.0
// Where raw sample blocks come from: the simulator, a ZeroMQ DAQ stream, or a
// recorded WPRB file.
//
// Threading: a Source is owned and called by the acquisition thread only.
// counters() may be read from any thread.
//
// Memory ordering: counters are relaxed statistics; nothing is published
// through them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

#include "wattpipe/acquire/sample_block.hpp"

namespace wattpipe::acquire {

struct SourceCounters {
  std::atomic<std::uint64_t> blocks_invalid{0};     // failed validation, skipped
  std::atomic<std::uint64_t> frames_lost_gap{0};    // missing per sequence/first_frame gaps
  std::atomic<std::uint64_t> frames_invalid{0};     // in blocks with a readable header but bad samples
  std::atomic<std::uint64_t> stream_restarts{0};    // sequence went backwards: a new stream
};

enum class ReadStatus {
  ok,        // `out` holds a block
  timeout,   // nothing arrived in time; call again
  end,       // finite source exhausted (or unrecoverable); no block
};

// A bound on |sample| that holds for every block a source will ever give:
// volts on voltage channels, amperes on currents (infinity: none known).
struct PeakBound {
  double v = std::numeric_limits<double>::infinity();
  double a = std::numeric_limits<double>::infinity();
};

class Source {
 public:
  virtual ~Source() = default;

  // Acquisition thread only. Fills `out` (layout, frames, timing, data) with
  // the next block, waiting at most `timeout` for data to arrive.
  virtual ReadStatus read(SampleBlock& out, std::chrono::nanoseconds timeout) = 0;

  // Any thread. True when data arrives in real time: a full ring then drops
  // the block. False for --max-rate: acquisition waits for ring space instead.
  [[nodiscard]] virtual bool real_time() const noexcept = 0;

  // Any thread. True when a read never waits for data (a file or the
  // simulator at --max-rate): the consumer is then woken a batch of blocks at
  // a time, not for each (a wake-up costs more than a block's metrology).
  [[nodiscard]] virtual bool bursts() const noexcept { return false; }

  // Any thread. True when block timestamps should follow the wall clock
  // (live data): the acquisition thread then checks t0 against it.
  [[nodiscard]] virtual bool wall_clock() const noexcept { return real_time(); }

  // Any thread. A bound that holds by construction (a computed signal, not
  // outside input). Within full scale, the acquisition thread skips reading
  // every sample back to check it; beyond it, every block is checked.
  [[nodiscard]] virtual PeakBound peak_bound() const noexcept { return {}; }
  // Any thread. Why a finite source ended ("" when it simply reached its end).
  [[nodiscard]] virtual std::string end_reason() const { return {}; }

  // Any thread (a source that wraps another gives the inner one's).
  [[nodiscard]] virtual const SourceCounters& counters() const noexcept { return counters_; }

 protected:
  SourceCounters counters_;
};

}  // namespace wattpipe::acquire

// SPDX-License-Identifier: Apache-2.0
// Test helpers: closed-form signals generated in the test (sin() per
// sample, independent of the simulator) pushed through a Processor.
#pragma once

#include <cmath>
#include <deque>
#include <functional>
#include <memory>
#include <numbers>
#include <vector>

#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/pipeline/processor.hpp"

namespace wattpipe::testing {

using acquire::Layout;
using acquire::SampleBlock;
using pipeline::WindowRecord;

inline constexpr double kPi = std::numbers::pi;

struct Collect : pipeline::WindowSink {
  std::vector<WindowRecord> windows;
  void on_window(WindowRecord& w) override { windows.push_back(w); }
  // Windows bounded by zero crossings on both ends.
  std::vector<WindowRecord> whole() const {
    std::vector<WindowRecord> out;
    for (const auto& w : windows)
      if (w.whole_cycles) out.push_back(w);
    return out;
  }
};

// Feeds blocks to a Processor, recycling them when it reports them done.
class Feeder {
 public:
  Feeder(pipeline::Processor& p) : p_(p) {}
  SampleBlock& next() {
    if (!free_.empty()) {
      auto b = std::move(free_.back());
      free_.pop_back();
      held_.push_back(std::move(b));
    } else {
      held_.push_back(std::make_unique<SampleBlock>());
    }
    return *held_.back();
  }
  // Pushes the block returned by next().
  void push() {
    if (!p_.push(held_.back().get())) throw std::runtime_error("processor refused a block");
    recycle(p_.advance());
  }
  void flush() { recycle(p_.flush()); }

 private:
  void recycle(std::size_t n) {
    for (std::size_t k = 0; k < n; ++k) {
      free_.push_back(std::move(held_.front()));
      held_.pop_front();
    }
  }
  pipeline::Processor& p_;
  std::deque<std::unique_ptr<SampleBlock>> held_;
  std::vector<std::unique_ptr<SampleBlock>> free_;
};

// value(channel, t_seconds) for every channel of the layout.
using Signal = std::function<double(int channel, double t)>;

inline void feed_signal(Feeder& f, Layout layout, double fs, double seconds, const Signal& sig,
                        std::uint32_t block_frames = 1000) {
  const auto li = acquire::layout_info(layout);
  const auto total = static_cast<std::uint64_t>(std::llround(seconds * fs));
  for (std::uint64_t n = 0; n < total;) {
    SampleBlock& b = f.next();
    const auto frames = static_cast<std::uint32_t>(std::min<std::uint64_t>(block_frames, total - n));
    b.layout = layout;
    b.channels = li.channels;
    b.frames = frames;
    b.first_frame = n;
    b.sample_rate_hz = fs;
    b.t0_ns = static_cast<std::int64_t>(std::llround(double(n) * 1e9 / fs));
    b.lost_frames = 0;
    for (std::uint32_t k = 0; k < frames; ++k) {
      const double t = double(n + k) / fs;
      for (std::uint32_t c = 0; c < li.channels; ++c) b.data[k * li.channels + c] = static_cast<float>(sig(int(c), t));
    }
    f.push();
    n += frames;
  }
}

// Feeds `frames` frames of a simulator stream.
inline void feed_sim(Feeder& f, acquire::Simulator& sim, std::uint64_t frames) {
  for (std::uint64_t n = 0; n < frames;) {
    SampleBlock& b = f.next();
    sim.generate(b, static_cast<std::uint32_t>(std::min<std::uint64_t>(acquire::kBlockFrames, frames - n)));
    f.push();
    n += b.frames;
  }
}

inline double rel(double a, double b) { return std::abs(a - b) / std::abs(b); }

}  // namespace wattpipe::testing

// SPDX-License-Identifier: Apache-2.0
// The processing stage without threads: blocks in, window records out.
//
// push() calibrates a block in place and runs zero-crossing detection on it;
// advance() accumulates every frame whose window boundary is already known
// (detection runs about 2K samples ahead) and closes windows as it goes.
// Blocks stay owned by the caller until advance()/flush() report them done,
// so the processing thread can hand in ring slots without copying.
//
// Threading: every method on one thread (the processing thread in the daemon).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "wattpipe/acquire/delay_line.hpp"
#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/legal/legal.hpp"
#include "wattpipe/pipeline/analyzer.hpp"
#include "wattpipe/pipeline/metrology.hpp"
#include "wattpipe/pipeline/window.hpp"
#include "wattpipe/pipeline/zero_crossing.hpp"

namespace wattpipe::pipeline {

using acquire::SampleBlock;
using legal::Reading;
using legal::RegisterFaults;
using legal::Registers;

struct ChannelCal {
  double gain = 1;       // calibrated = gain * raw + offset
  double offset = 0;
  double delay_us = 0;   // currents: sampled this much after the voltages; undone by interpolation
  [[nodiscard]] bool identity() const noexcept { return gain == 1 && offset == 0 && delay_us == 0; }
};

struct ProcessorConfig {
  unsigned window_cycles = 10;  // AC: whole cycles per window (IEC 61000-4-30: 10 at 50 Hz)
  double window_ms = 100;       // DC window length
  double nominal_hz = 50;       // AC: nominal timing when there is no voltage to lock on
  double min_voltage_v = 10;    // AC: U1 below this RMS has no usable zero crossings
  // Full scale: no energy above full_scale_v x full_scale_a per phase over a
  // window's length is booked (the window is flagged energy_refused instead).
  double full_scale_v = 1e6;
  double full_scale_a = 1e5;
  // By role, in AC3N order: U1 U2 U3 UN I1 I2 I3 IN (AC1 and DC use U1 and I1).
  std::array<ChannelCal, acquire::kMaxChannels> cal{};
  AnalysisConfig analysis;
  double efficiency_bin_w = 10e3;  // the efficiency map's bins of output power (two points)
};

class WindowSink {
 public:
  virtual ~WindowSink() = default;
  // Processing thread. Called for each closed window, in order; the sink may
  // stamp the record (closed_steady_ns) before passing it on.
  virtual void on_window(WindowRecord& w) = 0;
};

class Processor {
 public:
  // max_pending: most blocks the caller may have pushed but not yet seen reported done.
  Processor(const ProcessorConfig& cfg, WindowSink& sink, std::size_t max_pending = 256);

  // Processing thread. Takes the next block of the stream (calibrated in place).
  // False when max_pending blocks are already held (call advance() first).
  bool push(SampleBlock* b);
  // Processing thread. True when push() would refuse a block.
  [[nodiscard]] bool full() const noexcept { return count_ == pending_.size(); }
  // Processing thread. Accumulates what can be; returns how many of the oldest
  // pushed blocks are done (the caller may now reuse them).
  std::size_t advance();
  // Processing thread. End of stream: accumulates everything, closes the last
  // (partial) window. Returns blocks done.
  std::size_t flush();

  // Processing thread. Books the energy measured so far in the open window
  // (so readings are exact at the current position and never go back).
  Reading commit();
  // Processing thread. Registers including the open window's energy, as if
  // committed now, without committing (for persistence).
  [[nodiscard]] Registers folded_registers() const;
  // Processing thread. Registers as of the last closed window or commit.
  [[nodiscard]] const Registers& registers() const noexcept { return energy_.registers(); }
  // Processing thread, before the first block: continue from saved registers.
  void restore(const Registers& r) noexcept { energy_.restore(r); }

  [[nodiscard]] const RegisterFaults& register_faults() const noexcept { return energy_.faults(); }
  [[nodiscard]] std::uint64_t frames_processed() const noexcept { return frames_done_; }
  [[nodiscard]] std::uint64_t windows_closed() const noexcept { return win_seq_; }
  // UTC of the accumulation position.
  [[nodiscard]] std::int64_t position_utc_ns() const noexcept { return utc_at(acc_pos_); }
  [[nodiscard]] bool clock_synced() const noexcept { return clock_synced_; }
  [[nodiscard]] double sample_rate_hz() const noexcept { return fs_; }
  // Processing thread, before the first block: demand changes for step delays.
  void set_demand(const DemandInput* d) noexcept { an_.set_demand(d); }
  [[nodiscard]] const Analyzer& analyzer() const noexcept { return an_; }

 private:
  struct Boundary {
    double pos;
    bool whole_cycles;
    bool nominal;
    double frequency_hz;  // > 0 when valid
  };

  void start_stream(const SampleBlock& b);
  void enter_block(const SampleBlock& b);
  void calibrate(SampleBlock& b);
  void detect(const SampleBlock& b);
  void on_crossing(double t);
  void check_timeouts();
  void emit(Boundary b);
  std::size_t accumulate_until(double horizon);
  void accumulate_range(const SampleBlock& b, std::size_t a, std::size_t e);
  void close_window(const Boundary& b);
  // The open window's sums as the legal part's energy integrator takes them.
  [[nodiscard]] legal::EnergyIntegrator::Segment segment() const noexcept;
  [[nodiscard]] std::int64_t utc_at(double pos) const noexcept;

  ProcessorConfig cfg_;
  WindowSink& sink_;
  // Pending blocks: a circular list of caller-owned pointers.
  std::vector<SampleBlock*> pending_;
  std::size_t head_ = 0, count_ = 0;
  std::size_t acc_off_ = 0;                         // frames of pending_[head_] accumulated

  // Stream state
  bool started_ = false;
  acquire::Layout layout_ = acquire::Layout::ac3n;
  acquire::LayoutInfo li_{};
  double fs_ = 0;
  std::uint64_t next_pos_ = 0;   // stream position after the last pushed frame
  double acc_pos_ = 0;           // accumulation position (frames)
  std::int64_t utc_ref_ns_ = 0;  // utc of frame `frame_ref_`
  std::uint64_t frame_ref_ = 0;
  bool clock_synced_ = false;

  // Calibration, by channel of the current layout
  bool cal_active_ = false;
  std::array<ChannelCal, acquire::kMaxChannels> chan_cal_{};
  std::array<acquire::DelayLine, acquire::kMaxChannels> delay_{};

  // Windowing
  ZeroCrossingDetector det_{20000, 50};
  double lag_ = 0;               // frames accumulation stays behind detection
  std::vector<Boundary> bounds_;  // FIFO, fixed capacity
  std::size_t b_head_ = 0, b_count_ = 0;
  double last_bound_ = -1e300;
  double win_start_ = 0;
  bool locked_ = false;
  unsigned crossings_ = 0;
  double last_cross_ = 0, period_ = 400;
  double nominal_len_ = 0;       // frames of a nominal window
  double last_urms1_ = 0;

  // Accumulation (may run on an older layout/rate than detection)
  bool entered_ = false;         // pending_[head_] entered
  acquire::Layout acc_layout_ = acquire::Layout::ac3n;
  double acc_fs_ = 0;
  double acc_win_start_ = 0;
  Sums sums_;
  std::uint64_t win_lost_ = 0;
  std::int64_t win_start_utc_ = 0;
  Phasor z_;  // DFT reference phasor
  Phasor r_;  // and its turn per frame
  WindowRecord rec_;
  std::uint64_t win_seq_ = 0;
  legal::EnergyIntegrator energy_;  // the registers (legal part)
  std::uint64_t frames_done_ = 0;
  Analyzer an_;
};

}  // namespace wattpipe::pipeline

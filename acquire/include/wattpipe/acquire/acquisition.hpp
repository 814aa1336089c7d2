// SPDX-License-Identifier: Apache-2.0
// The acquisition thread: moves blocks from a Source into the block ring,
// and is the door every sample passes: a block a meter cannot have (sample
// rate outside [1 Hz, 1 GHz], a sample beyond full scale) is refused and
// counted by cause (samples are read back for it unless the source bounds
// them within full scale by construction: Source::peak_bound); a t0 that
// goes backwards or strays from the wall clock is replaced by the
// receive-time mapping (clock_synced false). It also owns the
// source's health (live, stalled, gone) and logs losses as they happen.
//
// Threading: start()/stop()/join() from the owning (main) thread. The thread
// it starts is the ring's only producer. counters() and finished() from any
// thread.
//
// Memory ordering: counters are relaxed (statistics only). finished_ is
// stored with release after the last block is published; a consumer that
// loads it with acquire and then finds the ring empty has seen every block.
#pragma once

#include <array>
#include <atomic>
#include <string_view>
#include <cstdint>
#include <thread>

#include "wattpipe/acquire/log_limit.hpp"
#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/acquire/source.hpp"
#include "wattpipe/acquire/spsc_ring.hpp"
#include "wattpipe/acquire/waker.hpp"

namespace wattpipe::acquire {

using BlockRing = SpscRing<SampleBlock>;

struct RealTimeConfig {
  int cpu = -1;          // pin to this CPU (-1: no pinning)
  int fifo_priority = 0; // SCHED_FIFO priority (0: normal scheduling)
  bool mlock = false;    // mlockall(MCL_CURRENT | MCL_FUTURE)
};

// Applies the real-time set-up to the calling thread; logs one warning per
// setting that is not permitted and carries on. Returns the number applied.
int apply_real_time(const RealTimeConfig& rt, const char* thread_name);

// What a block must be to reach the registers.
struct InputLimits {
  double full_scale_v = 1e6;    // |u| above this (or NaN/inf) refuses the block
  double full_scale_a = 1e5;    // |i| likewise
  double min_rate_hz = 1, max_rate_hz = 1e9;
  std::int64_t clock_tolerance_ns = 2'000'000'000;  // t0 vs wall clock / previous block
  std::int64_t source_timeout_ns = 1'000'000'000;   // no valid block this long: stalled
};

// Any thread, pure: every sample of `b` within its channel's full scale
// (|u| <= full_scale_v on voltage channels, |i| <= full_scale_a on
// currents; NaN and inf never are).
bool within_full_scale(const SampleBlock& b, double full_scale_v, double full_scale_a) noexcept;

struct AcquisitionCounters {
  std::atomic<std::uint64_t> frames_acquired{0};  // read from the source
  std::atomic<std::uint64_t> frames_dropped{0};   // ring full: block discarded
  std::atomic<std::uint64_t> blocks_acquired{0};
  std::atomic<std::uint64_t> blocks_dropped{0};
  std::atomic<std::uint64_t> ring_high_water{0};  // most blocks ever queued
  std::atomic<std::uint64_t> full_ring_sleeps{0};  // not real time: slept on a full ring
  std::atomic<std::uint64_t> blocks_rejected_rate{0};        // sample rate outside the limits
  std::atomic<std::uint64_t> blocks_rejected_full_scale{0};  // a sample beyond full scale, NaN or inf
  std::atomic<std::uint64_t> frames_rejected{0};             // frames in refused blocks
  std::atomic<std::uint64_t> blocks_time_replaced{0};        // t0 implausible: receive time used
  std::atomic<std::uint64_t> outages{0};                     // live -> stalled transitions
};

enum class SourceHealth : std::uint8_t {
  gone,     // no valid block yet, or the source ended
  live,     // valid blocks arriving
  stalled,  // had been live; no valid block for source_timeout
};
std::string_view to_string(SourceHealth h) noexcept;

// Every loss and input fault under one set of names, shared by the live log
// lines, the exit line, --stats-json and the JSONL log.
struct LossCounts {
  static constexpr std::size_t kCount = 8;
  static constexpr std::array<std::string_view, kCount> kNames = {
      "frames_lost_gap",        "frames_invalid",         "blocks_invalid",
      "frames_dropped",         "blocks_rejected_rate",   "blocks_rejected_full_scale",
      "blocks_time_replaced",   "outages"};
  std::array<std::uint64_t, kCount> v{};
  [[nodiscard]] bool any() const noexcept {
    for (auto x : v)
      if (x != 0) return true;
    return false;
  }
};

class Acquisition {
 public:
  // `consumer` (optional): woken after each published block and at the end,
  // for a consumer that sleeps when the ring is empty (a wake costs a system
  // call only when the consumer is asleep).
  // `finished` (optional): woken once when the thread ends (the owner's loop).
  // `space` (optional): a source that is not real time (--max-rate, ZeroMQ
  // PULL) sleeps on it while the ring is full, until the consumer's
  // room_freed() finds half the ring free (a wake-up per half ring, not per
  // block). Without it the thread spins and yields, which on 2 cores takes
  // CPU from the threads that have work.
  Acquisition(Source& source, BlockRing& ring, RealTimeConfig rt = {}, InputLimits limits = {},
              Waker* consumer = nullptr, Waker* finished = nullptr, Waker* space = nullptr);
  ~Acquisition();
  Acquisition(const Acquisition&) = delete;
  Acquisition& operator=(const Acquisition&) = delete;

  // Owner thread only.
  void start();
  // Owner thread only. Asks the thread to stop after the block in hand.
  void stop() noexcept {
    stop_.store(true, std::memory_order_relaxed);
    if (space_ != nullptr) space_->wake();
  }
  // Owner thread only.
  void join();
  // Consumer thread, after releasing slots: wakes this thread if it sleeps
  // on a full ring and half the ring is free now, or, `idle`, whatever the
  // ring holds (the consumer is about to sleep). A fence and a flag's load
  // unless it sleeps.
  void room_freed(bool idle = false) const noexcept;

  // Any thread. True once the thread has exited and every block it read is in
  // the ring or counted as dropped.
  [[nodiscard]] bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }
  // Any thread. True when it ended because the source ended (not stop()).
  [[nodiscard]] bool source_ended() const noexcept { return source_ended_.load(std::memory_order_acquire); }
  [[nodiscard]] const AcquisitionCounters& counters() const noexcept { return counters_; }
  // Any thread: the source's health (acquire: pairs with the release store).
  [[nodiscard]] SourceHealth health() const noexcept { return health_.load(std::memory_order_acquire); }
  // Any thread: losses so far (relaxed reads; statistics).
  [[nodiscard]] LossCounts losses() const noexcept;

 private:
  void run();
  // Acquisition thread: the door. False when the block is refused.
  bool admit(SampleBlock& b, std::int64_t now_steady);
  bool check_time(SampleBlock& b);
  void set_health(SourceHealth h, std::int64_t now_steady, const char* cause);
  void log_losses(std::int64_t now_steady, bool final);

  Source& source_;
  BlockRing& ring_;
  RealTimeConfig rt_;
  InputLimits limits_;
  Waker* consumer_;
  Waker* finished_waker_;
  Waker* space_;
  const bool bounded_;  // the source's peak bound is within full scale: no sample needs reading back
  AcquisitionCounters counters_;
  std::atomic<SourceHealth> health_{SourceHealth::gone};
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::atomic<bool> source_ended_{false};
  std::thread thread_;
  SampleBlock scratch_;  // target of reads while the ring is full (then dropped)

  // Acquisition thread state
  std::int64_t started_ns_ = 0, last_valid_ns_ = 0, stalled_since_ns_ = 0;
  bool warned_gone_ = false;
  const char* last_reject_ = nullptr;  // cause of the last refused block, for the stall line
  bool have_prev_ = false, time_replaced_ = false;
  std::uint64_t prev_end_frame_ = 0;
  std::int64_t prev_end_ns_ = 0;
  std::int64_t next_loss_log_ns_ = 0;
  LossCounts logged_{};
  LogLimit reject_log_{5'000'000'000};
};

}  // namespace wattpipe::acquire

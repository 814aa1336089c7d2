// The acquisition thread: moves blocks from a Source into the block ring.
//
// Threading: start()/stop()/join() from the owning (main) thread. The thread
// it starts is the ring's only producer. counters() and finished() from any
// thread.
//
// Memory ordering: counters are relaxed (statistics only). finished_ is
// stored with release after the last block is published; a consumer that
// loads it with acquire and then finds the ring empty has seen every block.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/acquire/source.hpp"
#include "wattpipe/acquire/spsc_ring.hpp"

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

struct AcquisitionCounters {
  std::atomic<std::uint64_t> frames_acquired{0};  // read from the source
  std::atomic<std::uint64_t> frames_dropped{0};   // ring full: block discarded
  std::atomic<std::uint64_t> blocks_acquired{0};
  std::atomic<std::uint64_t> blocks_dropped{0};
  std::atomic<std::uint64_t> ring_high_water{0};  // most blocks ever queued
};

class Acquisition {
 public:
  Acquisition(Source& source, BlockRing& ring, RealTimeConfig rt = {});
  ~Acquisition();
  Acquisition(const Acquisition&) = delete;
  Acquisition& operator=(const Acquisition&) = delete;

  // Owner thread only.
  void start();
  // Owner thread only. Asks the thread to stop after the block in hand.
  void stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
  // Owner thread only.
  void join();

  // Any thread. True once the thread has exited and every block it read is in
  // the ring or counted as dropped.
  [[nodiscard]] bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }
  // Any thread. True when it ended because the source ended (not stop()).
  [[nodiscard]] bool source_ended() const noexcept { return source_ended_.load(std::memory_order_acquire); }
  [[nodiscard]] const AcquisitionCounters& counters() const noexcept { return counters_; }

 private:
  void run();

  Source& source_;
  BlockRing& ring_;
  RealTimeConfig rt_;
  AcquisitionCounters counters_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::atomic<bool> source_ended_{false};
  std::thread thread_;
  SampleBlock scratch_;  // target of reads while the ring is full (then dropped)
};

}  // namespace wattpipe::acquire

// SPDX-License-Identifier: Apache-2.0
// The processing thread: consumes the block ring, runs the Processor, fans
// window records out, and answers reading requests at exact positions.
//
// Threading: start()/join()/restore() from the owning (main) thread;
// request() from any thread (the MQTT thread); replies() is
// consumed by one thread (the MQTT thread). counters() from any thread.
// Everything else runs on the processing thread, which does no I/O.
//
// Memory ordering: counters are relaxed statistics. finished_ is stored with
// release after the last window and reply are out; whoever loads it with
// acquire sees them.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <thread>

#include <concurrentqueue/concurrentqueue.h>

#include "wattpipe/acquire/acquisition.hpp"
#include "wattpipe/acquire/spsc_ring.hpp"
#include "wattpipe/pipeline/efficiency.hpp"
#include "wattpipe/pipeline/processor.hpp"
#include "wattpipe/pipeline/scope.hpp"
#include "wattpipe/pipeline/triple_buffer.hpp"
#include "wattpipe/pipeline/waker.hpp"

namespace wattpipe::pipeline {

struct ReadingRequest {
  std::uint64_t id = 0;
};
struct ReadingReply {
  std::uint64_t id = 0;
  Reading reading;
  // Two points: the other point's (the charger input's) energy from the
  // stream's start to the reading's frame, Wh; NaN with one point.
  double input_energy_wh = std::numeric_limits<double>::quiet_NaN();
};

using legal::StateSnapshot;

struct ProcessingOutputs {
  TripleBuffer<WindowRecord>* latest = nullptr;            // newest window (MQTT thread)
  Waker* waker = nullptr;                                  // MQTT thread: new window or reply
  acquire::SpscRing<WindowRecord>* window_log = nullptr;   // every window (log thread), optional
  acquire::SpscRing<acquire::SampleBlock>* raw_log = nullptr;  // every raw block, optional
  TripleBuffer<StateSnapshot>* state = nullptr;            // state writer, optional
  Waker* state_waker = nullptr;
  Waker* log_waker = nullptr;                               // log thread: new window or raw block
  acquire::SpscRing<WindowRecord>* store = nullptr;        // every window (database store), optional
  Waker* store_waker = nullptr;
  // The processing thread sleeps on it when the ring is empty; give the same
  // one to the Acquisition (new block, end); request() wakes it too. Without
  // one, the thread naps 1 ms at a time instead.
  Waker* input_waker = nullptr;
  acquire::SpscRing<StepEvent>* events = nullptr;          // step events (MQTT thread), optional
  const DemandInput* demand = nullptr;                     // requested current, for step delays, optional
  // The live page (web thread), optional: the newest window at most once per
  // view_interval_ns, and scope captures.
  TripleBuffer<WindowRecord>* view = nullptr;
  std::int64_t view_interval_ns = 50'000'000;
  TripleBuffer<ScopeSnapshot>* scope = nullptr;
  ScopeConfig scope_cfg;
  acquire::SpscRing<StepEvent>* view_events = nullptr;     // step events for the page (dropped when full)
  TripleBuffer<EfficiencyMapView>* view_map = nullptr;    // two points: the efficiency map, with each view window
};

struct ProcessingCounters {
  std::atomic<std::uint64_t> frames_processed{0};
  std::atomic<std::uint64_t> windows_closed{0};
  std::atomic<std::uint64_t> windows_log_overflow{0};  // log queue full: window not logged
  std::atomic<std::uint64_t> windows_store_overflow{0};  // store queue full: window not stored
  std::atomic<std::uint64_t> raw_log_overflow{0};      // raw queue full: block not logged
  std::atomic<std::uint64_t> raw_log_overflow_frames{0};
  std::atomic<std::uint64_t> readings{0};
  std::atomic<std::uint64_t> windows_with_lost_frames{0};
  std::atomic<std::uint64_t> steps{0};                 // step events found
  std::atomic<std::uint64_t> events_overflow{0};       // event queue full: step not sent on MQTT (still logged)
};

class Processing : private WindowSink {
 public:
  Processing(const ProcessorConfig& cfg, acquire::BlockRing& ring, const acquire::Acquisition& acq,
             ProcessingOutputs out, acquire::RealTimeConfig rt = {});
  ~Processing() override;
  Processing(const Processing&) = delete;
  Processing& operator=(const Processing&) = delete;

  // Owner thread, before start().
  void restore(const Registers& r) { proc_.restore(r); }
  // Owner thread, before start(): the MQTT thread is woken only for windows
  // ending at or after this UTC time (what its throttle will publish); the
  // rest it finds in `latest` anyway. Default: every window.
  void set_window_wake_from(const std::atomic<std::int64_t>* utc_ns) noexcept { wake_from_ = utc_ns; }
  // Owner thread, before start(). Fault injection for the service watchdog's
  // tests: after `frames` frames the thread stops working, as a hung one would.
  void stall_after(std::uint64_t frames) noexcept { stall_after_ = frames; }
  // Owner thread.
  void start();
  // Owner thread. Returns once the acquisition has finished and every block
  // is processed and the last window closed.
  void join();

  // Any thread: asks for a reading at the current position (answered on replies()).
  void request(ReadingRequest r) {
    requests_.enqueue(r);
    if (out_.input_waker != nullptr) out_.input_waker->notify();
  }
  // The MQTT thread only (single consumer).
  moodycamel::ConcurrentQueue<ReadingReply>& replies() noexcept { return replies_; }
  [[nodiscard]] const ProcessingCounters& counters() const noexcept { return counters_; }
  [[nodiscard]] bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }
  // Owner thread, after join(): the registers at the end.
  [[nodiscard]] const Registers& final_registers() const noexcept { return proc_.registers(); }
  // Owner thread, after join().
  [[nodiscard]] const RegisterFaults& register_faults() const noexcept { return proc_.register_faults(); }
  // Owner thread, after join(): efficiency by output power (two points; empty otherwise).
  [[nodiscard]] const EfficiencyMap& efficiency_map() const noexcept { return input_ ? input_->map() : no_map_; }

 private:
  void run();
  void on_window(WindowRecord& w) override;
  void serve_requests();
  void copy_raw(const acquire::SampleBlock& b);
  void snapshot(std::int64_t now_ns);

  acquire::BlockRing& ring_;
  const acquire::Acquisition& acq_;
  ProcessingOutputs out_;
  acquire::RealTimeConfig rt_;
  Processor proc_;
  moodycamel::ConcurrentQueue<ReadingRequest> requests_{64};
  moodycamel::ConcurrentQueue<ReadingReply> replies_{64};
  ProcessingCounters counters_;
  std::atomic<bool> finished_{false};
  std::thread thread_;
  std::uint64_t snapshot_serial_ = 0;
  std::int64_t last_snapshot_ns_ = 0;
  std::uint64_t snapshot_frames_ = ~std::uint64_t{0};  // frames processed at the last snapshot
  const std::atomic<std::int64_t>* wake_from_ = nullptr;
  std::optional<ScopeCapture> scope_;
  // Two points: the input's energy along the stream, and where the last window ended on it.
  std::unique_ptr<AgainstInput> input_;  // blocks that carry another point's power (the car side)
  EfficiencyMap no_map_;                 // one point: an empty map (and the bin width)
  std::int64_t next_view_ns_ = 0;
  std::uint64_t stall_after_ = 0;  // stall_after()
};

}  // namespace wattpipe::pipeline

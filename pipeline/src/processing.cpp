// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/processing.hpp"

#include <limits>

#include <poll.h>
#include <pthread.h>

#include <cstring>

#include "wattpipe/acquire/clock.hpp"

namespace wattpipe::pipeline {
namespace {
// Registers reach the state writer at least this often (well inside the
// 100 ms a crash may lose).
constexpr std::int64_t kSnapshotIntervalNs = 10'000'000;
}  // namespace

Processing::Processing(const ProcessorConfig& cfg, acquire::BlockRing& ring, const acquire::Acquisition& acq,
                       ProcessingOutputs out, acquire::RealTimeConfig rt)
    : ring_(ring), acq_(acq), out_(out), rt_(rt), proc_(cfg, *this, ring.capacity()), no_map_(cfg.efficiency_bin_w) {
  proc_.set_demand(out_.demand);
  if (out_.scope != nullptr) scope_.emplace(out_.scope_cfg, *out_.scope);
}

Processing::~Processing() { join(); }

void Processing::start() { thread_ = std::thread([this] { run(); }); }

void Processing::join() {
  if (thread_.joinable()) thread_.join();
}

void Processing::on_window(WindowRecord& w) {
  w.closed_steady_ns = acquire::steady_now_ns();
  if (input_) input_->on_window(w);
  counters_.windows_closed.fetch_add(1, std::memory_order_relaxed);
  if (w.frames_dropped > 0) counters_.windows_with_lost_frames.fetch_add(1, std::memory_order_relaxed);
  for (unsigned k = 0; k < w.an.steps; ++k) {
    counters_.steps.fetch_add(1, std::memory_order_relaxed);
    if (out_.events != nullptr && !out_.events->try_push(w.an.step[k]))
      counters_.events_overflow.fetch_add(1, std::memory_order_relaxed);
    // The page's queue (64, drained every update): when full, this step is not shown there (it is logged and on MQTT).
    if (out_.view_events != nullptr) (void)out_.view_events->try_push(w.an.step[k]);
  }
  // Every window to the log and the store threads; a full queue is counted (they see the gap in seq).
  auto hand_over = [&w](acquire::SpscRing<WindowRecord>* q, Waker* waker, std::atomic<std::uint64_t>& overflow) {
    if (q == nullptr) return;
    if (!q->try_push(w)) overflow.fetch_add(1, std::memory_order_relaxed);
    else if (waker != nullptr) waker->notify();
  };
  hand_over(out_.window_log, out_.log_waker, counters_.windows_log_overflow);
  hand_over(out_.store, out_.store_waker, counters_.windows_store_overflow);
  // State first: the MQTT thread publishes only what the state writer has saved.
  snapshot(w.closed_steady_ns);
  if (out_.latest != nullptr) out_.latest->write(w);
  if (out_.view != nullptr && w.closed_steady_ns >= next_view_ns_) {
    out_.view->write(w);
    if (out_.view_map != nullptr && input_) {
      out_.view_map->back_buffer().assign(input_->map());
      out_.view_map->publish();
    }
    next_view_ns_ = w.closed_steady_ns + out_.view_interval_ns;
  }
  // The MQTT thread takes the window now; with a state writer it then waits
  // for the registers to be saved (woken by the writer only while it waits).
  // Relaxed: a stale bound only wakes the MQTT thread once too often or lets
  // a throttled window wait in `latest` (it reads the newest when it wakes).
  if (out_.waker != nullptr && (wake_from_ == nullptr || w.end_utc_ns >= wake_from_->load(std::memory_order_relaxed)))
    out_.waker->notify();
}

void Processing::snapshot(std::int64_t now_ns) {
  if (out_.state == nullptr) return;
  last_snapshot_ns_ = now_ns;
  snapshot_frames_ = proc_.frames_processed();
  out_.state->write(StateSnapshot{proc_.folded_registers(), proc_.windows_closed(), proc_.position_utc_ns(),
                                  ++snapshot_serial_});
  if (out_.state_waker != nullptr) out_.state_waker->notify();
}

void Processing::copy_raw(const acquire::SampleBlock& b) {
  acquire::SampleBlock* slot = out_.raw_log->claim();
  if (slot == nullptr) {
    counters_.raw_log_overflow.fetch_add(1, std::memory_order_relaxed);
    counters_.raw_log_overflow_frames.fetch_add(b.frames, std::memory_order_relaxed);
    return;
  }
  b.copy_to(*slot);
  out_.raw_log->publish();
  if (out_.log_waker != nullptr) out_.log_waker->notify();
}

void Processing::serve_requests() {
  ReadingRequest req;
  bool any = false;
  while (requests_.try_dequeue(req)) {
    Reading r = proc_.commit();
    r.outages = acq_.counters().outages.load(std::memory_order_relaxed);
    r.source_live = acq_.health() == acquire::SourceHealth::live;
    ReadingReply reply{req.id, r};
    if (input_)
      if (const auto wh = input_->input_wh_at(double(r.frame))) reply.input_energy_wh = *wh;
    replies_.enqueue(reply);
    counters_.readings.fetch_add(1, std::memory_order_relaxed);
    any = true;
  }
  if (any && out_.waker != nullptr) out_.waker->notify();
}

void Processing::run() {
  pthread_setname_np(pthread_self(), "wp-process");
  acquire::apply_real_time(rt_, "processing");
  std::size_t pushed = 0;  // ring slots handed to the processor, not yet released
  unsigned idle = 0;
  for (;;) {
    bool progressed = false;
    // One block at a time: push, then accumulate what it makes decidable.
    while (acquire::SampleBlock* b = ring_.peek(pushed)) {
      if (proc_.full()) break;
      if (out_.raw_log != nullptr) copy_raw(*b);  // before push(): it calibrates in place
      if (b->has_ref_power) {
        if (!input_) input_ = std::make_unique<AgainstInput>(no_map_.bin_w());
        input_->feed(*b);
      }
      proc_.push(b);
      if (scope_) scope_->feed(*b, acquire::steady_now_ns());  // calibrated now, released by advance()
      ++pushed;
      const std::size_t done = proc_.advance();
      ring_.release(done);
      pushed -= done;
      if (done > 0) acq_.room_freed();
      counters_.frames_processed.store(proc_.frames_processed(), std::memory_order_relaxed);
      progressed = true;
      if (stall_after_ > 0 && proc_.frames_processed() >= stall_after_) [[unlikely]] {
        while (!acq_.finished()) acquire::sleep_until_steady_ns(acquire::steady_now_ns() + 10'000'000);
        stall_after_ = 0;
      }
      if (requests_.size_approx() > 0) serve_requests();
    }
    serve_requests();
    const std::int64_t now = acquire::steady_now_ns();
    // Registers moved since the last snapshot: the state writer gets them
    // within kSnapshotIntervalNs (a crash loses at most that).
    const bool moved = proc_.frames_processed() != snapshot_frames_;
    if (moved && now - last_snapshot_ns_ >= kSnapshotIntervalNs) snapshot(now);
    if (progressed) {
      idle = 0;
      continue;
    }
    // Acquire: pairs with the acquisition thread's release in finished(); a
    // ring still empty after it means every block has been seen.
    if (acq_.finished() && ring_.peek(pushed) == nullptr) break;
    // A short spin, then sleep. (Spinning longer for blocks that come close
    // together was measured: it took a core from the producer on 2 cores and
    // cost a fifth of the max-rate DC throughput.)
    if (++idle < 64) {
      acquire::cpu_relax();
      continue;
    }
    // Nothing to do: a producer waiting for room is told (whatever the ring holds).
    acq_.room_freed(/*idle=*/true);
    // Sleep until a block, a request, the end, or the next snapshot that is
    // due. arm() before the last look, so no wake-up is lost.
    if (out_.input_waker == nullptr) {
      acquire::sleep_until_steady_ns(now + 1'000'000);
      continue;
    }
    // Going to sleep: whatever moved goes to the state writer first, so the
    // sleep needs no timer (one snapshot per idle spell, not per block, at
    // high rates where the thread seldom idles).
    if (proc_.frames_processed() != snapshot_frames_) snapshot(now);
    Waker& w = *out_.input_waker;
    w.arm();
    if (ring_.peek(pushed) == nullptr && requests_.size_approx() == 0 && !acq_.finished()) {
      pollfd p{w.fd(), POLLIN, 0};
      ::poll(&p, 1, -1);
    }
    w.drain();
    idle = 0;
  }
  ring_.release(proc_.flush());
  counters_.frames_processed.store(proc_.frames_processed(), std::memory_order_relaxed);
  serve_requests();
  snapshot(acquire::steady_now_ns());
  // Release: pairs with the acquire load in finished().
  finished_.store(true, std::memory_order_release);
  if (out_.waker != nullptr) out_.waker->notify();
}

}  // namespace wattpipe::pipeline

#include "wattpipe/acquire/acquisition.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "wattpipe/acquire/clock.hpp"

namespace wattpipe::acquire {

int apply_real_time(const RealTimeConfig& rt, const char* thread_name) {
  int applied = 0;
  if (rt.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(rt.cpu, &set);
    if (const int e = pthread_setaffinity_np(pthread_self(), sizeof set, &set); e != 0) {
      spdlog::warn("{}: cannot pin to CPU {} ({}); carrying on unpinned", thread_name, rt.cpu, std::strerror(e));
    } else {
      ++applied;
    }
  }
  if (rt.fifo_priority > 0) {
    sched_param sp{};
    sp.sched_priority = rt.fifo_priority;
    if (const int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp); e != 0) {
      spdlog::warn("{}: SCHED_FIFO priority {} not permitted ({}; needs CAP_SYS_NICE); carrying on", thread_name,
                   rt.fifo_priority, std::strerror(e));
    } else {
      ++applied;
    }
  }
  if (rt.mlock) {
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
      spdlog::warn("{}: mlockall not permitted ({}); carrying on", thread_name, std::strerror(errno));
    } else {
      ++applied;
    }
  }
  return applied;
}

Acquisition::Acquisition(Source& source, BlockRing& ring, RealTimeConfig rt)
    : source_(source), ring_(ring), rt_(rt) {}

Acquisition::~Acquisition() {
  stop();
  join();
}

void Acquisition::start() { thread_ = std::thread([this] { run(); }); }

void Acquisition::join() {
  if (thread_.joinable()) thread_.join();
}

void Acquisition::run() {
  pthread_setname_np(pthread_self(), "wp-acquire");
  apply_real_time(rt_, "acquisition");
  const bool real_time = source_.real_time();
  std::uint64_t lost_since_publish = 0;  // dropped frames to report on the next published block
  auto source_lost = [&] {
    return source_.counters().frames_lost_gap.load(std::memory_order_relaxed) +
           source_.counters().frames_invalid.load(std::memory_order_relaxed);
  };
  std::uint64_t gap_seen = source_lost();
  std::uint64_t high_water = 0;
  unsigned spins = 0;

  while (!stop_.load(std::memory_order_relaxed)) {
    SampleBlock* slot = ring_.claim();
    if (slot == nullptr && !real_time) {
      // --max-rate: no real time is being sampled, so wait for the consumer.
      if (++spins < 64) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
      continue;
    }
    spins = 0;
    const bool dropping = slot == nullptr;
    SampleBlock& target = dropping ? scratch_ : *slot;
    const ReadStatus st = source_.read(target, std::chrono::milliseconds(50));
    if (st == ReadStatus::end) {
      source_ended_.store(true, std::memory_order_release);
      break;
    }
    if (st != ReadStatus::ok) continue;

    counters_.frames_acquired.fetch_add(target.frames, std::memory_order_relaxed);
    counters_.blocks_acquired.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t gap_now = source_lost();
    lost_since_publish += gap_now - gap_seen;
    gap_seen = gap_now;
    if (dropping) {
      counters_.frames_dropped.fetch_add(target.frames, std::memory_order_relaxed);
      counters_.blocks_dropped.fetch_add(1, std::memory_order_relaxed);
      lost_since_publish += target.frames;
      continue;
    }
    target.lost_frames = lost_since_publish;
    lost_since_publish = 0;
    ring_.publish();
    const std::uint64_t depth = ring_.size_approx();
    if (depth > high_water) {
      high_water = depth;
      counters_.ring_high_water.store(high_water, std::memory_order_relaxed);
    }
  }
  // Release: pairs with the consumer's acquire load in finished().
  finished_.store(true, std::memory_order_release);
}

}  // namespace wattpipe::acquire

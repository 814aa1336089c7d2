// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/acquisition.hpp"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <fmt/format.h>
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

std::string_view to_string(SourceHealth h) noexcept {
  switch (h) {
    case SourceHealth::gone: return "gone";
    case SourceHealth::live: return "live";
    case SourceHealth::stalled: return "stalled";
  }
  return "?";
}

Acquisition::Acquisition(Source& source, BlockRing& ring, RealTimeConfig rt, InputLimits limits, Waker* consumer,
                         Waker* finished, Waker* space)
    : source_(source),
      ring_(ring),
      rt_(rt),
      limits_(limits),
      consumer_(consumer),
      finished_waker_(finished),
      space_(space),
      bounded_(source.peak_bound().v <= limits.full_scale_v && source.peak_bound().a <= limits.full_scale_a) {}

Acquisition::~Acquisition() {
  stop();
  join();
}

void Acquisition::start() { thread_ = std::thread([this] { run(); }); }

void Acquisition::join() {
  if (thread_.joinable()) thread_.join();
}

void Acquisition::room_freed(bool idle) const noexcept {
  if (space_ == nullptr) return;
  // Dekker with the sleeper's arm(): the slots just freed (release) before
  // the look at `armed`.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (space_->armed() && (idle || ring_.size_approx() <= ring_.capacity() / 2)) space_->notify();
}

LossCounts Acquisition::losses() const noexcept {
  const auto& sc = source_.counters();
  const auto r = std::memory_order_relaxed;
  LossCounts l;
  l.v = {sc.frames_lost_gap.load(r),
         sc.frames_invalid.load(r),
         sc.blocks_invalid.load(r),
         counters_.frames_dropped.load(r),
         counters_.blocks_rejected_rate.load(r),
         counters_.blocks_rejected_full_scale.load(r),
         counters_.blocks_time_replaced.load(r),
         counters_.outages.load(r)};
  return l;
}

namespace {
// True when every sample of the block is within its channel's full scale.
// On the bits: |x| is the float with its sign bit cleared, and non-negative
// floats order as their bit patterns do (as signed 32-bit integers too), so
// one integer compare per sample finds a sample beyond its limit; NaN and
// inf lie above every finite limit. The limits repeat every V four-lane
// vectors (a multiple of the channel count), so the loop is V compares and
// ORs per period in explicit vectors (SSE2 everywhere; left to itself, GCC
// de-interleaved the lanes with shuffles and spilled).
template <std::size_t V>
bool within(const float* x, std::size_t n, const std::int32_t* lim) noexcept {
  using v4i = std::int32_t __attribute__((vector_size(16)));
  v4i l[V];
  std::memcpy(l, lim, sizeof l);
  const v4i abs_mask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
  v4i over{};
  std::size_t k = 0;
  for (; k + 4 * V <= n; k += 4 * V)
    for (std::size_t j = 0; j < V; ++j) {
      v4i u;
      std::memcpy(&u, x + k + 4 * j, sizeof u);
      over |= (u & abs_mask) > l[j];
    }
  std::int32_t any = over[0] | over[1] | over[2] | over[3];
  for (std::size_t j = 0; k < n; ++k, ++j) {
    std::int32_t u;
    std::memcpy(&u, x + k, 4);
    any |= -std::int32_t((u & 0x7fffffff) > lim[j]);
  }
  return any == 0;
}

}  // namespace

bool within_full_scale(const SampleBlock& b, double fs_v, double fs_a) noexcept {
  const LayoutInfo li = layout_info(b.layout);
  float lim_ch[kMaxChannels];
  for (std::uint32_t c = 0; c < li.channels; ++c) lim_ch[c] = static_cast<float>(is_voltage(b.layout, c) ? fs_v : fs_a);
  std::int32_t lim[40];
  for (std::size_t j = 0, c = 0; j < 40; ++j, c = c + 1 == li.channels ? 0 : c + 1)  // no division per lane
    std::memcpy(&lim[j], &lim_ch[c], 4);
  const std::size_t n = std::size_t{b.frames} * li.channels;
  switch (li.channels) {
    case 2:
    case 8: return within<2>(b.data.data(), n, lim);
    case 6: return within<6>(b.data.data(), n, lim);
    case 10: return within<10>(b.data.data(), n, lim);
    default: return false;
  }
}

bool Acquisition::check_time(SampleBlock& b) {
  const std::int64_t dur = std::llround(double(b.frames) * 1e9 / b.sample_rate_hz);
  const std::int64_t tol = limits_.clock_tolerance_ns;
  const bool wall = source_.wall_clock();
  // Where the block would start if it ended now (the clock is read only where
  // needed: max-rate sources skip it).
  auto receive_t0 = [dur] { return utc_now_ns() - dur; };
  const std::int64_t wall_t0 = wall ? receive_t0() : 0;
  const bool continuous = have_prev_ && b.first_frame == prev_end_frame_;
  bool ok = true;
  const char* why = nullptr;
  if (have_prev_ && b.t0_ns < prev_end_ns_ - tol) ok = false, why = "goes backwards";
  if (ok && continuous && b.t0_ns > prev_end_ns_ + tol) ok = false, why = "jumps ahead";
  if (ok && wall && (b.t0_ns > wall_t0 + tol || b.t0_ns < wall_t0 - tol)) ok = false, why = "is off the wall clock";
  if (ok) {
    if (time_replaced_) spdlog::info("source: block timestamps plausible again; using the source's t0");
    time_replaced_ = false;
  } else {
    counters_.blocks_time_replaced.fetch_add(1, std::memory_order_relaxed);
    if (!time_replaced_)
      spdlog::warn("source: block t0 {} ({} ns; tolerance {} ms); using the receive-time mapping, clock_synced false",
                   why, b.t0_ns, tol / 1'000'000);
    time_replaced_ = true;
    // Continue the previous block's time where frames continue; else receive time.
    const std::int64_t now_t0 = wall ? wall_t0 : receive_t0();
    std::int64_t t0 = continuous ? prev_end_ns_ : now_t0;
    if (wall && (t0 > now_t0 + tol / 2 || t0 < now_t0 - tol / 2)) t0 = now_t0;
    b.t0_ns = t0;
    b.clock_synced = false;
  }
  have_prev_ = true;
  prev_end_frame_ = b.first_frame + b.frames;
  prev_end_ns_ = b.t0_ns + dur;
  return ok;
}

bool Acquisition::admit(SampleBlock& b, std::int64_t now) {
  if (!(b.sample_rate_hz >= limits_.min_rate_hz && b.sample_rate_hz <= limits_.max_rate_hz)) {
    counters_.blocks_rejected_rate.fetch_add(1, std::memory_order_relaxed);
    last_reject_ = "sample rate outside [1 Hz, 1 GHz]";
  } else if (!bounded_ && !within_full_scale(b, limits_.full_scale_v, limits_.full_scale_a)) {
    counters_.blocks_rejected_full_scale.fetch_add(1, std::memory_order_relaxed);
    last_reject_ = "samples beyond full scale";
  } else {
    check_time(b);
    last_valid_ns_ = now;
    return true;
  }
  counters_.frames_rejected.fetch_add(b.frames, std::memory_order_relaxed);
  if (std::uint64_t sup = 0; reject_log_.allow(sup))
    spdlog::warn("source: block {} refused: {} ({} ch x {} frames at {} Hz; {} more refused since the last line)",
                 b.sequence, last_reject_, b.channels, b.frames, b.sample_rate_hz, sup);
  return false;
}

void Acquisition::set_health(SourceHealth h, std::int64_t now, const char* cause) {
  const SourceHealth was = health_.load(std::memory_order_relaxed);
  if (was == h) return;
  if (h == SourceHealth::live) {
    if (was == SourceHealth::stalled)
      spdlog::warn("source: live again after an outage of {:.3f} s; publishing resumes",
                   double(now - stalled_since_ns_) / 1e9);
    else
      spdlog::info("source: live");
  } else if (h == SourceHealth::stalled) {
    stalled_since_ns_ = last_valid_ns_;
    counters_.outages.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("source: STALLED: {}; powermeter_values and communication_check stop until it is back", cause);
  } else if (cause != nullptr) {
    spdlog::error("source: GONE: {}", cause);
  }
  // Release: the publisher that sees `live` also sees the counters above.
  health_.store(h, std::memory_order_release);
}

void Acquisition::log_losses(std::int64_t now, bool final) {
  if (!final && now < next_loss_log_ns_) return;
  next_loss_log_ns_ = now + 5'000'000'000;
  const LossCounts l = losses();
  std::string line;
  for (std::size_t k = 0; k < LossCounts::kCount; ++k)
    if (l.v[k] != logged_.v[k])
      line += fmt::format("{}{} +{}", line.empty() ? "" : ", ", LossCounts::kNames[k], l.v[k] - logged_.v[k]);
  if (!line.empty()) spdlog::warn("input losses since the last line: {}", line);
  logged_ = l;
}

void Acquisition::run() {
  pthread_setname_np(pthread_self(), "wp-acquire");
  apply_real_time(rt_, "acquisition");
  const bool real_time = source_.real_time();
  // A source whose reads never wait wakes the consumer a batch at a time (it
  // drains the ring before it sleeps, so it sleeps once a batch, not once a
  // block); any other at each block. Below half the ring: the producer never
  // waits for room with the consumer asleep.
  const std::size_t wake_at = source_.bursts() ? std::clamp<std::size_t>(ring_.capacity() / 4, 1, 8) : 1;
  std::uint64_t lost_since_publish = 0;  // dropped frames to report on the next published block
  auto source_lost = [&] {
    return source_.counters().frames_lost_gap.load(std::memory_order_relaxed) +
           source_.counters().frames_invalid.load(std::memory_order_relaxed);
  };
  std::uint64_t gap_seen = source_lost();
  std::uint64_t high_water = 0;
  unsigned spins = 0;
  started_ns_ = last_valid_ns_ = steady_now_ns();
  next_loss_log_ns_ = started_ns_ + 1'000'000'000;

  while (!stop_.load(std::memory_order_relaxed)) {
    SampleBlock* slot = ring_.claim();
    if (slot == nullptr && !real_time) {
      // --max-rate: no real time is being sampled, so wait for the consumer
      // (not a stall of the source).
      // A failed claim() has already paused about a microsecond: a consumer
      // that keeps up frees a slot within a few; one that does not (its
      // analysis on) leaves the ring full, and then this thread sleeps. The
      // count runs on until half the ring is free: a slow consumer that
      // frees a block every few microseconds would otherwise keep this
      // thread spinning beside it, a claim at a time.
      if (++spins < 16) continue;
      if (space_ != nullptr) {
        // Sleep until half the ring is free (the consumer's notify), then
        // fill it in one go. arm() before the last look, so that notify is
        // not lost; the timeout only bounds a stop that races with it.
        space_->arm();
        if (ring_.size_approx() > ring_.capacity() / 2 && !stop_.load(std::memory_order_relaxed)) {
          counters_.full_ring_sleeps.fetch_add(1, std::memory_order_relaxed);
          pollfd p{space_->fd(), POLLIN, 0};
          ::poll(&p, 1, 100);
          space_->drain();
        } else {
          space_->disarm();
        }
      } else {
        std::this_thread::yield();
      }
      spins = 0;
      last_valid_ns_ = steady_now_ns();
      continue;
    }
    if (ring_.size_approx() <= ring_.capacity() / 2) spins = 0;
    const bool dropping = slot == nullptr;
    SampleBlock& target = dropping ? scratch_ : *slot;
    const ReadStatus st = source_.read(target, std::chrono::milliseconds(50));
    if (st == ReadStatus::end) {
      source_ended_.store(true, std::memory_order_release);
      break;
    }
    const std::int64_t now = steady_now_ns();
    const bool admitted = st == ReadStatus::ok && admit(target, now);
    if (admitted) {
      set_health(SourceHealth::live, now, nullptr);
    } else if (now - last_valid_ns_ > limits_.source_timeout_ns) {
      const std::string cause = fmt::format("no valid block for {} ms{}{}", (now - last_valid_ns_) / 1'000'000,
                                            last_reject_ ? "; last refused: " : "", last_reject_ ? last_reject_ : "");
      if (health_.load(std::memory_order_relaxed) == SourceHealth::live) {
        set_health(SourceHealth::stalled, now, cause.c_str());
      } else if (health_.load(std::memory_order_relaxed) == SourceHealth::gone && !warned_gone_) {
        warned_gone_ = true;
        spdlog::error("source: no valid block since start ({}); nothing is published until one arrives", cause);
      }
    }
    log_losses(now, false);
    if (st != ReadStatus::ok) {
      if (consumer_ != nullptr && ring_.size_approx() > 0) consumer_->notify();  // nothing left unseen
      continue;
    }

    counters_.frames_acquired.fetch_add(target.frames, std::memory_order_relaxed);
    counters_.blocks_acquired.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t gap_now = source_lost();
    lost_since_publish += gap_now - gap_seen;
    gap_seen = gap_now;
    if (!admitted) {
      lost_since_publish += target.frames;
      continue;
    }
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
    if (consumer_ != nullptr && depth >= wake_at) consumer_->notify();
    if (depth > high_water) {
      high_water = depth;
      counters_.ring_high_water.store(high_water, std::memory_order_relaxed);
    }
  }
  log_losses(steady_now_ns(), true);
  if (source_ended_.load(std::memory_order_relaxed)) set_health(SourceHealth::gone, steady_now_ns(), nullptr);
  // Release: pairs with the consumer's acquire load in finished().
  finished_.store(true, std::memory_order_release);
  if (consumer_ != nullptr) consumer_->wake();
  if (finished_waker_ != nullptr) finished_waker_->wake();
}

}  // namespace wattpipe::acquire

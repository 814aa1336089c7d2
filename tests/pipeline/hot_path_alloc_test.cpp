// The hot path allocates nothing: acquisition and processing threads run in
// steady state while every heap allocation of the process is counted.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "wattpipe/acquire/acquisition.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/pipeline/processing.hpp"

namespace {
std::atomic<std::uint64_t> g_allocations{0};

void* counted(std::size_t n, std::size_t align = 0) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n ? n : 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted(n); }
void* operator new[](std::size_t n) { return counted(n); }
void* operator new(std::size_t n, std::align_val_t a) { return counted(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted(n, static_cast<std::size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using namespace wattpipe;

class HotPath : public ::testing::TestWithParam<const char*> {};

TEST_P(HotPath, SteadyStateAllocatesNothing) {
  acquire::SimConfig cfg = *acquire::sim_profile(GetParam(), 20000);
  acquire::SimSource src(cfg, /*max_rate=*/true);
  const std::uint64_t at_start = g_allocations.load();
  acquire::BlockRing ring(64);
  ASSERT_GT(g_allocations.load(), at_start) << "the counting operator new is not in use";
  acquire::Acquisition acq(src, ring);
  pipeline::TripleBuffer<pipeline::WindowRecord> latest;
  pipeline::TripleBuffer<pipeline::StateSnapshot> state;
  pipeline::Waker waker, state_waker;
  acquire::SpscRing<pipeline::WindowRecord> log(256);
  pipeline::ProcessingOutputs out{&latest, &waker, &log, nullptr, &state, &state_waker};
  pipeline::ProcessorConfig pc;
  pc.window_cycles = 1;  // many windows: close_window runs thousands of times
  pc.window_ms = 1;
  pipeline::Processing proc(pc, ring, acq, out);
  proc.start();
  acq.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // warm-up
  const std::uint64_t frames0 = proc.counters().frames_processed.load();
  const std::uint64_t windows0 = proc.counters().windows_closed.load();
  const std::uint64_t before = g_allocations.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const std::uint64_t after = g_allocations.load();
  const std::uint64_t frames1 = proc.counters().frames_processed.load();
  const std::uint64_t windows1 = proc.counters().windows_closed.load();
  acq.stop();
  acq.join();
  proc.join();
  EXPECT_EQ(after - before, 0u) << "heap allocations in steady state";
  EXPECT_GT(frames1 - frames0, 1'000'000u);
  EXPECT_GT(windows1 - windows0, 100u);
  EXPECT_EQ(acq.counters().frames_acquired.load(),
            proc.counters().frames_processed.load() + acq.counters().frames_dropped.load());
}

INSTANTIATE_TEST_SUITE_P(Profiles, HotPath, ::testing::Values("ac3", "ac1", "dc", "dc-session"));

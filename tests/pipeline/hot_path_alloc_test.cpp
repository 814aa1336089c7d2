// SPDX-License-Identifier: Apache-2.0
// The hot path allocates nothing: acquisition and processing threads run in
// steady state while every heap allocation of the process is counted.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "wattpipe/acquire/acquisition.hpp"
#include "wattpipe/acquire/alloc_counter.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/pipeline/processing.hpp"

using namespace wattpipe;

class HotPath : public ::testing::TestWithParam<const char*> {};

// "profile" or "profile+analysis".
TEST_P(HotPath, SteadyStateAllocatesNothing) {
  const std::string param = GetParam();
  const bool analysis = param.ends_with("+analysis");
  acquire::SimConfig cfg = *acquire::sim_profile(param.substr(0, param.find('+')), 20000);
  acquire::SimSource src(cfg, /*max_rate=*/true);
  const std::uint64_t at_start = alloc_counter::total();
  acquire::BlockRing ring(64);
  ASSERT_GT(alloc_counter::total(), at_start) << "the counting operator new is not in use";
  pipeline::Waker waker, state_waker, log_waker, input_waker;
  acquire::Acquisition acq(src, ring, {}, {}, &input_waker);
  pipeline::TripleBuffer<pipeline::WindowRecord> latest;
  pipeline::TripleBuffer<pipeline::StateSnapshot> state;
  acquire::SpscRing<pipeline::WindowRecord> log(256);
  pipeline::ProcessingOutputs out;
  out.latest = &latest;
  out.waker = &waker;
  out.window_log = &log;
  out.state = &state;
  out.state_waker = &state_waker;
  out.log_waker = &log_waker;
  out.input_waker = &input_waker;
  pipeline::ProcessorConfig pc;
  pc.window_cycles = 1;  // many windows: close_window runs thousands of times
  pc.window_ms = 1;
  pc.analysis.enabled = analysis;
  pipeline::Processing proc(pc, ring, acq, out);
  proc.start();
  acq.start();
  // Progress, not time: sanitizer builds under a loaded machine are slow.
  auto wait_for = [&](std::uint64_t frames, std::uint64_t windows) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((proc.counters().frames_processed.load() < frames || proc.counters().windows_closed.load() < windows) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  };
  wait_for(100'000, 50);  // warm-up
  const std::uint64_t frames0 = proc.counters().frames_processed.load();
  const std::uint64_t windows0 = proc.counters().windows_closed.load();
  const std::uint64_t before = alloc_counter::total();
  wait_for(frames0 + 300'000, windows0 + 150);
  const std::uint64_t after = alloc_counter::total();
  const std::uint64_t frames1 = proc.counters().frames_processed.load();
  const std::uint64_t windows1 = proc.counters().windows_closed.load();
  acq.stop();
  acq.join();
  proc.join();
  EXPECT_EQ(after - before, 0u) << "heap allocations in steady state";
  // The steady state did run.
  EXPECT_GT(frames1 - frames0, 200'000u);
  EXPECT_GT(windows1 - windows0, 100u);
  EXPECT_EQ(acq.counters().frames_acquired.load(),
            proc.counters().frames_processed.load() + acq.counters().frames_dropped.load());
}

INSTANTIATE_TEST_SUITE_P(Profiles, HotPath,
                         ::testing::Values("ac3", "ac1", "dc", "dc-session", "ac3+analysis", "dc-session+analysis"),
                         [](const auto& i) {
                           std::string n = i.param;
                           for (char& c : n)
                             if (c == '-' || c == '+') c = '_';
                           return n;
                         });

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/legal/legal.hpp"

#include <gtest/gtest.h>

#include <random>

#include "signal_feed.hpp"

using namespace wattpipe;
using namespace wattpipe::testing;
using legal::CompensatedRegister;
using legal::Registers;

TEST(CompensatedRegister, ManySmallAdditionsDoNotDrift) {
  // 1e8 additions of 1/3 uWh: a plain double sum drifts, the register does not.
  CompensatedRegister r;
  double naive = 0;
  for (int k = 0; k < 100'000'000; ++k) {
    r.add_uwh(1.0 / 3.0);
    naive += 1.0 / 3.0;
  }
  const long double truth = 100'000'000.0L / 3.0L;
  EXPECT_NEAR(double((r.uwh + (long double)r.frac_uwh) - truth), 0.0, 1e-3);
  EXPECT_GE(r.frac_uwh, 0.0);
  EXPECT_LT(r.frac_uwh, 1.0);
  EXPECT_GT(std::abs(double(naive - truth)), 1e-3) << "the naive sum is the control: it must drift";
}

TEST(Registers, BookSplitsPhasesBySignAndNetsTheTotal) {
  Registers r;
  const double e1[3] = {100, -40, 10};
  r.book(e1, 3);
  EXPECT_EQ(r.import_phase[0].uwh, 100);
  EXPECT_EQ(r.export_phase[1].uwh, 40);
  EXPECT_EQ(r.import_phase[2].uwh, 10);
  EXPECT_EQ(r.import_total.uwh, 70);
  EXPECT_EQ(r.export_total.uwh, 0);
  const double e2[1] = {-5.5};
  r.book(e2, 1);
  EXPECT_EQ(r.export_phase[0].uwh, 5);
  EXPECT_DOUBLE_EQ(r.export_phase[0].frac_uwh, 0.5);
  EXPECT_EQ(r.export_total.uwh, 5);
  Registers older = r;
  r.book(e1, 3);
  EXPECT_TRUE(r.covers(older));
  EXPECT_FALSE(older.covers(r));
}

// A constant 11 kW three-phase load for 24 h of simulated time at 20 kS/s
// (1.728e9 frames), run as fast as possible: the register must land within
// 1e-7 of 264 kWh. Under sanitizers (10x slower) the same check runs on 2 h.
TEST(EnergyDrift, ElevenKilowattsForADayIs264kWh) {
#ifdef WATTPIPE_SANITIZED
  const double hours = 2;
#else
  const double hours = 24;
#endif
  acquire::SimConfig cfg = *acquire::sim_profile("ac3", 20000);
  for (auto& ph : cfg.phases) {
    ph.urms_v = 230;
    ph.irms_a = 11000.0 / 690.0;
    ph.phi_deg = 0;
  }
  cfg.start_utc_ns = 1;
  acquire::Simulator sim(cfg);
  struct Count : pipeline::WindowSink {
    std::uint64_t n = 0;
    void on_window(pipeline::WindowRecord&) override { ++n; }
  } sink;
  pipeline::Processor p(pipeline::ProcessorConfig{}, sink);
  Feeder f(p);
  const auto frames = static_cast<std::uint64_t>(hours * 3600 * 20000);
  feed_sim(f, sim, frames);
  f.flush();
  EXPECT_EQ(p.frames_processed(), frames);
  const double truth_wh = 11000.0 * hours;
  EXPECT_LT(rel(p.registers().import_total.wh(), truth_wh), 1e-7)
      << "register " << p.registers().import_total.wh() << " Wh, truth " << truth_wh << " Wh";
  EXPECT_EQ(p.registers().export_total.uwh, 0);
  EXPECT_NEAR(double(sink.n), hours * 3600 * 5, 2);  // 10-cycle windows at 50 Hz
}

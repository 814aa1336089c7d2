// SPDX-License-Identifier: Apache-2.0
// No input can corrupt a register: random sequences of extreme window
// energies, and absurd samples through the processor.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "signal_feed.hpp"
#include "wattpipe/legal/legal.hpp"

using namespace wattpipe;
using namespace wattpipe::testing;
using legal::AddResult;
using legal::CompensatedRegister;
using legal::kMaxUwh;
using legal::Registers;

namespace {
bool ge(const CompensatedRegister& a, const CompensatedRegister& b) {
  return a.uwh > b.uwh || (a.uwh == b.uwh && a.frac_uwh >= b.frac_uwh);
}
}  // namespace

TEST(RegisterProperty, ExtremeWindowEnergiesNeverMakeARegisterNegativeNaNOrLower) {
  std::mt19937_64 rng(20261125);
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double extremes[] = {0.0,    -0.0,   1e-300, -1e-300, 5e-324, 1.0,     -1.0,   0.5,   1e6,    -1e6,
                             1e15,   -1e15,  9.2e18, -9.2e18, 1e300,  -1e300,  1.7e308, inf,  -inf,   nan,
                             double(kMaxUwh), -double(kMaxUwh), double(kMaxUwh) / 2};
  std::uniform_int_distribution<std::size_t> pick(0, std::size(extremes) - 1);
  std::uniform_int_distribution<int> phases(1, 3);
  std::uniform_real_distribution<double> small(-1e3, 1e3);
  int saturated = 0, refused = 0;
  for (int run = 0; run < 200; ++run) {
    Registers r, published;
    for (int w = 0; w < 500; ++w) {
      double e[3];
      for (double& x : e) x = (rng() % 3 == 0) ? small(rng) : extremes[pick(rng)];
      const AddResult a = r.book(e, unsigned(phases(rng)));
      saturated += a == AddResult::saturated;
      refused += a == AddResult::refused;
      ASSERT_TRUE(r.sane()) << "run " << run << " window " << w;
      for (int k = 0; k < 3; ++k) {
        ASSERT_TRUE(ge(r.import_phase[k], published.import_phase[k]));
        ASSERT_TRUE(ge(r.export_phase[k], published.export_phase[k]));
        ASSERT_TRUE(std::isfinite(r.import_phase[k].wh()) && r.import_phase[k].wh() >= 0);
      }
      ASSERT_TRUE(ge(r.import_total, published.import_total));
      ASSERT_TRUE(ge(r.export_total, published.export_total));
      ASSERT_TRUE(r.covers(published));
      published = r;
    }
  }
  // The sequences did reach both guards (the property is not vacuous).
  EXPECT_GT(saturated, 0);
  EXPECT_GT(refused, 0);
}

TEST(RegisterProperty, SaturatesAtTheMaximumInsteadOfWrapping) {
  CompensatedRegister r;
  r.uwh = kMaxUwh - 2;
  EXPECT_EQ(r.add_uwh(1.0), AddResult::ok);
  EXPECT_EQ(r.add_uwh(1e300), AddResult::saturated);
  EXPECT_EQ(r.uwh, kMaxUwh);
  EXPECT_EQ(r.add_uwh(1.0), AddResult::saturated);
  EXPECT_EQ(r.uwh, kMaxUwh);
  EXPECT_EQ(r.add_uwh(-1.0), AddResult::refused);
  EXPECT_EQ(r.add_uwh(std::nan("")), AddResult::refused);
  EXPECT_EQ(r.uwh, kMaxUwh);
}

TEST(RegisterProperty, ProcessorRefusesEnergyBeyondFullScaleAndBooksTheRest) {
  // DC, 1 kS/s, 100 ms windows: 1 s at 800 V x 200 A, then 0.5 s of samples
  // far beyond full scale but finite (as a scale of 3e38 per count makes
  // them), then 1 s normal again. A window is refused whole: the one ending
  // at t = 1 s holds half of the first absurd frame (frame m spans
  // [m - 0.5, m + 0.5)), so 6 windows are refused and 1.9 s booked.
  pipeline::ProcessorConfig cfg;
  cfg.window_ms = 100;
  Collect sink;
  pipeline::Processor p(cfg, sink);
  Feeder f(p);
  feed_signal(f, Layout::dc, 1000, 2.5, [](int c, double t) {
    const bool absurd = t >= 1.0 && t < 1.5;
    if (absurd) return 3e38;
    return c == 0 ? 800.0 : 200.0;
  }, 100);
  f.flush();
  const double wh = p.registers().import_total.wh();
  EXPECT_NEAR(wh, 800.0 * 200.0 * 1.9 / 3600, 1e-6) << "exactly the windows of plausible input";
  EXPECT_EQ(p.register_faults().energy_refused, 6u);
  int flagged = 0;
  for (const auto& w : sink.windows) flagged += w.energy_refused;
  EXPECT_EQ(flagged, 6);
}

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/simulator.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <numbers>
#include <thread>

#include "wattpipe/acquire/clock.hpp"

using namespace wattpipe::acquire;

namespace {
constexpr double kPi = std::numbers::pi;

// Sums over many blocks: sum x^2 per channel and sum x*sin/cos of the
// fundamental per channel (a DFT against the closed-form phase).
struct ChannelStats {
  double sq[kMaxChannels] = {};
  double dc[kMaxChannels] = {};
  std::uint64_t n = 0;
};

ChannelStats run(Simulator& sim, std::uint64_t frames) {
  ChannelStats s;
  auto b = std::make_unique<SampleBlock>();
  while (s.n < frames) {
    sim.generate(*b, static_cast<std::uint32_t>(std::min<std::uint64_t>(kBlockFrames, frames - s.n)));
    for (std::uint32_t f = 0; f < b->frames; ++f)
      for (std::uint32_t c = 0; c < b->channels; ++c) {
        const double x = b->frame(f)[c];
        s.sq[c] += x * x;
        s.dc[c] += x;
      }
    s.n += b->frames;
  }
  return s;
}
}  // namespace

TEST(Simulator, Ac3ProfileMatchesClosedFormAfter1e8Samples) {
  SimConfig cfg = *sim_profile("ac3", 20000);
  cfg.start_utc_ns = 1;
  Simulator sim(cfg);
  // 1e8 samples = 12.5 M frames of 8 channels = 31250 whole cycles.
  const ChannelStats s = run(sim, 12'500'000);
  ASSERT_EQ(sim.next_frame(), 12'500'000u);
  const LayoutInfo li = layout_info(Layout::ac3n);
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(std::sqrt(s.sq[li.u[k]] / s.n), 230.0, 230.0 * 1e-6) << "U" << k + 1;
    EXPECT_NEAR(std::sqrt(s.sq[li.i[k]] / s.n), 16.0, 16.0 * 1e-6) << "I" << k + 1;
  }
  EXPECT_NEAR(std::sqrt(s.sq[li.in] / s.n), 0.0, 1e-3) << "balanced load: no neutral current";
  // Exact phase at the end of the run: sample values against sin() of the
  // closed-form angle, far below float resolution of a 325 V peak.
  auto b = std::make_unique<SampleBlock>();
  const std::uint64_t n0 = sim.next_frame();
  sim.generate(*b, 64);
  for (std::uint32_t f = 0; f < 64; ++f) {
    const long double cyc = sim.cycles_at(n0 + f);
    const double theta = 2 * kPi * double(cyc - std::floor(cyc));
    for (int k = 0; k < 3; ++k) {
      const double alpha = -k * 2 * kPi / 3;
      const double u = std::sqrt(2.0) * 230 * std::sin(theta + alpha);
      const double i = std::sqrt(2.0) * 16 * std::sin(theta + alpha - 18.19 * kPi / 180);
      ASSERT_NEAR(b->frame(f)[li.u[k]], u, 1e-3) << "frame " << n0 + f;
      ASSERT_NEAR(b->frame(f)[li.i[k]], i, 1e-4);
    }
  }
}

TEST(Simulator, HarmonicsOffsetAndNoiseAddUpInRms) {
  SimConfig cfg = *sim_profile("ac1", 20000);
  cfg.start_utc_ns = 1;
  cfg.u_harmonics = {{3, 10, 0}, {5, 5, 30}};
  cfg.i_harmonics = {{7, 20, 90}};
  cfg.u_offset_v = 2;
  cfg.i_noise_a = 0.5;
  Simulator sim(cfg);
  const ChannelStats s = run(sim, 4'000'000);  // 10000 whole cycles
  const double u_rms = std::sqrt(230.0 * 230 * (1 + 0.01 + 0.0025) + 4);
  const double i_rms = std::sqrt(16.0 * 16 * (1 + 0.04) + 0.25);
  EXPECT_NEAR(std::sqrt(s.sq[0] / s.n), u_rms, u_rms * 1e-6);
  EXPECT_NEAR(std::sqrt(s.sq[1] / s.n), i_rms, i_rms * 1e-3);  // noise: statistical
  EXPECT_NEAR(s.dc[0] / s.n, 2.0, 1e-3);
}

TEST(Simulator, CounterClockwiseRotationPutsU2AheadOfU1) {
  for (bool ccw : {false, true}) {
    SimConfig cfg = *sim_profile("ac3", 20000);
    cfg.counter_clockwise = ccw;
    cfg.start_utc_ns = 1;
    Simulator sim(cfg);
    auto b = std::make_unique<SampleBlock>();
    sim.generate(*b, 400);  // one cycle
    // Im(X2 conj X1) > 0 <=> U2 leads U1.
    double a1 = 0, b1 = 0, a2 = 0, b2 = 0;
    for (std::uint32_t f = 0; f < 400; ++f) {
      const double th = 2 * kPi * f / 400;
      a1 += b->frame(f)[0] * std::cos(th), b1 += b->frame(f)[0] * std::sin(th);
      a2 += b->frame(f)[1] * std::cos(th), b2 += b->frame(f)[1] * std::sin(th);
    }
    EXPECT_EQ(a2 * b1 - b2 * a1 > 0, ccw);
  }
}

TEST(Simulator, FrequencyRampFollowsClosedFormPhase) {
  SimConfig cfg = *sim_profile("ac1", 20000);
  cfg.frequency_hz = 49.5;
  cfg.freq_end_hz = 50.5;
  cfg.freq_ramp_s = 10;
  cfg.start_utc_ns = 1;
  Simulator sim(cfg);
  auto b = std::make_unique<SampleBlock>();
  for (int blk = 0; blk < 300; ++blk) {  // 15 s: through the ramp and past its end
    const std::uint64_t n0 = sim.next_frame();
    sim.generate(*b, kBlockFrames);
    for (std::uint32_t f = 0; f < b->frames; f += 97) {
      const long double cyc = sim.cycles_at(n0 + f);
      const double u = std::sqrt(2.0) * 230 * std::sin(2 * kPi * double(cyc - std::floor(cyc)));
      ASSERT_NEAR(b->frame(f)[0], u, 2e-3) << "frame " << n0 + f;
    }
  }
  // At 15 s the frequency is 50.5 Hz: phase advance per second checked by cycles_at.
  EXPECT_NEAR(double(sim.cycles_at(20000 * 15) - sim.cycles_at(20000 * 14)), 50.5, 1e-9);
}

TEST(Simulator, DcSessionRampsReversesAndTapers) {
  SimConfig cfg = *sim_profile("dc-session", 1000, 100);
  cfg.dc_u_ripple.clear(), cfg.dc_i_ripple.clear(), cfg.dc_i_response = {};  // the ramps alone
  cfg.start_utc_ns = 1;
  Simulator sim(cfg);
  auto b = std::make_unique<SampleBlock>();
  double min_i = 1e9, max_i = -1e9, first_u = 0, last_u = 0;
  for (std::uint64_t n = 0; n < 100'000;) {
    sim.generate(*b, kBlockFrames);
    for (std::uint32_t f = 0; f < b->frames && n < 100'000; ++f, ++n) {
      min_i = std::min<double>(min_i, b->frame(f)[1]);
      max_i = std::max<double>(max_i, b->frame(f)[1]);
      if (n == 0) first_u = b->frame(f)[0];
      last_u = b->frame(f)[0];
    }
  }
  EXPECT_NEAR(max_i, 500, 1e-3);
  EXPECT_NEAR(min_i, -150, 1e-3);
  EXPECT_NEAR(first_u, 400, 1e-3);
  EXPECT_NEAR(last_u, 800, 0.01);
  EXPECT_NEAR(cfg.dc_current_ramp.at(60), 500, 1e-9);
  EXPECT_NEAR(cfg.dc_current_ramp.at(43), -150, 1e-9);
  EXPECT_LT(cfg.dc_current_ramp.at(98.5), 40);
}

TEST(Simulator, BlocksCarryContinuousFrameNumbersAndTime) {
  SimConfig cfg = *sim_profile("dc", 10000);
  cfg.start_utc_ns = 1'000'000'000;
  Simulator sim(cfg);
  auto b = std::make_unique<SampleBlock>();
  sim.generate(*b, 100);
  EXPECT_EQ(b->first_frame, 0u);
  sim.generate(*b, 100);
  EXPECT_EQ(b->first_frame, 100u);
  EXPECT_EQ(b->t0_ns, 1'000'000'000 + 10'000'000);
  EXPECT_EQ(b->layout, Layout::dc);
  EXPECT_FLOAT_EQ(b->frame(5)[0], 800.0f);
  EXPECT_FLOAT_EQ(b->frame(5)[1], 200.0f);
}

TEST(SimSource, UtcAnchorAndPacingAreTakenAtTheSameInstant) {
  // Constructed well before its first read (as the daemon does while it
  // opens state and connects): the first block still ends about now, not
  // that long ago.
  SimConfig cfg = *sim_profile("ac3", 20000);
  SimSource src(cfg, false);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto b = std::make_unique<SampleBlock>();
  const std::int64_t before = utc_now_ns();
  ASSERT_EQ(src.read(*b, std::chrono::milliseconds(100)), ReadStatus::ok);
  const std::int64_t after = utc_now_ns();
  const std::int64_t end_ns = b->t0_ns + std::llround(b->frames * 1e9 / cfg.sample_rate_hz);
  EXPECT_LE(end_ns, after + 2'000'000) << "a block never ends in the future";
  // Anchored at construction, the first block would end about 200 ms minus
  // its own length before the read began; anchored at the read, after it.
  // (No bound on how late the read returns: that is the machine's.)
  EXPECT_GT(end_ns, before - 100'000'000) << "the block ends " << (before - end_ns) / 1e6 << " ms before the read";
}

TEST(Simulator, DcRippleTonesMatchTheirClosedFormAcrossBlocks) {
  SimConfig cfg = *sim_profile("dc", 20000);
  cfg.dc_u_ripple = {{300, 2.0, 30}};
  cfg.dc_i_ripple = {{2000, 1.5, 0}, {50.5, 0.5, -90}};
  Simulator sim(cfg);
  auto b = std::make_unique<SampleBlock>();
  double worst = 0;
  for (int k = 0; k < 200; ++k) {  // about 10 s: the phase is re-seeded exactly at every block
    sim.generate(*b, kBlockFrames);
    for (std::uint32_t f = 0; f < b->frames; ++f) {
      const double t = double(b->first_frame + f) / 20000;
      const double u = 800 + 2.0 * std::sin(2 * kPi * 300 * t + kPi / 6);
      const double i = 200 + 1.5 * std::sin(2 * kPi * 2000 * t) + 0.5 * std::sin(2 * kPi * 50.5 * t - kPi / 2);
      worst = std::max({worst, std::fabs(b->frame(f)[0] - u), std::fabs(b->frame(f)[1] - i)});
    }
  }
  EXPECT_LT(worst, 1e-4);  // float samples of 800 V: 6e-5 V resolution
}

// The bound the acquisition thread trusts instead of reading samples back:
// every sample within it, for each profile that has one, and tight (the
// peak comes within 0.1 %) where the terms peak together; none with noise or
// the charger's load-following input.
TEST(Simulator, PeakBoundHoldsForEverySampleAndIsTight) {
  struct Case {
    const char* profile;
    bool harmonics = false;
    double u_offset = 0, i_offset = 0;
  };
  for (const Case& cs : {Case{"ac3"}, Case{"ac1"}, Case{"dc"}, Case{"ac3", true, 3.0, -0.5}, Case{"ac1", true}}) {
    SimConfig cfg = *sim_profile(cs.profile, 20000);
    if (cs.harmonics) {
      cfg.u_harmonics = {{3, 5.0, 30}, {5, 2.0, 0}};
      cfg.i_harmonics = {{3, 20.0, 0}};
      cfg.un_rms_v = 1.5;
    }
    cfg.u_offset_v = cs.u_offset, cfg.i_offset_a = cs.i_offset;
    cfg.dc_u_ripple = {{300, 4.0, 0}};
    Simulator sim(cfg);
    const PeakBound pb = sim.peak_bound();
    ASSERT_TRUE(std::isfinite(pb.v) && std::isfinite(pb.a)) << cs.profile;
    double peak_v = 0, peak_a = 0;
    auto b = std::make_unique<SampleBlock>();
    for (int blk = 0; blk < 200; ++blk) {  // 2 s: every phase of the harmonics
      sim.generate(*b, kBlockFrames);
      for (std::uint32_t f = 0; f < b->frames; ++f)
        for (std::uint32_t c = 0; c < b->channels; ++c) {
          const double x = std::abs(double(b->frame(f)[c]));
          double& peak = is_voltage(cfg.layout, c) ? peak_v : peak_a;
          peak = std::max(peak, x);
        }
    }
    EXPECT_LE(peak_v, pb.v) << cs.profile;
    EXPECT_LE(peak_a, pb.a) << cs.profile;
    EXPECT_GT(peak_v, pb.v * (cs.harmonics ? 0.7 : 0.999)) << cs.profile;
    EXPECT_GT(peak_a, pb.a * (cs.harmonics ? 0.7 : 0.999)) << cs.profile;
  }
  SimConfig noisy = *sim_profile("ac3", 20000);
  noisy.i_noise_a = 0.1;
  EXPECT_TRUE(std::isinf(Simulator(noisy).peak_bound().a)) << "noise has no bound";
  EXPECT_TRUE(std::isinf(Simulator(*sim_profile("charger", 20000)).peak_bound().v));
  EXPECT_TRUE(std::isinf(Simulator(*sim_profile("dc-session", 20000)).peak_bound().a)) << "its current response overshoots";
}

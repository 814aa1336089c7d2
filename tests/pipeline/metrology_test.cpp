// SPDX-License-Identifier: Apache-2.0
// Accuracy against closed-form truth from signals generated in the test.
// Power definitions per IEEE 1459-2010: P = mean(u i), S = Urms Irms,
// Q1 = U1 I1 sin(phi1) of the fundamental, N = sqrt(S^2 - P^2).
#include <gtest/gtest.h>

#include <random>

#include "signal_feed.hpp"

using namespace wattpipe;
using namespace wattpipe::testing;

namespace {

struct Phase {
  double u = 230, i = 16, phi_deg = 18.19, alpha_deg = 0;
};

// Three phases (plus neutral channels for AC3N) of pure sines at f(t).
Signal three_phase(Layout l, std::array<Phase, 3> ph, std::function<double(double)> theta) {
  const auto li = acquire::layout_info(l);
  return [=](int c, double t) {
    const double th = theta(t);
    for (int k = 0; k < int(li.phases); ++k) {
      const double a = ph[k].alpha_deg * kPi / 180;
      if (c == li.u[k]) return std::sqrt(2.0) * ph[k].u * std::sin(th + a);
      if (c == li.i[k]) return std::sqrt(2.0) * ph[k].i * std::sin(th + a - ph[k].phi_deg * kPi / 180);
    }
    return 0.0;
  };
}

std::function<double(double)> constant_freq(double f) {
  return [f](double t) { return 2 * kPi * f * t; };
}

std::array<Phase, 3> balanced(double u = 230, double i = 16, double phi = 18.19) {
  return {Phase{u, i, phi, 0}, Phase{u, i, phi, -120}, Phase{u, i, phi, 120}};
}

pipeline::ProcessorConfig config(unsigned cycles = 10) {
  pipeline::ProcessorConfig c;
  c.window_cycles = cycles;
  return c;
}

}  // namespace

TEST(Metrology, CleanSineIsExactToTheTolerances) {
  Collect sink;
  pipeline::Processor p(config(), sink);
  Feeder f(p);
  const double fs = 20000;
  feed_signal(f, Layout::ac3n, fs, 60, three_phase(Layout::ac3n, balanced(), constant_freq(50)));
  f.flush();
  const auto whole = sink.whole();
  ASSERT_GT(whole.size(), 290u);
  const double phi = 18.19 * kPi / 180;
  for (const auto& w : whole) {
    for (int k = 0; k < 3; ++k) {
      ASSERT_LT(rel(w.ph[k].urms_v, 230), 1e-4) << "window " << w.seq;
      ASSERT_LT(rel(w.ph[k].irms_a, 16), 1e-4);
      ASSERT_LT(rel(w.ph[k].p_w, 230 * 16 * std::cos(phi)), 1e-4);
      ASSERT_LT(rel(w.ph[k].q1_var, 230 * 16 * std::sin(phi)), 1e-4);
      ASSERT_LT(rel(w.ph[k].s_va, 230 * 16), 1e-4);
      ASSERT_NEAR(w.ph[k].pf, std::cos(phi), 1e-4);
    }
    ASSERT_TRUE(w.frequency_valid);
    ASSERT_NEAR(w.frequency_hz, 50.0, 1e-3);
    ASSERT_FALSE(w.phase_seq_error);
    ASSERT_NEAR(w.samples, 4000, 1e-3);
    ASSERT_NEAR(w.in_rms_a, 0, 1e-3);
  }
  // Energy after 60 s: the registers cover every sample exactly once.
  const double truth_wh = 3 * 230 * 16 * std::cos(phi) * 60 / 3600;
  EXPECT_LT(rel(p.registers().import_total.wh(), truth_wh), 1e-4);
  EXPECT_EQ(p.registers().export_total.uwh, 0);
  EXPECT_EQ(p.frames_processed(), 1'200'000u);
}

TEST(Metrology, HarmonicsAndNoiseWithinTolerance) {
  // 10 % THD on U and I (3rd 8 %, 5th 5 %, 7th 3 %) plus white noise at 60 dB SNR.
  const double a[3] = {0.08, 0.05, 0.03};
  const int h[3] = {3, 5, 7};
  const double U = 230, I = 16, phi = 30 * kPi / 180;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nu(0, U * 1e-3), ni(0, I * 1e-3);
  Signal sig = [&](int c, double t) {
    const double th = 2 * kPi * 50 * t;
    if (c == 0) {
      double v = std::sin(th);
      for (int k = 0; k < 3; ++k) v += a[k] * std::sin(h[k] * th + 0.3 * k);
      return std::sqrt(2.0) * U * v + nu(rng);
    }
    double v = std::sin(th - phi);
    for (int k = 0; k < 3; ++k) v += a[k] * std::sin(h[k] * (th - phi) + 0.3 * k);
    return std::sqrt(2.0) * I * v + ni(rng);
  };
  Collect sink;
  pipeline::Processor p(config(), sink);
  Feeder f(p);
  feed_signal(f, Layout::ac1, 20000, 20, sig);
  f.flush();
  double sum_a2 = 0;
  for (double x : a) sum_a2 += x * x;
  const double urms = U * std::sqrt((1 + sum_a2) + 1e-6), irms = I * std::sqrt((1 + sum_a2) + 1e-6);
  // Each harmonic pair contributes U_h I_h cos(h phi... ) = a^2 U I cos(h phi).
  double p_true = U * I * std::cos(phi);
  for (int k = 0; k < 3; ++k) p_true += a[k] * a[k] * U * I * std::cos(h[k] * phi);
  const double q1_true = U * I * std::sin(phi);
  const auto whole = sink.whole();
  ASSERT_GT(whole.size(), 90u);
  for (const auto& w : whole) {
    ASSERT_LT(rel(w.ph[0].urms_v, urms), 5e-4) << w.seq;
    ASSERT_LT(rel(w.ph[0].irms_a, irms), 5e-4);
    ASSERT_LT(rel(w.ph[0].p_w, p_true), 5e-4);
    ASSERT_LT(rel(w.ph[0].q1_var, q1_true), 2e-3);
    ASSERT_NEAR(w.frequency_hz, 50, 5e-3);
  }
}

class OffNominal : public ::testing::TestWithParam<double> {};

// At 40, 400 and 4000 samples per cycle (the crossing scan steps 4, 8 and 16 samples).
TEST_P(OffNominal, FrequencyWithin5mHzAndWindowsStayWholeCycles) {
  const double fr = GetParam();
  for (const double fs : {2000.0, 20000.0, 200000.0}) {
    Collect sink;
    pipeline::Processor p(config(), sink);
    Feeder f(p);
    feed_signal(f, Layout::ac3, fs, 10, three_phase(Layout::ac3, balanced(), constant_freq(fr)));
    f.flush();
    const auto whole = sink.whole();
    ASSERT_GT(whole.size(), size_t(fr * 10 / 10) - 3) << fs;
    for (const auto& w : whole) {
      ASSERT_NEAR(w.frequency_hz, fr, 5e-3) << fs;
      // Boundaries sit on rising zero crossings of U1: sin(2 pi f t) = 0, rising.
      const double cycles_start = fr * w.start_frame / fs, cycles_end = fr * w.end_frame / fs;
      ASSERT_NEAR(cycles_start - std::round(cycles_start), 0, 1e-4) << fs;
      ASSERT_NEAR(cycles_end - cycles_start, 10, 1e-4) << fs;
      ASSERT_LT(rel(w.ph[0].urms_v, 230), 1e-4) << fs;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Frequencies, OffNominal, ::testing::Values(45.0, 65.0));

TEST(Metrology, FrequencyRampIsTrackedWindowByWindow) {
  // 49.5 -> 50.5 Hz over 10 s: theta = 2 pi (f0 t + k t^2 / 2).
  const double f0 = 49.5, k = 0.1, fs = 20000;
  Collect sink;
  pipeline::Processor p(config(), sink);
  Feeder f(p);
  feed_signal(f, Layout::ac1, fs, 10, three_phase(Layout::ac1, balanced(), [&](double t) {
                return 2 * kPi * (f0 * t + k * t * t / 2);
              }));
  f.flush();
  const auto whole = sink.whole();
  ASSERT_GT(whole.size(), 45u);
  for (const auto& w : whole) {
    // Mean frequency over the window = cycles / duration.
    const double t0 = w.start_frame / fs, t1 = w.end_frame / fs;
    const double cycles = (f0 * t1 + k * t1 * t1 / 2) - (f0 * t0 + k * t0 * t0 / 2);
    ASSERT_NEAR(cycles, 10, 1e-3) << "window " << w.seq << " is not whole cycles";
    ASSERT_NEAR(w.frequency_hz, cycles / (t1 - t0), 5e-3);
  }
}

TEST(Metrology, ExportAndMixedPerPhaseDirections) {
  // L1 imports, L2 exports (current reversed), L3 imports less than L2 exports.
  std::array<Phase, 3> ph = {Phase{230, 10, 0, 0}, Phase{230, 20, 180, -120}, Phase{230, 5, 0, 120}};
  Collect sink;
  pipeline::Processor p(config(), sink);
  Feeder f(p);
  feed_signal(f, Layout::ac3, 20000, 10, three_phase(Layout::ac3, ph, constant_freq(50)));
  f.flush();
  const auto& r = p.registers();
  EXPECT_NEAR(r.import_phase[0].wh(), 2300.0 * 10 / 3600, 2300.0 * 10 / 3600 * 1e-4);
  EXPECT_NEAR(r.export_phase[1].wh(), 4600.0 * 10 / 3600, 4600.0 * 10 / 3600 * 1e-4);
  EXPECT_NEAR(r.import_phase[2].wh(), 1150.0 * 10 / 3600, 1150.0 * 10 / 3600 * 1e-4);
  EXPECT_EQ(r.export_phase[0].uwh, 0);
  EXPECT_EQ(r.import_phase[1].uwh, 0);
  // Totals net out per window: 2300 + 1150 - 4600 = -1150 W of export.
  EXPECT_EQ(r.import_total.uwh, 0);
  EXPECT_NEAR(r.export_total.wh(), 1150.0 * 10 / 3600, 1150.0 * 10 / 3600 * 1e-4);
  for (const auto& w : sink.whole()) ASSERT_NEAR(w.p_total_w, -1150, 0.2);
}

TEST(Metrology, LaggingLoadIsNotExportInsideTheCycle) {
  // cos phi = 0.3: instantaneous power is negative for part of every cycle.
  Collect sink;
  pipeline::Processor p(config(1), sink);
  Feeder f(p);
  feed_signal(f, Layout::ac1, 20000, 2, three_phase(Layout::ac1, balanced(230, 16, std::acos(0.3) * 180 / kPi),
                                                     constant_freq(50)));
  f.flush();
  EXPECT_EQ(p.registers().export_total.uwh, 0);
  EXPECT_EQ(p.registers().export_phase[0].uwh, 0);
  EXPECT_NEAR(p.registers().import_total.wh(), 230 * 16 * 0.3 * 2 / 3600, 230 * 16 * 0.3 * 2 / 3600 * 1e-4);
}

TEST(Metrology, PhaseSequenceErrorOnCounterClockwiseRotation) {
  for (bool ccw : {false, true}) {
    auto ph = balanced();
    if (ccw) std::swap(ph[1].alpha_deg, ph[2].alpha_deg);  // U2 leads U1
    Collect sink;
    pipeline::Processor p(config(), sink);
    Feeder f(p);
    feed_signal(f, Layout::ac3n, 20000, 1, three_phase(Layout::ac3n, ph, constant_freq(50)));
    f.flush();
    for (const auto& w : sink.whole()) {
      ASSERT_TRUE(w.phase_seq_valid);
      ASSERT_EQ(w.phase_seq_error, ccw);
    }
  }
}

TEST(Metrology, DeadPhaseGivesZerosNotNaN) {
  auto ph = balanced();
  ph[2].u = 0;
  ph[2].i = 0;
  Collect sink;
  pipeline::Processor p(config(), sink);
  Feeder f(p);
  feed_signal(f, Layout::ac3n, 20000, 1, three_phase(Layout::ac3n, ph, constant_freq(50)));
  f.flush();
  ASSERT_FALSE(sink.whole().empty());
  for (const auto& w : sink.windows) {
    ASSERT_EQ(w.ph[2].urms_v, 0);
    ASSERT_EQ(w.ph[2].pf, 0);
    ASSERT_TRUE(std::isfinite(w.ph[2].q1_var));
    ASSERT_TRUE(std::isfinite(w.p_total_w));
  }
  EXPECT_EQ(p.registers().import_phase[2].uwh, 0);
}

TEST(Metrology, VoltageDropoutFallsBackToNominalTimingAndRelocks) {
  acquire::SimConfig cfg = *acquire::sim_profile("ac3", 20000);
  cfg.dropout_start_s = 2;
  cfg.dropout_s = 1.5;
  cfg.start_utc_ns = 1;
  acquire::Simulator sim(cfg);
  Collect sink;
  pipeline::Processor p(config(), sink);
  Feeder f(p);
  feed_sim(f, sim, 20000 * 6);
  f.flush();
  int nominal = 0, whole_after = 0;
  for (const auto& w : sink.windows) {
    ASSERT_TRUE(std::isfinite(w.ph[0].urms_v) && std::isfinite(w.frequency_hz) && std::isfinite(w.ph[0].pf));
    const double t = w.start_frame / 20000;
    if (w.nominal_timing) {
      ++nominal;
      ASSERT_FALSE(w.frequency_valid);
      ASSERT_NEAR(w.samples, 4000, 1e-6);  // 10 nominal cycles
      ASSERT_LT(w.ph[0].urms_v, 1);
    }
    if (t > 4 && w.whole_cycles) ++whole_after;
  }
  EXPECT_GE(nominal, 5);
  EXPECT_GE(whole_after, 8) << "locks on the voltage again after the dropout";
  // Currents kept flowing: energy is the current times zero volts during the gap.
  const double p_w = 3 * 230 * 16 * 0.95;
  EXPECT_NEAR(p.registers().import_total.wh(), p_w * 4.5 / 3600, p_w * 4.5 / 3600 * 2e-3);
}

TEST(Metrology, OneCycleWindowsForHighFrequencyLogging) {
  Collect sink;
  pipeline::Processor p(config(1), sink);
  Feeder f(p);
  feed_signal(f, Layout::ac3n, 20000, 2, three_phase(Layout::ac3n, balanced(), constant_freq(50)));
  f.flush();
  const auto whole = sink.whole();
  EXPECT_GE(whole.size(), 97u);
  for (const auto& w : whole) {
    ASSERT_NEAR(w.samples, 400, 1e-3);
    ASSERT_LT(rel(w.ph[0].p_w, 230 * 16 * std::cos(18.19 * kPi / 180)), 1e-4);
  }
  for (std::size_t k = 1; k < sink.windows.size(); ++k) {
    ASSERT_EQ(sink.windows[k].seq, sink.windows[k - 1].seq + 1);
    ASSERT_DOUBLE_EQ(sink.windows[k].start_frame, sink.windows[k - 1].end_frame) << "windows tile the stream";
  }
}

TEST(Metrology, DcExactAgainstClosedForm) {
  acquire::SimConfig cfg = *acquire::sim_profile("dc", 20000);
  cfg.dc_voltage_v = 800;
  cfg.dc_current_a = 500;
  cfg.start_utc_ns = 1;
  acquire::Simulator sim(cfg);
  pipeline::ProcessorConfig pc;
  pc.window_ms = 100;
  Collect sink;
  pipeline::Processor p(pc, sink);
  Feeder f(p);
  feed_sim(f, sim, 20000 * 60);
  f.flush();
  EXPECT_LT(rel(p.registers().import_total.wh(), 800.0 * 500 * 60 / 3600), 1e-4);
  for (const auto& w : sink.windows) {
    ASSERT_TRUE(w.dc);
    ASSERT_FALSE(w.frequency_valid);
    ASSERT_NEAR(w.ph[0].u_mean_v, 800, 1e-3);
    ASSERT_NEAR(w.ph[0].i_mean_a, 500, 1e-3);
  }
  EXPECT_EQ(sink.windows.size(), 600u);
}

TEST(Metrology, DcSessionEnergyMatchesClosedFormIntegral) {
  const double session = 60;
  acquire::SimConfig cfg = *acquire::sim_profile("dc-session", 20000, session);
  cfg.dc_u_ripple.clear(), cfg.dc_i_ripple.clear(), cfg.dc_i_response = {};  // the ramps alone: a closed form
  cfg.start_utc_ns = 1;
  acquire::Simulator sim(cfg);
  Collect sink;
  pipeline::Processor p(pipeline::ProcessorConfig{}, sink);
  Feeder f(p);
  feed_sim(f, sim, static_cast<std::uint64_t>(20000 * session));
  f.flush();
  // Closed form: V and I are piecewise linear, so V*I is quadratic between
  // their breakpoints and Simpson's rule is exact there. The registers book
  // each 100 ms window by the sign of its net energy: so does the truth.
  std::vector<double> knots;
  for (const auto& [t, v] : cfg.dc_voltage_ramp.points) knots.push_back(t);
  for (const auto& [t, v] : cfg.dc_current_ramp.points) knots.push_back(t);
  std::sort(knots.begin(), knots.end());
  auto pw = [&](double t) { return cfg.dc_voltage_ramp.at(t) * cfg.dc_current_ramp.at(t); };
  auto integral = [&](double t0, double t1) {
    std::vector<double> cuts{t0};
    for (double k : knots)
      if (k > t0 && k < t1) cuts.push_back(k);
    cuts.push_back(t1);
    double e = 0;
    for (std::size_t k = 1; k < cuts.size(); ++k) {
      // Evaluate just inside each piece: a knot may be a jump.
      const double a = cuts[k - 1] + 1e-12, b = cuts[k] - 1e-12;
      e += (b - a) / 6 * (pw(a) + 4 * pw((a + b) / 2) + pw(b));
    }
    return e;
  };
  double imp_j = 0, exp_j = 0;
  for (int w = 0; w < int(session * 10); ++w) {
    const double e = integral(w * 0.1, (w + 1) * 0.1);
    (e >= 0 ? imp_j : exp_j) += std::abs(e);
  }
  const auto& r = p.registers();
  EXPECT_LT(rel(r.import_total.wh(), imp_j / 3600), 1e-4);
  EXPECT_GT(r.export_total.wh(), 0) << "the brief reversal books export";
  EXPECT_LT(rel(r.export_total.wh(), exp_j / 3600), 1e-3);
}

TEST(Metrology, CalibrationGainOffsetAndDelayAreUndone) {
  // The "DAQ" reads U with gain 0.5 and an offset, and samples I 30 us late.
  const double fs = 20000, delay = 30e-6, phi = 18.19 * kPi / 180;
  Signal raw = [&](int c, double t) {
    if (c == 0) return (std::sqrt(2.0) * 230 * std::sin(2 * kPi * 50 * t) - 1.5) / 0.5;
    return std::sqrt(2.0) * 16 * std::sin(2 * kPi * 50 * (t + delay) - phi);
  };
  pipeline::ProcessorConfig pc = config();
  pc.cal[0] = {0.5, 1.5, 0};     // U1: calibrated = 0.5 raw + 1.5
  pc.cal[4] = {1.0, 0.0, 30.0};  // I1: 30 us late
  Collect sink;
  pipeline::Processor p(pc, sink);
  Feeder f(p);
  feed_signal(f, Layout::ac1, fs, 3, raw);
  f.flush();
  const auto whole = sink.whole();
  ASSERT_GT(whole.size(), 10u);
  for (const auto& w : whole) {
    ASSERT_LT(rel(w.ph[0].urms_v, 230), 1e-4);
    ASSERT_NEAR(w.ph[0].u_mean_v, 0, 1e-3);
    ASSERT_LT(rel(w.ph[0].p_w, 230 * 16 * std::cos(phi)), 1e-4);
    ASSERT_LT(rel(w.ph[0].q1_var, 230 * 16 * std::sin(phi)), 1e-4);
  }
}

TEST(Metrology, GapClosesTheWindowAndCountsDroppedFrames) {
  acquire::SimConfig cfg = *acquire::sim_profile("ac3", 20000);
  cfg.start_utc_ns = 1;
  acquire::Simulator sim(cfg);
  Collect sink;
  pipeline::Processor p(config(), sink);
  Feeder f(p);
  feed_sim(f, sim, 20000);
  // Lose 5000 frames: generate them but never push.
  auto lost = std::make_unique<SampleBlock>();
  for (int k = 0; k < 5; ++k) sim.generate(*lost, 1000);
  SampleBlock& b = f.next();
  sim.generate(b, 1000);
  b.lost_frames = 5000;
  f.push();
  feed_sim(f, sim, 20000);
  f.flush();
  std::uint64_t dropped = 0;
  for (const auto& w : sink.windows) dropped += w.frames_dropped;
  EXPECT_EQ(dropped, 5000u);
  EXPECT_EQ(p.frames_processed(), 41000u);
  const double p_w = 3 * 230 * 16 * 0.95;
  EXPECT_LT(rel(p.registers().import_total.wh(), p_w * 41000 / 20000 / 3600), 2e-4);
}

namespace wattpipe::testing {
namespace {

// The three-phase kernels' sums, to the last bit, against the plain loops of
// the order they keep (metrology.cpp, kernel_3ph and kernel_3ph_x2): frames
// in pairs; U*I in double, a pair's two terms first, then the sum (the same
// on every instruction set: the products are exact); the means, U^2 and I^2
// in float over runs of 64 frames, by pairs, each run then added in double.
// One rounding per operation: AVX2 fuses the second square onto the first,
// SSE2 has a multiply, then an add. Frames the vectors do not take (AC3's
// last, an odd one) go one at a time (accumulate_one, in double). The DFT's
// sums are held to their bound below.
TEST(Metrology, ThreePhaseSumsAreThoseOfTheirPlainLoopsToTheLastBit) {
  const std::string isa = pipeline::kernel_isa();
  const bool fused = isa != "portable";
  const std::size_t run = 64;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> uv(-400, 400), iv(-60, 60);
  for (const acquire::Layout l : {acquire::Layout::ac3n, acquire::Layout::ac3}) {
    const auto li = acquire::layout_info(l);
    for (const std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{63}, std::size_t{64},
                                std::size_t{65}, std::size_t{1000}, std::size_t{1024}}) {
      std::vector<float> x((n + 1) * li.channels);  // one frame more: AC3 reads past a frame
      for (std::size_t k = 0; k < n * li.channels; ++k) x[k] = (k % li.channels) < li.channels / 2 ? uv(rng) : iv(rng);
      pipeline::Sums got;
      pipeline::Phasor z{0.6, 0.8};
      pipeline::accumulate(l, x.data(), n, z, pipeline::Phasor{std::cos(0.01), std::sin(0.01)}, got);
      const std::size_t margin = l == acquire::Layout::ac3 ? 1 : 0;
      const std::size_t full = n > margin ? n - margin : 0;
      const std::size_t vec = full & ~std::size_t{1};  // frames go in pairs
      pipeline::Sums want;
      for (unsigned p = 0; p < 4; ++p) {
        if (p == 3 && !li.neutral) continue;
        auto u_at = [&](std::size_t k) { return x[k * li.channels + (p < 3 ? li.u[p] : li.un)]; };
        auto i_at = [&](std::size_t k) { return x[k * li.channels + (p < 3 ? li.i[p] : li.in)]; };
        auto square2 = [&](float a, float b) { return fused ? std::fma(b, b, a * a) : a * a + b * b; };
        double ui = 0;
        for (std::size_t k = 0; k + 1 < vec; k += 2)
          ui += double(u_at(k)) * double(i_at(k)) + double(u_at(k + 1)) * double(i_at(k + 1));
        for (std::size_t r = 0; r < vec; r += run) {
          float mu = 0, mi = 0, uu = 0, ii = 0;
          for (std::size_t k = r; k < std::min(vec, r + run); k += 2) {
            const float u0 = u_at(k), i0 = i_at(k), u1 = u_at(k + 1), i1 = i_at(k + 1);
            mu += u0 + u1, mi += i0 + i1;
            uu += square2(u0, u1), ii += square2(i0, i1);
          }
          want.su[p] += double(mu), want.si[p] += double(mi), want.suu[p] += double(uu), want.sii[p] += double(ii);
        }
        want.sui[p] += ui;
        for (std::size_t k = vec; k < n; ++k) {
          const double u = u_at(k), i = i_at(k);
          want.su[p] += u, want.si[p] += i, want.suu[p] += u * u, want.sii[p] += i * i, want.sui[p] += u * i;
        }
      }
      for (unsigned p = 0; p < 4; ++p) {
        const double g[] = {got.su[p], got.si[p], got.suu[p], got.sii[p], got.sui[p]};
        const double w[] = {want.su[p], want.si[p], want.suu[p], want.sii[p], want.sui[p]};
        for (int q = 0; q < 5; ++q) EXPECT_EQ(g[q], w[q]) << isa << " n " << n << " lane " << p << " sum " << q;
      }
      EXPECT_EQ(got.w, double(n));
      // The phasor comes back turned by n frames.
      EXPECT_NEAR(z.c, std::cos(0.01 * double(n) + std::atan2(0.8, 0.6)), 1e-12) << n;
      EXPECT_NEAR(z.s, std::sin(0.01 * double(n) + std::atan2(0.8, 0.6)), 1e-12) << n;
    }
  }
}

// What the float sums cost: against the exact sums (long double, exact
// products, the reference phasor in long double), at full swing over a
// block, the means, squares and DFT sums are within their bound, about
// (64 + 16) x 2^-24 (5e-6) of the sums of magnitudes, and U*I within 1e-13.
TEST(Metrology, ThreePhaseFloatSumsStayWithinTheirBound) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> uv(-1000, 1000), iv(-500, 500);
  const std::size_t n = 1024;
  const double w = 0.0157, a0 = 0.3;
  std::vector<float> x((n + 1) * 8);
  for (std::size_t k = 0; k < n * 8; ++k) x[k] = k % 8 < 4 ? uv(rng) : iv(rng);
  for (const std::size_t piece : {std::size_t{n}, std::size_t{77}}) {  // whole, and in pieces that split groups
    pipeline::Sums got;
    pipeline::Phasor z{std::cos(a0), std::sin(a0)};
    for (std::size_t k = 0; k < n; k += piece)
      pipeline::accumulate(acquire::Layout::ac3n, x.data() + k * 8, std::min(piece, n - k), z,
                           pipeline::Phasor{std::cos(w), std::sin(w)}, got);
    for (unsigned p = 0; p < 4; ++p) {
      long double su = 0, suc = 0, sis = 0, suu = 0, sii = 0, sui = 0, mag_u = 0, mag_uc = 0, mag_is = 0;
      for (std::size_t k = 0; k < n; ++k) {
        const long double u = x[k * 8 + p], i = x[k * 8 + 4 + p];
        const long double c = std::cos(a0 + w * (long double)k), s = std::sin(a0 + w * (long double)k);
        su += u, suc += u * c, sis += i * s, suu += u * u, sii += i * i, sui += u * i;
        mag_u += std::fabs(u), mag_uc += std::fabs(u * c), mag_is += std::fabs(i * s);
      }
      const std::string at = std::string(pipeline::kernel_isa()) + " piece " + std::to_string(piece) + " lane " + std::to_string(p);
      EXPECT_LE(std::fabs(got.su[p] - double(su)), 5e-6 * double(mag_u)) << at;
      EXPECT_LE(std::fabs(got.suc[p] - double(suc)), 5e-6 * double(mag_uc)) << at;
      EXPECT_LE(std::fabs(got.sis[p] - double(sis)), 5e-6 * double(mag_is)) << at;
      EXPECT_LE(std::fabs(got.suu[p] - double(suu)), 5e-6 * double(suu)) << at;
      EXPECT_LE(std::fabs(got.sii[p] - double(sii)), 5e-6 * double(sii)) << at;
      EXPECT_LE(std::fabs(got.sui[p] - double(sui)), 1e-13 * double(suu)) << at;
    }
  }
}

}  // namespace
}  // namespace wattpipe::testing

// SPDX-License-Identifier: Apache-2.0
// Analysis on closed-form signals: harmonics, THD and unbalance (AC), ripple,
// bands and peaks (DC), and current steps, against the goals in
// docs/analysis.md.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <vector>

#include "signal_feed.hpp"
#include "wattpipe/pipeline/analysis.hpp"
#include "wattpipe/pipeline/lane_fft.hpp"
#include "wattpipe/pipeline/step_detector.hpp"

namespace wattpipe::testing {
namespace {

constexpr double kSqrt2 = std::numbers::sqrt2;
constexpr double kDeg = kPi / 180;

pipeline::ProcessorConfig with_analysis() {
  pipeline::ProcessorConfig pc;
  pc.analysis.enabled = true;
  return pc;
}

double wrap_deg(double d) {
  d = std::remainder(d, 360.0);
  return d <= -180 ? d + 360 : d;
}

// ---- kernels ----

TEST(AnalysisKernels, LagrangeWeightsReproduceAPolynomialOfDegree7) {
  // Four points at once, one per lane; single precision.
  const pipeline::analysis::v4f mu{0.0f, 0.25f, 0.5f, 0.9f};
  pipeline::analysis::v4f w[8];
  pipeline::analysis::lagrange8_weights(mu, w);
  for (int l = 0; l < 4; ++l) {
    double v = 0, sum = 0;
    for (int j = 0; j < 8; ++j) {
      const double x = j - 3;
      v += w[j][l] * (x * x * x * x * x * x * x - 2 * x * x + 1);
      sum += w[j][l];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);
    EXPECT_NEAR(v, std::pow(double(mu[l]), 7) - 2 * double(mu[l]) * mu[l] + 1, 1e-4);
  }
}

// A double-precision DFT to compare the single-precision transforms with.
std::vector<std::complex<double>> dft(const std::vector<std::complex<double>>& x) {
  const std::size_t n = x.size();
  std::vector<std::complex<double>> y(n);
  for (std::size_t k = 0; k < n; ++k)
    for (std::size_t j = 0; j < n; ++j) y[k] += x[j] * std::polar(1.0, -2 * std::numbers::pi * double(j * k % n) / double(n));
  return y;
}

double max_error(const std::vector<std::complex<double>>& a, const std::vector<std::complex<double>>& b) {
  double e = 0, peak = 0;
  for (std::size_t k = 0; k < a.size(); ++k) e = std::max(e, std::abs(a[k] - b[k])), peak = std::max(peak, std::abs(b[k]));
  return e / peak;
}

TEST(AnalysisKernels, LaneTransformsMatchADoublePrecisionDft) {
  using pipeline::analysis::v4f;
  for (std::size_t n : {1u, 2u, 4u, 8u, 64u, 1024u, 2048u}) {
    pipeline::analysis::LaneFft fft(n);
    std::vector<v4f> re(n), im(n);
    std::vector<std::vector<std::complex<double>>> x(4, std::vector<std::complex<double>>(n));
    for (std::size_t j = 0; j < n; ++j)
      for (int l = 0; l < 4; ++l) {
        x[l][j] = {std::sin(0.3 * double(j * (l + 1))) + 0.01 * l, std::cos(0.11 * double(j) + l)};
        re[j][l] = float(x[l][j].real()), im[j][l] = float(x[l][j].imag());
      }
    fft.forward(re.data(), im.data());
    for (int l = 0; l < 4; ++l) {
      std::vector<std::complex<double>> y(n);
      for (std::size_t k = 0; k < n; ++k) y[k] = {re[k][l], im[k][l]};
      EXPECT_LT(max_error(y, dft(x[l])), 2e-6) << "n " << n << " lane " << l;
    }
  }
  for (std::size_t n : {4u, 16u, 1024u, 4096u}) {
    pipeline::analysis::QuadFft fft(n);
    std::vector<v4f> re(n / 4), im(n / 4);
    std::vector<std::complex<double>> x(n);
    std::vector<std::complex<float>> out(n);
    for (std::size_t j = 0; j < n; ++j) {
      x[j] = {std::sin(0.7 * double(j)) + 1, 0.5 * std::cos(0.05 * double(j * j % 977))};
      re[j / 4][j % 4] = float(x[j].real()), im[j / 4][j % 4] = float(x[j].imag());
    }
    fft.forward(re.data(), im.data(), out.data());
    EXPECT_LT(max_error(std::vector<std::complex<double>>(out.begin(), out.end()), dft(x)), 2e-6) << "n " << n;
  }
}

TEST(AnalysisKernels, SplitPowerSeparatesTwoRealSignalsTransformedTogether) {
  // u and v with known spectra, transformed as z = u + j v by a double DFT:
  // split_power must give each one's one-sided power, bin for bin.
  for (std::size_t n : {8u, 16u, 64u, 2048u}) {
    std::vector<std::complex<double>> z(n), zu(n), zv(n);
    for (std::size_t j = 0; j < n; ++j) {
      const double u = 3 + std::cos(2 * std::numbers::pi * 3 * double(j) / double(n)) + 0.1 * std::sin(0.7 * double(j));
      const double v = -1 + 2 * std::sin(2 * std::numbers::pi * 1 * double(j) / double(n) + 0.3) + 0.05 * std::cos(1.3 * double(j));
      z[j] = {u, v}, zu[j] = {u, 0}, zv[j] = {v, 0};
    }
    const auto Z = dft(z), U = dft(zu), V = dft(zv);
    std::vector<std::complex<float>> zf(Z.begin(), Z.end());
    std::vector<double> pu(n / 2), pv(n / 2);
    const double scale = 1.0 / double(n * n);
    pipeline::analysis::split_power(zf.data(), n, scale, pu.data(), pv.data());
    double peak = 0;
    for (std::size_t k = 0; k < n / 2; ++k) peak = std::max({peak, std::norm(U[k]) * scale, std::norm(V[k]) * scale});
    for (std::size_t k = 0; k < n / 2; ++k) {
      const double c = k == 0 ? 1 : 2;
      EXPECT_NEAR(pu[k], c * std::norm(U[k]) * scale, 1e-6 * peak) << "n " << n << " bin " << k;
      EXPECT_NEAR(pv[k], c * std::norm(V[k]) * scale, 1e-6 * peak) << "n " << n << " bin " << k;
    }
  }
}

TEST(AnalysisKernels, FirFramesIsTheWeightedSumOfEachChannel) {
  for (unsigned ch : {2u, 6u, 8u})
    for (std::size_t taps : {1u, 3u, 16u, 33u, 640u}) {
      std::vector<float> x(taps * ch + pipeline::analysis::kFirPadFloats, 1e30f), w(taps);  // the pad must not count
      for (std::size_t j = 0; j < taps; ++j) {
        w[j] = float(std::cos(0.01 * double(j)) / double(taps));
        for (unsigned c = 0; c < ch; ++c) x[j * ch + c] = float(std::sin(0.3 * double(j) + c) * (c + 1));
      }
      float out[8] = {-7, -7, -7, -7, -7, -7, -7, -7};
      pipeline::analysis::fir_frames(x.data(), ch, w.data(), taps, out);
      for (unsigned c = 0; c < 8; ++c) {
        if (c >= ch) {
          EXPECT_EQ(out[c], -7) << "channel " << c << " is not the frame's";
          continue;
        }
        double ref = 0;
        for (std::size_t j = 0; j < taps; ++j) ref += double(w[j]) * x[j * ch + c];
        EXPECT_NEAR(out[c], ref, 1e-5 * (c + 1)) << ch << " channels, " << taps << " taps, channel " << c;
      }
    }
}

TEST(AnalysisKernels, BandRmsSumsTheBinsFromTheFirstAtOrAboveTheLowEdgeToBeforeTheHighOne) {
  std::vector<double> p(101);
  for (std::size_t k = 0; k < p.size(); ++k) p[k] = double(k);  // bin k at 10 k Hz
  auto sum = [&](std::size_t a, std::size_t b) {
    double s = 0;
    for (std::size_t k = a; k < b; ++k) s += p[k];
    return std::sqrt(s);
  };
  using pipeline::analysis::band_rms;
  EXPECT_DOUBLE_EQ(band_rms(p, 10, 0, 35), sum(0, 4));      // bins 0..3
  EXPECT_DOUBLE_EQ(band_rms(p, 10, 10, 10), 0);             // empty
  EXPECT_DOUBLE_EQ(band_rms(p, 10, 15, 975), sum(2, 98));   // 20 Hz .. 970 Hz
  EXPECT_DOUBLE_EQ(band_rms(p, 10, 0, 1e9), sum(0, 101));   // cut at the last bin
  EXPECT_DOUBLE_EQ(band_rms(p, 10, 2000, 3000), 0);         // wholly above
  EXPECT_DOUBLE_EQ(band_rms(p, 0, 0, 100), 0);              // no bin width
}

TEST(AnalysisKernels, MinMaxAndSumsOfSquaresPerChannelForEveryLayoutWidth) {
  for (unsigned ch : {2u, 6u, 8u})
    for (std::size_t n : {0u, 1u, 2u, 3u, 7u, 1000u}) {
      std::vector<float> x(n * ch);
      for (std::size_t f = 0; f < n; ++f)
        for (unsigned c = 0; c < ch; ++c) x[f * ch + c] = float(std::sin(0.37 * double(f) + c) * (c + 1));
      float mn[8], mx[8], mn1[8], mx1[8];
      double sq[8] = {}, sq1[8] = {};
      std::fill_n(mn, 8, 1e30f), std::fill_n(mx, 8, -1e30f);
      std::fill_n(mn1, 8, 1e30f), std::fill_n(mx1, 8, -1e30f);
      pipeline::analysis::channel_minmax(x.data(), n, ch, mn, mx);
      pipeline::analysis::channel_sumsq(x.data(), n, ch, sq);
      pipeline::analysis::channel_minmax_sumsq(x.data(), n, ch, mn1, mx1, sq1);
      if (ch == 2) {
        double s2[2], e0 = 0, e1 = 0;
        pipeline::analysis::pair_sums(x.data(), n, s2);
        for (std::size_t f = 0; f < n; ++f) e0 += x[2 * f], e1 += x[2 * f + 1];
        EXPECT_NEAR(s2[0], e0, 1e-9) << n << " frames";
        EXPECT_NEAR(s2[1], e1, 1e-9) << n << " frames";
      }
      for (unsigned c = 0; c < ch; ++c) {
        EXPECT_EQ(mn1[c], mn[c]);
        EXPECT_EQ(mx1[c], mx[c]);
        EXPECT_EQ(sq1[c], sq[c]);
        float lo = 1e30f, hi = -1e30f;
        double s = 0;
        for (std::size_t f = 0; f < n; ++f) {
          lo = std::min(lo, x[f * ch + c]), hi = std::max(hi, x[f * ch + c]);
          s += double(x[f * ch + c]) * x[f * ch + c];
        }
        EXPECT_EQ(mn[c], lo) << ch << " channels, " << n << " frames, channel " << c;
        EXPECT_EQ(mx[c], hi) << ch << " channels, " << n << " frames, channel " << c;
        EXPECT_NEAR(sq[c], s, 1e-6 * s + 1e-12) << ch << " channels, " << n << " frames, channel " << c;
      }
    }
}

TEST(AnalysisKernels, LargestPeaksAreTheLargestLocalMaximaInOrder) {
  // Noise-like spectra (a third of the bins local maxima) with peaks placed
  // at every offset within eight bins, against a plain search.
  std::uint32_t seed = 12345;
  auto rnd = [&] { return double((seed = seed * 1664525u + 1013904223u) >> 8) / double(1u << 24); };
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t n = 40 + std::size_t(trial) * 3, k_min = std::size_t(trial % 5);
    std::vector<double> m(n);
    for (auto& v : m) v = 1e-6 + rnd();
    for (int p = 0; p < trial % 6; ++p) m[1 + std::size_t(rnd() * double(n - 2))] = 2 + 10 * rnd();
    if (trial % 7 == 0) std::fill(m.begin(), m.end(), 1.0);  // flat: no maximum
    std::vector<std::size_t> want;
    for (std::size_t k = std::max<std::size_t>(k_min, 1); k + 1 < n; ++k)
      if (m[k] > m[k - 1] && m[k] >= m[k + 1] && m[k] > 0) want.push_back(k);
    std::stable_sort(want.begin(), want.end(), [&](std::size_t a, std::size_t b) { return m[a] > m[b]; });
    want.resize(std::min<std::size_t>(want.size(), pipeline::kRipplePeaks));
    std::array<pipeline::RipplePeak, pipeline::kRipplePeaks> out{};
    const std::size_t found = pipeline::analysis::largest_peaks(m, 1.0, 1.0, k_min, out);
    ASSERT_EQ(found, want.size()) << "trial " << trial;
    for (std::size_t j = 0; j < found; ++j)
      EXPECT_NEAR(out[j].f_hz, double(want[j]), 0.5) << "trial " << trial << ", peak " << j;
  }
}

TEST(AnalysisKernels, UnbalanceOfASymmetricSystemIsZeroAndOfOnePhaseIsKnown) {
  using C = std::complex<double>;
  auto ph = [](double m, double deg) { return std::polar(m, deg * kDeg); };
  auto s = pipeline::analysis::unbalance(ph(230, 0), ph(230, -120), ph(230, 120));
  EXPECT_NEAR(s.u2_percent, 0, 1e-9);
  EXPECT_NEAR(s.u0_percent, 0, 1e-9);
  // Only U1: U+ = U- = U0 = U1 / 3.
  s = pipeline::analysis::unbalance(C(100, 0), C(0, 0), C(0, 0));
  EXPECT_NEAR(s.u2_percent, 100, 1e-9);
  EXPECT_NEAR(s.u0_percent, 100, 1e-9);
}

TEST(AnalysisKernels, DecimationFilterIsFlatInThePassBandAndStopsAliases) {
  for (unsigned d : {2u, 7u, 39u}) {
    const auto h = pipeline::analysis::decimation_fir(d);
    auto gain = [&](double f_out_rel) {  // frequency as a fraction of the output rate
      std::complex<double> s = 0;
      for (std::size_t k = 0; k < h.size(); ++k) s += double(h[k]) * std::polar(1.0, -2 * kPi * f_out_rel / d * double(k));
      return std::abs(s);
    };
    for (double f = 0; f <= pipeline::analysis::kDecimationPassBand; f += 0.01) EXPECT_NEAR(gain(f), 1.0, 5e-4) << d << " " << f;
    // What aliases into the pass band: within the pass band's width of a multiple of the output rate.
    // (Frequencies up to the input's half rate, d / 2 output rates.)
    const double pb = pipeline::analysis::kDecimationPassBand;
    for (double m = 1; m <= d / 2.0; ++m)
      for (double f = m - pb; f <= std::min(m + pb, d / 2.0); f += 0.01) EXPECT_LT(gain(f), 5e-3) << d << " " << f;
  }
}

// The cascade the analyzer uses from D = 46 (decimation_stages): three
// boxcars by d1, then the FIR by d2. Within 0.15 % up to the pass band's
// edge (0.05 % up to 0.12 of the output rate: the 50th harmonic at 60 Hz),
// and what would alias into the pass band stopped as by the FIR alone.
TEST(AnalysisKernels, BoxcarsThenFirCascadeKeepsThePassBandAndStopsAliases) {
  EXPECT_EQ(pipeline::analysis::decimation_stages(45, 8).d1, 1u);
  EXPECT_EQ(pipeline::analysis::decimation_stages(460, 2).d1, 1u);  // two channels: the one FIR
  for (unsigned d_all : {46u, 93u, 460u}) {
    const auto [d1, d2] = pipeline::analysis::decimation_stages(d_all, 8);
    const unsigned d = d1 * d2;
    ASSERT_GT(d1, 1u) << d_all;
    const auto h1 = pipeline::analysis::boxcar3_fir(d1);
    const auto h2 = pipeline::analysis::decimation_fir(d2);
    ASSERT_EQ(h1.size(), 3 * d1 - 2);
    double sum = 0;
    for (float v : h1) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-6);
    auto gain = [&](double f_out_rel) {  // as a fraction of the output rate
      std::complex<double> s1 = 0, s2 = 0;
      for (std::size_t k = 0; k < h1.size(); ++k) s1 += double(h1[k]) * std::polar(1.0, -2 * kPi * f_out_rel / d * double(k));
      for (std::size_t k = 0; k < h2.size(); ++k) s2 += double(h2[k]) * std::polar(1.0, -2 * kPi * f_out_rel / d2 * double(k));
      return std::abs(s1) * std::abs(s2);
    };
    const double pb = pipeline::analysis::kDecimationPassBand;
    for (double f = 0; f <= pb; f += 0.01) EXPECT_NEAR(gain(f), 1.0, f <= 0.12 ? 5e-4 : 1.5e-3) << d << " " << f;
    for (double m = 1; m <= d / 2.0; ++m)
      for (double f = m - pb; f <= std::min(m + pb, d / 2.0); f += 0.01) EXPECT_LT(gain(f), 5e-3) << d << " " << f;
  }
}

// ---- AC harmonics ----

struct AcCase {
  double f_hz;
  double fs_hz;
};
class Harmonics : public ::testing::TestWithParam<AcCase> {};

TEST_P(Harmonics, SubgroupsPhasesThdAndUnbalanceOnAClosedFormSignal) {
  const auto [f, fs] = GetParam();
  const unsigned cycles = f > 55 ? 12 : 10;  // IEC 61000-4-7: 10 cycles at 50 Hz, 12 at 60 Hz
  pipeline::ProcessorConfig pc = with_analysis();
  pc.window_cycles = cycles;
  pc.nominal_hz = f > 55 ? 60 : 50;
  Collect sink;
  pipeline::Processor p(pc, sink);
  Feeder feeder(p);
  // Voltages with unbalanced magnitudes and angles; harmonics of U and I with
  // phases; an interharmonic at 2.5 f (between subgroups 2 and 3).
  const double um[3] = {230, 225, 236}, ua[3] = {0, -121, 119.5};
  struct H {
    int order;
    double percent, deg;
  };
  const std::vector<H> uh = {{3, 1.0, 10}, {5, 4.0, 30}, {7, 3.0, -40}, {11, 2.0, 75}, {49, 1.5, -120}};
  const std::vector<H> ih = {{5, 20.0, 15}, {7, 10.0, -60}, {11, 5.0, 100}, {13, 3.0, 0}, {23, 1.0, 45}};
  const double im[3] = {16, 18, 14}, phi = 18.19;
  const auto li = acquire::layout_info(Layout::ac3n);
  feed_signal(feeder, Layout::ac3n, fs, 1.5, [&](int c, double t) {
    const double th = 2 * kPi * f * t;
    for (int k = 0; k < 3; ++k) {
      const double a = ua[k] * kDeg;
      if (c == li.u[k]) {
        double v = um[k] * kSqrt2 * std::cos(th + a) + 0.01 * um[k] * kSqrt2 * std::cos(2.5 * th + 0.3);
        for (const auto& h : uh) v += um[k] * kSqrt2 * h.percent / 100 * std::cos(h.order * (th + a) + h.deg * kDeg);
        return v;
      }
      if (c == li.i[k]) {
        const double b = a - phi * kDeg;
        double v = im[k] * kSqrt2 * std::cos(th + b);
        for (const auto& h : ih) v += im[k] * kSqrt2 * h.percent / 100 * std::cos(h.order * (th + b) + h.deg * kDeg);
        return v;
      }
    }
    return 0.0;
  });
  feeder.flush();
  const auto whole = sink.whole();
  ASSERT_GE(whole.size(), 5u);
  std::size_t checked = 0;
  for (const auto& w : whole) {
    if (!w.an.harmonics_valid) continue;
    ++checked;
    const auto& a = w.an;
    for (int k = 0; k < 3; ++k) {
      // Fundamentals: magnitude, and angle relative to U1.
      EXPECT_LT(rel(a.harm_u_v[k][0], um[k]), 1e-3) << k;
      EXPECT_NEAR(wrap_deg(a.harm_u_deg[k][0] - ua[k]), 0, 0.1) << k;
      EXPECT_LT(rel(a.harm_i_a[k][0], im[k]), 1e-3) << k;
      EXPECT_NEAR(wrap_deg(a.harm_i_deg[k][0] - (ua[k] - phi)), 0, 0.1) << k;
      double thd_u = 0, thd_i = 0;
      for (const auto& h : uh) {
        EXPECT_LT(rel(a.harm_u_v[k][h.order - 1], um[k] * h.percent / 100), 1e-3) << "U h" << h.order << " phase " << k;
        EXPECT_NEAR(wrap_deg(a.harm_u_deg[k][h.order - 1] - (h.order * ua[k] + h.deg)), 0, 0.1) << "U h" << h.order;
        thd_u += h.percent * h.percent;
      }
      for (const auto& h : ih) {
        EXPECT_LT(rel(a.harm_i_a[k][h.order - 1], im[k] * h.percent / 100), 1e-3) << "I h" << h.order << " phase " << k;
        EXPECT_NEAR(wrap_deg(a.harm_i_deg[k][h.order - 1] - (h.order * (ua[k] - phi) + h.deg)), 0, 0.1) << "I h" << h.order;
        thd_i += h.percent * h.percent;
      }
      // Orders with nothing in them stay near zero (the interharmonic sits between 2 and 3).
      EXPECT_LT(a.harm_u_v[k][1], 1e-4 * um[k]);
      EXPECT_LT(a.harm_u_v[k][3], 1e-4 * um[k]);
      EXPECT_NEAR(a.thd_u_percent[k], std::sqrt(thd_u), 0.02);
      EXPECT_NEAR(a.thd_i_percent[k], std::sqrt(thd_i), 0.02);
    }
    // Unbalance from the fundamental phasors, by symmetrical components.
    const auto ub = pipeline::analysis::unbalance(std::polar(um[0], ua[0] * kDeg), std::polar(um[1], ua[1] * kDeg),
                                                  std::polar(um[2], ua[2] * kDeg));
    EXPECT_GT(ub.u2_percent, 0.5);
    EXPECT_NEAR(a.unbalance_u2_percent, ub.u2_percent, 0.01);
    EXPECT_NEAR(a.unbalance_u0_percent, ub.u0_percent, 0.01);
    // Crest factor of I1 from the samples: within what sampling can miss of the peak.
    EXPECT_GT(a.crest_factor_i[0], 1.2);
    EXPECT_LT(a.crest_factor_i[0], 2.0);
  }
  EXPECT_GE(checked, whole.size() - 1);
}

INSTANTIATE_TEST_SUITE_P(Frequencies, Harmonics,
                         ::testing::Values(AcCase{49.5, 20000}, AcCase{50, 20000}, AcCase{50.5, 20000},
                                           AcCase{60, 20000}, AcCase{50, 200000}, AcCase{60, 250000},
                                           AcCase{50, 2400000}),  // decimation_stages(93, 8): boxcars by 4, FIR by 23
                         [](const auto& i) {
                           return std::to_string(int(i.param.f_hz * 10)) + "dHz_" + std::to_string(int(i.param.fs_hz));
                         });

// ---- DC ripple ----

struct Tone {
  double f_hz, amp, deg;
};
double tones(double dc, const std::vector<Tone>& ts, double t) {
  double v = dc;
  for (const auto& x : ts) v += x.amp * std::sin(2 * kPi * x.f_hz * t + x.deg * kDeg);
  return v;
}
double tones_rms(const std::vector<Tone>& ts, double lo, double hi) {
  double s = 0;
  for (const auto& x : ts)
    if (x.f_hz >= lo && x.f_hz < hi) s += x.amp * x.amp / 2;
  return std::sqrt(s);
}

struct DcCase {
  double fs_hz;
};
class Ripple : public ::testing::TestWithParam<DcCase> {};

TEST_P(Ripple, RmsPeakToPeakBandsAndPeaks) {
  const double fs = GetParam().fs_hz;
  pipeline::ProcessorConfig pc = with_analysis();
  pc.analysis.ripple_bands_hz = {{0, 10}, {10, 5000}, {5000, 150000}, {600000, 700000}};
  Collect sink;
  pipeline::Processor p(pc, sink);
  Feeder feeder(p);
  const std::vector<Tone> ut = {{300, 8, 0}, {600, 3, 40}, {7000, 2, 10}};
  const std::vector<Tone> it = {{300, 4, 20}, {2000, 3, 0}, {6000, 1, 0}, {20000, 0.5, 0}};
  std::vector<Tone> it_seen;  // what the sample rate can hold
  for (const auto& x : it)
    if (x.f_hz < fs / 2) it_seen.push_back(x);
  feed_signal(feeder, Layout::dc, fs, 0.65, [&](int c, double t) { return c == 0 ? tones(800, ut, t) : tones(200, it, t); });
  feeder.flush();
  std::size_t checked = 0;
  for (const auto& w : sink.windows) {
    if (w.samples < 0.99 * fs * 0.1 || w.start_frame < 1) continue;  // whole 100 ms windows after the start
    ++checked;
    const auto& a = w.an;
    ASSERT_TRUE(a.valid);
    EXPECT_LT(rel(a.ripple_u_rms_v, tones_rms(ut, 0, 1e9)), 1e-3);
    EXPECT_LT(rel(a.ripple_i_rms_a, tones_rms(it_seen, 0, 1e9)), 1e-3);
    // Peak-to-peak: the extremes of the window's samples.
    double lo = 1e9, hi = -1e9;
    for (auto n = std::int64_t(std::floor(w.start_frame + 0.5)); double(n) < w.end_frame + 0.5; ++n) {
      const double v = tones(200, it, double(n) / fs);
      lo = std::min(lo, v), hi = std::max(hi, v);
    }
    EXPECT_LT(rel(a.i_max_a[0] - a.i_min_a[0], hi - lo), 1e-3);
    ASSERT_TRUE(a.spectrum_valid);
    // Bands: the last one is wholly above half the sample rate, so absent.
    ASSERT_EQ(a.bands, 3);
    EXPECT_EQ(a.band[2].f_hi_hz, std::min(150000.0, fs / 2));
    for (int b = 0; b < 3; ++b) {
      const double want_i = tones_rms(it_seen, a.band[b].f_lo_hz, a.band[b].f_hi_hz);
      const double want_u = tones_rms(ut, a.band[b].f_lo_hz, a.band[b].f_hi_hz);
      if (want_i > 0) {
        EXPECT_LT(rel(a.band[b].i_rms_a, want_i), 5e-3) << "band " << b;
      } else {
        EXPECT_LT(a.band[b].i_rms_a, 0.01) << "band " << b;
      }
      if (want_u > 0) {
        EXPECT_LT(rel(a.band[b].u_rms_v, want_u), 5e-3) << "band " << b;
      }
    }
    // The three largest components of I.
    ASSERT_EQ(a.i_peaks, 3);
    EXPECT_NEAR(a.i_peak[0].f_hz, 300, 2);
    EXPECT_NEAR(a.i_peak[0].amplitude, 4, 0.1);
    EXPECT_NEAR(a.i_peak[1].f_hz, 2000, 2);
    EXPECT_NEAR(a.i_peak[1].amplitude, 3, 0.1);
    EXPECT_NEAR(a.i_peak[2].f_hz, 6000, 2);
    EXPECT_NEAR(a.i_peak[2].amplitude, 1, 0.05);
  }
  EXPECT_GE(checked, 4u);
}

INSTANTIATE_TEST_SUITE_P(Rates, Ripple, ::testing::Values(DcCase{20000}, DcCase{100000}, DcCase{1000000}),
                         [](const auto& i) { return std::to_string(int(i.param.fs_hz)); });

// ---- steps ----

// First- or second-order response from `from` to `to` starting at t0.
struct Response {
  double from, to, t0, tau, zeta;  // zeta 0: first order with time constant tau; else natural period from tau
  double at(double t) const {
    if (t <= t0) return from;
    const double s = t - t0;
    double y;
    if (zeta == 0) {
      y = 1 - std::exp(-s / tau);
    } else {
      const double wn = 1 / tau, wd = wn * std::sqrt(1 - zeta * zeta);
      y = 1 - std::exp(-zeta * wn * s) * (std::cos(wd * s) + zeta / std::sqrt(1 - zeta * zeta) * std::sin(wd * s));
    }
    return from + (to - from) * y;
  }
};

// The definitions, evaluated on the continuous signal on a fine grid.
struct Expected {
  double t_start, t10, rise, settle, overshoot, slope;
};
Expected expected(const Response& r, double band) {
  const double size = std::fabs(r.to - r.from), sg = r.to > r.from ? 1 : -1, dt = r.tau / 20000;
  Expected e{};
  bool started = false, got10 = false, got90 = false;
  double t_settle = r.t0, over = 0, slope = 0;
  for (double t = r.t0; t < r.t0 + 30 * r.tau; t += dt) {
    const double x = r.at(t), x1 = r.at(t + dt);
    if (!started && sg * (x1 - r.from) > band * size) started = true, e.t_start = t + dt;
    if (!got10 && sg * (x1 - r.from) >= 0.1 * size) got10 = true, e.t10 = t + dt;
    if (!got90 && sg * (x1 - r.from) >= 0.9 * size) got90 = true, e.rise = t + dt - e.t10;
    if (std::fabs(x - r.to) > band * size) t_settle = t + dt;
    over = std::max(over, sg * (x - r.to));
    slope = std::max(slope, sg * (x1 - x) / dt);
  }
  e.settle = t_settle - e.t_start;
  e.overshoot = 100 * over / size;
  e.slope = sg * slope;
  return e;
}

struct StepCase {
  double fs_hz, from, to, tau, zeta;
};
class Steps : public ::testing::TestWithParam<StepCase> {};

TEST_P(Steps, DcStepTimesWithinOneSamplePeriodPlusOnePercent) {
  const auto c = GetParam();
  pipeline::ProcessorConfig pc = with_analysis();
  Collect sink;
  pipeline::Processor p(pc, sink);
  pipeline::DemandInput demand;
  p.set_demand(&demand);
  const Response r{c.from, c.to, 1.0, c.tau, c.zeta};
  demand.utc_ns = 995'000'000;  // the request, 5 ms before the response starts (stream UTC starts at 0)
  Feeder feeder(p);
  feed_signal(feeder, Layout::dc, c.fs_hz, 1.0 + 30 * c.tau + 0.3, [&](int ch, double t) { return ch == 0 ? 800.0 : r.at(t); });
  feeder.flush();
  std::vector<pipeline::StepEvent> steps;
  for (const auto& w : sink.windows)
    for (unsigned k = 0; k < w.an.steps; ++k) steps.push_back(w.an.step[k]);
  ASSERT_EQ(steps.size(), 1u);
  const auto& s = steps[0];
  const Expected e = expected(r, 0.02);
  // The level series runs at the analysis rate, at most 25.6 kS/s.
  const double period = 1 / std::min(c.fs_hz, 25600.0 * 1.5);
  auto within = [&](double got_s, double want_s) { return std::fabs(got_s - want_s) <= period + 0.01 * std::fabs(want_s); };
  EXPECT_NEAR(s.from_a, c.from, 1e-3 * std::fabs(c.to - c.from));
  EXPECT_NEAR(s.to_a, c.to, 1e-3 * std::fabs(c.to - c.from));
  EXPECT_TRUE(within(double(s.t_start_utc_ns) / 1e9, e.t_start)) << s.t_start_utc_ns << " vs " << e.t_start;
  EXPECT_TRUE(within(s.rise_time_ms / 1e3, e.rise)) << s.rise_time_ms << " ms vs " << e.rise * 1e3;
  EXPECT_TRUE(within(s.settling_time_ms / 1e3, e.settle)) << s.settling_time_ms << " ms vs " << e.settle * 1e3;
  EXPECT_NEAR(s.overshoot_percent, e.overshoot, 0.2);
  EXPECT_LT(rel(s.max_slope_a_per_s, e.slope), 0.02) << s.max_slope_a_per_s << " vs " << e.slope;
  EXPECT_TRUE(within(s.delay_ms / 1e3, e.t10 - 0.995)) << s.delay_ms;
  EXPECT_EQ(s.phase, 0);
}

INSTANTIATE_TEST_SUITE_P(Responses, Steps,
                         ::testing::Values(StepCase{20000, 100, 300, 0.010, 0}, StepCase{20000, 300, 40, 0.004, 0},
                                           StepCase{20000, 100, 400, 0.003, 0.5}, StepCase{1000000, 50, 250, 0.005, 0.3}),
                         [](const auto& i) { return "case" + std::to_string(i.index); });

TEST(Steps, NoEventWithoutAStepAndNoneForNoiseBelowTheThreshold) {
  pipeline::ProcessorConfig pc = with_analysis();
  Collect sink;
  pipeline::Processor p(pc, sink);
  Feeder feeder(p);
  feed_signal(feeder, Layout::dc, 20000, 2, [&](int ch, double t) {
    return ch == 0 ? 800.0 : 200 + 1.5 * std::sin(2 * kPi * 300 * t) + 1.0 * std::sin(2 * kPi * 3 * t);
  });
  feeder.flush();
  // 2 s of 100 ms windows, each analysed: the absence of steps is then a finding.
  ASSERT_GE(sink.windows.size(), 19u);
  std::size_t analysed = 0;
  for (const auto& w : sink.windows) {
    EXPECT_EQ(w.an.steps, 0);
    analysed += w.an.valid ? 1 : 0;
  }
  EXPECT_GE(analysed, sink.windows.size() - 1);
}

TEST(Steps, AcRmsStepOnEachPhase) {
  pipeline::ProcessorConfig pc = with_analysis();
  Collect sink;
  pipeline::Processor p(pc, sink);
  Feeder feeder(p);
  const auto li = acquire::layout_info(Layout::ac3n);
  const Response env{16, 32, 1.0, 0.05, 0};
  feed_signal(feeder, Layout::ac3n, 20000, 2.5, [&](int c, double t) {
    const double th = 2 * kPi * 50 * t;
    for (int k = 0; k < 3; ++k) {
      if (c == li.u[k]) return 230 * kSqrt2 * std::cos(th - k * 2 * kPi / 3);
      if (c == li.i[k]) return env.at(t) * kSqrt2 * std::cos(th - k * 2 * kPi / 3 - 0.3);
    }
    return 0.0;
  });
  feeder.flush();
  std::vector<pipeline::StepEvent> steps;
  for (const auto& w : sink.windows)
    for (unsigned k = 0; k < w.an.steps; ++k) steps.push_back(w.an.step[k]);
  ASSERT_EQ(steps.size(), 3u);
  const Expected e = expected(env, 0.02);
  for (const auto& s : steps) {
    EXPECT_GE(s.phase, 1);
    EXPECT_NEAR(s.from_a, 16, 0.05);
    EXPECT_NEAR(s.to_a, 32, 0.05);
    // The level is a one-cycle RMS every half cycle: within a cycle.
    EXPECT_NEAR(s.rise_time_ms, e.rise * 1e3, 20 + 0.01 * e.rise * 1e3);
    EXPECT_LT(s.delay_ms, 0);  // no demand given
  }
}

}  // namespace
}  // namespace wattpipe::testing

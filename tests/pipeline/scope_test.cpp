// SPDX-License-Identifier: Apache-2.0
// The live page's scope capture on closed-form signals: the trigger, the
// min/max reduction (no peak lost), DC rolling captures, the interval, gaps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "wattpipe/pipeline/scope.hpp"

namespace pipeline = wattpipe::pipeline;
namespace acquire = wattpipe::acquire;

namespace {

// Frames [first, first + n) of U1 = 325 sin(2 pi 50 t + phi), I1 = 22.6 sin(...), AC3N.
struct Stream {
  double fs = 20000, phi = 1.0;
  acquire::Layout layout = acquire::Layout::ac3n;
  unsigned channels = 8;
  std::uint64_t next = 0;
  float spike_at_value = 0;
  std::uint64_t spike_frame = ~0ull;

  double u(std::uint64_t k) const { return 325 * std::sin(2 * std::numbers::pi * 50 * double(k) / fs + phi); }

  acquire::SampleBlock block(std::uint32_t n = acquire::kBlockFrames) {
    acquire::SampleBlock b;
    b.layout = layout;
    b.channels = channels;
    b.frames = n;
    b.first_frame = next;
    b.sample_rate_hz = fs;
    b.t0_ns = 1'700'000'000'000'000'000 + std::int64_t(double(next) * 1e9 / fs);
    for (std::uint32_t f = 0; f < n; ++f) {
      const std::uint64_t k = next + f;
      float* x = b.frame(f);
      if (layout == acquire::Layout::dc) {
        x[0] = float(800 + 2 * std::sin(2 * std::numbers::pi * 300 * double(k) / fs));
        x[1] = float(200 + 3 * std::sin(2 * std::numbers::pi * 2000 * double(k) / fs));
      } else {
        for (unsigned c = 0; c < 3; ++c) {
          x[c] = float(325 * std::sin(2 * std::numbers::pi * 50 * double(k) / fs + phi - c * 2 * std::numbers::pi / 3));
          x[4 + c] = float(22.6 * std::sin(2 * std::numbers::pi * 50 * double(k) / fs + phi - 0.3 - c * 2 * std::numbers::pi / 3));
        }
        x[3] = x[7] = 0;
        if (k == spike_frame) x[4] = spike_at_value;
      }
    }
    next += n;
    return b;
  }
};

}  // namespace

TEST(Scope, TriggersOnU1RisingZeroCrossingAndKeepsEveryColumnsExtremes) {
  pipeline::TripleBuffer<pipeline::ScopeSnapshot> out;
  pipeline::ScopeCapture cap({0.04, 50'000'000}, out);
  Stream s;
  std::vector<acquire::SampleBlock> fed;
  pipeline::ScopeSnapshot snap;
  for (int i = 0; i < 10 && !out.fresh(); ++i) {
    fed.push_back(s.block());
    cap.feed(fed.back(), 0);
  }
  ASSERT_TRUE(out.read(snap));
  EXPECT_TRUE(snap.triggered);
  EXPECT_EQ(snap.channels, 8u);
  EXPECT_EQ(snap.columns, 800u);  // 40 ms at 20 kS/s: one frame per column
  EXPECT_NEAR(snap.column_s, 50e-6, 1e-12);
  // The first column is the first sample at or above 0 V after U1 was negative.
  const double step_v = 325 * 2 * std::numbers::pi * 50 / s.fs;
  EXPECT_GE(snap.min[0][0], 0.0f);
  EXPECT_LT(snap.min[0][0], step_v);
  // Its time: that sample's.
  const std::uint64_t k0 = std::uint64_t(std::llround(double(snap.t0_utc_ns - 1'700'000'000'000'000'000) * s.fs / 1e9));
  EXPECT_LT(s.u(k0 - 1), 0);
  EXPECT_GE(s.u(k0), -1e-3);
  // Every column holds exactly its frame; two whole cycles span the peaks.
  for (unsigned j = 0; j < snap.columns; ++j) {
    const std::uint64_t k = k0 + j;
    const acquire::SampleBlock& b = fed[k / acquire::kBlockFrames];
    ASSERT_EQ(snap.min[0][j], b.frame(k % acquire::kBlockFrames)[0]) << j;
    ASSERT_EQ(snap.max[5][j], b.frame(k % acquire::kBlockFrames)[5]) << j;
  }
  EXPECT_NEAR(*std::max_element(snap.max[0].begin(), snap.max[0].begin() + snap.columns), 325, 0.1);
  EXPECT_NEAR(*std::min_element(snap.min[0].begin(), snap.min[0].begin() + snap.columns), -325, 0.1);
}

TEST(Scope, AtAHighRateEachColumnIsTheMinAndMaxOfItsFramesSoASpikeIsNotLost) {
  pipeline::TripleBuffer<pipeline::ScopeSnapshot> out;
  pipeline::ScopeCapture cap({0.04, 50'000'000}, out);
  Stream s;
  s.fs = 1'000'000;
  s.spike_frame = 21'000 + 12'345;  // inside the capture (the trigger comes within a cycle)
  s.spike_at_value = 1000;
  pipeline::ScopeSnapshot snap;
  for (int i = 0; i < 200 && !out.fresh(); ++i) cap.feed(s.block(), 0);
  ASSERT_TRUE(out.read(snap));
  EXPECT_EQ(snap.columns, pipeline::kScopeColumns);
  EXPECT_NEAR(snap.column_s, 40e-6, 1e-12);  // 40 frames per column
  const auto k0 = std::uint64_t(std::llround(double(snap.t0_utc_ns - 1'700'000'000'000'000'000) * s.fs / 1e9));
  ASSERT_LT(k0, s.spike_frame);
  const unsigned col = unsigned((s.spike_frame - k0) / 40);
  EXPECT_EQ(snap.max[4][col], 1000.0f);  // one sample in 40, kept
  EXPECT_EQ(std::count(snap.max[4].begin(), snap.max[4].begin() + snap.columns, 1000.0f), 1);
  // A column of a smooth sine: its extremes are its first and last frames' values (monotone within 40 us).
  for (unsigned j = 0; j < snap.columns; ++j) EXPECT_LE(snap.max[0][j] - snap.min[0][j], 325 * 2 * std::numbers::pi * 50 * 40e-6 + 1e-3);
}

TEST(Scope, DcCapturesAsSamplesComeAndAtMostOncePerInterval) {
  pipeline::TripleBuffer<pipeline::ScopeSnapshot> out;
  pipeline::ScopeCapture cap({0.02, 50'000'000}, out);
  Stream s;
  s.layout = acquire::Layout::dc;
  s.channels = 2;
  pipeline::ScopeSnapshot snap;
  cap.feed(s.block(), 0);  // starts at frame 0 (no trigger for DC); 400 frames: done within the block
  ASSERT_TRUE(out.read(snap));
  EXPECT_FALSE(snap.triggered);
  EXPECT_EQ(snap.columns, 400u);
  EXPECT_EQ(snap.t0_utc_ns, 1'700'000'000'000'000'000);
  EXPECT_NEAR(*std::max_element(snap.max[0].begin(), snap.max[0].begin() + 400), 802, 0.01);
  // 2 kHz at 20 kS/s: ten samples a period, the lowest is 200 - 3 cos(pi / 10)... as sampled.
  double lo = 1e9;
  for (int k = 0; k < 400; ++k) lo = std::min(lo, 200 + 3 * std::sin(2 * std::numbers::pi * 2000 * k / 20000.0));
  EXPECT_NEAR(*std::min_element(snap.min[1].begin(), snap.min[1].begin() + 400), lo, 1e-4);
  // Within the interval: nothing new; after it: the next capture.
  for (int i = 0; i < 5; ++i) cap.feed(s.block(), 49'000'000);
  EXPECT_FALSE(out.fresh());
  cap.feed(s.block(), 50'000'000);
  ASSERT_TRUE(out.read(snap));
  EXPECT_EQ(snap.serial, 2u);
}

TEST(Scope, AGapAbandonsAHalfDoneCaptureAndAFlatLineFreeRuns) {
  pipeline::TripleBuffer<pipeline::ScopeSnapshot> out;
  pipeline::ScopeCapture cap({0.04, 50'000'000}, out);
  Stream s;
  s.fs = 100'000;  // 4000 frames per capture
  pipeline::ScopeSnapshot snap;
  for (int i = 0; i < 3; ++i) cap.feed(s.block(), 0);  // triggered, half done
  ASSERT_FALSE(out.fresh());
  s.next += 777;  // frames lost
  cap.feed(s.block(), 0);
  EXPECT_FALSE(out.fresh());  // not completed across the gap
  for (int i = 0; i < 10 && !out.fresh(); ++i) cap.feed(s.block(), 100'000'000);
  ASSERT_TRUE(out.read(snap));
  EXPECT_TRUE(snap.triggered);
  // No signal on U1: after two spans without a crossing the capture runs free.
  pipeline::TripleBuffer<pipeline::ScopeSnapshot> out2;
  pipeline::ScopeCapture flat({0.04, 50'000'000}, out2);
  acquire::SampleBlock z;
  z.layout = acquire::Layout::ac3n, z.channels = 8, z.frames = 1024, z.sample_rate_hz = 20000;
  for (int i = 0; i < 10 && !out2.fresh(); ++i, z.first_frame += 1024) flat.feed(z, 0);
  ASSERT_TRUE(out2.read(snap));
  EXPECT_FALSE(snap.triggered);
}

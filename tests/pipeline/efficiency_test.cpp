// SPDX-License-Identifier: Apache-2.0
// The input's energy along the stream (two points), read at fractional
// frame positions, and the efficiency map.
#include "wattpipe/pipeline/efficiency.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>

using namespace wattpipe;
using pipeline::EfficiencyMap;
using pipeline::ReferenceEnergy;

namespace {
std::unique_ptr<acquire::SampleBlock> block(std::uint64_t first, std::uint32_t frames, float p0, float dp) {
  auto b = std::make_unique<acquire::SampleBlock>();
  b->layout = acquire::Layout::dc;
  b->channels = 2;
  b->frames = frames;
  b->first_frame = first;
  b->sample_rate_hz = 1000;
  b->has_ref_power = true;
  for (std::uint32_t f = 0; f < frames; ++f) b->ref_power[f] = p0 + dp * float(f);
  return b;
}
}  // namespace

TEST(ReferenceEnergy, SumsBeforeAPositionLinearWithinAFrame) {
  ReferenceEnergy r;
  r.feed(*block(100, 10, 10, 1));  // frames 100..109: powers 10, 11, ..., 19
  r.feed(*block(110, 10, 20, 0));  // frames 110..119: 20 each
  EXPECT_EQ(*r.at(100), 0);
  EXPECT_EQ(*r.at(101), 10);
  EXPECT_DOUBLE_EQ(*r.at(101.25), 10 + 0.25 * 11);
  EXPECT_EQ(*r.at(110), 145);  // 10 + ... + 19
  EXPECT_EQ(*r.at(120), 145 + 200) << "the end of what was fed";
  EXPECT_DOUBLE_EQ(*r.wh_at(120), 345.0 / 1000 / 3600);
  EXPECT_FALSE(r.at(120.5)) << "beyond what was fed";
  EXPECT_FALSE(r.at(99)) << "before the stream";
  EXPECT_FALSE(r.at(-1));
}

TEST(ReferenceEnergy, AGapHasNoEnergyAndOldFramesAreForgotten) {
  ReferenceEnergy r;
  r.feed(*block(0, 10, 1, 0));
  r.feed(*block(20, 10, 1, 0));  // frames 10..19 lost
  EXPECT_FALSE(r.at(15)) << "inside the gap";
  EXPECT_EQ(*r.at(20), 10) << "the sum goes on from where it was";
  // Far enough on, the first frames are overwritten.
  for (std::uint64_t k = 0; k * 1000 < ReferenceEnergy::kFrames + 1000; ++k) r.feed(*block(30 + k * 1000, 1000, 1, 0));
  EXPECT_FALSE(r.at(5));
  EXPECT_TRUE(r.at(double(30 + ReferenceEnergy::kFrames)));
  // A block without reference power changes nothing.
  auto none = block(100000, 10, 1, 0);
  none->has_ref_power = false;
  const auto before = r.at(double(30 + ReferenceEnergy::kFrames));
  r.feed(*none);
  EXPECT_EQ(r.at(double(30 + ReferenceEnergy::kFrames)), before);
}

TEST(ReferenceEnergy, AnyBlockSizesAndGapsGiveTheSumsFrameByFrame) {
  // Blocks of any size (runs that start mid-group), gaps that start and end
  // mid-group: every frame fed reads as the plain sum before it, a lost one reads nothing.
  ReferenceEnergy r;
  std::mt19937 rng(7);
  std::map<std::uint64_t, double> before;  // frame -> the sum before it
  std::uint64_t next = 0;
  double sum = 0;
  for (int k = 0; k < 600; ++k) {
    if (rng() % 5 == 0) next += 1 + rng() % 100;  // lost frames
    const std::uint32_t n = 1 + rng() % 300;
    auto b = block(next, n, 0, 0);
    for (std::uint32_t f = 0; f < n; ++f) {
      b->ref_power[f] = float(rng() % 100000) / 8;  // exact in float and in the sums
      before[next + f] = sum;
      sum += b->ref_power[f];
    }
    r.feed(*b);
    next += n;
  }
  std::size_t checked = 0;
  for (std::uint64_t f = next - ReferenceEnergy::kFrames / 2; f < next; ++f) {
    const auto v = r.at(double(f));
    const auto it = before.find(f);
    if (it == before.end()) {
      EXPECT_FALSE(v) << "frame " << f << " was lost";
      continue;
    }
    ASSERT_TRUE(v) << "frame " << f;
    EXPECT_EQ(*v, it->second) << "frame " << f;
    ++checked;
  }
  EXPECT_GT(checked, ReferenceEnergy::kFrames / 4);
  EXPECT_EQ(*r.at(double(next)), sum) << "the end of what was fed";
}

TEST(EfficiencyMap, BinsByOutputPower) {
  EfficiencyMap m(10e3);
  m.add(5e3, 1.0, 0.8);
  m.add(5.5e3, 1.0, 0.9);
  m.add(151e3, 10.0, 9.6);
  m.add(-1e3, 1.0, 0.5);  // discharging: not in the map
  const auto bins = m.bins();
  ASSERT_EQ(bins.size(), 2u);
  EXPECT_EQ(bins[0].p_lo_w, 0);
  EXPECT_EQ(bins[0].p_hi_w, 10e3);
  EXPECT_DOUBLE_EQ(bins[0].efficiency(), 1.7 / 2.0);
  EXPECT_EQ(bins[0].windows, 2u);
  EXPECT_EQ(bins[1].p_lo_w, 150e3);
  EXPECT_DOUBLE_EQ(bins[1].efficiency(), 0.96);
}

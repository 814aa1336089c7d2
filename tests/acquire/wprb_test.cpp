// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/wprb.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "wattpipe/acquire/simulator.hpp"

using namespace wattpipe::acquire;

namespace {
std::unique_ptr<SampleBlock> sim_block(const char* profile, std::uint32_t frames) {
  SimConfig cfg = *sim_profile(profile, 20000);
  cfg.start_utc_ns = 123456789;
  Simulator sim(cfg);
  auto b = std::make_unique<SampleBlock>();
  sim.generate(*b, frames);
  return b;
}
}  // namespace

TEST(Wprb, Float32BlockRoundTripsExactly) {
  auto b = sim_block("ac3", 300);
  std::vector<std::byte> buf;
  wprb::encode_block(*b, 42, buf);
  ASSERT_EQ(buf.size(), wprb::kHeaderBytes + 300u * 8 * 4);
  wprb::Header h;
  std::string err;
  ASSERT_TRUE(wprb::parse_header(buf, h, err)) << err;
  EXPECT_EQ(h.layout, Layout::ac3n);
  EXPECT_EQ(h.frame_count, 300u);
  EXPECT_EQ(h.sequence, 42u);
  EXPECT_EQ(h.t0_ns, 123456789);
  EXPECT_EQ(h.sample_rate_hz, 20000.0);
  std::vector<float> out(300 * 8);
  ASSERT_TRUE(wprb::decode_frames(h, std::span(buf).subspan(64), 0, 300, out.data(), err));
  EXPECT_EQ(std::memcmp(out.data(), b->data.data(), out.size() * 4), 0);
}

TEST(Wprb, IntegerFormatsScaleByCountsPerUnit) {
  auto b = sim_block("ac1", 200);
  for (auto fmt : {wprb::SampleFormat::int16, wprb::SampleFormat::int32}) {
    std::vector<std::byte> buf;
    wprb::encode_block_int(*b, 1, fmt, 0.02f, 0.001f, buf);
    wprb::Header h;
    std::string err;
    ASSERT_TRUE(wprb::parse_header(buf, h, err)) << err;
    std::vector<float> out(400);
    ASSERT_TRUE(wprb::decode_frames(h, std::span(buf).subspan(64), 0, 200, out.data(), err));
    for (int k = 0; k < 400; k += 2) {
      EXPECT_NEAR(out[k], b->data[k], 0.011f);      // volts: half a count
      EXPECT_NEAR(out[k + 1], b->data[k + 1], 0.00051f);  // amperes
    }
  }
}

TEST(Wprb, InvalidHeadersAreRejectedWithAReason) {
  auto b = sim_block("dc", 10);
  std::vector<std::byte> good;
  wprb::encode_block(*b, 0, good);
  struct Case {
    std::size_t offset;
    std::vector<std::byte> bytes;
    const char* why;
  };
  auto bytes = [](auto v) {
    std::vector<std::byte> out(sizeof v);
    std::memcpy(out.data(), &v, sizeof v);
    return out;
  };
  const Case cases[] = {
      {0, {std::byte{'X'}}, "magic"},
      {4, bytes(std::uint16_t{2}), "version"},
      {6, bytes(std::uint16_t{32}), "header size"},
      {8, bytes(std::uint16_t{9}), "layout"},
      {10, bytes(std::uint16_t{7}), "format"},
      {12, bytes(std::uint32_t{0}), "frame_count"},
      {12, bytes(std::uint32_t{0xFFFFFFFF}), "frame_count"},
      {40, bytes(0.0), "sample_rate"},
      {40, bytes(-5.0), "sample_rate"},
      {40, bytes(std::nan("")), "sample_rate"},
  };
  for (const Case& c : cases) {
    auto buf = good;
    std::memcpy(buf.data() + c.offset, c.bytes.data(), c.bytes.size());
    wprb::Header h;
    std::string err;
    EXPECT_FALSE(wprb::parse_header(buf, h, err)) << c.why;
    EXPECT_NE(err.find(c.why), std::string::npos) << err;
  }
  wprb::Header h;
  std::string err;
  EXPECT_FALSE(wprb::parse_header(std::span(good).first(63), h, err));
}

TEST(Wprb, NonFiniteSamplesFailDecoding) {
  auto b = sim_block("dc", 10);
  b->data[7] = std::numeric_limits<float>::infinity();
  std::vector<std::byte> buf;
  wprb::encode_block(*b, 0, buf);
  wprb::Header h;
  std::string err;
  ASSERT_TRUE(wprb::parse_header(buf, h, err));
  std::vector<float> out(20);
  EXPECT_FALSE(wprb::decode_frames(h, std::span(buf).subspan(64), 0, 10, out.data(), err));
  EXPECT_NE(err.find("finite"), std::string::npos);
  // Anywhere in a block (the vector body and the tail: 7 AC3 frames, 42
  // samples), NaN and either infinity fail; the largest, the smallest and
  // negative zero are copied bit for bit.
  auto ac = sim_block("ac3", 7);
  ac->layout = Layout::ac3;
  ac->channels = 6;
  const std::size_t n = 7 * 6;
  const float finite[] = {std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::denorm_min(), -0.0f};
  for (std::size_t k = 0; k < n; ++k) {
    for (const float v : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(), finite[k % 4]}) {
      SampleBlock blk = *ac;
      blk.data[k] = v;
      buf.clear();
      wprb::encode_block(blk, 0, buf);
      ASSERT_TRUE(wprb::parse_header(buf, h, err));
      std::vector<float> got(n);
      const bool ok = wprb::decode_frames(h, std::span(buf).subspan(64), 0, 7, got.data(), err);
      EXPECT_EQ(ok, std::isfinite(v)) << "sample " << k << " = " << v << ": " << err;
      if (ok) {
        EXPECT_EQ(std::memcmp(got.data(), blk.data.data(), n * sizeof(float)), 0) << "sample " << k;
      }
    }
  }
}

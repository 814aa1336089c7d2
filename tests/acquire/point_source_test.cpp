// SPDX-License-Identifier: Apache-2.0
// Two measuring points on one clock (AC3N_DC): the charger simulator's power
// balance, the split into each point's own layout, the refusals, and WPRB.
#include "wattpipe/acquire/point_source.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <deque>

#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/acquire/wprb.hpp"

using namespace wattpipe::acquire;

namespace {

// A source that hands out given blocks.
class Blocks final : public Source {
 public:
  explicit Blocks(std::deque<SampleBlock> b) : blocks_(std::move(b)) {}
  ReadStatus read(SampleBlock& out, std::chrono::nanoseconds) override {
    if (blocks_.empty()) return ReadStatus::end;
    out = blocks_.front();
    blocks_.pop_front();
    return ReadStatus::ok;
  }
  [[nodiscard]] bool real_time() const noexcept override { return false; }

 private:
  std::deque<SampleBlock> blocks_;
};

SimConfig charger() {
  SimConfig c = *sim_profile("charger", 20000, 20);
  c.start_utc_ns = 1'000'000'000;
  return c;
}

}  // namespace

TEST(ChargerSimulator, TheInputPowerIsTheOutputPowerPlusTheLosses) {
  SimConfig cfg = charger();
  // Constant output, no ripple or response: the block means are exact.
  cfg.dc_voltage_ramp.points.clear();
  cfg.dc_current_ramp.points.clear();
  cfg.dc_u_ripple.clear();
  cfg.dc_i_ripple.clear();
  cfg.dc_i_response.order = 0;
  cfg.dc_voltage_v = 750;
  cfg.dc_current_a = 200;  // 150 kW
  Simulator sim(cfg);
  auto b = std::make_unique<SampleBlock>();
  for (int k = 0; k < 5; ++k) {
    sim.generate(*b, 400);  // one 50 Hz cycle at 20 kS/s: whole-cycle means
    ASSERT_EQ(b->layout, Layout::ac3n_dc);
    ASSERT_EQ(b->channels, 10u);
    double p_grid = 0, p_dc = 0;
    for (std::uint32_t f = 0; f < b->frames; ++f) {
      const float* x = b->frame(f);
      for (int ph = 0; ph < 3; ++ph) p_grid += double(x[ph]) * double(x[4 + ph]);
      p_dc += double(x[8]) * double(x[9]);
    }
    p_grid /= b->frames, p_dc /= b->frames;
    EXPECT_NEAR(p_dc, 150e3, 150e3 * 1e-6);
    const double want = 150e3 + 1500 + 2e-7 * 150e3 * 150e3;  // 156 kW: 96.2 % efficient
    // The 5th harmonic of U and I adds its own (tiny) power: 1.5 % x 4 % of the fundamental's.
    EXPECT_NEAR(p_grid, want, want * 1e-3) << "block " << k;
  }
}

TEST(PointSource, EachPointGetsItsOwnChannelsInItsOwnLayout) {
  Simulator sim(charger());
  SampleBlock whole;
  sim.generate(whole, 500);
  for (const char* point : {"grid", "car"}) {
    PointSource src(std::make_unique<Blocks>(std::deque<SampleBlock>{whole}), point);
    SampleBlock out;
    ASSERT_EQ(src.read(out, std::chrono::seconds(1)), ReadStatus::ok) << src.end_reason();
    const bool grid = std::string(point) == "grid";
    EXPECT_EQ(out.layout, grid ? Layout::ac3n : Layout::dc);
    EXPECT_EQ(out.channels, grid ? 8u : 2u);
    EXPECT_EQ(out.frames, whole.frames);
    EXPECT_EQ(out.first_frame, whole.first_frame);
    EXPECT_EQ(out.t0_ns, whole.t0_ns) << "one clock: the same times";
    for (std::uint32_t f = 0; f < out.frames; ++f)
      for (std::uint32_t c = 0; c < out.channels; ++c)
        ASSERT_EQ(out.frame(f)[c], whole.frame(f)[(grid ? 0 : 8) + c]) << point << " frame " << f << " ch " << c;
  }
}

TEST(PointSource, NoPointOnTwoAndAPointOnOneEndTheSourceWithTheReason) {
  Simulator sim(charger());
  SampleBlock whole;
  sim.generate(whole, 100);
  PointSource none(std::make_unique<Blocks>(std::deque<SampleBlock>{whole}), "");
  SampleBlock out;
  EXPECT_EQ(none.read(out, std::chrono::seconds(1)), ReadStatus::end);
  EXPECT_NE(none.end_reason().find("grid (AC3N), car (DC); choose one with --point"), std::string::npos)
      << none.end_reason();
  Simulator ac(*sim_profile("ac3", 20000));
  SampleBlock one;
  ac.generate(one, 100);
  PointSource wrong(std::make_unique<Blocks>(std::deque<SampleBlock>{one}), "car");
  EXPECT_EQ(wrong.read(out, std::chrono::seconds(1)), ReadStatus::end);
  EXPECT_NE(wrong.end_reason().find("has one measuring point"), std::string::npos) << wrong.end_reason();
  // One point, none chosen: the block as it came.
  PointSource plain(std::make_unique<Blocks>(std::deque<SampleBlock>{one}), "");
  ASSERT_EQ(plain.read(out, std::chrono::seconds(1)), ReadStatus::ok);
  EXPECT_EQ(std::memcmp(out.data.data(), one.data.data(), 100 * 8 * sizeof(float)), 0);
}

TEST(PointSource, Ac3nDcRoundTripsThroughWprbWithVoltsAndAmperesPerChannel) {
  Simulator sim(charger());
  SampleBlock b;
  sim.generate(b, 300);
  std::vector<std::byte> buf;
  wprb::encode_block(b, 7, buf);
  ASSERT_EQ(buf.size(), wprb::kHeaderBytes + 300u * 10 * 4);
  wprb::Header h;
  std::string err;
  ASSERT_TRUE(wprb::parse_header(buf, h, err)) << err;
  EXPECT_EQ(h.layout, Layout::ac3n_dc);
  std::vector<float> out(300 * 10);
  ASSERT_TRUE(wprb::decode_frames(h, std::span(buf).subspan(64), 0, 300, out.data(), err)) << err;
  EXPECT_EQ(std::memcmp(out.data(), b.data.data(), out.size() * 4), 0);
  // int32 counts: channel 8 (the DC voltage) scales as a voltage, 9 as a current.
  std::vector<std::byte> ib;
  wprb::encode_block_int(b, 8, wprb::SampleFormat::int32, 0.01f, 0.001f, ib);
  ASSERT_TRUE(wprb::parse_header(ib, h, err)) << err;
  ASSERT_TRUE(wprb::decode_frames(h, std::span(ib).subspan(64), 0, 300, out.data(), err)) << err;
  for (std::uint32_t f = 0; f < 300; ++f) {
    EXPECT_NEAR(out[f * 10 + 8], b.frame(f)[8], 0.0051f);
    EXPECT_NEAR(out[f * 10 + 9], b.frame(f)[9], 0.00051f);
  }
  EXPECT_EQ(layout_name(Layout::ac3n_dc), "AC3N_DC");
  EXPECT_EQ(channel_name(Layout::ac3n_dc, 8), "U");
  EXPECT_TRUE(is_voltage(Layout::ac3n_dc, 3));
  EXPECT_FALSE(is_voltage(Layout::ac3n_dc, 9));
}

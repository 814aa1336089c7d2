// SPDX-License-Identifier: Apache-2.0
// Two measuring points on one clock (AC3N_DC): the charger simulator's power
// balance, the split into each point's own layout, the refusals, and WPRB.
#include "wattpipe/acquire/point_source.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

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

// One point of a stream, as a daemon that measures only that point sees it.
// (A source keeps the fan-out's shared state alive, not the fan-out.)
static std::unique_ptr<Source> one_point(const SampleBlock& b, const std::string& point) {
  PointFanout fan(std::make_unique<Blocks>(std::deque<SampleBlock>{b}),
                  point.empty() ? std::vector<std::string>{} : std::vector<std::string>{point});
  return fan.source(0);
}

TEST(PointFanout, EachPointGetsItsOwnChannelsInItsOwnLayout) {
  Simulator sim(charger());
  SampleBlock whole;
  sim.generate(whole, 500);
  for (const char* point : {"grid", "car"}) {
    auto src = one_point(whole, point);
    SampleBlock out;
    ASSERT_EQ(src->read(out, std::chrono::seconds(1)), ReadStatus::ok) << src->end_reason();
    const bool grid = std::string(point) == "grid";
    EXPECT_EQ(out.layout, grid ? Layout::ac3n : Layout::dc);
    EXPECT_EQ(out.channels, grid ? 8u : 2u);
    EXPECT_EQ(out.frames, whole.frames);
    EXPECT_EQ(out.first_frame, whole.first_frame);
    EXPECT_EQ(out.t0_ns, whole.t0_ns) << "one clock: the same times";
    EXPECT_EQ(out.has_ref_power, !grid);
    for (std::uint32_t f = 0; f < out.frames; ++f)
      for (std::uint32_t c = 0; c < out.channels; ++c)
        ASSERT_EQ(out.frame(f)[c], whole.frame(f)[(grid ? 0 : 8) + c]) << point << " frame " << f << " ch " << c;
  }
}

// A point's samples are copies of the stream's: the stream's bound on them
// (the acquisition thread trusts it instead of reading each sample back).
TEST(PointFanout, APointHasTheBoundOfItsStream) {
  PointFanout one(std::make_unique<SimSource>(*sim_profile("ac3", 20000), true), {});
  EXPECT_NEAR(one.source(0)->peak_bound().v, 230 * std::sqrt(2.0), 1e-3);
  EXPECT_NEAR(one.source(0)->peak_bound().a, 16 * std::sqrt(2.0), 1e-4);
  PointFanout two(std::make_unique<SimSource>(charger(), true), {"grid", "car"});
  for (std::size_t k = 0; k < 2; ++k) EXPECT_TRUE(std::isinf(two.source(k)->peak_bound().v)) << "the charger has none";
}

// The car side's input power of calibrated grid samples: gain * raw + offset
// in float per channel, as the grid side's processing calibrates them.
TEST(PointFanout, TheInputPowerTakesTheGridSidesGainsAndOffsets) {
  Simulator sim(charger());
  SampleBlock whole, car;
  sim.generate(whole, 200);
  InputCal cal;
  cal.u_gain = {1.02f, 1, 0.99f};
  cal.i_gain = {1, 0.97f, 1};
  cal.i_offset = {0, 0, 0.5f};
  ASSERT_TRUE(extract_point(whole, "car", car, cal));
  ASSERT_TRUE(car.has_ref_power);
  for (std::uint32_t f = 0; f < 200; ++f) {
    const float* x = whole.frame(f);
    double p = 0;
    for (int k = 0; k < 3; ++k) {
      const float u = cal.u_gain[k] * x[k] + cal.u_offset[k], i = cal.i_gain[k] * x[4 + k] + cal.i_offset[k];
      p += double(u) * double(i);
    }
    ASSERT_EQ(car.ref_power[f], float(p)) << "frame " << f;
  }
}

// Currents sampled one frame late (delay-us of a frame): with the delay
// undone, the input power of every frame, across the blocks' boundary too,
// is that of the current sampled on time.
TEST(PointFanout, TheInputPowerUndoesTheGridCurrentsDelay) {
  Simulator sim(charger());
  std::vector<SampleBlock> on_time(2), late(2);
  for (auto& b : on_time) sim.generate(b, 100);
  late = on_time;
  for (int k = 0; k < 2; ++k)  // a current sampled late shows at frame n what was there at n + 1
    for (std::uint32_t f = 0; f < 100; ++f)
      for (int c = 4; c < 7; ++c)
        late[std::size_t(k)].frame(f)[c] = f + 1 < 100 ? on_time[std::size_t(k)].frame(f + 1)[c]
                                           : (k == 0 ? on_time[1].frame(0)[c] : on_time[1].frame(99)[c]);
  InputCal cal;
  cal.i_delay_us = {50, 50, 50};  // one frame at 20 kS/s
  InputState state;
  SampleBlock car;
  for (int k = 0; k < 2; ++k) {
    ASSERT_TRUE(extract_point(late[std::size_t(k)], "car", car, cal, &state));
    for (std::uint32_t f = (k == 0 ? 1 : 0); f < 99; ++f) {  // frame 0 of the stream has no frame before it
      const float* x = on_time[std::size_t(k)].frame(f);
      const double p = double(x[0]) * double(x[4]) + double(x[1]) * double(x[5]) + double(x[2]) * double(x[6]);
      ASSERT_EQ(car.ref_power[f], float(p)) << "block " << k << " frame " << f;
    }
  }
}

TEST(PointFanout, NoPointOnTwoAndAPointOnOneEndTheSourceWithTheReason) {
  Simulator sim(charger());
  SampleBlock whole;
  sim.generate(whole, 100);
  auto none = one_point(whole, "");
  SampleBlock out;
  EXPECT_EQ(none->read(out, std::chrono::seconds(1)), ReadStatus::end);
  EXPECT_NE(none->end_reason().find("grid (AC3N), car (DC); measure them with --points, or one with --point"),
            std::string::npos)
      << none->end_reason();
  Simulator ac(*sim_profile("ac3", 20000));
  SampleBlock one;
  ac.generate(one, 100);
  auto wrong = one_point(one, "car");
  EXPECT_EQ(wrong->read(out, std::chrono::seconds(1)), ReadStatus::end);
  EXPECT_NE(wrong->end_reason().find("has one measuring point"), std::string::npos) << wrong->end_reason();
  auto unknown = one_point(whole, "dc2");
  EXPECT_EQ(unknown->read(out, std::chrono::seconds(1)), ReadStatus::end);
  EXPECT_NE(unknown->end_reason().find("no measuring point 'dc2'"), std::string::npos) << unknown->end_reason();
  // One point, none chosen: the block as it came.
  auto plain = one_point(one, "");
  ASSERT_EQ(plain->read(out, std::chrono::seconds(1)), ReadStatus::ok);
  EXPECT_EQ(std::memcmp(out.data.data(), one.data.data(), 100 * 8 * sizeof(float)), 0);
}

namespace {

// Blocks of the charger simulator, numbered, for the fan-out's threads.
std::deque<SampleBlock> charger_blocks(int n, std::uint32_t frames) {
  Simulator sim(charger());
  std::deque<SampleBlock> q;
  for (int k = 0; k < n; ++k) {
    q.emplace_back();
    sim.generate(q.back(), frames);
  }
  return q;
}

class LiveBlocks final : public Source {  // the same, said to be real time
 public:
  explicit LiveBlocks(std::deque<SampleBlock> b) : inner_(std::move(b)) {}
  ReadStatus read(SampleBlock& out, std::chrono::nanoseconds t) override { return inner_.read(out, t); }
  [[nodiscard]] bool real_time() const noexcept override { return true; }

 private:
  Blocks inner_;
};

}  // namespace

TEST(PointFanout, BothPointsOfOneStreamInTwoThreadsGetEveryBlockInOrderAtMaxRate) {
  constexpr int kBlocks = 400;  // 25 times the queue: the reading side must wait for the other
  const auto blocks = charger_blocks(kBlocks, 256);
  PointFanout fan(std::make_unique<Blocks>(blocks), {"grid", "car"});
  ASSERT_EQ(fan.points(), 2u);
  auto grid = fan.source(0), car = fan.source(1);
  std::vector<std::uint64_t> car_first;
  std::vector<float> car_u, car_ref;
  std::thread t([&] {
    SampleBlock b;
    for (ReadStatus st; (st = car->read(b, std::chrono::seconds(5))) != ReadStatus::end;) {
      ASSERT_EQ(st, ReadStatus::ok);
      ASSERT_EQ(b.layout, Layout::dc);
      ASSERT_TRUE(b.has_ref_power);
      car_first.push_back(b.first_frame);
      car_u.push_back(b.frame(b.frames - 1)[0]);
      car_ref.push_back(b.ref_power[b.frames - 1]);
      std::this_thread::sleep_for(std::chrono::microseconds(50));  // slower than the reading side
    }
  });
  SampleBlock g;
  int n = 0;
  for (ReadStatus st; (st = grid->read(g, std::chrono::seconds(5))) != ReadStatus::end;) {
    ASSERT_EQ(st, ReadStatus::ok);
    ASSERT_EQ(g.layout, Layout::ac3n);
    EXPECT_EQ(g.first_frame, blocks[n].first_frame);
    EXPECT_FALSE(g.has_ref_power);
    ++n;
  }
  t.join();
  EXPECT_EQ(n, kBlocks);
  ASSERT_EQ(car_first.size(), std::size_t{kBlocks}) << "nothing dropped when the stream is not real time";
  EXPECT_EQ(fan.blocks_dropped(1), 0u);
  for (int k = 0; k < kBlocks; ++k) {
    const SampleBlock& w = blocks[k];
    const float* x = w.frame(w.frames - 1);
    EXPECT_EQ(car_first[k], w.first_frame);
    EXPECT_EQ(car_u[k], x[8]);
    // The grid's instantaneous power on the car's frame: sum of u * i over the phases.
    const double p = double(x[0]) * x[4] + double(x[1]) * x[5] + double(x[2]) * x[6];
    EXPECT_FLOAT_EQ(car_ref[k], float(p));
  }
}

TEST(PointFanout, ALiveStreamDropsForAFullPointAndCountsTheFramesInItsNextBlock) {
  constexpr int kBlocks = 20;
  PointFanout fan(std::make_unique<LiveBlocks>(charger_blocks(kBlocks, 100)), {"grid", "car"}, 4);
  auto grid = fan.source(0), car = fan.source(1);
  SampleBlock b;
  for (int k = 0; k < kBlocks; ++k) ASSERT_EQ(grid->read(b, std::chrono::seconds(1)), ReadStatus::ok);
  EXPECT_EQ(grid->read(b, std::chrono::seconds(1)), ReadStatus::end);
  EXPECT_EQ(fan.blocks_dropped(1), std::uint64_t{kBlocks - 4}) << "the car's queue holds 4";
  std::vector<std::uint64_t> lost;
  for (ReadStatus st; (st = car->read(b, std::chrono::seconds(1))) == ReadStatus::ok;) lost.push_back(b.lost_frames);
  EXPECT_EQ(lost, (std::vector<std::uint64_t>{0, 0, 0, 0})) << "dropped after the 4th: no block follows to carry them";
  EXPECT_EQ(car->end_reason(), "");
}

// The raw log's tap: each block whole, as read, in order; a full tap loses
// the block for the log alone and counts it, the points get it all the same.
TEST(PointFanout, TheTapRecordsTheWholeStreamAndCountsWhatDidNotFit) {
  constexpr int kBlocks = 10;
  const auto blocks = charger_blocks(kBlocks, 100);
  PointFanout fan(std::make_unique<LiveBlocks>(blocks), {"grid", "car"}, 16);
  SpscRing<SampleBlock> tap(4);
  Waker woken;
  fan.tap(&tap, &woken);
  auto grid = fan.source(0), car = fan.source(1);
  SampleBlock b;
  for (int k = 0; k < kBlocks; ++k) ASSERT_EQ(grid->read(b, std::chrono::seconds(1)), ReadStatus::ok);
  int got = 0;
  for (; const SampleBlock* t = tap.front(); tap.release(), ++got) {
    ASSERT_EQ(t->layout, Layout::ac3n_dc);
    ASSERT_EQ(t->sequence, blocks[std::size_t(got)].sequence);
    ASSERT_EQ(std::memcmp(t->data.data(), blocks[std::size_t(got)].data.data(), 100 * 10 * sizeof(float)), 0);
  }
  EXPECT_EQ(got, 4);
  EXPECT_EQ(fan.tap_lost().blocks, std::uint64_t{kBlocks - 4});
  EXPECT_EQ(fan.tap_lost().frames, std::uint64_t{(kBlocks - 4) * 100});
  int car_blocks = 0;
  while (car->read(b, std::chrono::milliseconds(100)) == ReadStatus::ok) ++car_blocks;
  EXPECT_EQ(car_blocks, kBlocks);
}

// Shutdown: stop() ends the reading side's wait for room; the others take
// every block handed to them, and end once end_stream() says the stream did.
TEST(PointFanout, StopEndsTheReadingSidesWaitAndTheOthersTakeWhatTheyWereHandedThenEnd) {
  PointFanout fan(std::make_unique<Blocks>(charger_blocks(10, 64)), {"grid", "car"}, 2);
  auto grid = fan.source(0), car = fan.source(1);
  SampleBlock b;
  std::thread t([&] {
    for (int k = 0; k < 2; ++k) ASSERT_EQ(grid->read(b, std::chrono::seconds(1)), ReadStatus::ok);
    EXPECT_EQ(grid->read(b, std::chrono::seconds(1)), ReadStatus::timeout) << "its wait for the car ended by stop()";
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  fan.stop();
  t.join();
  SampleBlock c;
  EXPECT_EQ(car->read(c, std::chrono::milliseconds(1)), ReadStatus::ok);
  EXPECT_EQ(car->read(c, std::chrono::milliseconds(1)), ReadStatus::ok) << "both blocks handed over";
  EXPECT_EQ(car->read(c, std::chrono::milliseconds(20)), ReadStatus::timeout) << "stop() alone ends nothing for it";
  fan.end_stream();
  EXPECT_EQ(car->read(c, std::chrono::seconds(1)), ReadStatus::end);
}

TEST(PointFanout, Ac3nDcRoundTripsThroughWprbWithVoltsAndAmperesPerChannel) {
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

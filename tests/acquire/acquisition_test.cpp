// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/acquisition.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <limits>
#include <filesystem>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include <poll.h>

#include <zmq.hpp>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/acquire/wprb.hpp"
#include "wattpipe/acquire/wprb_source.hpp"

using namespace wattpipe::acquire;
namespace fs = std::filesystem;

namespace {

// Drains the ring and checks that every gap in frame numbering is exactly
// the lost_frames the next block reports.
struct Drain {
  std::uint64_t frames = 0, blocks = 0, lost = 0, next_frame = 0;
  bool first = true;
  bool consistent = true;
  void take(BlockRing& ring) {
    while (SampleBlock* b = ring.front()) {
      if (!first && b->first_frame != next_frame + b->lost_frames) consistent = false;
      if (!first) lost += b->lost_frames;
      first = false;
      next_frame = b->first_frame + b->frames;
      frames += b->frames;
      ++blocks;
      ring.release();
    }
  }
};

std::string temp_path(const char* name) {
  return (fs::temp_directory_path() / (std::string("wattpipe-test-") + std::to_string(::getpid()) + "-" + name)).string();
}

// A WPRB file of `blocks` blocks of `frames` AC3N frames each (any size:
// blocks larger than kBlockFrames are split by the source on the way in).
void write_blocks(const std::string& path, int blocks, std::uint32_t frames) {
  SimConfig cfg = *sim_profile("ac3", 20000);
  cfg.start_utc_ns = 1'000'000'000;
  Simulator sim(cfg);
  auto b = std::make_unique<SampleBlock>();
  std::vector<std::byte> buf;
  for (int i = 0; i < blocks; ++i) {
    wprb::Header h;
    h.layout = Layout::ac3n;
    h.frame_count = frames;
    h.sequence = static_cast<std::uint64_t>(i);
    h.first_frame = sim.next_frame();
    h.t0_ns = cfg.start_utc_ns + static_cast<std::int64_t>(sim.next_frame()) * 50'000;
    h.sample_rate_hz = 20000;
    const std::size_t at = buf.size();
    buf.resize(at + wprb::kHeaderBytes);
    wprb::write_header(h, std::span<std::byte, wprb::kHeaderBytes>(buf.data() + at, wprb::kHeaderBytes));
    for (std::uint32_t done = 0; done < frames;) {
      const std::uint32_t n = std::min<std::uint32_t>(frames - done, kBlockFrames);
      sim.generate(*b, n);
      const auto* p = reinterpret_cast<const std::byte*>(b->data.data());
      buf.insert(buf.end(), p, p + std::size_t{n} * 8 * sizeof(float));
      done += n;
    }
  }
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
}

}  // namespace

TEST(Acquisition, FullRingDropsBlocksAndAccountsForEveryFrame) {
  SimConfig cfg = *sim_profile("ac3", 200000);
  SimSource src(cfg, /*max_rate=*/false);
  BlockRing ring(8);
  Acquisition acq(src, ring);
  acq.start();
  // A consumer that takes nothing: the ring fills, and acquisition must drop,
  // not wait. Waited for as it happens, not for a time.
  const std::int64_t deadline = steady_now_ns() + 20'000'000'000;
  while (acq.counters().blocks_dropped.load() == 0 && steady_now_ns() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_GT(acq.counters().blocks_dropped.load(), 0u) << "the ring never overflowed";
  // Then one that takes: three rings' worth, while the source goes on.
  Drain d;
  while (d.blocks < 3 * ring.capacity() && steady_now_ns() < deadline) {
    d.take(ring);
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ASSERT_GE(d.blocks, 3 * ring.capacity());
  acq.stop();
  acq.join();
  d.take(ring);
  const auto& c = acq.counters();
  EXPECT_GT(c.frames_dropped.load(), 0u);
  EXPECT_EQ(c.frames_acquired.load(), d.frames + c.frames_dropped.load());
  EXPECT_EQ(c.blocks_acquired.load(), d.blocks + c.blocks_dropped.load());
  EXPECT_TRUE(d.consistent) << "a gap in frame numbers differs from the lost_frames reported";
  EXPECT_LE(d.lost, c.frames_dropped.load());
  EXPECT_EQ(c.ring_high_water.load(), ring.capacity());
  EXPECT_TRUE(acq.finished());
}

TEST(Acquisition, MaxRateWaitsForTheConsumerAndDropsNothing) {
  SimConfig cfg = *sim_profile("dc", 20000);
  SimSource src(cfg, /*max_rate=*/true);
  BlockRing ring(4);
  Acquisition acq(src, ring);
  acq.start();
  Drain d;
  for (int i = 0; i < 200; ++i) {
    d.take(ring);
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  acq.stop();
  acq.join();
  d.take(ring);
  EXPECT_EQ(acq.counters().frames_dropped.load(), 0u);
  EXPECT_EQ(acq.counters().frames_acquired.load(), d.frames);
  EXPECT_EQ(d.lost, 0u);
  EXPECT_TRUE(d.consistent);
}

// A simulator that bounds its samples within full scale is not read back;
// one whose bound is beyond it still has every block checked and refused.
TEST(Acquisition, ASourceBoundBeyondFullScaleIsStillCheckedBlockByBlock) {
  for (const double fs_v : {400.0, 300.0}) {  // the ac3 profile peaks at 325.3 V
    SimConfig cfg = *sim_profile("ac3", 20000);
    SimSource src(cfg, /*max_rate=*/true);
    ASSERT_GT(src.peak_bound().v, 325.26);
    ASSERT_LT(src.peak_bound().v, 325.3);
    BlockRing ring(4);
    InputLimits lim;
    lim.full_scale_v = fs_v;
    lim.full_scale_a = 100;
    Acquisition acq(src, ring, {}, lim);
    acq.start();
    Drain d;
    const std::int64_t until = steady_now_ns() + 10'000'000'000;  // a bound on a hang, not a timing check
    while (d.blocks + acq.counters().blocks_rejected_full_scale.load() < 50 && steady_now_ns() < until) {
      d.take(ring);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    acq.stop();
    acq.join();
    d.take(ring);
    if (fs_v > 326) {
      EXPECT_EQ(acq.counters().blocks_rejected_full_scale.load(), 0u);
      EXPECT_GE(d.blocks, 50u);
    } else {
      EXPECT_EQ(d.blocks, 0u) << "every block peaks above 300 V";
      EXPECT_GE(acq.counters().blocks_rejected_full_scale.load(), 50u);
    }
  }
}

TEST(Clock, UtcFieldsAgreeWithGmtimeRoundDownAndGoBackThroughDaysFromCivil) {
  std::uint64_t seed = 7;
  auto next = [&] { return seed = seed * 6364136223846793005u + 1442695040888963407u; };
  std::vector<std::int64_t> at = {0, -1, 1, 999'999'999, -1'000'000'000, -1'000'000'001, 951'782'400'999'000'000,
                                  4'102'444'799'123'456'789, -2'208'988'800'000'000'000};  // 1900-01-01
  for (int k = 0; k < 20000; ++k) at.push_back(std::int64_t(next() % 8'000'000'000'000'000'000u) - 4'000'000'000'000'000'000);
  for (const std::int64_t ns : at) {
    const UtcFields f = utc_fields(ns);
    const std::int64_t s = ns >= 0 ? ns / 1'000'000'000 : -((-(ns + 1)) / 1'000'000'000) - 1;
    const std::time_t tt = std::time_t(s);
    std::tm tm{};
    ASSERT_NE(gmtime_r(&tt, &tm), nullptr);
    ASSERT_EQ(f.year, tm.tm_year + 1900) << ns;
    ASSERT_EQ(f.month, unsigned(tm.tm_mon + 1)) << ns;
    ASSERT_EQ(f.day, unsigned(tm.tm_mday)) << ns;
    ASSERT_EQ(f.hour, unsigned(tm.tm_hour)) << ns;
    ASSERT_EQ(f.minute, unsigned(tm.tm_min)) << ns;
    ASSERT_EQ(f.second, unsigned(tm.tm_sec)) << ns;
    ASSERT_EQ(f.ns, ns - s * 1'000'000'000) << ns;
    const std::int64_t back = ((days_from_civil(f.year, f.month, f.day) * 24 + f.hour) * 60 + f.minute) * 60 + f.second;
    ASSERT_EQ(back * 1'000'000'000 + f.ns, ns);
  }
}

// A simulator at --max-rate into a ring of 8, with the consumer's side of
// the space waker (room_freed(), as Processing calls it); take() checks that
// blocks come in order and whole.
struct MaxRateRig {
  explicit MaxRateRig(std::uint32_t block_frames = 0) : src(*sim_profile("dc", 20000), /*max_rate=*/true, block_frames) {}
  SimSource src;
  BlockRing ring{8};
  Waker space;
  Acquisition acq{src, ring, {}, {}, nullptr, nullptr, &space};
  std::uint64_t frames = 0, next_first = 0, blocks = 0;
  bool in_order = true;
  void take() {
    SampleBlock* b = ring.front();
    in_order &= b->first_frame == next_first && b->lost_frames == 0;
    next_first = b->first_frame + b->frames;
    frames += b->frames;
    ++blocks;
    ring.release();
    acq.room_freed();
  }
};

// The producer sleeps on the full ring instead of spinning, is woken once
// half of it is free, loses nothing, and a stop wakes it.
TEST(Acquisition, MaxRateSleepsOnAFullRingUntilHalfOfItIsFree) {
  MaxRateRig r;
  r.acq.start();
  // Nothing taken until the ring is full: the producer must go to sleep.
  for (int i = 0; i < 5000 && r.ring.size_approx() < r.ring.capacity(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(r.ring.size_approx(), r.ring.capacity());
  for (int i = 0; i < 400; ++i) {
    if (r.ring.front() != nullptr) r.take();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  r.acq.stop();  // with the ring full: the producer is asleep, and stop() wakes it
  r.acq.join();
  const auto& c = r.acq.counters();
  EXPECT_TRUE(r.acq.finished());
  EXPECT_GT(r.blocks, 100u);
  EXPECT_TRUE(r.in_order);
  EXPECT_EQ(c.frames_dropped.load(), 0u);
  EXPECT_GE(c.frames_acquired.load(), r.frames);
  EXPECT_LE(c.frames_acquired.load(), r.frames + r.ring.capacity() * kBlockFrames);
  // It slept on the full ring (how often after that depends on how fast the
  // source is: under a sanitizer a block takes longer), and never once per
  // block: a wake-up per half ring. A lost wake-up shows above, as too few
  // blocks.
  EXPECT_GE(c.full_ring_sleeps.load(), 1u);
  EXPECT_LE(c.full_ring_sleeps.load(), 2 * r.blocks / (r.ring.capacity() / 2) + 2);
}

// The consumer takes a block 8 us after the ring is full: the producer fails
// a few claims (about a microsecond each) and then finds a slot, every
// time, well within its 16 claims. After 2 ms without a full ring the
// consumer takes what is there, as Processing does. The producer must still
// sleep until half the ring is free, not spin a claim at a time. Blocks of
// 16 frames keep the producer's turn from one claim to the next short under
// a sanitizer too (with whole blocks it did not reach its next claim within
// the 8 us, so it never failed one).
TEST(Acquisition, MaxRateSleepsBesideAConsumerThatFreesABlockAtATime) {
  MaxRateRig r(16);
  r.acq.start();
  while (r.blocks < 2000) {
    const std::int64_t until = steady_now_ns() + 2'000'000;
    while (r.ring.size_approx() < r.ring.capacity() && steady_now_ns() < until) {
    }
    if (r.ring.size_approx() == r.ring.capacity()) {
      // (Taken at once, a slow producer, as under a sanitizer, would find
      // the slot free before it ever failed a claim.)
      for (const std::int64_t t = steady_now_ns() + 8'000; steady_now_ns() < t;) {
      }
      r.take();
    } else {
      while (r.ring.front() != nullptr) r.take();
    }
  }
  r.acq.stop();
  r.acq.join();
  EXPECT_TRUE(r.in_order);
  EXPECT_EQ(r.acq.counters().frames_dropped.load(), 0u);
  // A sleep every 16 blocks taken from a full ring at most, plus the half
  // ring drained after it: 2000 blocks give about 100. Counting spins only
  // while the ring stays full, the producer slept only when this thread was
  // descheduled for more than its spins.
  EXPECT_GE(r.acq.counters().full_ring_sleeps.load(), 50u);
}

// Reads a replay to its end; the frames it gave, each block where the last ended.
std::uint64_t replay_in_order(ReplaySource& src) {
  auto b = std::make_unique<SampleBlock>();
  std::uint64_t next = 0;
  while (src.read(*b, std::chrono::seconds(1)) == ReadStatus::ok) {
    EXPECT_EQ(b->first_frame, next);
    next += b->frames;
  }
  return next;
}

TEST(ReplaySource, NotesArePassedOverAndTheFirstIsKept) {
  // A raw log as the daemon writes it: a note first, blocks after it (and a
  // second note, as after a rotation would not have, to show it is skipped).
  const std::string blocks = temp_path("blocks.wprb"), path = temp_path("noted.wprb");
  write_blocks(blocks, 4, 500);
  std::vector<std::byte> a, b;
  wprb::encode_note(R"({"type":"header","software_id":"x"})", a);
  wprb::encode_note(R"({"later":1})", b);
  {
    std::ofstream f(path, std::ios::binary);
    std::ifstream in(blocks, std::ios::binary);
    f.write(reinterpret_cast<const char*>(a.data()), std::streamsize(a.size()));
    std::vector<char> all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t half = 2 * (64 + 500 * 8 * 4);
    f.write(all.data(), std::streamsize(half));
    f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
    f.write(all.data() + half, std::streamsize(all.size() - half));
  }
  ReplaySource src(path, true, false);
  EXPECT_EQ(replay_in_order(src), 4u * 500);
  EXPECT_TRUE(src.end_reason().empty()) << src.end_reason();
  EXPECT_EQ(src.note(), R"({"type":"header","software_id":"x"})");
  // A note that claims more than the limit is damage, not a skip.
  std::vector<std::byte> bad;
  wprb::encode_note("{}", bad);
  const std::uint32_t huge = wprb::kMaxNoteBytes + 1;
  std::memcpy(bad.data() + 8, &huge, 4);
  std::uint32_t len = 0;
  std::string err;
  EXPECT_FALSE(wprb::parse_note_header(std::span<const std::byte>(bad.data(), 64), len, err));
  fs::remove(blocks);
  fs::remove(path);
}

TEST(ReplaySource, TruncatedFileEndsAfterEveryGoodBlock) {
  const std::string path = temp_path("trunc.wprb");
  write_blocks(path, 10, 500);
  const auto size = fs::file_size(path);
  fs::resize_file(path, size - 1000);  // cut into the last block's payload
  ReplaySource src(path, true, false);
  auto b = std::make_unique<SampleBlock>();
  std::uint64_t frames = 0;
  ReadStatus st;
  while ((st = src.read(*b, std::chrono::seconds(1))) == ReadStatus::ok) frames += b->frames;
  EXPECT_EQ(st, ReadStatus::end);
  EXPECT_EQ(frames, 9u * 500);
  EXPECT_NE(src.end_reason().find("truncated"), std::string::npos) << src.end_reason();
  fs::remove(path);
}

TEST(ReplaySource, CorruptBlockEndsTheReplayWithAReason) {
  const std::string path = temp_path("corrupt.wprb");
  write_blocks(path, 6, 1500);  // blocks larger than kBlockFrames are split on the way in
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(3 * (64 + 1500 * 8 * 4)));
    f.write("JUNK", 4);
  }
  ReplaySource src(path, true, false);
  EXPECT_EQ(replay_in_order(src), 3u * 1500);
  EXPECT_NE(src.end_reason().find("corrupt"), std::string::npos) << src.end_reason();
  EXPECT_NE(src.end_reason().find("magic"), std::string::npos) << src.end_reason();
  fs::remove(path);
}

TEST(ReplaySource, LoopKeepsFrameNumbersAndTimeContinuous) {
  const std::string path = temp_path("loop.wprb");
  write_blocks(path, 3, 400);
  ReplaySource src(path, true, true);
  auto b = std::make_unique<SampleBlock>();
  std::uint64_t next = 0;
  std::int64_t next_t = 1'000'000'000;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(src.read(*b, std::chrono::seconds(1)), ReadStatus::ok);
    EXPECT_EQ(b->first_frame, next);
    EXPECT_EQ(b->t0_ns, next_t);
    next += b->frames;
    next_t += 20'000'000;
  }
  EXPECT_EQ(src.counters().stream_restarts.load(), 0u);
  fs::remove(path);
}

TEST(ZmqSource, CountsGapsAndInvalidBlocksExactly) {
  zmq::context_t ctx(1);
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.bind("tcp://127.0.0.1:*");
  const std::string ep = push.get(zmq::sockopt::last_endpoint);
  ZmqSource src(ep, ZmqMode::pull);

  SimConfig cfg = *sim_profile("ac1", 20000);
  cfg.start_utc_ns = 1;
  Simulator sim(cfg);
  auto b = std::make_unique<SampleBlock>();
  constexpr std::uint32_t kFrames = 256;
  for (std::uint64_t seq = 0; seq < 12; ++seq) {
    sim.generate(*b, kFrames);
    if (seq == 3) continue;  // lost on the way
    if (seq == 7) b->data[11] = std::nanf("");
    std::vector<std::byte> buf;
    wprb::encode_block(*b, seq, buf);
    if (seq == 5) buf[1] = std::byte{'?'};                 // unreadable header
    if (seq == 9) buf.resize(buf.size() - 4);              // size does not match its header
    push.send(zmq::const_buffer(buf.data(), buf.size()), zmq::send_flags::none);
  }
  std::uint64_t frames = 0;
  auto out = std::make_unique<SampleBlock>();
  const std::int64_t deadline = steady_now_ns() + 5'000'000'000;
  while (frames < 8 * kFrames && steady_now_ns() < deadline)
    if (src.read(*out, std::chrono::milliseconds(100)) == ReadStatus::ok) frames += out->frames;
  EXPECT_EQ(frames, 8u * kFrames);
  EXPECT_EQ(src.counters().blocks_invalid.load(), 3u);
  EXPECT_EQ(src.counters().frames_invalid.load(), kFrames);           // block 7: header fine, a NaN
  EXPECT_EQ(src.counters().frames_lost_gap.load(), 3u * kFrames);     // blocks 3, 5 and 9
  EXPECT_EQ(src.counters().stream_restarts.load(), 0u);
}

namespace {
// A scripted source (unit-test fake): DC blocks of 100 frames at 1 kS/s,
// each shaped by `shape(seq, block)`; after `blocks` it only times out.
class ScriptedSource final : public Source {
 public:
  std::function<void(std::uint64_t, SampleBlock&)> shape;
  std::atomic<std::uint64_t> blocks = 0;
  std::uint64_t seq = 0;
  bool burst = false;  // a file at --max-rate: reads never wait
  ReadStatus read(SampleBlock& b, std::chrono::nanoseconds timeout) override {
    if (seq >= blocks) {
      std::this_thread::sleep_for(timeout);
      return ReadStatus::timeout;
    }
    b.layout = Layout::dc;
    b.channels = 2;
    b.frames = 100;
    b.sequence = seq;
    b.first_frame = seq * 100;
    b.sample_rate_hz = 1000;
    b.t0_ns = utc_now_ns() - 100'000'000;
    b.clock_synced = true;
    for (std::uint32_t f = 0; f < 100; ++f) b.data[2 * f] = 800, b.data[2 * f + 1] = 200;
    if (shape) shape(seq, b);
    ++seq;
    return ReadStatus::ok;
  }
  [[nodiscard]] bool real_time() const noexcept override { return !burst; }
  [[nodiscard]] bool bursts() const noexcept override { return burst; }
};

// The consumer's side as Processing does it: everything in the ring, then
// sleep (armed) until woken. Counts the wake-ups; a sleep of 5 s is a lost one.
struct Sleeper {
  BlockRing& ring;
  Waker& waker;
  std::uint64_t blocks = 0, wakes = 0, lost_wakes = 0;
  void until(std::uint64_t n) {
    while (blocks < n) {
      while (ring.front() != nullptr) ring.release(), ++blocks;
      if (blocks >= n) break;
      waker.arm();
      if (ring.front() == nullptr) {
        pollfd p{waker.fd(), POLLIN, 0};
        if (::poll(&p, 1, 5000) == 1) ++wakes;
        else ++lost_wakes;
      }
      waker.drain();
    }
  }
};
}  // namespace

// A source whose reads never wait wakes the consumer a batch at a time, and
// leaves nothing unseen: a few blocks (less than a batch) and then nothing
// still reach it.
TEST(Acquisition, ABurstingSourceWakesTheConsumerABatchAtATimeAndLeavesNothingUnseen) {
  ScriptedSource src;
  src.burst = true;
  src.blocks = 3;
  BlockRing ring(64);
  Waker consumer, space;
  Acquisition acq(src, ring, {}, {}, &consumer, nullptr, &space);
  Sleeper s{ring, consumer};
  acq.start();
  s.until(3);
  EXPECT_EQ(s.lost_wakes, 0u) << "three blocks, then reads that time out: woken for them";
  const std::uint64_t before = s.wakes;
  src.blocks = 3 + 4000;
  s.until(3 + 4000);
  acq.stop();
  acq.join();
  EXPECT_EQ(s.lost_wakes, 0u);
  EXPECT_LE(s.wakes - before, 4000u / 8 + 2) << "a wake-up per batch of 8, not per block";
  EXPECT_EQ(acq.counters().frames_dropped.load(), 0u);
}

TEST(Acquisition, TheDoorRefusesAbsurdBlocksByCauseAndFixesLyingClocks) {
  ScriptedSource src;
  src.blocks = 12;
  src.shape = [](std::uint64_t s, SampleBlock& b) {
    if (s == 2) b.sample_rate_hz = 0.5;
    if (s == 3) b.sample_rate_hz = 5e-324;
    if (s == 4) b.data[7] = 3e38f;                                  // a current beyond 100 kA
    if (s == 5) b.data[8] = std::numeric_limits<float>::quiet_NaN();
    if (s == 6) b.data[0] = 1.5e6f;                                 // a voltage beyond 1 MV
    if (s == 8) b.t0_ns += 3600'000'000'000;                        // an hour ahead
    if (s == 10) b.t0_ns = 0;                                       // 1970
  };
  BlockRing ring(64);
  InputLimits lim;
  lim.source_timeout_ns = 200'000'000;
  Acquisition acq(src, ring, {}, lim);
  EXPECT_EQ(acq.health(), SourceHealth::gone);
  acq.start();
  std::vector<SampleBlock> got;
  const std::int64_t until = steady_now_ns() + 2'000'000'000;
  bool saw_live = false;
  while (steady_now_ns() < until && acq.health() != SourceHealth::stalled) {
    saw_live |= acq.health() == SourceHealth::live;
    while (SampleBlock* b = ring.peek(0)) {
      got.push_back(*b);
      ring.release(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  acq.stop();
  acq.join();
  while (SampleBlock* b = ring.peek(0)) {
    got.push_back(*b);
    ring.release(1);
  }
  EXPECT_TRUE(saw_live);
  EXPECT_EQ(acq.health(), SourceHealth::stalled) << "no valid block for the timeout after being live";
  const auto& c = acq.counters();
  EXPECT_EQ(c.blocks_rejected_rate.load(), 2u);
  EXPECT_EQ(c.blocks_rejected_full_scale.load(), 3u);
  EXPECT_EQ(c.frames_rejected.load(), 500u);
  EXPECT_EQ(c.outages.load(), 1u);
  ASSERT_EQ(got.size(), 7u);
  EXPECT_EQ(got[2].lost_frames, 500u) << "the refused frames are reported as lost on the next block";
  EXPECT_EQ(c.blocks_time_replaced.load(), 2u);
  // The replaced times continue the stream: every block starts where the previous ended.
  for (std::size_t k = 1; k < got.size(); ++k) {
    const std::int64_t now = utc_now_ns();
    EXPECT_LT(std::llabs(got[k].t0_ns - now), 5'000'000'000) << "block " << got[k].sequence;
    if (got[k].sequence == 8 || got[k].sequence == 10) {
      EXPECT_FALSE(got[k].clock_synced);
    }
    if (got[k].sequence == 9) {
      EXPECT_TRUE(got[k].clock_synced);
    }
  }
  const LossCounts l = acq.losses();
  EXPECT_EQ(l.v[4], 2u);  // blocks_rejected_rate, by its shared name's position
  EXPECT_EQ(LossCounts::kNames[4], "blocks_rejected_rate");
}

// The full-scale check, sample by sample: in every layout, a sample beyond
// its channel's limit (or NaN, or inf) anywhere in a block, the vector body
// and the scalar tail alike, refuses the block; one exactly at the limit does not.
TEST(Acquisition, FullScaleFindsTheOneSampleBeyondItsChannelsLimitAnywhere) {
  const float fs_v = 1000, fs_a = 500;
  for (const Layout l : {Layout::ac1, Layout::ac3, Layout::ac3n, Layout::dc, Layout::ac3n_dc}) {
    SampleBlock b;
    b.layout = l;
    b.channels = layout_info(l).channels;
    b.frames = 37;  // not a multiple of any period: a tail
    const std::size_t n = std::size_t{b.frames} * b.channels;
    std::size_t checked = 0;
    auto limit = [&](std::size_t k) { return is_voltage(l, std::uint32_t(k % b.channels)) ? fs_v : fs_a; };
    for (std::size_t k = 0; k < n; ++k) {
      for (std::size_t j = 0; j < n; ++j) b.data[j] = j % 2 ? limit(j) : -limit(j);  // every sample at its limit
      const float lim = limit(k);
      ASSERT_TRUE(within_full_scale(b, fs_v, fs_a)) << layout_name(l);
      for (const float bad : {std::nextafter(lim, 2 * lim), -std::nextafter(lim, 2 * lim),
                              std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
        b.data[k] = bad;
        EXPECT_FALSE(within_full_scale(b, fs_v, fs_a)) << layout_name(l) << " sample " << k << " = " << bad;
        ++checked;
      }
    }
    EXPECT_EQ(checked, 4 * n);
  }
}

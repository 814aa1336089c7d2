// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/point_source.hpp"

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include <fmt/format.h>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/spsc_ring.hpp"
#include "wattpipe/acquire/waker.hpp"

namespace wattpipe::acquire {

std::string describe_points(Layout l) {
  const Points p = points_of(l);
  std::string s;
  for (std::uint32_t k = 0; k < p.count; ++k)
    s += fmt::format("{}{} ({})", k ? ", " : "", p.part[k].name, layout_name(p.part[k].layout));
  return s;
}

namespace {

const PointPart* find_part(const Points& pts, std::string_view name) {
  for (std::uint32_t k = 0; k < pts.count; ++k)
    if (pts.count > 1 && pts.part[k].name == name) return &pts.part[k];
  return nullptr;
}

// Waits on a waker's fd for at most `ns` (at least a millisecond when > 0).
void sleep_on(Waker& w, std::int64_t ns) {
  pollfd p{w.fd(), POLLIN, 0};
  ::poll(&p, 1, int(std::clamp<std::int64_t>((ns + 999'999) / 1'000'000, 0, 1000)));
  w.drain();
}

// Frames of `stride` channels to frames of N (0: n) from channel `first`; in place too.
template <std::uint32_t N>
void compact(const float* s, float* d, std::uint32_t frames, std::uint32_t stride, std::uint32_t first,
             std::uint32_t n = N) noexcept {
  if constexpr (N != 0) {
    for (std::uint32_t f = 0; f < frames; ++f) {
      float x[N];  // read whole, then written: in place, a frame may overlap its new place
      std::memcpy(x, s + std::size_t{f} * stride + first, sizeof x);
      std::memcpy(d + std::size_t{f} * N, x, sizeof x);
    }
  } else {
    for (std::uint32_t f = 0; f < frames; ++f)
      for (std::uint32_t c = 0; c < n; ++c) d[std::size_t{f} * n + c] = s[std::size_t{f} * stride + first + c];
  }
}

// The grid side's instantaneous power per frame, sum of u * i over its
// phases in double: of the samples as they came, or calibrated as the grid
// side's processing calibrates them (gain and offset in float, then, with a
// state to carry them from block to block, the delays undone).
void input_power(const SampleBlock& in, const InputCal& cal, InputState* st, float* power) {
  const LayoutInfo g = layout_info(Layout::ac3n);
  const std::uint32_t stride = in.channels, frames = in.frames;
  if (cal.identity()) {
    for (std::uint32_t f = 0; f < frames; ++f) {
      const float* x = in.data.data() + std::size_t{f} * stride;
      double p = 0;
      for (std::uint32_t k = 0; k < 3; ++k) p += double(x[g.u[k]]) * double(x[g.i[k]]);
      power[f] = float(p);
    }
    return;
  }
  const bool delays = st != nullptr && cal.delayed();
  if (delays && (!st->started || in.first_frame != st->next_frame || in.sample_rate_hz != st->rate_hz)) {
    // A new stream, as the processing starts one: the history is the block's first raw sample.
    for (std::uint32_t k = 0; k < 3; ++k) {
      st->line[k].reset(in.data[g.u[k]]);
      st->line[3 + k].reset(in.data[g.i[k]]);
    }
    st->started = true;
  }
  if (delays) st->next_frame = in.first_frame + frames, st->rate_hz = in.sample_rate_hz;
  std::array<std::array<float, kBlockFrames>, 6> x;  // U1..U3, I1..I3 calibrated
  for (std::uint32_t k = 0; k < 6; ++k) {
    const std::uint32_t ch = k < 3 ? g.u[k] : g.i[k - 3];
    const float gain = k < 3 ? cal.u_gain[k] : cal.i_gain[k - 3], offset = k < 3 ? cal.u_offset[k] : cal.i_offset[k - 3];
    const double delay_us = k < 3 ? cal.u_delay_us[k] : cal.i_delay_us[k - 3];
    for (std::uint32_t f = 0; f < frames; ++f) x[k][f] = gain * in.data[std::size_t{f} * stride + ch] + offset;
    if (delays && delay_us != 0) st->line[k].apply(x[k].data(), 1, frames, delay_us * 1e-6 * in.sample_rate_hz);
  }
  for (std::uint32_t f = 0; f < frames; ++f) {
    double p = 0;
    for (std::uint32_t k = 0; k < 3; ++k) p += double(x[k][f]) * double(x[3 + k][f]);
    power[f] = float(p);
  }
}

}  // namespace

bool extract_point(const SampleBlock& in, std::string_view point, SampleBlock& out, const InputCal& cal,
                   InputState* state) {
  const Points pts = points_of(in.layout);
  const PointPart* part = find_part(pts, point);
  if (part == nullptr) return false;
  const std::uint32_t stride = in.channels, n = layout_info(part->layout).channels, frames = in.frames;
  // The car side is measured against the grid side on the same samples: the
  // grid's instantaneous power goes along (efficiency and loss per window).
  const bool ref = part->layout == Layout::dc && pts.part[0].layout == Layout::ac3n;
  if (ref) input_power(in, cal, state, out.ref_power.data());
  // Frame f's n channels go to f * n, never past where they are read
  // (f * stride + first), so in place is safe.
  switch (n) {  // a whole frame's channels in one move where the count is known
    case 8: compact<8>(in.data.data(), out.data.data(), frames, stride, part->first); break;
    case 2: compact<2>(in.data.data(), out.data.data(), frames, stride, part->first); break;
    default: compact<0>(in.data.data(), out.data.data(), frames, stride, part->first, n); break;
  }
  if (&out != &in) in.copy_header_to(out);
  out.has_ref_power = ref;
  out.layout = part->layout;
  out.channels = n;
  return true;
}

struct PointFanout::Shared {
  struct Queue {
    explicit Queue(std::size_t n) : blocks(n) {}
    SpscRing<SampleBlock> blocks;
    Waker data;                              // its point's acquisition thread sleeps on it
    std::uint64_t carry_lost = 0;            // reading thread: frames dropped, told in the next block
    std::atomic<std::uint64_t> dropped{0};   // blocks dropped (statistics)
  };
  Shared(std::unique_ptr<Source> s, std::vector<std::string> p, std::size_t queue_blocks)
      : stream(std::move(s)), names(std::move(p)), input_state(std::max<std::size_t>(names.size(), 1)) {
    for (std::size_t k = 1; k < std::max<std::size_t>(names.size(), 1); ++k)
      queues.push_back(std::make_unique<Queue>(queue_blocks));
  }

  // Reading thread: the stream's next block, split. Point 0's part in `out`.
  ReadStatus read_stream(SampleBlock& out, std::chrono::nanoseconds timeout) {
    if (ended.load(std::memory_order_relaxed)) return ReadStatus::end;
    const ReadStatus st = stream->read(out, timeout);
    if (st == ReadStatus::end) return finish(stream->end_reason());
    if (st != ReadStatus::ok) return st;
    const Points pts = points_of(out.layout);
    if (pts.count == 1 && names.empty()) {  // one point: the block as it came
      out.has_ref_power = false;
      return ReadStatus::ok;
    }
    if (pts.count == 1)
      return finish(fmt::format("--point {}: the stream ({}) has one measuring point; leave --point out", names[0],
                                layout_name(out.layout)));
    if (names.empty())
      return finish(fmt::format("the stream ({}) carries {} measuring points: {}; measure them with --points, or one "
                                "with --point",
                                layout_name(out.layout), pts.count, describe_points(out.layout)));
    for (const std::string& n : names)
      if (find_part(pts, n) == nullptr)
        return finish(fmt::format("the stream ({}) has no measuring point '{}': it has {}", layout_name(out.layout),
                                  n, describe_points(out.layout)));
    if (tap != nullptr) record(out);
    for (std::size_t k = 1; k < names.size(); ++k)
      if (!hand_over(out, *queues[k - 1])) return ReadStatus::timeout;  // stopping
    extract_point(out, names[0], out, input_cal, &input_state[0]);  // last: the others read the whole frames
    return ReadStatus::ok;
  }

  // Reading thread: `whole` into point k's queue. False when stopped.
  bool hand_over(const SampleBlock& whole, Queue& q) {
    SampleBlock* slot = q.blocks.claim();
    while (slot == nullptr) {
      if (stream->real_time()) {  // live data does not wait: the point loses this block
        q.carry_lost += whole.frames;
        q.dropped.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      if (stop_.load(std::memory_order_relaxed)) return false;
      room.arm();
      slot = q.blocks.claim();
      if (slot == nullptr) sleep_on(room, 10'000'000);
      else room.disarm();
    }
    whole.copy_to(*slot);  // whole: the point's own thread takes its channels out (read_queue)
    slot->lost_frames += q.carry_lost;
    q.carry_lost = 0;
    q.blocks.publish();
    // As Acquisition wakes its consumer: a stream that never waits, a batch at a time.
    if (!stream->bursts() || q.blocks.size_approx() >= std::clamp<std::size_t>(q.blocks.capacity() / 4, 1, 8))
      q.data.notify();
    return true;
  }

  // Reading thread: the whole block into the raw log's queue, or counted as lost there.
  void record(const SampleBlock& whole) {
    SampleBlock* slot = tap->claim();
    if (slot == nullptr) {
      tap_lost_blocks.fetch_add(1, std::memory_order_relaxed);
      tap_lost_frames.fetch_add(whole.frames, std::memory_order_relaxed);
      return;
    }
    whole.copy_to(*slot);
    tap->publish();
    if (tap_waker != nullptr) tap_waker->notify();
  }

  ReadStatus finish(std::string why) {
    reason = std::move(why);
    ended.store(true, std::memory_order_release);  // after the last block and the reason
    for (auto& q : queues) q->data.wake();
    return ReadStatus::end;
  }

  // Point k's (k >= 1) acquisition thread: the next block of its queue.
  ReadStatus read_queue(std::size_t k, SampleBlock& out, std::chrono::nanoseconds timeout) {
    Queue& q = *queues[k - 1];
    const std::int64_t deadline = steady_now_ns() + timeout.count();
    for (;;) {
      // Acquire: a point sees every block handed over before the end.
      const bool done = ended.load(std::memory_order_acquire);
      if (SampleBlock* b = q.blocks.front()) {
        extract_point(*b, names[k], out, input_cal, &input_state[k]);  // on this point's thread: the reader only copies
        q.blocks.release();
        room.notify();
        return ReadStatus::ok;
      }
      if (done) return ReadStatus::end;
      const std::int64_t left = deadline - steady_now_ns();
      // Not on stop(): at shutdown a point drains what it was handed until end_stream().
      if (left <= 0) return ReadStatus::timeout;
      q.data.arm();
      if (q.blocks.front() != nullptr || ended.load(std::memory_order_acquire)) {
        q.data.disarm();
        continue;
      }
      sleep_on(q.data, left);
    }
  }

  std::unique_ptr<Source> stream;
  std::vector<std::string> names;
  std::vector<std::unique_ptr<Queue>> queues;  // points 1..n-1
  Waker room;                                   // the reading thread sleeps on it while a queue is full
  std::atomic<bool> ended{false}, stop_{false};
  std::string reason;  // written before `ended`
  InputCal input_cal;
  std::vector<InputState> input_state;  // per point, used by its extraction only
  SpscRing<SampleBlock>* tap = nullptr;  // the raw log's queue, or none
  Waker* tap_waker = nullptr;
  std::atomic<std::uint64_t> tap_lost_blocks{0}, tap_lost_frames{0};
};

namespace {

// Point k's view of the stream.
class PointSource final : public Source {
 public:
  PointSource(std::shared_ptr<PointFanout::Shared> s, std::size_t k) : s_(std::move(s)), k_(k) {}
  ReadStatus read(SampleBlock& out, std::chrono::nanoseconds timeout) override {
    return k_ == 0 ? s_->read_stream(out, timeout) : s_->read_queue(k_, out, timeout);
  }
  [[nodiscard]] bool real_time() const noexcept override { return s_->stream->real_time(); }
  [[nodiscard]] bool bursts() const noexcept override { return s_->stream->bursts(); }
  [[nodiscard]] bool wall_clock() const noexcept override { return s_->stream->wall_clock(); }
  // A point's samples are copies of some of the stream's: its bound holds for them.
  [[nodiscard]] PeakBound peak_bound() const noexcept override { return s_->stream->peak_bound(); }
  [[nodiscard]] std::string end_reason() const override {
    // Acquire: the reason was written before `ended`.
    return s_->ended.load(std::memory_order_acquire) ? s_->reason : std::string();
  }
  [[nodiscard]] const SourceCounters& counters() const noexcept override { return s_->stream->counters(); }

 private:
  std::shared_ptr<PointFanout::Shared> s_;
  std::size_t k_;
};

}  // namespace

PointFanout::PointFanout(std::unique_ptr<Source> stream, std::vector<std::string> points, std::size_t queue_blocks)
    : shared_(std::make_shared<Shared>(std::move(stream), std::move(points), queue_blocks)) {}

PointFanout::~PointFanout() = default;

std::unique_ptr<Source> PointFanout::source(std::size_t k) { return std::make_unique<PointSource>(shared_, k); }

std::size_t PointFanout::points() const noexcept { return std::max<std::size_t>(shared_->names.size(), 1); }

void PointFanout::stop() noexcept {
  shared_->stop_.store(true, std::memory_order_relaxed);
  shared_->room.wake();
}

void PointFanout::end_stream() {
  if (!shared_->ended.load(std::memory_order_acquire)) shared_->finish("stop requested");
}

const Source& PointFanout::stream() const noexcept { return *shared_->stream; }

void PointFanout::tap(SpscRing<SampleBlock>* ring, Waker* waker) noexcept {
  shared_->tap = ring;
  shared_->tap_waker = waker;
}

void PointFanout::calibrate_input(const InputCal& cal) noexcept { shared_->input_cal = cal; }

PointFanout::Lost PointFanout::tap_lost() const noexcept {
  return {shared_->tap_lost_blocks.load(std::memory_order_relaxed),
          shared_->tap_lost_frames.load(std::memory_order_relaxed)};
}

std::uint64_t PointFanout::blocks_dropped(std::size_t k) const noexcept {
  return k == 0 ? 0 : shared_->queues[k - 1]->dropped.load(std::memory_order_relaxed);
}

}  // namespace wattpipe::acquire

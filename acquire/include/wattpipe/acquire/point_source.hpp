// SPDX-License-Identifier: Apache-2.0
// The measuring points of one stream. A stream of one point passes through
// unchanged; a stream whose frames carry several (AC3N_DC: a charger's grid
// input and its DC output, on one clock) is split into the points measured,
// each as blocks of its own layout, so each point has its own acquisition
// thread, ring, processing, registers and EVerest module (docs/wprb.md,
// README: both sides of a charger).
//
// Point 0's source reads the stream on its acquisition thread, keeps its own
// channels in place and copies every block whole into each other point's
// queue (lock-free SPSC, one per point); the other points' sources take
// their channels out of their queue on their own threads (a plain copy is
// the cheapest work for the thread that reads for all). A queue that is
// full drops the block for its point when the stream is real time (counted
// in the point's next block as lost frames, as a ring drop is) and
// otherwise waits for room, so at --max-rate the slowest point sets the
// pace and nothing is dropped.
//
// The car side of AC3N_DC carries the grid side's instantaneous power along
// (SampleBlock::ref_power): efficiency and loss on the same samples.
//
// A stream of several points with no point chosen, a point the stream does
// not have, or points on a stream of one end every point's source with the
// reason (end_reason()): nothing is measured on another point's channels.
//
// Threading: construct, tap(), calibrate_input() and source() on the owner
// thread before the acquisition threads start; each source() is then called
// by its own acquisition thread only (see Source); end_stream() on the owner
// thread once point 0's acquisition thread has ended. stop() and counters
// from any thread.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "wattpipe/acquire/delay_line.hpp"
#include "wattpipe/acquire/source.hpp"
#include "wattpipe/acquire/spsc_ring.hpp"
#include "wattpipe/acquire/waker.hpp"

namespace wattpipe::acquire {

// The grid side's calibration as its instantaneous power for the car side
// takes it: per phase, calibrated = gain * raw + offset on U1..U3 and I1..I3
// (in float, as the grid side's processing calibrates its samples), then a
// channel sampled late undone (delay-us, DelayLine, as the processing does).
struct InputCal {
  std::array<float, 3> u_gain{1, 1, 1}, u_offset{}, i_gain{1, 1, 1}, i_offset{};
  std::array<double, 3> u_delay_us{}, i_delay_us{};
  [[nodiscard]] bool delayed() const noexcept {
    return u_delay_us != std::array<double, 3>{} || i_delay_us != std::array<double, 3>{};
  }
  [[nodiscard]] bool identity() const noexcept {
    return u_gain == std::array<float, 3>{1, 1, 1} && i_gain == std::array<float, 3>{1, 1, 1} &&
           u_offset == std::array<float, 3>{} && i_offset == std::array<float, 3>{} && !delayed();
  }
};

// What the input power of one point keeps from block to block: the delay
// lines of the grid side's U1..U3, I1..I3, and where the stream goes on.
// One thread (the point's extraction).
struct InputState {
  std::array<DelayLine, 6> line{};
  std::uint64_t next_frame = 0;
  double rate_hz = 0;
  bool started = false;
};

class PointFanout {
 public:
  // `points`: names of points_of() ("grid", "car"), point 0 first; empty for
  // a stream of one point. `queue_blocks`: each further point's queue.
  PointFanout(std::unique_ptr<Source> stream, std::vector<std::string> points, std::size_t queue_blocks = 16);
  ~PointFanout();
  PointFanout(const PointFanout&) = delete;
  PointFanout& operator=(const PointFanout&) = delete;

  // Owner thread, once per point: point k's source (it keeps the shared state alive).
  [[nodiscard]] std::unique_ptr<Source> source(std::size_t k);
  [[nodiscard]] std::size_t points() const noexcept;
  // Any thread: ends point 0's wait for room in a queue (shutdown); the
  // other points go on taking what they were handed until end_stream().
  void stop() noexcept;
  // Owner thread, once point 0's acquisition thread has ended: the stream
  // ends there, so every other point takes what was handed to it, then
  // ends too, and all points stop on the same frame.
  void end_stream();
  // Any thread: the stream itself (its counters, its kind).
  [[nodiscard]] const Source& stream() const noexcept;
  // Any thread: blocks of point k dropped because its queue was full (real time).
  [[nodiscard]] std::uint64_t blocks_dropped(std::size_t k) const noexcept;

  // Owner thread, before the acquisition threads start: every block of a
  // stream of several points, whole (all its channels) and as read, before
  // it is split and before any point's door (Acquisition), also goes into
  // `ring` (the raw log's queue; `waker` wakes its consumer). So a raw log
  // records the stream once and replays as the stream. A full ring loses
  // the block for the log alone, counted by tap_lost().
  void tap(SpscRing<SampleBlock>* ring, Waker* waker) noexcept;
  // Owner thread, before the acquisition threads start: the grid side's
  // calibration, for the input power the car side carries.
  void calibrate_input(const InputCal& cal) noexcept;
  struct Lost {
    std::uint64_t blocks = 0, frames = 0;
  };
  // Any thread.
  [[nodiscard]] Lost tap_lost() const noexcept;

  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
};

// "grid (AC3N), car (DC)": the points of a layout, for messages.
std::string describe_points(Layout l);

// The frames of one point of a block of several: header, the point's
// channels compacted (`out` may be `in`: in place), and for the car side of
// AC3N_DC the grid side's instantaneous power, of its samples calibrated by
// `cal`. False when `in` has no such point.
// `state` carries the delays over blocks; without one, delays are not undone.
bool extract_point(const SampleBlock& in, std::string_view point, SampleBlock& out, const InputCal& cal = {},
                   InputState* state = nullptr);

}  // namespace wattpipe::acquire

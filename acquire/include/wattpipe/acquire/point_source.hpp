// SPDX-License-Identifier: Apache-2.0
// One measuring point of a source: passes blocks on unchanged when the stream
// has one point, and when its frames carry several (AC3N_DC: a charger's grid
// input and its DC output, on one clock) passes on the chosen point's
// channels as blocks of that point's own layout. Several daemons, one per
// point, then measure the same samples: two SUB sockets on one DAQ stream,
// or one recording replayed twice.
//
// A stream of several points with no point chosen, or a point the stream
// does not have, ends the source with the reason (end_reason()): nothing is
// measured on channels that belong to another point.
//
// Threading: as Source (the acquisition thread); counters() are the inner
// source's.
#pragma once

#include <memory>
#include <string>

#include "wattpipe/acquire/source.hpp"

namespace wattpipe::acquire {

class PointSource final : public Source {
 public:
  // `point`: a name of points_of() ("grid", "car"), or empty for a stream of one point.
  PointSource(std::unique_ptr<Source> inner, std::string point);
  ReadStatus read(SampleBlock& out, std::chrono::nanoseconds timeout) override;
  [[nodiscard]] bool real_time() const noexcept override { return inner_->real_time(); }
  [[nodiscard]] bool wall_clock() const noexcept override { return inner_->wall_clock(); }
  [[nodiscard]] std::string end_reason() const override { return reason_.empty() ? inner_->end_reason() : reason_; }
  [[nodiscard]] const SourceCounters& counters() const noexcept override { return inner_->counters(); }
  [[nodiscard]] const Source& inner() const noexcept { return *inner_; }

 private:
  std::unique_ptr<Source> inner_;
  std::string point_;
  std::string reason_;
};

// "grid (AC3N), car (DC)": the points of a layout, for messages.
std::string describe_points(Layout l);

}  // namespace wattpipe::acquire

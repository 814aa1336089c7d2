// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/point_source.hpp"

#include <fmt/format.h>

namespace wattpipe::acquire {

std::string describe_points(Layout l) {
  const Points p = points_of(l);
  std::string s;
  for (std::uint32_t k = 0; k < p.count; ++k)
    s += fmt::format("{}{} ({})", k ? ", " : "", p.part[k].name, layout_name(p.part[k].layout));
  return s;
}

PointSource::PointSource(std::unique_ptr<Source> inner, std::string point)
    : inner_(std::move(inner)), point_(std::move(point)) {}

ReadStatus PointSource::read(SampleBlock& out, std::chrono::nanoseconds timeout) {
  if (!reason_.empty()) return ReadStatus::end;
  const ReadStatus st = inner_->read(out, timeout);
  if (st != ReadStatus::ok) return st;
  const Points pts = points_of(out.layout);
  if (pts.count == 1 && point_.empty()) {  // one point: the block as it came
    out.has_ref_power = false;
    return ReadStatus::ok;
  }
  const PointPart* part = nullptr;
  for (std::uint32_t k = 0; k < pts.count; ++k)
    if (pts.count > 1 && pts.part[k].name == point_) part = &pts.part[k];
  if (part == nullptr) {
    reason_ = pts.count > 1 ? fmt::format("the stream ({}) carries {} measuring points: {}; choose one with --point",
                                          layout_name(out.layout), pts.count, describe_points(out.layout))
                            : fmt::format("--point {}: the stream ({}) has one measuring point; leave --point out",
                                          point_, layout_name(out.layout));
    return ReadStatus::end;
  }
  // The point's channels, compacted in place: frame f's n channels go to f * n,
  // never past where they were read (f * stride + first).
  const std::uint32_t stride = out.channels, n = layout_info(part->layout).channels;
  float* d = out.data.data();
  // The car side is measured against the grid side on the same samples: the
  // grid's instantaneous power goes along (efficiency and loss per window).
  out.has_ref_power = part->layout == Layout::dc && pts.part[0].layout == Layout::ac3n;
  if (out.has_ref_power) {
    const LayoutInfo g = layout_info(Layout::ac3n);
    for (std::uint32_t f = 0; f < out.frames; ++f) {
      const float* x = d + std::size_t{f} * stride;
      double p = 0;
      for (std::uint32_t k = 0; k < 3; ++k) p += double(x[g.u[k]]) * double(x[g.i[k]]);
      out.ref_power[f] = float(p);
    }
  }
  for (std::uint32_t f = 0; f < out.frames; ++f)
    for (std::uint32_t c = 0; c < n; ++c) d[std::size_t{f} * n + c] = d[std::size_t{f} * stride + part->first + c];
  out.layout = part->layout;
  out.channels = n;
  return ReadStatus::ok;
}

}  // namespace wattpipe::acquire

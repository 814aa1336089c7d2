// SPDX-License-Identifier: Apache-2.0
// Efficiency and loss of a point measured against another on the same
// samples (a charger's DC output against its grid input, AC3N_DC): the
// other point's energy along the stream, read at a window's exact
// (fractional) frame positions, and the efficiency map over the run.
//
// Threading: the processing thread only; a finished EfficiencyMap is read by
// the owner after join().
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/pipeline/window.hpp"

namespace wattpipe::pipeline {

class ReferenceEnergy {
 public:
  ReferenceEnergy();
  // Each block, in stream order, before the processor takes it.
  void feed(const acquire::SampleBlock& b);
  // The sum of the reference power over the frames before position x (W x
  // frames; x may be fractional: linear within the frame); nullopt when x
  // lies outside the last kFrames frames fed, or in a gap of the stream.
  [[nodiscard]] std::optional<double> at(double x) const;
  // at(x) in Wh (the sample rate of the last block fed).
  [[nodiscard]] std::optional<double> wh_at(double x) const {
    const auto v = at(x);
    return v && rate_hz_ > 0 ? std::optional<double>(*v / rate_hz_ / 3600) : std::nullopt;
  }

  static constexpr std::size_t kFrames = std::size_t{1} << 16;
  static constexpr std::size_t kGroup = 64;  // at() adds at most kGroup - 1 frames

 private:
  [[nodiscard]] bool holds(std::uint64_t frame) const noexcept;

  // By frame % kFrames; a frame costs 4 bytes as it goes by (the rest is per
  // kGroup frames, or written only at a run's start), so feeding stays in cache.
  std::vector<double> cum_;           // the sum before the frame, at the checkpoints of feed()
  std::vector<float> p_;              // the frame's power
  std::vector<std::uint64_t> base_;   // per group: the frame its first slot holds
  std::vector<std::uint64_t> fed_;    // per group: which of its frames were fed (a bit each)
  double total_ = 0, rate_hz_ = 0;
  std::uint64_t next_ = 0;
};

// Efficiency binned by output power: the energies in and out of the windows
// whose output power falls in each bin (charging windows, not partial ones).
class EfficiencyMap {
 public:
  explicit EfficiencyMap(double bin_w = 10e3) : bin_w_(bin_w) {}
  void add(double p_out_w, double e_in_wh, double e_out_wh);
  struct Bin {
    double p_lo_w, p_hi_w, e_in_wh, e_out_wh;
    std::uint64_t windows;
    [[nodiscard]] double efficiency() const { return e_in_wh > 0 ? e_out_wh / e_in_wh : 0; }
  };
  // The bins that hold a window, in order of power.
  [[nodiscard]] std::vector<Bin> bins() const;
  [[nodiscard]] double bin_w() const noexcept { return bin_w_; }

 private:
  friend struct EfficiencyMapView;
  double bin_w_;
  std::vector<Bin> bins_;  // index: floor(p_out / bin_w)
};

// The map as it stands, for the live page (a fixed size: it goes through a
// TripleBuffer): the first kBins bins, by output power, that hold a window.
struct EfficiencyMapView {
  // Processing thread: a copy of the map (no allocation).
  static constexpr std::size_t kBins = 64;
  std::array<EfficiencyMap::Bin, kBins> bin{};
  std::uint32_t count = 0;
  double bin_w = 0;
  void assign(const EfficiencyMap& m);
};

// A point measured against another (the car side, whose blocks carry the grid
// side's power): each window's input power, loss and efficiency on exactly
// its samples, and the map over the run.
class AgainstInput {
 public:
  explicit AgainstInput(double bin_w) : map_(bin_w) {}
  // Each block, in stream order, before the processor takes it.
  void feed(const acquire::SampleBlock& b) { ref_.feed(b); }
  // Each closed window: sets p_in_w, loss_w and efficiency (NaN where the
  // input is not known: lost frames, a gap) and bins a charging window.
  void on_window(WindowRecord& w);
  // The input's energy from the stream's start to a frame, Wh.
  [[nodiscard]] std::optional<double> input_wh_at(double frame) const { return ref_.wh_at(frame); }
  [[nodiscard]] const EfficiencyMap& map() const noexcept { return map_; }

 private:
  ReferenceEnergy ref_;
  double last_end_frame_ = -1, last_end_cum_ = 0;  // the previous window's end: adjacent windows share it
  EfficiencyMap map_;
};

}  // namespace wattpipe::pipeline

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/efficiency.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace wattpipe::pipeline {
namespace {
// Two frames per lane (GCC's vector types: SIMD wherever the target has it, 128 bits everywhere).
using f4 = float __attribute__((vector_size(16)));
using d2 = double __attribute__((vector_size(16)));
}  // namespace

ReferenceEnergy::ReferenceEnergy()
    : cum_(kFrames), p_(kFrames), base_(kFrames / kGroup, ~std::uint64_t{0}), fed_(kFrames / kGroup, 0) {}

void ReferenceEnergy::feed(const acquire::SampleBlock& b) {
  if (!b.has_ref_power) return;
  // Frames lost before this block carry no energy of their own: the sum goes on from where it was.
  std::uint64_t next = b.first_frame;
  double total = total_;
  rate_hz_ = b.sample_rate_hz;
  // Runs up to the next multiple of kGroup (kGroup divides kFrames: a run
  // never wraps), each summed in sixteen lanes: a frame-by-frame sum would
  // wait on the previous addition every frame.
  const std::uint32_t frames = b.frames;
  for (std::uint32_t f = 0; f < frames;) {
    const std::size_t k = next % kFrames, g = k / kGroup, off = next % kGroup;
    const auto run = std::uint32_t(std::min<std::uint64_t>(frames - f, kGroup - off));
    cum_[k] = total;  // the run's checkpoint
    if (base_[g] != next - off) base_[g] = next - off, fed_[g] = 0;  // the group's next lap
    fed_[g] |= (run == kGroup ? ~std::uint64_t{0} : ((std::uint64_t{1} << run) - 1)) << off;
    const float* p = b.ref_power.data() + f;
    std::memcpy(p_.data() + k, p, run * sizeof(float));
    d2 a[8] = {};  // eight independent sums of two frames each
    std::uint32_t j = 0;
    for (; j + 16 <= run; j += 16) {
      f4 v[4];
      std::memcpy(v, p + j, sizeof v);
      for (int m = 0; m < 4; ++m) {
        a[2 * m] += __builtin_convertvector(__builtin_shufflevector(v[m], v[m], 0, 1), d2);
        a[2 * m + 1] += __builtin_convertvector(__builtin_shufflevector(v[m], v[m], 2, 3), d2);
      }
    }
    double rest = 0;
    for (; j < run; ++j) rest += double(p[j]);
    const d2 sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    total += (sum[0] + sum[1]) + rest;
    f += run;
    next += run;
  }
  next_ = next;
  total_ = total;
}

bool ReferenceEnergy::holds(std::uint64_t n) const noexcept {
  const std::size_t g = (n % kFrames) / kGroup;
  return base_[g] == n - n % kGroup && ((fed_[g] >> (n % kGroup)) & 1) != 0;
}

std::optional<double> ReferenceEnergy::at(double x) const {
  if (!(x >= 0)) return std::nullopt;
  const auto n = static_cast<std::uint64_t>(std::floor(x));
  if (x == double(next_) && next_ > 0 && holds(n - 1)) return total_;  // the end of what was fed
  if (!holds(n)) return std::nullopt;
  // Back to n's checkpoint: a multiple of kGroup, or the first frame after a gap.
  std::uint64_t c = n;
  while (c % kGroup != 0 && holds(c - 1)) --c;
  double sum = cum_[c % kFrames];
  for (; c < n; ++c) sum += double(p_[c % kFrames]);
  return sum + (x - double(n)) * double(p_[n % kFrames]);
}

void AgainstInput::on_window(WindowRecord& w) {
  w.two_points = true;
  w.efficiency = w.p_in_w = w.loss_w = std::numeric_limits<double>::quiet_NaN();
  const std::optional<double> end = ref_.at(w.end_frame);
  const std::optional<double> start =
      std::abs(w.start_frame - last_end_frame_) < 1e-9 ? std::optional<double>(last_end_cum_) : ref_.at(w.start_frame);
  if (end) last_end_frame_ = w.end_frame, last_end_cum_ = *end;
  const double frames = w.end_frame - w.start_frame;
  if (!start || !end || !(frames > 0) || w.frames_dropped > 0) return;
  w.p_in_w = (*end - *start) / frames;
  w.loss_w = w.p_in_w - w.p_total_w;
  if (w.p_in_w > 0 && w.p_total_w >= 0) w.efficiency = w.p_total_w / w.p_in_w;      // charging
  else if (w.p_in_w < 0 && w.p_total_w < 0) w.efficiency = w.p_in_w / w.p_total_w;  // discharging
  if (w.p_in_w > 0 && w.p_total_w >= 0 && !w.partial) {
    const double hours = double(w.end_utc_ns - w.start_utc_ns) * 1e-9 / 3600;
    map_.add(w.p_total_w, w.p_in_w * hours, w.p_total_w * hours);
  }
}

void EfficiencyMap::add(double p_out_w, double e_in_wh, double e_out_wh) {
  if (!(p_out_w >= 0) || !std::isfinite(e_in_wh) || !std::isfinite(e_out_wh)) return;
  const auto k = static_cast<std::size_t>(p_out_w / bin_w_);
  if (k > 100000) return;
  if (bins_.size() <= k) {
    const std::size_t from = bins_.size();
    bins_.resize(k + 1);
    for (std::size_t j = from; j <= k; ++j) bins_[j] = Bin{double(j) * bin_w_, double(j + 1) * bin_w_, 0, 0, 0};
  }
  bins_[k].e_in_wh += e_in_wh;
  bins_[k].e_out_wh += e_out_wh;
  ++bins_[k].windows;
}

std::vector<EfficiencyMap::Bin> EfficiencyMap::bins() const {
  std::vector<Bin> out;
  for (const Bin& b : bins_)
    if (b.windows > 0) out.push_back(b);
  return out;
}

void EfficiencyMapView::assign(const EfficiencyMap& m) {
  count = 0;
  for (const EfficiencyMap::Bin& b : m.bins_)  // no allocation: the processing thread calls it
    if (b.windows > 0 && count < kBins) bin[count++] = b;
  bin_w = m.bin_w();
}

}  // namespace wattpipe::pipeline

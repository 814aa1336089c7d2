// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/efficiency.hpp"

#include <cmath>

namespace wattpipe::pipeline {

ReferenceEnergy::ReferenceEnergy() : cum_(kFrames), p_(kFrames), frame_(kFrames, ~std::uint64_t{0}) {}

void ReferenceEnergy::feed(const acquire::SampleBlock& b) {
  if (!b.has_ref_power) return;
  // Frames lost before this block carry no energy of their own: the sum goes on from where it was.
  next_ = b.first_frame;
  rate_hz_ = b.sample_rate_hz;
  for (std::uint32_t f = 0; f < b.frames; ++f, ++next_) {
    const std::size_t k = next_ % kFrames;
    cum_[k] = total_;
    p_[k] = b.ref_power[f];
    frame_[k] = next_;
    total_ += double(b.ref_power[f]);
  }
}

std::optional<double> ReferenceEnergy::at(double x) const {
  if (!(x >= 0)) return std::nullopt;
  const auto n = static_cast<std::uint64_t>(std::floor(x));
  if (x == double(next_) && next_ > 0 && frame_[(n - 1) % kFrames] == n - 1) return total_;  // the end of what was fed
  const std::size_t k = n % kFrames;
  if (frame_[k] != n) return std::nullopt;
  return cum_[k] + (x - double(n)) * double(p_[k]);
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

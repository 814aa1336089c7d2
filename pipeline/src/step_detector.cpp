// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/step_detector.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>

#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/pipeline/analysis.hpp"

namespace wattpipe::pipeline {

void StepDetector::configure(const StepConfig& cfg, double min_dt_s, bool uniform) {
  cfg_ = cfg;
  const double dt = std::max(min_dt_s, 1e-9);
  uniform_ = uniform;
  dt_ = dt;
  hold_n_ = std::max<std::uint64_t>(3, static_cast<std::uint64_t>(std::ceil(cfg_.hold_s / dt)));
  // The history holds the whole move: up to max_s to reach the band, twice
  // that to confirm it, the hold window and the approach before the trigger.
  // At most 2^21 samples (24 MiB), so the configuration cannot size memory
  // without bound: a longer max_s is shortened to what fits.
  constexpr std::uint64_t kMaxHistory = std::uint64_t{1} << 21;
  const std::uint64_t margin = 2 * hold_n_ + 16 + static_cast<std::uint64_t>(std::ceil(2 * cfg_.hold_s / dt));
  const double fits_s = double(kMaxHistory - std::min(kMaxHistory / 2, margin)) * dt / 3;
  cfg_.max_s = std::min(cfg_.max_s, fits_s);
  const auto need = static_cast<std::uint64_t>(std::ceil(3 * cfg_.max_s / dt)) + margin;
  const std::uint64_t cap = std::bit_ceil(std::min(need, kMaxHistory));
  if (x_.size() != cap) x_.assign(cap, 0.0f);
  const std::size_t t_cap = uniform_ ? 0 : cap;
  if (t_.size() != t_cap) t_.assign(t_cap, 0.0);
  mask_ = cap - 1;
  reset();
}

void StepDetector::reset() noexcept {
  n_ = 0;
  have_level_ = false;
  moving_ = false;
}

double StepDetector::cross(std::uint64_t i, double level) const noexcept {
  const double x0 = x_at(i), x1 = x_at(i + 1), t0 = t_at(i), t1 = t_at(i + 1);
  if (x1 == x0) return t1;
  return t0 + std::clamp((level - x0) / (x1 - x0), 0.0, 1.0) * (t1 - t0);
}

std::size_t StepDetector::push_quiet_run(const float* frames, unsigned channels, unsigned channel,
                                         std::size_t n) noexcept {
  if (!uniform_ || !have_level_ || moving_) return 0;
  // A block at a time: the kernels' set-up is then nothing; a sample that is
  // not quiet starts a move, so the samples before it go one by one only then.
  constexpr std::size_t kChunk = acquire::kBlockFrames;
  // Quiet is |x - level| <= threshold, which holds for every sample between
  // two that it holds for (x - level grows with x). The sum of squares
  // catches NaN and inf, which min/max can pass over.
  auto quiet = [&](double v) { return std::fabs(v - level_) <= cfg_.threshold; };
  std::size_t done = 0;
  while (done < n) {
    const std::size_t c = std::min(kChunk, n - done);
    const float* f = frames + done * channels;
    std::array<float, acquire::kMaxChannels> mn, mx;
    std::array<double, acquire::kMaxChannels> sq{};
    mn.fill(f[channel]), mx.fill(f[channel]);
    analysis::channel_minmax_sumsq(f, c, channels, mn.data(), mx.data(), sq.data());
    if (std::isfinite(sq[channel]) && quiet(mn[channel]) && quiet(mx[channel])) {
      // Into the history in at most two runs around its end.
      for (std::size_t k = 0; k < c;) {
        const std::size_t at = (n_ + k) & mask_, run = std::min(c - k, std::size_t(mask_ + 1 - at));
        const float* src = f + k * channels + channel;
        float* dst = x_.data() + at;
        if (channels == 2) {  // DC: a stride the compiler vectorizes
          for (std::size_t j = 0; j < run; ++j) dst[j] = src[2 * j];
        } else {
          for (std::size_t j = 0; j < run; ++j) dst[j] = src[j * channels];
        }
        k += run;
      }
      n_ += c;
      done += c;
      continue;
    }
    for (std::size_t k = 0; k < c; ++k, ++done) {
      const float v = f[k * channels + channel];
      if (!quiet(v)) return done;
      x_[n_++ & mask_] = v;
    }
  }
  return done;
}

bool StepDetector::push(double t_s, double x, StepResult& out) noexcept {
  if (!std::isfinite(x)) return false;
  x_[n_ & mask_] = static_cast<float>(x);
  if (!uniform_) t_[n_ & mask_] = t_s;
  if (n_ == 0) t_first_ = t_s;
  ++n_;
  if (!have_level_) {
    if (n_ >= hold_n_) {
      double s = 0;
      for (std::uint64_t i = n_ - hold_n_; i < n_; ++i) s += x_at(i);
      level_ = s / double(hold_n_);
      have_level_ = true;
    }
    return false;
  }
  if (!moving_) {
    if (std::fabs(x - level_) > cfg_.threshold) {
      moving_ = true;
      trigger_ = n_ - 1;
      t_candidate_ = -1;
    }
    return false;
  }
  // Moving: test for a settled level every few samples (the test costs hold_n_).
  const std::uint64_t after = n_ - trigger_;
  if (after < hold_n_ || (after % std::max<std::uint64_t>(1, hold_n_ / 8)) != 0) return false;
  return settled(out);
}

bool StepDetector::settled(StepResult& out) noexcept {
  double s = 0;
  for (std::uint64_t i = n_ - hold_n_; i < n_; ++i) s += x_at(i);
  const double m = s / double(hold_n_);
  double dev = 0;
  for (std::uint64_t i = n_ - hold_n_; i < n_; ++i) dev = std::max(dev, std::fabs(x_at(i) - m));
  const double step = m - level_, size = std::fabs(step);
  const double t_moving = t_at(n_ - 1) - t_at(trigger_);
  if (size <= cfg_.threshold) {
    // Back near the old level (a spike, or noise): no step.
    if (dev <= cfg_.band * cfg_.threshold) moving_ = false;
    if (t_moving > cfg_.max_s) moving_ = false, level_ = m;
    return false;
  }
  if (dev > cfg_.band * size) {
    t_candidate_ = -1;
    if (t_moving > cfg_.max_s) moving_ = false, level_ = m;  // a drift: the new level without an event
    return false;
  }
  const double t_now = t_at(n_ - 1);
  if (t_candidate_ < 0) t_candidate_ = t_now;
  if (t_now - t_candidate_ < std::max(cfg_.hold_s, 2 * (t_candidate_ - t_at(trigger_)))) return false;
  const double sg = step > 0 ? 1.0 : -1.0, band = cfg_.band * size;
  const std::uint64_t oldest = n_ > mask_ + 1 ? n_ - (mask_ + 1) : 0;
  // Start: the last sample within the old band before the trigger.
  std::uint64_t j = trigger_;
  while (j > oldest && sg * (x_at(j) - level_) > band) --j;
  out.from = level_;
  out.to = m;
  out.t_start_s = sg * (x_at(j) - level_) > band ? t_at(j) : cross(j, level_ + sg * band);
  auto first_past = [&](double frac) {
    const double lv = level_ + frac * step;
    for (std::uint64_t i = j; i + 1 < n_; ++i)
      if (sg * (x_at(i + 1) - lv) >= 0) return cross(i, lv);
    return t_at(n_ - 1);
  };
  out.t_10_s = first_past(0.1);
  out.rise_time_s = first_past(0.9) - out.t_10_s;
  // Settling: after the last sample outside the new band.
  double t_settle = out.t_start_s;
  double over = 0, slope = 0;
  for (std::uint64_t i = j; i + 1 < n_; ++i) {
    const double e = x_at(i) - m;
    if (std::fabs(e) > band) t_settle = cross(i, m + (e > 0 ? band : -band));
    over = std::max(over, sg * e);
  }
  // The steepest part may begin on the last sample inside the old band's edge.
  for (std::uint64_t i = j > oldest ? j - 1 : j; i + 1 < n_; ++i) {
    const double dt = t_at(i + 1) - t_at(i);
    if (dt > 0) slope = std::max(slope, sg * (x_at(i + 1) - x_at(i)) / dt);
  }
  out.settling_time_s = std::max(0.0, t_settle - out.t_start_s);
  out.overshoot_percent = 100 * over / size;
  out.max_slope_per_s = sg * slope;
  level_ = m;
  moving_ = false;
  return true;
}

}  // namespace wattpipe::pipeline

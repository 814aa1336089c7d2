// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/analyzer.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

#include "wattpipe/pipeline/analysis.hpp"
#include "wattpipe/pipeline/lane_fft.hpp"

namespace wattpipe::pipeline {
namespace {
constexpr double kAcAnalysisRate = 25600;  // h50 at 60 Hz is 3 kHz: 8.5 samples per period
constexpr double kLevelRate = 25600;       // most DC level samples per second for steps
constexpr double kInf = std::numeric_limits<float>::infinity();
// Longest window with a spectrum: 2^18 analysis samples (4 MiB per buffer).
// Longer ones (--window-ms in minutes, hundreds of cycles) get no spectrum,
// so the configuration cannot size the daemon's memory (docs/analysis.md).
constexpr std::size_t kMaxSpectrum = std::size_t{1} << 18;

}  // namespace

Analyzer::Analyzer(const AnalysisConfig& cfg, unsigned window_cycles, double nominal_hz, double window_ms)
    : cfg_(cfg), cycles_(std::max(1u, window_cycles)), nominal_hz_(nominal_hz), window_ms_(window_ms) {
  step_cfg_.threshold = cfg_.step_threshold_a;
  step_cfg_.band = cfg_.step_band_percent / 100;
  step_cfg_.hold_s = cfg_.step_hold_ms / 1000;
  step_cfg_.max_s = cfg_.step_max_s;
  mn_.fill(float(kInf));
  mx_.fill(float(-kInf));
}

Analyzer::~Analyzer() = default;

void Analyzer::begin(acquire::Layout l, double fs_hz, std::uint64_t first_frame) {
  if (!cfg_.enabled) return;
  layout_ = l;
  li_ = acquire::layout_info(l);
  fs_ = fs_hz;
  origin_ = first_frame;
  fed_end_ = double(first_frame);
  // Analysis rate: enough for the 50th harmonic (AC) or the highest ripple band edge (DC).
  double target = kAcAnalysisRate;
  if (li_.dc)
    for (const auto& [lo, hi] : cfg_.ripple_bands_hz)
      if (hi < fs_ / 2) target = std::max(target, hi / analysis::kDecimationPassBand);
  const unsigned d_all = fs_ >= 2 * target ? static_cast<unsigned>(fs_ / target) : 1u;
  const auto [d1, d2] = analysis::decimation_stages(d_all, li_.channels);
  const unsigned d = d1 * d2;
  if (d != d_ || d1 != d1_ || fir_.empty()) {
    fir1_ = analysis::boxcar3_fir(d1);
    fir_ = analysis::decimation_fir(d2);  // 16 d2 taps: an even number when d2 > 1
    fir_pairs_.resize(fir_.size() / 2);
    for (std::size_t j = 0; j < fir_pairs_.size(); ++j)
      fir_pairs_[j] = analysis::v4f{fir_[2 * j], fir_[2 * j], fir_[2 * j + 1], fir_[2 * j + 1]};
  }
  d_ = d;
  d1_ = d1;
  fs_a_ = fs_ / d_;
  const std::size_t taps = fir_.size(), taps1 = fir1_.size(), ch = li_.channels;
  // Stream position of a decimated sample: the first stage's centre, then the FIR's in its samples.
  const double delay = double(taps1 - 1) / 2 + double(d1) * double(taps - 1) / 2;
  lookahead_ = delay + 6.0 * d_ + 2;
  hist1_.resize(d1 > 1 ? (taps1 + d1 + acquire::kBlockFrames) * ch + analysis::kFirPadFloats : 0);
  hist_.resize((taps + d2 + acquire::kBlockFrames) * ch + analysis::kFirPadFloats);
  dec_out_.resize((acquire::kBlockFrames / d_ + 2) * ch);
  hist1_frames_ = next1_ = 0;
  hist_frames_ = 0;
  next_in_ = 0;
  dec_n_ = 0;
  dec_pos0_ = double(first_frame) + delay;
  t0_s_ = dec_pos0_ / fs_;
  dt_a_ = double(d_) / fs_;
  // Ring: the longest window, the look-ahead and a block; only the look-ahead
  // when the window is too long for a spectrum.
  const double window_a = li_.dc ? window_ms_ * fs_a_ / 1000 : 2.0 * cycles_ * fs_a_ / nominal_hz_;
  const std::size_t nb = std::size_t(cycles_) * kMaxHarmonic + 2;
  spectra_ = window_a + 2 <= double(kMaxSpectrum) && 2 * nb <= kMaxSpectrum;
  cap_ = std::bit_ceil(static_cast<std::uint64_t>((spectra_ ? 1.5 * window_a : 0.0) + lookahead_ +
                                                  acquire::kBlockFrames + 64));
  ring_.resize(cap_ * ch + analysis::kResamplePadFloats);
  // Spectra.
  if (spectra_ && li_.dc) {
    const std::size_t n = std::bit_ceil(std::max<std::size_t>(static_cast<std::size_t>(window_a) + 2, 4));
    if (n != n_dc_) fft_dc_ = std::make_unique<analysis::QuadFft>(n), n_dc_ = n;
    lre_.resize(std::max(lre_.size(), n / 4));
    lim_.resize(std::max(lim_.size(), n / 4));
    zf_.resize(n);
    hann_m_ = 0;
    pow_u_.resize(n / 2);
    pow_i_.resize(n / 2);
    hann_f_.resize(n);
    dc_win_.resize(2 * n);
  } else if (spectra_) {
    const std::size_t n = std::bit_ceil(2 * nb);
    if (n != n_ac_) fft_ac_ = std::make_unique<analysis::LaneFft>(n), n_ac_ = n;
    lre_.resize(std::max(lre_.size(), n));
    lim_.resize(std::max(lim_.size(), n));
    for (auto* b : {bins_u_, bins_i_})
      for (int k = 0; k < 3; ++k) b[k].resize(nb);
  }
  // Steps: DC on the current averaged to at most kLevelRate; AC on the
  // one-cycle RMS of each phase current, every half cycle.
  if (li_.dc) {
    level_group_ = std::max(1u, static_cast<unsigned>(std::lround(fs_a_ / kLevelRate)));
    dc_step_.configure(step_cfg_, level_group_ * dt_a_, /*uniform=*/true);
  } else {
    for (auto& s : ac_step_) s.configure(step_cfg_, 1.0 / (3 * nominal_hz_));
    half_len_ = fs_a_ / (2 * nominal_hz_);
    next_half_ = half_len_;
    sq_cur_ = sq_prev_ = {};
    n_cur_ = n_prev_ = 0;
  }
  level_count_ = 0;
  level_sum_ = 0;
}

void Analyzer::feed(const acquire::SampleBlock& b) noexcept {
  if (!cfg_.enabled || b.frames == 0 || ring_.empty() || b.layout != layout_ || b.sample_rate_hz != fs_) return;
  utc_ref_ns_ = b.t0_ns;
  frame_ref_ = b.first_frame;
  fed_end_ = double(b.first_frame + b.frames);
  const unsigned ch = li_.channels;
  if (d_ == 1) {
    store(b.data.data(), b.frames);
    return;
  }
  if (d1_ > 1) {
    // First stage: its outputs are the FIR's input.
    std::copy_n(b.data.data(), std::size_t(b.frames) * ch, hist1_.data() + hist1_frames_ * ch);
    hist1_frames_ += b.frames;
    const std::size_t taps1 = fir1_.size();
    for (; next1_ + taps1 <= hist1_frames_; next1_ += d1_, ++hist_frames_)
      analysis::fir_frames(hist1_.data() + next1_ * ch, ch, fir1_.data(), taps1, hist_.data() + hist_frames_ * ch);
    const std::size_t keep1 = hist1_frames_ - next1_;
    std::copy_n(hist1_.data() + next1_ * ch, keep1 * ch, hist1_.data());
    hist1_frames_ = keep1;
    next1_ = 0;
  } else {
    std::copy_n(b.data.data(), std::size_t(b.frames) * ch, hist_.data() + hist_frames_ * ch);
    hist_frames_ += b.frames;
  }
  const std::size_t taps = fir_.size(), d2 = d_ / d1_;
  std::size_t n = 0;
  while (next_in_ + taps <= hist_frames_) {
    const float* x = hist_.data() + next_in_ * ch;
    if (ch == 2) {
      // Two frames per vector against the taps in pairs (fir_pairs_).
      // Four accumulators: one would wait on the add's latency every tap.
      analysis::v4f acc4[4] = {};
      for (std::size_t j = 0; j < taps / 2; j += 4)  // taps / 2 = 8 d2: a multiple of 4
        for (unsigned a = 0; a < 4; ++a) {
          analysis::v4f xv;
          std::memcpy(&xv, x + 4 * (j + a), sizeof xv);
          acc4[a] += fir_pairs_[j + a] * xv;
        }
      const analysis::v4f acc = (acc4[0] + acc4[1]) + (acc4[2] + acc4[3]);
      dec_out_[2 * n] = acc[0] + acc[2];
      dec_out_[2 * n + 1] = acc[1] + acc[3];
    } else {
      analysis::fir_frames(x, ch, fir_.data(), taps, dec_out_.data() + n * ch);
    }
    ++n;
    next_in_ += d2;
  }
  store(dec_out_.data(), n);
  // Keep what the next outputs need.
  const std::size_t keep = hist_frames_ - next_in_;
  std::copy_n(hist_.data() + next_in_ * ch, keep * ch, hist_.data());
  hist_frames_ = keep;
  next_in_ = 0;
}

void Analyzer::store(const float* frames, std::size_t n) noexcept {
  // Into the ring, in at most two runs around its end.
  const std::size_t ch = li_.channels;
  for (std::size_t done = 0; done < n;) {
    const std::size_t at = (dec_n_ + done) & (cap_ - 1), run = std::min<std::size_t>(n - done, cap_ - at);
    std::copy_n(frames + done * ch, run * ch, ring_.data() + at * ch);
    done += run;
  }
  if (li_.dc) {
    dc_levels(frames, n);
  } else {
    ac_levels(frames, n);
  }
  dec_n_ += n;
}

void Analyzer::dc_levels(const float* frames, std::size_t n) noexcept {
  const unsigned ch = li_.channels, ic = li_.i[0];
  StepResult s;
  if (level_group_ == 1) {
    // A level per sample: runs of quiet ones at once, the others one by one.
    for (std::size_t f = dc_step_.push_quiet_run(frames, ch, ic, n); f < n;
         f += dc_step_.push_quiet_run(frames + f * ch, ch, ic, n - f)) {
      if (dc_step_.push(t0_s_ + double(dec_n_ + f) * dt_a_, frames[f * ch + ic], s)) step_found(s, 0);
      ++f;
    }
    return;
  }
  // The running group in locals: the loop then keeps them in registers.
  double sum = level_sum_;
  unsigned count = level_count_;
  for (std::size_t f = 0; f < n; ++f) {
    sum += frames[f * ch + ic];
    if (++count < level_group_) continue;
    const double level = sum / level_group_;
    sum = 0;
    count = 0;
    if (dc_step_.push_quiet(level)) continue;
    // The level sample sits at the middle of its group.
    const double t_mid = t0_s_ + (double(dec_n_ + f) - 0.5 * (level_group_ - 1)) * dt_a_;
    if (dc_step_.push(t_mid, level, s)) step_found(s, 0);
  }
  level_sum_ = sum;
  level_count_ = count;
}

void Analyzer::ac_levels(const float* frames, std::size_t n) noexcept {
  const unsigned ch = li_.channels, phases = li_.phases;
  StepResult s;
  for (std::size_t f = 0; f < n;) {
    // Squares up to the end of the half cycle (or of the frames).
    const double idx = double(dec_n_ + f);
    const auto to_end = static_cast<std::size_t>(std::max(1.0, std::ceil(next_half_ - idx)));
    const std::size_t run = std::min(n - f, to_end);
    double sq[acquire::kMaxChannels] = {};
    analysis::channel_sumsq(frames + f * ch, run, ch, sq);
    for (unsigned k = 0; k < phases; ++k) sq_cur_[k] += sq[li_.i[k]];
    n_cur_ += run;
    f += run;
    if (double(dec_n_ + f) < next_half_) break;
    if (n_prev_ > 0) {
      // One-cycle RMS over the last two half cycles, at the cycle's middle.
      const double t_mid = t0_s_ + (double(dec_n_ + f) - 1 - 0.5 * double(n_cur_ + n_prev_ - 1)) * dt_a_;
      for (unsigned k = 0; k < phases; ++k) {
        const double rms = std::sqrt((sq_cur_[k] + sq_prev_[k]) / double(n_cur_ + n_prev_));
        if (ac_step_[k].push(t_mid, rms, s)) step_found(s, std::uint8_t(k + 1));
      }
    }
    sq_prev_ = sq_cur_;
    n_prev_ = n_cur_;
    sq_cur_ = {};
    n_cur_ = 0;
    next_half_ += half_len_;
  }
}

std::int64_t Analyzer::utc_at_s(double t_s) const noexcept {
  return utc_ref_ns_ + std::llround((t_s * fs_ - double(frame_ref_)) * 1e9 / fs_);
}

void Analyzer::step_found(const StepResult& s, std::uint8_t phase) noexcept {
  if (n_pending_ == pending_.size()) {
    ++steps_dropped_;
    return;
  }
  StepEvent& e = pending_[n_pending_++];
  e = StepEvent{};
  e.t_start_utc_ns = utc_at_s(s.t_start_s);
  e.from_a = s.from;
  e.to_a = s.to;
  e.rise_time_ms = s.rise_time_s * 1e3;
  e.settling_time_ms = s.settling_time_s * 1e3;
  e.overshoot_percent = s.overshoot_percent;
  e.max_slope_a_per_s = s.max_slope_per_s;
  e.phase = phase;
  if (demand_ != nullptr) {
    const std::int64_t d = demand_->utc_ns.load(std::memory_order_acquire);
    const std::int64_t t10 = utc_at_s(s.t_10_s);
    // A demand change up to a minute before the response answers for it.
    if (d > 0 && d <= t10 && t10 - d < 60'000'000'000) e.delay_ms = double(t10 - d) / 1e6;
  }
}

void Analyzer::accumulate(const float* frames, std::size_t n, unsigned channels) noexcept {
  if (cfg_.enabled) analysis::channel_minmax(frames, n, channels, mn_.data(), mx_.data());
}

bool Analyzer::covered(double m_lo, double m_hi) const noexcept {
  const double oldest = dec_n_ > cap_ ? double(dec_n_ - cap_) : 0.0;
  return m_lo >= oldest && m_hi < double(dec_n_);
}

void Analyzer::close(acquire::Layout l, double fs_hz, double start, double end, bool whole_cycles,
                     WindowRecord& r) noexcept {
  WindowAnalysis& a = r.an;
  a.valid = cfg_.enabled;
  a.harmonics_valid = a.spectrum_valid = false;
  a.steps = 0;
  a.bands = a.i_peaks = a.u_peaks = 0;
  if (!cfg_.enabled) return;
  const auto li = acquire::layout_info(l);
  for (unsigned k = 0; k < 3; ++k) {
    const bool on = k < li.phases && mn_[li.u[k]] <= mx_[li.u[k]];
    a.u_min_v[k] = on ? mn_[li.u[k]] : 0.0;
    a.u_max_v[k] = on ? mx_[li.u[k]] : 0.0;
    a.i_min_a[k] = on ? mn_[li.i[k]] : 0.0;
    a.i_max_a[k] = on ? mx_[li.i[k]] : 0.0;
  }
  mn_.fill(float(kInf));
  mx_.fill(float(-kInf));
  a.steps = n_pending_;
  std::copy_n(pending_.begin(), n_pending_, a.step);
  n_pending_ = 0;
  const bool same_stream = spectra_ && l == layout_ && fs_hz == fs_ && start >= double(origin_) && end <= fed_end_;
  if (li.dc) {
    a.ripple_u_rms_v = analysis::ripple_rms(r.ph[0].urms_v, r.ph[0].u_mean_v);
    a.ripple_i_rms_a = analysis::ripple_rms(r.ph[0].irms_a, r.ph[0].i_mean_a);
    if (same_stream) ripple_spectrum(start, end, r);
    return;
  }
  for (unsigned k = 0; k < 3; ++k) {
    const double peak = std::max(std::fabs(a.i_min_a[k]), std::fabs(a.i_max_a[k]));
    a.crest_factor_i[k] = k < li.phases && r.ph[k].irms_a > 0 ? peak / r.ph[k].irms_a : 0.0;
  }
  if (whole_cycles && same_stream) harmonics(start, end, r);
  if (r.frequency_valid && r.frequency_hz > 0) half_len_ = fs_a_ / (2 * r.frequency_hz);
}

void Analyzer::harmonics(double start, double end, WindowRecord& r) noexcept {
  WindowAnalysis& a = r.an;
  const std::size_t n = n_ac_, nb = bins_u_[0].size();
  const double q0 = (start - dec_pos0_) / d_, q1 = (end - dec_pos0_) / d_;
  if (!covered(std::floor(q0) - 3, std::floor(q1) + 4)) return;
  // Resample the window's whole cycles to n points; phase k's U and I go
  // through lane k of one complex transform as z = u + j i.
  // Every layout has its U and I channels in a row from u[0] and i[0]; the
  // lanes past the phases carry neighbours nobody reads.
  analysis::lagrange8_resample(ring_.data(), cap_, li_.channels, q0, (q1 - q0) / double(n), n, li_.u[0], li_.i[0],
                               lre_.data(), lim_.data());
  fft_ac_->forward(lre_.data(), lim_.data());
  const unsigned phases = li_.phases;
  const double scale = std::numbers::sqrt2 / double(n);  // bin -> RMS phasor
  for (unsigned k = 0; k < phases; ++k) {
    for (std::size_t b = 1; b < nb; ++b) {
      // Separate the two real signals: U = (Z_b + conj Z_{n-b}) / 2, I = (Z_b - conj Z_{n-b}) / 2j.
      const double pr = lre_[b][k], pi = lim_[b][k], mr = lre_[n - b][k], mi = -lim_[n - b][k];
      bins_u_[k][b] = {0.5 * scale * (pr + mr), 0.5 * scale * (pi + mi)};
      bins_i_[k][b] = {0.5 * scale * (pi - mi), -0.5 * scale * (pr - mr)};
    }
    bins_u_[k][0] = bins_i_[k][0] = {};
    analysis::harmonic_subgroups(bins_u_[k], cycles_, a.harm_u_v[k]);
    analysis::harmonic_subgroups(bins_i_[k], cycles_, a.harm_i_a[k]);
    a.thd_u_percent[k] = analysis::thd_percent(a.harm_u_v[k]);
    a.thd_i_percent[k] = analysis::thd_percent(a.harm_i_a[k]);
  }
  // Phases relative to the U1 fundamental.
  for (unsigned k = 0; k < phases; ++k) {
    analysis::harmonic_phases_deg(bins_u_[k], cycles_, bins_u_[0][cycles_], a.harm_u_deg[k]);
    analysis::harmonic_phases_deg(bins_i_[k], cycles_, bins_u_[0][cycles_], a.harm_i_deg[k]);
  }
  if (phases == 3) {
    const auto ub = analysis::unbalance(bins_u_[0][cycles_], bins_u_[1][cycles_], bins_u_[2][cycles_]);
    a.unbalance_u2_percent = ub.u2_percent;
    a.unbalance_u0_percent = ub.u0_percent;
  }
  a.harmonics_valid = true;
}

void Analyzer::ripple_spectrum(double start, double end, WindowRecord& r) noexcept {
  WindowAnalysis& a = r.an;
  const std::size_t n = n_dc_, ch = li_.channels;
  const double m0 = std::ceil((start - dec_pos0_) / d_), m1 = std::ceil((end - dec_pos0_) / d_);
  const auto m = static_cast<std::size_t>(std::max(0.0, m1 - m0));
  if (m < 16 || m > n || !covered(m0, m1 - 1)) return;
  const auto first = static_cast<std::uint64_t>(m0);
  // The window's samples out of the ring in at most two runs (ch is 2 for DC).
  // A window that does not wrap around the ring's end is read where it is.
  const std::size_t at0 = first & (cap_ - 1), run = std::min(m, cap_ - at0);
  const float* x = ring_.data() + at0 * ch;
  if (run < m) {
    std::copy_n(ring_.data() + at0 * ch, run * ch, dc_win_.data());
    std::copy_n(ring_.data(), (m - run) * ch, dc_win_.data() + run * ch);
    x = dc_win_.data();
  }
  double sums[2];
  analysis::pair_sums(x, m, sums);
  const double su = sums[0], si = sums[1];
  const double mu = su / double(m), mi = si / double(m);
  // Hann over the m samples (cached: windows have the same length), zero-padded to n; U and I in one transform.
  if (hann_m_ != m) {
    hann_m_ = m;
    hann_sum_ = hann_sq_ = 0;
    for (std::size_t k = 0; k < m; ++k) {
      const double w = 0.5 - 0.5 * std::cos(2 * std::numbers::pi * (double(k) + 0.5) / double(m));
      hann_f_[k] = static_cast<float>(w);
      hann_sum_ += w, hann_sq_ += w * w;
    }
  }
  const double wsum = hann_sum_, w2sum = hann_sq_;
  // Sample j in lane j % 4 at j / 4 (QuadFft's order); U and I as z = u + j i.
  const auto fu = static_cast<float>(mu), fi = static_cast<float>(mi);
  const analysis::v4f fu4 = {fu, fu, fu, fu}, fi4 = {fi, fi, fi, fi};
  const std::size_t m4 = m & ~std::size_t{3};
  for (std::size_t k = 0; k < m4; k += 4) {
    analysis::v4f a, b, w;
    std::memcpy(&a, x + 2 * k, sizeof a);
    std::memcpy(&b, x + 2 * k + 4, sizeof b);
    const analysis::v4f u = __builtin_shufflevector(a, b, 0, 2, 4, 6), i = __builtin_shufflevector(a, b, 1, 3, 5, 7);
    std::memcpy(&w, hann_f_.data() + k, sizeof w);
    lre_[k >> 2] = (u - fu4) * w;
    lim_[k >> 2] = (i - fi4) * w;
  }
  for (std::size_t k = m4; k < n; ++k) {
    lre_[k >> 2][k & 3] = k < m ? (x[2 * k] - fu) * hann_f_[k] : 0.0f;
    lim_[k >> 2][k & 3] = k < m ? (x[2 * k + 1] - fi) * hann_f_[k] : 0.0f;
  }
  fft_dc_->forward(lre_.data(), lim_.data(), zf_.data());
  const double norm = 1.0 / (double(n) * w2sum);
  const std::size_t half = n / 2;
  analysis::split_power(zf_.data(), n, norm, pow_u_.data(), pow_i_.data());
  const double bin_hz = fs_a_ / double(n), nyquist = fs_ / 2;
  // Above the decimator's pass band only the total is known: the band that
  // reaches half the sample rate takes what the spectrum does not hold.
  const double f_use = d_ > 1 ? analysis::kDecimationPassBand * fs_a_ : nyquist;
  double rest_u = 0, rest_i = 0;
  if (f_use < nyquist) {
    const double below_u = analysis::band_rms(pow_u_, bin_hz, 0, f_use);
    const double below_i = analysis::band_rms(pow_i_, bin_hz, 0, f_use);
    rest_u = std::max(0.0, a.ripple_u_rms_v * a.ripple_u_rms_v - below_u * below_u);
    rest_i = std::max(0.0, a.ripple_i_rms_a * a.ripple_i_rms_a - below_i * below_i);
  }
  for (const auto& [lo, hi] : cfg_.ripple_bands_hz) {
    if (lo >= nyquist || a.bands == kMaxRippleBands) continue;
    RippleBand& b = a.band[a.bands++];
    b.f_lo_hz = lo;
    b.f_hi_hz = std::min(hi, nyquist);
    const double su = analysis::band_rms(pow_u_, bin_hz, lo, std::min(b.f_hi_hz, f_use));
    const double si = analysis::band_rms(pow_i_, bin_hz, lo, std::min(b.f_hi_hz, f_use));
    // (Every band edge below half the sample rate lies inside the pass band: begin() chose the rate so.)
    const bool to_top = b.f_hi_hz >= nyquist && f_use < nyquist;
    b.u_rms_v = std::sqrt(su * su + (to_top ? rest_u : 0.0));
    b.i_rms_a = std::sqrt(si * si + (to_top ? rest_i : 0.0));
  }
  const auto k_min = static_cast<std::size_t>(std::ceil(2.0 * double(n) / double(m))) + 1;
  const auto k_top = std::min(half, static_cast<std::size_t>(f_use / bin_hz));
  // A sine's peak from its bin: 2 |X| / sum(w), and |X| = sqrt(power / (2 norm)).
  const double amp = 2 / (wsum * std::sqrt(2 * norm));
  a.i_peaks = std::uint8_t(analysis::largest_peaks(std::span(pow_i_).first(k_top), bin_hz, amp, k_min, a.i_peak));
  a.u_peaks = std::uint8_t(analysis::largest_peaks(std::span(pow_u_).first(k_top), bin_hz, amp, k_min, a.u_peak));
  a.spectrum_valid = true;
}

}  // namespace wattpipe::pipeline

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/processor.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace wattpipe::pipeline {
namespace {
constexpr std::size_t kMaxBoundaries = 4096;
// The reference's turn per frame at frequency f, sampled at fs.
Phasor turn_per_frame(double f_hz, double fs_hz) {
  const double step = 2 * std::numbers::pi * f_hz / fs_hz;
  return {std::cos(step), std::sin(step)};
}
}  // namespace

Processor::Processor(const ProcessorConfig& cfg, WindowSink& sink, std::size_t max_pending)
    : cfg_(cfg),
      sink_(sink),
      pending_(std::max<std::size_t>(max_pending, 1)),
      bounds_(kMaxBoundaries),
      energy_(cfg.full_scale_v, cfg.full_scale_a),
      an_(cfg.analysis, cfg.window_cycles, cfg.nominal_hz, cfg.window_ms) {
  if (cfg_.window_cycles == 0) cfg_.window_cycles = 1;
}

void Processor::start_stream(const SampleBlock& b) {
  const bool new_rate = b.sample_rate_hz != fs_;
  layout_ = b.layout;
  li_ = acquire::layout_info(b.layout);
  fs_ = b.sample_rate_hz;
  if (new_rate || !started_) det_ = ZeroCrossingDetector(fs_, cfg_.nominal_hz);
  det_.reset(b.first_frame);
  an_.begin(b.layout, fs_, b.first_frame);
  // Accumulation stays behind detection, and behind the analysis look-ahead.
  lag_ = std::max(li_.dc ? 0.0 : 2.0 * det_.half_width() + 2, an_.enabled() ? an_.lookahead_frames() : 0.0);
  nominal_len_ = li_.dc ? cfg_.window_ms * fs_ / 1000.0 : cfg_.window_cycles * fs_ / cfg_.nominal_hz;
  nominal_len_ = std::max(nominal_len_, 2.0);
  period_ = fs_ / cfg_.nominal_hz;
  win_start_ = double(b.first_frame);
  locked_ = false;
  crossings_ = 0;
  next_pos_ = b.first_frame;
  for (std::size_t c = 0; c < li_.channels; ++c) delay_[c].reset(b.data[c]);
  // Calibration roles (AC3N order) onto this layout's channels.
  chan_cal_ = {};
  for (std::uint32_t k = 0; k < li_.phases; ++k) {
    chan_cal_[li_.u[k]] = cfg_.cal[k];
    chan_cal_[li_.i[k]] = cfg_.cal[4 + k];
  }
  if (li_.neutral) chan_cal_[li_.un] = cfg_.cal[3], chan_cal_[li_.in] = cfg_.cal[7];
  cal_active_ = false;
  for (const auto& c : chan_cal_) cal_active_ |= !c.identity();
  if (!started_) {
    acc_pos_ = double(b.first_frame);
    acc_win_start_ = acc_pos_;
    win_start_utc_ = b.t0_ns;
    acc_layout_ = b.layout;
    acc_fs_ = fs_;
    r_ = turn_per_frame(cfg_.nominal_hz, fs_);
  }
  started_ = true;
}

bool Processor::push(SampleBlock* b) {
  if (count_ == pending_.size()) return false;
  pending_[(head_ + count_) % pending_.size()] = b;
  ++count_;
  if (b->frames == 0) return true;  // passes through untouched
  if (!started_) {
    start_stream(*b);
  } else if (b->layout != layout_ || b->sample_rate_hz != fs_ || b->first_frame != next_pos_) {
    // Discontinuity (gap, new stream, new layout): close the open window where the data ended.
    if (double(next_pos_) > win_start_ + 1) emit(Boundary{double(next_pos_), false, false, 0});
    start_stream(*b);
  }
  calibrate(*b);
  an_.feed(*b);
  detect(*b);
  return true;
}

void Processor::calibrate(SampleBlock& b) {
  if (!cal_active_) return;
  const std::size_t ch = b.channels, n = b.frames;
  for (std::size_t c = 0; c < ch; ++c) {
    const ChannelCal& cal = chan_cal_[c];
    if (cal.identity()) continue;
    float* x = b.data.data() + c;
    if (cal.gain != 1 || cal.offset != 0) {
      const float g = static_cast<float>(cal.gain), o = static_cast<float>(cal.offset);
      for (std::size_t f = 0; f < n; ++f) x[f * ch] = g * x[f * ch] + o;
    }
    if (cal.delay_us != 0) delay_[c].apply(x, ch, n, cal.delay_us * 1e-6 * fs_);  // sampled late
  }
}

void Processor::detect(const SampleBlock& b) {
  next_pos_ = b.first_frame;
  if (li_.dc) {
    next_pos_ += b.frames;
    while (win_start_ + nominal_len_ <= double(next_pos_)) {
      win_start_ += nominal_len_;
      emit(Boundary{win_start_, false, false, 0});
    }
    return;
  }
  det_.set_hysteresis(std::max(0.35 * last_urms1_, std::numbers::sqrt2 * cfg_.min_voltage_v));
  det_.feed(b.data.data() + li_.u[0], b.channels, b.frames, [this](double t) { on_crossing(t); });
  next_pos_ += b.frames;
  check_timeouts();
}

void Processor::on_crossing(double t) {
  if (t < last_bound_ + 2 || t < acc_pos_) return;
  if (!locked_) {
    // First crossing after start or a dropout: close the unsynchronised window here.
    if (t > win_start_ + 2) emit(Boundary{t, false, false, 0});
    win_start_ = last_cross_ = t;
    locked_ = true;
    crossings_ = 0;
    return;
  }
  const double p = t - last_cross_;
  if (p < 0.5 * period_) return;  // a second crossing inside one cycle: noise
  if (p > 1.6 * period_) {
    // Cycles were missed: the window is not whole; restart the count here.
    emit(Boundary{t, false, false, 0});
    win_start_ = last_cross_ = t;
    crossings_ = 0;
    return;
  }
  period_ = p;
  last_cross_ = t;
  if (++crossings_ >= cfg_.window_cycles) {
    emit(Boundary{t, true, false, crossings_ * fs_ / (t - win_start_)});
    win_start_ = t;
    crossings_ = 0;
  }
}

void Processor::check_timeouts() {
  const double det = double(next_pos_);
  const double k = det_.half_width();
  if (locked_ && det > last_cross_ + 1.6 * period_ + k + 1) {
    // Voltage gone: end the window where it can still end, then nominal timing.
    const double b = std::max({last_cross_, acc_pos_, last_bound_ + 2});
    if (b > win_start_ + 1) {
      const bool whole = b == last_cross_ && crossings_ > 0;
      emit(Boundary{b, whole, false, whole ? crossings_ * fs_ / (b - win_start_) : 0.0});
      win_start_ = b;
    }
    locked_ = false;
    crossings_ = 0;
  }
  if (!locked_) {
    while (det >= win_start_ + nominal_len_ + k + 1) {
      win_start_ += nominal_len_;
      emit(Boundary{win_start_, false, true, 0});
    }
  }
}

void Processor::emit(Boundary b) {
  if (b_count_ == bounds_.size()) return;  // cannot happen while push/advance alternate
  bounds_[(b_head_ + b_count_) % bounds_.size()] = b;
  ++b_count_;
  last_bound_ = b.pos;
}

std::size_t Processor::advance() { return accumulate_until(double(next_pos_) - lag_); }

std::size_t Processor::flush() {
  const std::size_t done = accumulate_until(1e300);
  if (sums_.w > 0) close_window(Boundary{acc_pos_, false, false, 0});
  return done;
}

void Processor::enter_block(const SampleBlock& b) {
  if (double(b.first_frame) != acc_pos_ || b.layout != acc_layout_ || b.sample_rate_hz != acc_fs_) {
    // Close what ended at the discontinuity, with the old layout and rate.
    while (b_count_ > 0 && bounds_[b_head_].pos <= acc_pos_ + 0.5) {
      if (sums_.w > 0) close_window(bounds_[b_head_]);
      b_head_ = (b_head_ + 1) % bounds_.size();
      --b_count_;
    }
    if (sums_.w > 0) close_window(Boundary{acc_pos_, false, false, 0});
    acc_pos_ = acc_win_start_ = double(b.first_frame);
    win_start_utc_ = b.t0_ns;
    acc_layout_ = b.layout;
    if (b.sample_rate_hz != acc_fs_) {
      acc_fs_ = b.sample_rate_hz;
      r_ = turn_per_frame(cfg_.nominal_hz, acc_fs_);
    }
  }
  utc_ref_ns_ = b.t0_ns;
  frame_ref_ = b.first_frame;
  clock_synced_ = b.clock_synced;
  win_lost_ += b.lost_frames;
}

std::size_t Processor::accumulate_until(double horizon) {
  std::size_t done = 0;
  while (count_ > 0) {
    SampleBlock& b = *pending_[head_];
    if (b.frames > 0 && !entered_) {
      enter_block(b);
      entered_ = true;
    }
    const double first = double(b.first_frame);
    std::size_t e = b.frames;
    if (horizon < first + double(e)) e = horizon > first + double(acc_off_) ? std::size_t(horizon - first) : acc_off_;
    if (e > acc_off_) accumulate_range(b, acc_off_, e);
    acc_off_ = std::max(acc_off_, e);
    if (acc_off_ < b.frames) break;
    frames_done_ += b.frames;
    head_ = (head_ + 1) % pending_.size();
    --count_;
    acc_off_ = 0;
    entered_ = false;
    ++done;
  }
  return done;
}

void Processor::accumulate_range(const SampleBlock& b, std::size_t a, std::size_t e) {
  const float* base = b.data.data();
  const std::size_t ch = b.channels;
  const bool dc = acquire::layout_info(b.layout).dc;
  const Phasor r = r_;  // z_: the reference at the next frame to accumulate
  auto run = [&](std::size_t from, std::size_t to) {
    if (to > from) {
      accumulate(b.layout, base + from * ch, to - from, z_, r, sums_);
      an_.accumulate(base + from * ch, to - from, unsigned(ch));
    }
  };
  const double first = double(b.first_frame);
  std::size_t k = a;
  while (k < e) {
    if (b_count_ == 0) {
      run(k, e);
      break;
    }
    const Boundary bd = bounds_[b_head_];
    // Frame m spans [m - 0.5, m + 0.5): the boundary splits it by weight.
    const double mabs = std::floor(bd.pos + 0.5);
    if (mabs >= first + double(e)) {
      run(k, e);
      break;
    }
    const bool past = mabs < first + double(k);
    const std::size_t m = past ? k : std::size_t(mabs - first);
    run(k, m);
    const double w1 = past ? 0.0 : std::clamp(bd.pos - (mabs - 0.5), 0.0, 1.0);
    const double c = dc ? 0.0 : z_.c, s = dc ? 0.0 : z_.s;
    if (w1 > 0) {
      accumulate_one(b.layout, base + m * ch, c, s, w1, sums_);
      an_.accumulate(base + m * ch, 1, unsigned(ch));  // a split frame counts in both windows' extremes
    }
    acc_pos_ = first + double(m);
    b_head_ = (b_head_ + 1) % bounds_.size();
    --b_count_;
    close_window(bd);
    if (w1 < 1) {
      accumulate_one(b.layout, base + m * ch, c, s, 1.0 - w1, sums_);
      an_.accumulate(base + m * ch, 1, unsigned(ch));
    }
    if (!dc) z_ = Phasor{c * r.c - s * r.s, c * r.s + s * r.c};
    k = m + 1;
  }
  if (!dc) {
    const double norm = 1.0 / std::sqrt(z_.c * z_.c + z_.s * z_.s);  // |z| ~ 1: no overflow to guard against
    z_.c *= norm, z_.s *= norm;
  }
  acc_pos_ = first + double(e);
}

std::int64_t Processor::utc_at(double pos) const noexcept {
  if (acc_fs_ <= 0) return utc_ref_ns_;
  return utc_ref_ns_ + std::llround((pos - double(frame_ref_)) * 1e9 / acc_fs_);
}

legal::EnergyIntegrator::Segment Processor::segment() const noexcept {
  const auto ps = phase_sums(acc_layout_, sums_);
  legal::EnergyIntegrator::Segment g;
  g.phases = acquire::layout_info(acc_layout_).phases;
  for (unsigned k = 0; k < 3; ++k) g.sui[k] = ps[k].sui;
  g.frames = sums_.w;
  g.fs_hz = acc_fs_;
  return g;
}

void Processor::close_window(const Boundary& bd) {
  WindowRecord& r = rec_;
  r.seq = win_seq_++;
  r.start_frame = acc_win_start_;
  r.end_frame = bd.pos;
  r.start_utc_ns = win_start_utc_;
  r.end_utc_ns = utc_at(bd.pos);
  compute_values(acc_layout_, sums_, acc_fs_, r, cfg_.min_voltage_v);
  r.whole_cycles = bd.whole_cycles;
  r.nominal_timing = bd.nominal;
  r.frequency_valid = bd.frequency_hz > 0 && std::isfinite(bd.frequency_hz);
  r.frequency_hz = r.frequency_valid ? bd.frequency_hz : 0.0;
  // Bounded by a crossing on one side only (stream start or end, a gap, a
  // lost lock): a fraction of a cycle makes RMS and power values meaningless.
  r.partial = !r.dc && !r.whole_cycles && !r.nominal_timing;
  r.frames_dropped = win_lost_;
  r.clock_synced = clock_synced_;
  const legal::AddResult booked = energy_.close(segment());
  r.energy_refused = booked == legal::AddResult::refused;
  r.register_saturated = booked == legal::AddResult::saturated;
  r.registers = energy_.registers();
  r.closed_steady_ns = 0;
  an_.close(acc_layout_, acc_fs_, r.start_frame, r.end_frame, r.whole_cycles, r);
  // The next window starts before the sink runs: a sink that asks for
  // folded_registers() must not see this window's energy twice.
  sums_.clear();
  win_lost_ = 0;
  acc_win_start_ = bd.pos;
  win_start_utc_ = r.end_utc_ns;
  last_urms1_ = r.ph[0].urms_v;
  if (r.frequency_valid) {
    r_ = turn_per_frame(r.frequency_hz, acc_fs_);
  }
  sink_.on_window(r);
}

Reading Processor::commit() {
  energy_.commit(segment());
  return Reading{energy_.registers(), utc_at(acc_pos_), clock_synced_, acquire::layout_info(acc_layout_).dc,
                 static_cast<std::uint64_t>(acc_pos_)};
}

Registers Processor::folded_registers() const { return energy_.folded(segment()); }

}  // namespace wattpipe::pipeline

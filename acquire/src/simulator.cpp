// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/simulator.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <numbers>

#include "wattpipe/acquire/clock.hpp"

namespace wattpipe::acquire {
namespace {
constexpr double kTwoPi = 2 * std::numbers::pi;
constexpr double kSqrt2 = std::numbers::sqrt2;
constexpr double kDeg = std::numbers::pi / 180;
}  // namespace

double Ramp::at(double t_s) const noexcept {
  if (points.empty()) return 0;
  const double period = points.back().first;
  if (period > 0) t_s = std::fmod(t_s, period);
  if (t_s <= points.front().first) return points.front().second;
  for (std::size_t k = 1; k < points.size(); ++k) {
    const auto& [t1, v1] = points[k];
    if (t_s < t1) {
      const auto& [t0, v0] = points[k - 1];
      return t1 > t0 ? v0 + (v1 - v0) * (t_s - t0) / (t1 - t0) : v1;
    }
  }
  return points.back().second;
}

std::string_view sim_profile_names() noexcept { return "ac3, ac1, dc, dc-session, charger"; }

std::optional<SimConfig> sim_profile(std::string_view name, double sample_rate_hz, double session_s) {
  SimConfig c;
  c.sample_rate_hz = sample_rate_hz;
  if (name == "ac3") {
    c.layout = Layout::ac3n;
  } else if (name == "ac1") {
    c.layout = Layout::ac1;
  } else if (name == "dc") {
    c.layout = Layout::dc;
    c.dc_voltage_v = 800;
    c.dc_current_a = 200;
  } else if (name == "dc-session" || name == "charger") {
    // Compressed DC fast-charging session, as fractions of session_s:
    // current ramps to 500 A, reverses briefly (export), tapers at the end;
    // voltage follows state of charge from 400 V to 800 V.
    c.layout = Layout::dc;
    const double d = session_s;
    c.dc_voltage_ramp.points = {{0, 400}, {d, 800}};
    // Demand steps 500 -> 300 -> 500 A at 0.20 d and 0.25 d.
    c.dc_current_ramp.points = {{0, 0},           {0.05 * d, 500},         {0.20 * d, 500}, {0.20 * d + 1e-3, 300},
                                {0.25 * d, 300},  {0.25 * d + 1e-3, 500},  {0.40 * d, 500}, {0.41 * d, -150},
                                {0.45 * d, -150}, {0.46 * d, 500},         {0.70 * d, 500}, {0.97 * d, 40},
                                {d, 0}};
    // Ripple of a six-pulse rectifier and a switching stage, and the loop's response.
    c.dc_u_ripple = {{300, 2.0, 0}, {600, 0.8, 30}};
    c.dc_i_ripple = {{300, 3.0, 20}, {2000, 1.0, 0}};
    c.dc_i_response = {2, 4, 0.6};
    if (name == "charger") {
      // The same session behind a three-phase input: 230 V, cos phi 0.99, the
      // current harmonics of a six-pulse front end; 100 A at 68 kW of grid power.
      c.layout = Layout::ac3n_dc;
      for (auto& p : c.phases) p = SimPhase{230, 100, 8.11};
      c.i_harmonics = {{5, 4.0, 0}, {7, 2.5, 0}, {11, 1.2, 0}, {13, 0.8, 0}};
      c.u_harmonics = {{5, 1.5, 0}};
      c.un_rms_v = 0.5;
    }
  } else {
    return std::nullopt;
  }
  return c;
}

Simulator::Simulator(const SimConfig& cfg) : cfg_(cfg), li_(layout_info(cfg.layout)), rng_(cfg.seed) {
  if (cfg.layout == Layout::ac3n_dc) {
    SimConfig g = cfg, d = cfg;
    g.layout = Layout::ac3n;
    d.layout = Layout::dc;
    d.seed = cfg.seed + 1;
    grid_ = std::make_unique<Simulator>(g);
    car_ = std::make_unique<Simulator>(d);
    part_ = std::make_unique<SampleBlock>();
    if (!(cfg_.charger_nominal_w > 0))
      for (std::uint32_t k = 0; k < 3; ++k)
        cfg_.charger_nominal_w += cfg.phases[k].urms_v * cfg.phases[k].irms_a * std::cos(cfg.phases[k].phi_deg * kDeg);
    return;
  }
  if (li_.dc) {
    offset_[0] = cfg.u_offset_v;
    offset_[1] = cfg.i_offset_a;
    noise_[0] = cfg.u_noise_v;
    noise_[1] = cfg.i_noise_a;
  } else {
    // One term per harmonic order; fundamental first.
    std::vector<int> orders{1};
    for (const auto* hs : {&cfg.u_harmonics, &cfg.i_harmonics})
      for (const auto& h : *hs)
        if (h.order > 1 && std::find(orders.begin(), orders.end(), h.order) == orders.end()) orders.push_back(h.order);
    std::sort(orders.begin(), orders.end());
    for (int h : orders) terms_.push_back(Term{h, {}, {}});

    auto add = [&](int ch, int order, double amp_peak, double angle) {
      for (auto& t : terms_)
        if (t.order == order) {
          t.c[ch] += amp_peak * std::sin(angle);
          t.s[ch] += amp_peak * std::cos(angle);
        }
    };
    for (std::uint32_t k = 0; k < li_.phases; ++k) {
      const SimPhase& p = cfg.phases[k];
      const double alpha = (cfg.counter_clockwise ? 1.0 : -1.0) * k * kTwoPi / 3;
      const double psi = alpha - p.phi_deg * kDeg;
      const double up = kSqrt2 * p.urms_v, ip = kSqrt2 * p.irms_a;
      add(li_.u[k], 1, up, alpha);
      add(li_.i[k], 1, ip, psi);
      for (const auto& h : cfg.u_harmonics) add(li_.u[k], h.order, up * h.percent / 100, h.order * alpha + h.phase_deg * kDeg);
      for (const auto& h : cfg.i_harmonics) add(li_.i[k], h.order, ip * h.percent / 100, h.order * psi + h.phase_deg * kDeg);
      offset_[li_.u[k]] = cfg.u_offset_v;
      offset_[li_.i[k]] = cfg.i_offset_a;
      noise_[li_.u[k]] = cfg.u_noise_v;
      noise_[li_.i[k]] = cfg.i_noise_a;
    }
    if (li_.neutral) {
      add(li_.un, 1, kSqrt2 * cfg.un_rms_v, 0);
      // IN = I1 + I2 + I3 (the return current), term by term.
      for (auto& t : terms_) {
        for (std::uint32_t k = 0; k < li_.phases; ++k) {
          t.c[li_.in] += t.c[li_.i[k]];
          t.s[li_.in] += t.s[li_.i[k]];
        }
      }
    }
  }
  for (double n : noise_) any_noise_ |= n > 0;
  for (auto [osc, ts] : {std::pair{&osc_u_, &cfg_.dc_u_ripple}, std::pair{&osc_i_, &cfg_.dc_i_ripple}})
    for (const Tone& x : *ts) {
      const double w = kTwoPi * x.f_hz / cfg_.sample_rate_hz;
      osc->push_back({x.amplitude, 1, 0, std::cos(w), std::sin(w)});
    }
}

PeakBound Simulator::peak_bound() const noexcept {
  if (grid_ || any_noise_ || cfg_.dc_i_response.order > 0) return {};
  // Each channel is a sum of sinusoids (or ramp and tones) and an offset: the
  // sum of their amplitudes bounds it. The slack covers the rounding of the
  // phasors and of the conversion to float (both far below 1e-6).
  constexpr double kSlack = 1 + 1e-6;
  PeakBound b{0, 0};
  auto widen = [&](std::uint32_t c, double peak) {
    double& x = is_voltage(cfg_.layout, c) ? b.v : b.a;
    x = std::max(x, peak * kSlack);
  };
  if (li_.dc) {
    auto level = [](double constant, const Ramp& r) {
      double m = std::abs(constant);
      if (!r.points.empty()) {
        m = 0;
        for (const auto& pt : r.points) m = std::max(m, std::abs(pt.second));
      }
      return m;
    };
    auto tones = [](const std::vector<Tone>& ts) {
      double m = 0;
      for (const Tone& t : ts) m += std::abs(t.amplitude);
      return m;
    };
    widen(0, level(cfg_.dc_voltage_v, cfg_.dc_voltage_ramp) + tones(cfg_.dc_u_ripple) + std::abs(offset_[0]));
    widen(1, level(cfg_.dc_current_a, cfg_.dc_current_ramp) + tones(cfg_.dc_i_ripple) + std::abs(offset_[1]));
    return b;
  }
  for (std::uint32_t c = 0; c < li_.channels; ++c) {
    double peak = std::abs(offset_[c]);
    for (const Term& t : terms_) peak += std::hypot(t.c[c], t.s[c]);
    widen(c, peak);
  }
  return b;
}

long double Simulator::cycles_at(std::uint64_t n) const noexcept {
  const long double t = static_cast<long double>(n) / cfg_.sample_rate_hz;
  const long double f0 = cfg_.frequency_hz;
  if (cfg_.freq_end_hz > 0 && cfg_.freq_ramp_s > 0) {
    const long double T = cfg_.freq_ramp_s;
    const long double k = (cfg_.freq_end_hz - f0) / T;
    if (t <= T) return f0 * t + k * t * t / 2;
    return f0 * T + k * T * T / 2 + cfg_.freq_end_hz * (t - T);
  }
  return f0 * t;
}

double Simulator::gaussian() noexcept {
  // Marsaglia polar method: exact Gaussian, no trigonometry.
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  double x, y, s;
  do {
    x = double(rng_() >> 11) * 0x1.0p-52 - 1.0;
    y = double(rng_() >> 11) * 0x1.0p-52 - 1.0;
    s = x * x + y * y;
  } while (s >= 1.0 || s == 0.0);
  const double m = std::sqrt(-2.0 * std::log(s) / s);
  spare_ = y * m;
  have_spare_ = true;
  return x * m;
}

void Simulator::generate(SampleBlock& b, std::uint32_t frames) {
  frames = std::min<std::uint32_t>(frames, kBlockFrames);
  b.layout = cfg_.layout;
  b.channels = li_.channels;
  b.frames = frames;
  b.first_frame = next_frame_;
  b.sample_rate_hz = cfg_.sample_rate_hz;
  b.t0_ns = cfg_.start_utc_ns + static_cast<std::int64_t>(std::llround(double(next_frame_) * 1e9 / cfg_.sample_rate_hz));
  b.clock_synced = false;
  b.lost_frames = 0;
  if (grid_) {
    generate_charger(b, frames);
    next_frame_ += frames;
    return;
  }
  if (li_.dc) {
    generate_dc(b, frames);
  } else {
    generate_ac(b, frames);
  }
  if (any_noise_) {
    for (std::uint32_t f = 0; f < frames; ++f) {
      float* x = b.frame(f);
      for (std::uint32_t c = 0; c < li_.channels; ++c)
        if (noise_[c] > 0) x[c] += static_cast<float>(noise_[c] * gaussian());
    }
  }
  next_frame_ += frames;
}

void Simulator::seed(std::vector<Oscillator>& osc, const std::vector<Tone>& ts) const noexcept {
  for (std::size_t k = 0; k < ts.size(); ++k) {
    // Exact phase at the block's first frame (long double, once per block).
    const long double cyc = static_cast<long double>(next_frame_) * ts[k].f_hz / cfg_.sample_rate_hz;
    const double a = kTwoPi * static_cast<double>(cyc - std::floor(cyc)) + ts[k].phase_deg * kDeg;
    osc[k].c = std::cos(a);
    osc[k].s = std::sin(a);
  }
}

double Simulator::step(std::vector<Oscillator>& osc) noexcept {
  double v = 0;
  for (auto& o : osc) {
    v += o.amp * o.s;
    const double c = o.c * o.rc - o.s * o.rs;
    o.s = o.s * o.rc + o.c * o.rs;
    o.c = c;
  }
  return v;
}

void Simulator::generate_dc(SampleBlock& b, std::uint32_t frames) {
  const bool ramps = !cfg_.dc_voltage_ramp.points.empty() || !cfg_.dc_current_ramp.points.empty();
  const bool extras = !cfg_.dc_u_ripple.empty() || !cfg_.dc_i_ripple.empty() || cfg_.dc_i_response.order > 0;
  const double dt = 1.0 / cfg_.sample_rate_hz;
  const StepResponse& r = cfg_.dc_i_response;
  const double tau = std::max(r.tau_ms, 1e-3) / 1000, k1 = 1 - std::exp(-dt / tau);
  seed(osc_u_, cfg_.dc_u_ripple);
  seed(osc_i_, cfg_.dc_i_ripple);
  for (std::uint32_t f = 0; f < frames; ++f) {
    double u = cfg_.dc_voltage_v, i = cfg_.dc_current_a;
    const double t = double(next_frame_ + f) * dt;
    if (ramps) {
      if (!cfg_.dc_voltage_ramp.points.empty()) u = cfg_.dc_voltage_ramp.at(t);
      if (!cfg_.dc_current_ramp.points.empty()) i = cfg_.dc_current_ramp.at(t);
    }
    if (extras) {
      if (r.order > 0) {
        if (!resp_started_) resp_y_ = i, resp_v_ = 0, resp_started_ = true;
        if (r.order == 1) {
          resp_y_ += k1 * (i - resp_y_);
        } else {
          // y'' = wn^2 (x - y) - 2 zeta wn y', semi-implicit Euler (dt << tau).
          const double wn = 1 / tau;
          resp_v_ += (wn * wn * (i - resp_y_) - 2 * r.damping * wn * resp_v_) * dt;
          resp_y_ += resp_v_ * dt;
        }
        i = resp_y_;
      }
      u += step(osc_u_);
      i += step(osc_i_);
    }
    float* x = b.frame(f);
    x[0] = static_cast<float>(u + offset_[0]);
    x[1] = static_cast<float>(i + offset_[1]);
  }
}

// The output first: its mean power over the block sets the input's current.
void Simulator::generate_charger(SampleBlock& b, std::uint32_t frames) {
  car_->generate(*part_, frames);
  double p_dc = 0;
  for (std::uint32_t f = 0; f < frames; ++f) {
    const float* x = part_->frame(f);
    b.frame(f)[8] = x[0];
    b.frame(f)[9] = x[1];
    p_dc += double(x[0]) * double(x[1]);
  }
  p_dc /= std::max<std::uint32_t>(frames, 1);
  const double p_grid = p_dc + cfg_.charger_no_load_w + cfg_.charger_loss_per_w2 * p_dc * p_dc;
  const auto scale = static_cast<float>(p_grid / cfg_.charger_nominal_w);
  grid_->generate(*part_, frames);
  for (std::uint32_t f = 0; f < frames; ++f) {
    const float* x = part_->frame(f);
    float* y = b.frame(f);
    for (std::uint32_t c = 0; c < 4; ++c) y[c] = x[c];
    for (std::uint32_t c = 4; c < 8; ++c) y[c] = x[c] * scale;  // I1..I3, IN
  }
}

void Simulator::generate_ac(SampleBlock& b, std::uint32_t frames) {
  const std::uint32_t ch = li_.channels;
  const std::uint64_t n0 = next_frame_;
  // Exact phase at the block start; within the block a rotating phasor.
  const long double cyc0 = cycles_at(n0);
  const double frac0 = static_cast<double>(cyc0 - std::floor(cyc0));
  double zc = std::cos(kTwoPi * frac0), zs = std::sin(kTwoPi * frac0);
  // Per-sample rotation; with a frequency ramp it turns itself (a chirp).
  const long double cyc1 = cycles_at(n0 + 1);
  const double d0 = kTwoPi * static_cast<double>(cyc1 - cyc0);
  double rc = std::cos(d0), rs = std::sin(d0);
  double qc = 1, qs = 0;
  const bool chirp = cfg_.freq_end_hz > 0 && cfg_.freq_ramp_s > 0;
  if (chirp) {
    const double dd = kTwoPi * static_cast<double>(cycles_at(n0 + 2) - 2 * cyc1 + cyc0);
    qc = std::cos(dd);
    qs = std::sin(dd);
  }
  const double ramp_end_frame = chirp ? cfg_.freq_ramp_s * cfg_.sample_rate_hz : 0;

  const std::size_t nt = terms_.size();
  double hc[16], hs[16];  // cos/sin of h*theta per term
  const int max_order = [&] {
    int m = 1;
    for (const auto& t : terms_) m = std::max(m, t.order);
    return m;
  }();
  for (std::uint32_t f = 0; f < frames; ++f) {
    float* x = b.frame(f);
    if (nt == 1) {
      const Term& t = terms_[0];
      for (std::uint32_t c = 0; c < ch; ++c) x[c] = static_cast<float>(t.c[c] * zc + t.s[c] * zs + offset_[c]);
    } else {
      // Powers of the fundamental phasor give every harmonic's phasor.
      double pc = zc, ps = zs;
      int have = 1;
      for (std::size_t k = 0; k < nt && k < 16; ++k) {
        const int h = terms_[k].order;
        while (have < h && have < max_order) {
          const double nc = pc * zc - ps * zs;
          ps = pc * zs + ps * zc;
          pc = nc;
          ++have;
        }
        hc[k] = pc;
        hs[k] = ps;
      }
      for (std::uint32_t c = 0; c < ch; ++c) {
        double v = offset_[c];
        for (std::size_t k = 0; k < nt; ++k) v += terms_[k].c[c] * hc[k] + terms_[k].s[c] * hs[k];
        x[c] = static_cast<float>(v);
      }
    }
    // Advance theta by the current step; a chirp also turns the step.
    const double nc = zc * rc - zs * rs;
    zs = zc * rs + zs * rc;
    zc = nc;
    if (chirp && double(n0 + f + 1) < ramp_end_frame) {
      const double nrc = rc * qc - rs * qs;
      rs = rc * qs + rs * qc;
      rc = nrc;
    } else if (chirp) {
      const double d = kTwoPi * cfg_.freq_end_hz / cfg_.sample_rate_hz;
      rc = std::cos(d);
      rs = std::sin(d);
    }
  }
  if (cfg_.dropout_s > 0 && cfg_.dropout_start_s >= 0) {
    const double a = cfg_.dropout_start_s * cfg_.sample_rate_hz;
    const double e = (cfg_.dropout_start_s + cfg_.dropout_s) * cfg_.sample_rate_hz;
    for (std::uint32_t f = 0; f < frames; ++f) {
      const double n = double(n0 + f);
      if (n < a || n >= e) continue;
      float* x = b.frame(f);
      for (std::uint32_t k = 0; k < li_.phases; ++k) x[li_.u[k]] = 0;
      if (li_.neutral) x[li_.un] = 0;
    }
  }
}

SimSource::SimSource(const SimConfig& cfg, bool max_rate, std::uint32_t block_frames)
    : sim_(cfg), max_rate_(max_rate), anchor_utc_(cfg.start_utc_ns == 0) {
  if (block_frames == 0) {
    // Real time: about 1 ms of samples per block keeps latency low (and one
    // 1 ms window per block in high-frequency mode); max rate: full blocks.
    block_frames = max_rate ? std::uint32_t(kBlockFrames)
                            : std::uint32_t(std::clamp<double>(std::round(cfg.sample_rate_hz / 1000), 1, kBlockFrames));
  }
  block_frames_ = std::min<std::uint32_t>(block_frames, kBlockFrames);
}

ReadStatus SimSource::read(SampleBlock& out, std::chrono::nanoseconds timeout) {
  if (anchor_utc_) {
    // UTC anchor and pacing taken at the same instant: timestamps follow the wall clock.
    sim_.set_start_utc_ns(utc_now_ns());
    start_steady_ns_ = steady_now_ns();
    anchor_utc_ = false;
  }
  if (!max_rate_) {
    const std::int64_t now = steady_now_ns();
    if (start_steady_ns_ < 0) start_steady_ns_ = now;
    // The block is due when its last frame's time has passed.
    const double fs = sim_.config().sample_rate_hz;
    const std::int64_t due = start_steady_ns_ +
        static_cast<std::int64_t>(std::ceil(double(sim_.next_frame() + block_frames_) * 1e9 / fs));
    if (due > now) {
      if (due - now > timeout.count()) {
        sleep_until_steady_ns(now + timeout.count());
        return ReadStatus::timeout;
      }
      sleep_until_steady_ns(due);
    }
  }
  sim_.generate(out, block_frames_);
  out.sequence = sequence_++;
  return ReadStatus::ok;
}

}  // namespace wattpipe::acquire

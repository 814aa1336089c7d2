// SPDX-License-Identifier: Apache-2.0
// Closed-form signal simulator: sample values known exactly so tests know the
// truth. Rotating phasors (no sin() per sample), re-seeded exactly from the
// frame index at every block, so the phase never drifts however long it runs.
//
// Threading: Simulator and SimSource belong to one thread (the acquisition
// thread in the daemon).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/acquire/source.hpp"

namespace wattpipe::acquire {

struct Harmonic {
  int order = 3;
  double percent = 0;    // amplitude relative to the fundamental, %
  double phase_deg = 0;  // phase of the harmonic relative to h x fundamental angle
};

struct SimPhase {
  double urms_v = 230;
  double irms_a = 16;
  double phi_deg = 18.19;  // current lags voltage (inductive) by phi; cos(18.19 deg) = 0.95
};

// A sine added to a DC signal (ripple).
struct Tone {
  double f_hz = 300;
  double amplitude = 0;  // peak, V or A
  double phase_deg = 0;
};

// How the DC current follows its ramp (a charger's control loop): none (the
// ramp itself), first order (time constant) or second order (natural period
// 2 pi tau, damping ratio).
struct StepResponse {
  int order = 0;
  double tau_ms = 5;
  double damping = 0.7;
};

// Piecewise-linear function of time, for DC profiles: exact integrals in tests.
struct Ramp {
  std::vector<std::pair<double, double>> points;  // (t_s, value), t ascending
  [[nodiscard]] double at(double t_s) const noexcept;
};

struct SimConfig {
  Layout layout = Layout::ac3n;
  double sample_rate_hz = 20000;
  // AC
  double frequency_hz = 50;
  double freq_end_hz = 0;   // > 0: linear ramp frequency_hz -> freq_end_hz over freq_ramp_s, then hold
  double freq_ramp_s = 0;
  SimPhase phases[3];
  bool counter_clockwise = false;  // U2 leads U1: provokes a phase sequence error
  std::vector<Harmonic> u_harmonics, i_harmonics;
  double u_offset_v = 0, i_offset_a = 0;  // DC offsets on every U and I channel
  double u_noise_v = 0, i_noise_a = 0;    // Gaussian noise, RMS
  double un_rms_v = 0;                    // AC3N neutral voltage (in phase with U1)
  double dropout_start_s = -1, dropout_s = 0;  // all voltages 0 in this interval
  std::uint64_t seed = 1;
  // DC: constant unless the ramps have points (then periodic with their last time).
  double dc_voltage_v = 800, dc_current_a = 200;
  Ramp dc_voltage_ramp, dc_current_ramp;
  std::vector<Tone> dc_u_ripple, dc_i_ripple;
  StepResponse dc_i_response;
  // AC3N_DC (a charger: the AC fields are its grid input, the DC fields its
  // output): the grid currents follow the output power plus the losses,
  // P_grid = P_dc + no_load_w + loss_per_w2 * P_dc^2, block by block; the
  // phases' irms_a is the current at charger_nominal_w of grid power.
  double charger_no_load_w = 1500, charger_loss_per_w2 = 2e-7, charger_nominal_w = 0;
  std::int64_t start_utc_ns = 0;  // t0 of frame 0
};

// Built-in profiles: ac3 (AC3N 230 V / 16 A / cos phi 0.95 / 50 Hz), ac1,
// dc (800 V, 200 A), dc-session (a fast-charging session compressed into
// session_s seconds, with ripple and current steps answered by a second-order
// response) and charger (AC3N_DC: dc-session on the output, a three-phase
// input at cos phi 0.99 with current harmonics whose power follows the output
// through a load-dependent efficiency). nullopt for an unknown name.
std::optional<SimConfig> sim_profile(std::string_view name, double sample_rate_hz, double session_s = 120);

// Names of the built-in profiles, for --help and error messages.
std::string_view sim_profile_names() noexcept;

class Simulator {
 public:
  explicit Simulator(const SimConfig& cfg);

  // Writes `frames` frames (<= kBlockFrames) continuing the stream into `b`.
  void generate(SampleBlock& b, std::uint32_t frames);

  [[nodiscard]] std::uint64_t next_frame() const noexcept { return next_frame_; }
  [[nodiscard]] const SimConfig& config() const noexcept { return cfg_; }
  // Before the first block: UTC of frame 0.
  void set_start_utc_ns(std::int64_t t) noexcept {
    cfg_.start_utc_ns = t;
    if (grid_) grid_->set_start_utc_ns(t), car_->set_start_utc_ns(t);
  }
  // A bound on |sample| over the whole stream, from the amplitudes (none with
  // noise, a DC current response or the charger's load-following input).
  [[nodiscard]] PeakBound peak_bound() const noexcept;
  // Exact fundamental phase in cycles at stream frame n (for tests).
  [[nodiscard]] long double cycles_at(std::uint64_t n) const noexcept;

 private:
  void generate_ac(SampleBlock& b, std::uint32_t frames);
  void generate_dc(SampleBlock& b, std::uint32_t frames);
  void generate_charger(SampleBlock& b, std::uint32_t frames);
  double gaussian() noexcept;
  // DC ripple: one rotating phasor per tone, seeded exactly at every block like the AC terms.
  struct Oscillator {
    double amp, c, s, rc, rs;
  };
  void seed(std::vector<Oscillator>& osc, const std::vector<Tone>& ts) const noexcept;
  static double step(std::vector<Oscillator>& osc) noexcept;

  SimConfig cfg_;
  LayoutInfo li_;
  std::uint64_t next_frame_ = 0;
  // Per harmonic order h (index 0 = fundamental): coefficients of cos(h theta)
  // and sin(h theta) for each channel.
  struct Term {
    int order;
    double c[kMaxChannels];
    double s[kMaxChannels];
  };
  std::vector<Term> terms_;
  double offset_[kMaxChannels] = {};
  double noise_[kMaxChannels] = {};
  bool any_noise_ = false;
  std::vector<Oscillator> osc_u_, osc_i_;
  double resp_y_ = 0, resp_v_ = 0;  // DC current response state
  bool resp_started_ = false;
  std::mt19937_64 rng_;
  bool have_spare_ = false;
  double spare_ = 0;
  // AC3N_DC: the two points, generated apart and interleaved.
  std::unique_ptr<Simulator> grid_, car_;
  std::unique_ptr<SampleBlock> part_;
};

// Simulator as a Source. Real time: paced by the clock at the sample rate in
// blocks of about 1 ms. max_rate: as fast as the ring takes them.
class SimSource final : public Source {
 public:
  SimSource(const SimConfig& cfg, bool max_rate, std::uint32_t block_frames = 0);
  ReadStatus read(SampleBlock& out, std::chrono::nanoseconds timeout) override;
  [[nodiscard]] bool real_time() const noexcept override { return !max_rate_; }
  [[nodiscard]] bool bursts() const noexcept override { return max_rate_; }
  [[nodiscard]] PeakBound peak_bound() const noexcept override { return sim_.peak_bound(); }
  [[nodiscard]] std::uint32_t block_frames() const noexcept { return block_frames_; }

 private:
  Simulator sim_;
  bool max_rate_;
  bool anchor_utc_;  // start_utc_ns not given: anchored at the first read
  std::uint32_t block_frames_;
  std::int64_t start_steady_ns_ = -1;
  std::uint64_t sequence_ = 0;
};

}  // namespace wattpipe::acquire

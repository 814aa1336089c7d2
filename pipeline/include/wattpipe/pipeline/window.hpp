// SPDX-License-Identifier: Apache-2.0
// The window record: everything measured over one window, plus the registers
// after it. Produced by the processing thread; copied to the "latest window"
// slot (MQTT), the window queue (log thread) and the state writer.
//
// Threading: a plain value type.
#pragma once

#include <cstdint>

#include "wattpipe/legal/legal.hpp"

namespace wattpipe::pipeline {
using legal::Registers;

inline constexpr unsigned kMaxHarmonic = 50;      // IEC 61000-4-7 orders 1..50
inline constexpr unsigned kMaxRippleBands = 8;
inline constexpr unsigned kRipplePeaks = 3;
inline constexpr unsigned kMaxStepsPerWindow = 4;

// A change of the current level (DC, or AC one-cycle RMS per phase). Times
// interpolated between samples of the level series; definitions in
// docs/analysis.md.
struct StepEvent {
  std::int64_t t_start_utc_ns = 0;  // current leaves the band around the old level
  double from_a = 0, to_a = 0;
  double rise_time_ms = 0;          // 10 % -> 90 % of the step
  double settling_time_ms = 0;      // start -> stays within the band around the new level
  double overshoot_percent = 0;     // beyond the new level, % of the step size
  double max_slope_a_per_s = 0;     // largest slope, signed like the step
  double delay_ms = -1;             // demand change -> 10 % of the step; < 0: no demand seen
  std::uint8_t phase = 0;           // 0: DC, 1..3: L1..L3
};

struct RippleBand {
  double f_lo_hz = 0, f_hi_hz = 0;  // f_hi_hz below the asked edge: cut at half the sample rate
  double u_rms_v = 0, i_rms_a = 0;
};

struct RipplePeak {
  double f_hz = 0, amplitude = 0;   // amplitude: peak of the sine component
};

// Analysis of one window (docs/analysis.md). Not billing data: the registers
// never depend on it.
struct WindowAnalysis {
  bool valid = false;               // the analysis stage ran on this window
  bool harmonics_valid = false;     // AC: whole-cycle window with its samples: harmonics, THD, unbalance
  bool spectrum_valid = false;      // DC: ripple bands and peaks
  // Per phase (DC: index 0), over the window's samples.
  double u_min_v[3] = {}, u_max_v[3] = {}, i_min_a[3] = {}, i_max_a[3] = {};
  // DC ripple: the AC part of U and I.
  double ripple_u_rms_v = 0, ripple_i_rms_a = 0;
  std::uint8_t bands = 0;
  RippleBand band[kMaxRippleBands];
  std::uint8_t i_peaks = 0, u_peaks = 0;
  RipplePeak i_peak[kRipplePeaks], u_peak[kRipplePeaks];
  // AC, per phase: harmonic subgroups (RMS) and phases (deg, relative to the
  // U1 fundamental: phi_h - h * phi_U1,1); index 0 is order 1.
  float harm_u_v[3][kMaxHarmonic] = {}, harm_i_a[3][kMaxHarmonic] = {};
  float harm_u_deg[3][kMaxHarmonic] = {}, harm_i_deg[3][kMaxHarmonic] = {};
  double thd_u_percent[3] = {}, thd_i_percent[3] = {};
  double unbalance_u2_percent = 0, unbalance_u0_percent = 0;  // AC3/AC3N
  double crest_factor_i[3] = {};
  // Steps that completed since the previous window.
  std::uint8_t steps = 0;
  StepEvent step[kMaxStepsPerWindow];
};

struct PhaseValues {
  double urms_v = 0, irms_a = 0;
  double u_mean_v = 0, i_mean_a = 0;  // DC components (DC layout: the measured values)
  double p_w = 0;       // active power, mean(u*i)
  double q1_var = 0;    // fundamental reactive power (IEEE 1459), + inductive
  double s_va = 0;      // apparent power Urms*Irms
  double n_va = 0;      // non-active power sqrt(S^2 - P^2)
  double pf = 0;        // P / S (0 when S is 0)
  double energy_wh = 0; // net energy of this window (+ import, - export)
};

struct WindowRecord {
  std::uint64_t seq = 0;           // windows since start, from 0; +1 per window
  std::int64_t start_utc_ns = 0;   // time of the window's first sample position
  std::int64_t end_utc_ns = 0;
  double start_frame = 0;          // stream position (fractional frames)
  double end_frame = 0;
  double samples = 0;              // weight: frames covered (fractional at the edges)
  std::uint64_t frames_dropped = 0;// frames lost inside or just before the window
  std::uint8_t phases = 3;
  bool dc = false;
  bool neutral = false;
  bool whole_cycles = false;       // AC: bounded by zero crossings of U1
  bool nominal_timing = false;     // AC: no voltage, closed at nominal timing
  bool frequency_valid = false;
  bool phase_seq_valid = false;
  bool phase_seq_error = false;    // U2 leads U1 (counter-clockwise)
  bool clock_synced = false;
  bool partial = false;            // AC, not whole cycles nor nominal timing (start, end, gap): values not representative
  bool energy_refused = false;     // energy beyond full scale (or not finite): not booked, values not shown
  bool register_saturated = false; // a register reached kMaxUwh
  double frequency_hz = 0;
  PhaseValues ph[3];
  double un_rms_v = 0, in_rms_a = 0;
  double p_total_w = 0, q1_total_var = 0, s_total_va = 0;
  double energy_total_wh = 0;      // net energy of this window
  Registers registers;             // cumulative, after this window
  // Measured against another point on the same samples (the car side of
  // AC3N_DC against the grid side): the input's mean power over exactly this
  // window's frames, the loss (input - output) and the efficiency (output /
  // input charging, input / output discharging; NaN when neither, or the
  // input was not there for the whole window).
  bool two_points = false;
  double p_in_w = 0, loss_w = 0, efficiency = 0;
  std::int64_t closed_steady_ns = 0;  // when the processing thread closed it
  WindowAnalysis an;
};

}  // namespace wattpipe::pipeline

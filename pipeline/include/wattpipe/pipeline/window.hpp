// The window record: everything measured over one window, plus the registers
// after it. Produced by the processing thread; copied to the "latest window"
// slot (MQTT), the window queue (log thread) and the state writer.
//
// Threading: a plain value type.
#pragma once

#include <cstdint>

#include "wattpipe/pipeline/energy_register.hpp"

namespace wattpipe::pipeline {

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
  std::int64_t closed_steady_ns = 0;  // when the processing thread closed it
};

}  // namespace wattpipe::pipeline

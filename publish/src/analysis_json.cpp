// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/analysis_json.hpp"

#include <cmath>

namespace wattpipe::publish {
namespace {

using legal::JsonWriter;
constexpr std::string_view kL[3] = {"L1", "L2", "L3"};

// {"L1": v, "L2": v, ...}
void per_phase(JsonWriter& w, std::string_view name, const double* v, unsigned phases, int dec) {
  w.key(name);
  w.begin_object();
  for (unsigned k = 0; k < phases; ++k) w.field_fixed(kL[k], v[k], dec);
  w.end_object();
}

// {"L1": [h1..h50], ...}
void harmonics(JsonWriter& w, std::string_view name, const float (*v)[pipeline::kMaxHarmonic], unsigned phases, int dec) {
  w.key(name);
  w.begin_object();
  for (unsigned k = 0; k < phases; ++k) {
    w.key(kL[k]);
    w.begin_array();
    for (unsigned h = 0; h < pipeline::kMaxHarmonic; ++h) {
      w.separator();
      w.fixed(v[k][h], dec);
    }
    w.end_array();
  }
  w.end_object();
}

void bands(JsonWriter& w, std::string_view name, const pipeline::WindowAnalysis& a, bool current) {
  w.key(name);
  w.begin_array();
  for (unsigned b = 0; b < a.bands; ++b) {
    w.separator();
    w.begin_object();
    w.field_fixed("f_lo_Hz", a.band[b].f_lo_hz, 1);
    w.field_fixed("f_hi_Hz", a.band[b].f_hi_hz, 1);
    w.field_fixed("rms", current ? a.band[b].i_rms_a : a.band[b].u_rms_v, 4);
    w.end_object();
  }
  w.end_array();
}

void peaks(JsonWriter& w, std::string_view name, const pipeline::RipplePeak* p, unsigned n, std::string_view amp_key) {
  w.key(name);
  w.begin_array();
  for (unsigned k = 0; k < n; ++k) {
    w.separator();
    w.begin_object();
    w.field_fixed("f_Hz", p[k].f_hz, 2);
    w.field_fixed(amp_key, p[k].amplitude, 4);
    w.end_object();
  }
  w.end_array();
}

}  // namespace

void write_analysis_fields(const pipeline::WindowRecord& r, JsonWriter& w) {
  const pipeline::WindowAnalysis& a = r.an;
  if (!a.valid) return;
  const unsigned ph = r.phases;
  if (r.dc) {
    w.field_fixed("ripple_U_rms_V", a.ripple_u_rms_v, 4);
    w.field_fixed("ripple_I_rms_A", a.ripple_i_rms_a, 4);
    w.field_fixed("ripple_U_pp_V", a.u_max_v[0] - a.u_min_v[0], 4);
    w.field_fixed("ripple_I_pp_A", a.i_max_a[0] - a.i_min_a[0], 4);
    w.field_fixed("U_min_V", a.u_min_v[0], 4);
    w.field_fixed("U_max_V", a.u_max_v[0], 4);
    w.field_fixed("I_min_A", a.i_min_a[0], 4);
    w.field_fixed("I_max_A", a.i_max_a[0], 4);
    if (a.spectrum_valid) {
      bands(w, "ripple_U_bands", a, false);
      bands(w, "ripple_I_bands", a, true);
      peaks(w, "ripple_U_peaks", a.u_peak, a.u_peaks, "amplitude_V");
      peaks(w, "ripple_I_peaks", a.i_peak, a.i_peaks, "amplitude_A");
    }
    return;
  }
  double upk[3], ipk[3];
  for (unsigned k = 0; k < 3; ++k) {
    upk[k] = std::fmax(std::fabs(a.u_min_v[k]), std::fabs(a.u_max_v[k]));
    ipk[k] = std::fmax(std::fabs(a.i_min_a[k]), std::fabs(a.i_max_a[k]));
  }
  per_phase(w, "U_peak_V", upk, ph, 3);
  per_phase(w, "I_peak_A", ipk, ph, 3);
  per_phase(w, "crest_factor_I", a.crest_factor_i, ph, 4);
  if (!a.harmonics_valid) return;
  harmonics(w, "harmonics_U_V", a.harm_u_v, ph, 4);
  harmonics(w, "harmonics_I_A", a.harm_i_a, ph, 4);
  harmonics(w, "harmonics_U_deg", a.harm_u_deg, ph, 2);
  harmonics(w, "harmonics_I_deg", a.harm_i_deg, ph, 2);
  per_phase(w, "thd_U_percent", a.thd_u_percent, ph, 3);
  per_phase(w, "thd_I_percent", a.thd_i_percent, ph, 3);
  if (ph == 3) {
    w.field_fixed("unbalance_u2_percent", a.unbalance_u2_percent, 4);
    w.field_fixed("unbalance_u0_percent", a.unbalance_u0_percent, 4);
  }
}

void write_two_point_fields(const pipeline::WindowRecord& r, JsonWriter& w) {
  if (!r.two_points) return;
  // Against the other point on the same samples; a value not there (the input missing) is left out.
  if (std::isfinite(r.p_in_w)) w.field_fixed("P_in_W", r.p_in_w, 3);
  if (std::isfinite(r.loss_w)) w.field_fixed("loss_W", r.loss_w, 3);
  if (std::isfinite(r.efficiency)) w.field_fixed("efficiency", r.efficiency, 6);
}

void write_efficiency_bins(std::span<const pipeline::EfficiencyMap::Bin> bins, JsonWriter& w) {
  w.begin_array();
  for (const auto& b : bins) {
    w.separator();
    w.begin_object();
    w.field_fixed("p_lo_W", b.p_lo_w, 0);
    w.field_fixed("p_hi_W", b.p_hi_w, 0);
    w.field_fixed("efficiency", b.efficiency(), 6);
    w.field_fixed("E_in_Wh", b.e_in_wh, 6);
    w.field_fixed("E_out_Wh", b.e_out_wh, 6);
    w.field_uint("windows", b.windows);
    w.end_object();
  }
  w.end_array();
}

std::string_view write_analysis_message(const pipeline::WindowRecord& r, std::string_view meter_id, JsonWriter& w) {
  w.reset();
  w.begin_object();
  w.key("timestamp");
  w.timestamp_ms(r.end_utc_ns);
  if (!meter_id.empty()) w.field("meter_id", meter_id);
  w.field_uint("seq", r.seq);
  w.field_int("start_ns", r.start_utc_ns);
  w.field_int("end_ns", r.end_utc_ns);
  w.field("layout", r.dc ? "DC" : r.phases == 3 ? "AC3" : "AC1");
  w.field_bool("partial", r.partial);
  write_analysis_fields(r, w);
  write_two_point_fields(r, w);
  w.end_object();
  return w.view();
}

std::string_view write_step_event(const pipeline::StepEvent& e, std::string_view meter_id, JsonWriter& w) {
  w.reset();
  w.begin_object();
  w.field("event", "step");
  if (!meter_id.empty()) w.field("meter_id", meter_id);
  w.key("t_start");
  w.timestamp_ms(e.t_start_utc_ns);
  w.field_int("t_start_ns", e.t_start_utc_ns);
  w.field("phase", e.phase == 0 ? "DC" : kL[(e.phase - 1) % 3]);
  w.field_fixed("from_A", e.from_a, 3);
  w.field_fixed("to_A", e.to_a, 3);
  w.field_fixed("rise_time_ms", e.rise_time_ms, 3);
  w.field_fixed("settling_time_ms", e.settling_time_ms, 3);
  w.field_fixed("overshoot_percent", e.overshoot_percent, 3);
  w.field_fixed("max_slope_A_per_s", e.max_slope_a_per_s, 1);
  if (e.delay_ms >= 0) w.field_fixed("delay_ms", e.delay_ms, 3);
  w.end_object();
  return w.view();
}

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
#include "store_rows.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace wattpipe::publish::store {

namespace {

using namespace std::string_view_literals;

constexpr ColumnDef kWindows[] = {
    {"module_id", "text NOT NULL"}, {"t_start", "timestamptz NOT NULL"}, {"t_end", "timestamptz NOT NULL"},
    {"meter_id", "text NOT NULL"}, {"seq", "bigint NOT NULL"}, {"layout", "text NOT NULL"},
    {"samples", "double precision"}, {"frames_dropped", "bigint"}, {"whole_cycles", "boolean"},
    {"nominal_timing", "boolean"}, {"clock_synced", "boolean"}, {"partial", "boolean"}, {"energy_refused", "boolean"},
    {"frequency_hz", "double precision"}, {"phase_seq_error", "boolean"},
    {"u_l1_v", "double precision"}, {"u_l2_v", "double precision"}, {"u_l3_v", "double precision"},
    {"i_l1_a", "double precision"}, {"i_l2_a", "double precision"}, {"i_l3_a", "double precision"},
    {"p_l1_w", "double precision"}, {"p_l2_w", "double precision"}, {"p_l3_w", "double precision"},
    {"q_l1_var", "double precision"}, {"q_l2_var", "double precision"}, {"q_l3_var", "double precision"},
    {"s_l1_va", "double precision"}, {"s_l2_va", "double precision"}, {"s_l3_va", "double precision"},
    {"pf_l1", "double precision"}, {"pf_l2", "double precision"}, {"pf_l3", "double precision"},
    {"un_v", "double precision"}, {"in_a", "double precision"},
    {"u_dc_v", "double precision"}, {"i_dc_a", "double precision"},
    {"p_w", "double precision"}, {"q_var", "double precision"}, {"s_va", "double precision"},
    {"energy_wh", "double precision"}, {"e_import_wh", "numeric(20,6) NOT NULL"},
    {"e_export_wh", "numeric(20,6) NOT NULL"},
    {"thd_u_l1_pct", "double precision"}, {"thd_u_l2_pct", "double precision"}, {"thd_u_l3_pct", "double precision"},
    {"thd_i_l1_pct", "double precision"}, {"thd_i_l2_pct", "double precision"}, {"thd_i_l3_pct", "double precision"},
    {"unbalance_u2_pct", "double precision"}, {"unbalance_u0_pct", "double precision"},
    {"ripple_u_rms_v", "double precision"}, {"ripple_i_rms_a", "double precision"},
    {"ripple_u_pp_v", "double precision"}, {"ripple_i_pp_a", "double precision"},
    {"efficiency", "double precision"}, {"loss_w", "double precision"},
};

constexpr ColumnDef kSteps[] = {
    {"module_id", "text NOT NULL"}, {"t_start", "timestamptz NOT NULL"}, {"phase", "text NOT NULL"},
    {"from_a", "double precision"}, {"to_a", "double precision"}, {"rise_time_ms", "double precision"},
    {"settling_time_ms", "double precision"}, {"overshoot_pct", "double precision"},
    {"max_slope_a_per_s", "double precision"}, {"delay_ms", "double precision"},
};

constexpr ColumnDef kSpectra[] = {
    {"module_id", "text NOT NULL"}, {"t_start", "timestamptz NOT NULL"},
    {"harm_u_v", "real[]"}, {"harm_i_a", "real[]"}, {"harm_u_deg", "real[]"}, {"harm_i_deg", "real[]"},
    {"band_f_lo_hz", "double precision[]"}, {"band_f_hi_hz", "double precision[]"},
    {"band_u_rms_v", "double precision[]"}, {"band_i_rms_a", "double precision[]"},
    {"u_peak_f_hz", "double precision[]"}, {"u_peak_v", "double precision[]"},
    {"i_peak_f_hz", "double precision[]"}, {"i_peak_a", "double precision[]"},
};

constexpr std::string_view kKeys[] = {"module_id, t_start", "module_id, t_start, phase", "module_id, t_start"};

// A row in COPY text: fields separated by tabs, ended by a newline.
class Row {
 public:
  explicit Row(std::string& out) : out_(out) {}
  Row& text(std::string_view s) {
    sep();
    append_text(out_, s);
    return *this;
  }
  Row& ts(std::int64_t ns) {
    sep();
    append_timestamp(out_, ns);
    return *this;
  }
  Row& null() {
    sep();
    out_ += "\\N";
    return *this;
  }
  Row& num(double v) {
    sep();
    append_number(v);
    return *this;
  }
  Row& num_if(bool have, double v) { return have ? num(v) : null(); }
  Row& integer(std::int64_t v) {
    sep();
    fmt::format_to(std::back_inserter(out_), "{}", v);
    return *this;
  }
  Row& boolean(bool b) {
    sep();
    out_ += b ? 't' : 'f';
    return *this;
  }
  // Exact decimal Wh of a register's micro-watt-hours.
  Row& uwh(std::int64_t u) {
    sep();
    fmt::format_to(std::back_inserter(out_), "{}{}.{:06}", u < 0 ? "-" : "", std::abs(u / 1'000'000),
                   std::abs(u % 1'000'000));
    return *this;
  }
  // A PostgreSQL array literal of n values (`rows` > 0: rows x n/rows, two-dimensional).
  template <typename T>
  Row& array(const T* v, std::size_t n, std::size_t rows = 0) {
    sep();
    out_ += '{';
    const std::size_t per = rows > 0 ? n / rows : n;
    for (std::size_t k = 0; k < n; ++k) {
      if (rows > 0 && k % per == 0) out_ += k == 0 ? "{" : "},{";
      else if (k > 0) out_ += ',';
      append_number(double(v[k]));
    }
    if (rows > 0 && n > 0) out_ += '}';
    out_ += '}';
    return *this;
  }
  void end() { out_ += '\n'; }

 private:
  void sep() {
    if (first_) first_ = false;
    else out_ += '\t';
  }
  void append_number(double v) {
    if (std::isnan(v)) out_ += "NaN";
    else if (std::isinf(v)) out_ += v > 0 ? "Infinity" : "-Infinity";
    else {
      char tmp[32];
      const auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
      out_.append(tmp, r.ptr);
    }
  }
  std::string& out_;
  bool first_ = true;
};

std::string_view layout_of(const pipeline::WindowRecord& r) {
  if (r.dc) return "DC";
  if (r.phases == 1) return "AC1";
  return r.neutral ? "AC3N" : "AC3";
}

// Days since 1970-01-01 -> civil date (Howard Hinnant's algorithm).
void civil(std::int64_t days, int& y, unsigned& m, unsigned& d) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = int(std::int64_t(yoe) + era * 400 + (m <= 2));
}

}  // namespace

std::span<const ColumnDef> columns(Table t) {
  switch (t) {
    case Table::windows: return kWindows;
    case Table::steps: return kSteps;
    case Table::spectra: return kSpectra;
  }
  return {};
}

std::string_view table_name(Table t) {
  switch (t) {
    case Table::windows: return "wattpipe_windows";
    case Table::steps: return "wattpipe_steps";
    case Table::spectra: return "wattpipe_spectra";
  }
  return {};
}

std::string schema_sql() {
  std::string s =
      "CREATE TABLE IF NOT EXISTS wattpipe_schema (version integer PRIMARY KEY, "
      "created timestamptz NOT NULL DEFAULT now(), software text NOT NULL);\n";
  for (Table t : {Table::windows, Table::steps, Table::spectra}) {
    s += fmt::format("CREATE TABLE IF NOT EXISTS {} (", table_name(t));
    for (const ColumnDef& c : columns(t)) s += fmt::format("{} {}, ", c.name, c.type);
    s += fmt::format("PRIMARY KEY ({}));\n", kKeys[int(t)]);
  }
  s += "CREATE TABLE IF NOT EXISTS wattpipe_transactions (module_id text NOT NULL, transaction_id text NOT NULL, "
       "evse_id text NOT NULL, t_begin timestamptz NOT NULL, t_end timestamptz, begin_ocmf text NOT NULL, "
       "end_ocmf text, e_in_wh double precision, e_out_wh double precision, efficiency double precision, "
       "PRIMARY KEY (module_id, transaction_id, t_begin));\n";
  return s;
}

std::string copy_sql(Table t, std::string_view into) {
  std::string s = fmt::format("COPY {} (", into.empty() ? table_name(t) : into);
  bool first = true;
  for (const ColumnDef& c : columns(t)) {
    if (!first) s += ", ";
    first = false;
    s += c.name;
  }
  return s + ") FROM STDIN";
}

std::string insert_new_sql(Table t, std::string_view from) {
  return fmt::format("INSERT INTO {} SELECT * FROM {} ON CONFLICT DO NOTHING", table_name(t), from);
}

void append_text(std::string& out, std::string_view s) {
  for (const char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

void append_timestamp(std::string& out, std::int64_t utc_ns) {
  const std::int64_t us = key_us(utc_ns);
  std::int64_t secs = us / 1'000'000, frac = us % 1'000'000;
  if (frac < 0) frac += 1'000'000, --secs;
  std::int64_t days = secs / 86400, sod = secs % 86400;
  if (sod < 0) sod += 86400, --days;
  int y = 0;
  unsigned m = 0, d = 0;
  civil(days, y, m, d);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00", y, m, d, sod / 3600,
                 sod / 60 % 60, sod % 60, frac);
}

void append_window_row(std::string& out, std::string_view module_id, std::string_view meter_id,
                       const pipeline::WindowRecord& r) {
  Row row(out);
  row.text(module_id).ts(r.start_utc_ns).ts(r.end_utc_ns).text(meter_id).integer(std::int64_t(r.seq));
  row.text(layout_of(r)).num(r.samples).integer(std::int64_t(r.frames_dropped));
  row.boolean(r.whole_cycles).boolean(r.nominal_timing).boolean(r.clock_synced).boolean(r.partial);
  row.boolean(r.energy_refused);
  row.num_if(!r.dc && r.frequency_valid, r.frequency_hz);
  if (r.phases == 3 && r.phase_seq_valid) row.boolean(r.phase_seq_error);
  else row.null();
  // Per phase (AC): U, I, P, Q1, S, PF; phases the layout lacks are NULL.
  using PV = pipeline::PhaseValues;
  for (double PV::*f : {&PV::urms_v, &PV::irms_a, &PV::p_w, &PV::q1_var, &PV::s_va, &PV::pf})
    for (unsigned k = 0; k < 3; ++k) row.num_if(!r.dc && k < r.phases, r.ph[k].*f);
  row.num_if(r.neutral, r.un_rms_v).num_if(r.neutral, r.in_rms_a);
  row.num_if(r.dc, r.ph[0].u_mean_v).num_if(r.dc, r.ph[0].i_mean_a);
  row.num(r.p_total_w).num_if(!r.dc, r.q1_total_var).num(r.s_total_va).num(r.energy_total_wh);
  row.uwh(r.registers.import_total.uwh).uwh(r.registers.export_total.uwh);
  // Analysis (docs/analysis.md): NULL where it did not run or does not apply.
  const pipeline::WindowAnalysis& a = r.an;
  const bool harm = a.valid && a.harmonics_valid;
  for (const double* v : {a.thd_u_percent, a.thd_i_percent})
    for (unsigned k = 0; k < 3; ++k) row.num_if(harm && k < r.phases, v[k]);
  row.num_if(harm && r.phases == 3, a.unbalance_u2_percent).num_if(harm && r.phases == 3, a.unbalance_u0_percent);
  const bool ripple = a.valid && r.dc;
  row.num_if(ripple, a.ripple_u_rms_v).num_if(ripple, a.ripple_i_rms_a);
  row.num_if(ripple, a.u_max_v[0] - a.u_min_v[0]).num_if(ripple, a.i_max_a[0] - a.i_min_a[0]);
  // Against another point on the same samples (two points), else NULL.
  row.num_if(r.two_points && std::isfinite(r.efficiency), r.efficiency);
  row.num_if(r.two_points && std::isfinite(r.loss_w), r.loss_w);
  row.end();
}

bool append_spectra_row(std::string& out, std::string_view module_id, const pipeline::WindowRecord& r) {
  const pipeline::WindowAnalysis& a = r.an;
  const bool harm = a.valid && a.harmonics_valid, spec = a.valid && a.spectrum_valid;
  if (!harm && !spec) return false;
  Row row(out);
  row.text(module_id).ts(r.start_utc_ns);
  const std::size_t n = std::size_t{r.phases} * pipeline::kMaxHarmonic;
  for (const auto* h : {&a.harm_u_v, &a.harm_i_a, &a.harm_u_deg, &a.harm_i_deg}) {
    if (harm) row.array(&(*h)[0][0], n, r.phases);
    else row.null();
  }
  if (!spec) {
    for (int k = 0; k < 8; ++k) row.null();
    row.end();
    return true;
  }
  double lo[pipeline::kMaxRippleBands], hi[pipeline::kMaxRippleBands], u[pipeline::kMaxRippleBands],
      i[pipeline::kMaxRippleBands];
  for (unsigned b = 0; b < a.bands; ++b)
    lo[b] = a.band[b].f_lo_hz, hi[b] = a.band[b].f_hi_hz, u[b] = a.band[b].u_rms_v, i[b] = a.band[b].i_rms_a;
  row.array(lo, a.bands).array(hi, a.bands).array(u, a.bands).array(i, a.bands);
  for (const auto& [p, count] : {std::pair{a.u_peak, a.u_peaks}, std::pair{a.i_peak, a.i_peaks}}) {
    double f[pipeline::kRipplePeaks], amp[pipeline::kRipplePeaks];
    for (unsigned k = 0; k < count; ++k) f[k] = p[k].f_hz, amp[k] = p[k].amplitude;
    row.array(f, count).array(amp, count);
  }
  row.end();
  return true;
}

unsigned append_step_rows(std::string& out, std::string_view module_id, const pipeline::WindowRecord& r) {
  static constexpr std::string_view kPhase[4] = {"DC", "L1", "L2", "L3"};
  for (unsigned k = 0; k < r.an.steps; ++k) {
    const pipeline::StepEvent& e = r.an.step[k];
    Row row(out);
    row.text(module_id).ts(e.t_start_utc_ns).text(kPhase[e.phase & 3]).num(e.from_a).num(e.to_a);
    row.num(e.rise_time_ms).num(e.settling_time_ms).num(e.overshoot_percent).num(e.max_slope_a_per_s);
    row.num_if(e.delay_ms >= 0, e.delay_ms);
    row.end();
  }
  return r.an.steps;
}

}  // namespace wattpipe::publish::store

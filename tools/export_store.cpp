// SPDX-License-Identifier: Apache-2.0
#include "export_store.hpp"

#include <stdexcept>

#include <fmt/format.h>

#include "wattpipe/publish/pg.hpp"

namespace wattpipe::tools {

namespace pg = publish::pg;

struct StoreReader::Impl {
  explicit Impl(const std::string& url) : c(url, "wattpipe-export") {}
  pg::Connection c;
  std::string module;  // as an SQL literal
  std::string target;

  std::string value(const std::string& sql) {
    std::string v;
    if (!c.query_value(sql, v)) throw std::runtime_error(fmt::format("{}: {}", target, c.failure().message));
    return v;
  }
  // Each row of `select` as the JSON object PostgreSQL makes of it.
  void rows(const std::string& select, const std::function<void(std::string_view)>& row);
};

namespace {
// A time in ns as a timestamptz, to the microsecond.
std::string at(std::int64_t ns) {
  return fmt::format("(timestamptz 'epoch' + interval '1 microsecond' * {})", ns / 1000);
}
}  // namespace

void StoreReader::Impl::rows(const std::string& select, const std::function<void(std::string_view)>& row) {
  // CSV with a quote and a delimiter JSON never holds: each row is the JSON text, nothing escaped.
  const std::string copy = fmt::format(
      "COPY (SELECT row_to_json(x) FROM ({}) x) TO STDOUT WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')",
      select);
  auto strip = [&](std::string_view line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    row(line);
  };
  if (!c.copy_out(copy, strip)) throw std::runtime_error(fmt::format("{}: {}", target, c.failure().message));
}

StoreReader::StoreReader(const std::string& url, std::string module_id) : target_(pg::describe(url)) {
  if (const std::string e = pg::check_url(url); !e.empty())
    throw std::runtime_error(fmt::format("--store: '{}' is not a PostgreSQL connection string: {}", url, e));
  impl_ = std::make_unique<Impl>(url);
  if (!impl_->c.connected())
    throw std::runtime_error(fmt::format("--store: cannot connect to {}: {}", target_, impl_->c.failure().message));
  std::string quoted;
  for (const char ch : module_id) quoted += ch == '\'' ? std::string("''") : std::string(1, ch);
  impl_->module = "'" + quoted + "'";
  impl_->target = target_;
}

StoreReader::~StoreReader() = default;

std::int64_t StoreReader::first_ns() {
  const std::string v = impl_->value(fmt::format(
      "SELECT (extract(epoch FROM min(t_start)) * 1000000000)::bigint FROM wattpipe_windows WHERE module_id = {}",
      impl_->module));
  return v.empty() ? -1 : std::stoll(v);
}

std::uint64_t StoreReader::windows_between(std::int64_t lo_ns, std::int64_t hi_ns) {
  const std::string v = impl_->value(fmt::format(
      "SELECT count(*) FROM wattpipe_windows WHERE module_id = {} AND t_start BETWEEN {} AND {}", impl_->module,
      at(lo_ns), at(hi_ns)));
  return v.empty() ? 0 : std::stoull(v);
}

void StoreReader::windows(std::int64_t lo_ns, std::int64_t hi_ns, const std::function<void(std::string_view)>& row) {
  const std::string select = fmt::format(
      "SELECT (extract(epoch FROM w.t_start) * 1000000000)::bigint AS start_ns, "
      "(extract(epoch FROM w.t_end) * 1000000000)::bigint AS end_ns, w.*, s.harm_u_v, s.harm_i_a, s.harm_u_deg, "
      "s.harm_i_deg, s.band_f_lo_hz, s.band_f_hi_hz, s.band_u_rms_v, s.band_i_rms_a, s.u_peak_f_hz, s.u_peak_v, "
      "s.i_peak_f_hz, s.i_peak_a FROM wattpipe_windows w LEFT JOIN wattpipe_spectra s USING (module_id, t_start) "
      "WHERE w.module_id = {} AND w.t_start BETWEEN {} AND {} ORDER BY w.t_start",
      impl_->module, at(lo_ns), at(hi_ns));
  impl_->rows(select, row);
}

void StoreReader::steps(std::int64_t lo_ns, std::int64_t hi_ns, const std::function<void(std::string_view)>& row) {
  const std::string select = fmt::format(
      "SELECT 'step' AS event, (extract(epoch FROM t_start) * 1000000000)::bigint AS t_start_ns, phase, from_a, "
      "to_a, rise_time_ms, settling_time_ms, overshoot_pct, max_slope_a_per_s, delay_ms FROM wattpipe_steps "
      "WHERE module_id = {} AND t_start BETWEEN {} AND {} ORDER BY t_start",
      impl_->module, at(lo_ns), at(hi_ns));
  impl_->rows(select, row);
}

}  // namespace wattpipe::tools

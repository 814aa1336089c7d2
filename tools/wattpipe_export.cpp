// SPDX-License-Identifier: Apache-2.0
// wattpipe-export: a window log (JSON Lines from --log) or a raw log (WPRB
// from --log-raw) as CSV, HDF5 or (raw logs) COMTRADE 2013, for spreadsheets,
// pandas, MATLAB and power-system viewers (docs/export.md).
//
// Installed also as wattpipe-log2csv (CSV, the old name).
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "cli.hpp"
#include "export_store.hpp"
#include "progress.hpp"
#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/comtrade.hpp"
#include "wattpipe/acquire/wprb_source.hpp"
#include "wattpipe/pipeline/efficiency.hpp"

namespace comtrade = wattpipe::acquire::comtrade;
using wattpipe::acquire::Layout;
using wattpipe::tools::kExitFailure;
using wattpipe::tools::kExitUsage;

namespace {

std::string g_tool = "wattpipe-export";
// The output file this run created: removed when the export fails (a full
// disk, a layout change), so no partial file looks like a finished one.
std::string g_created;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- time -------------------------------------------------------------------

std::string iso_utc(std::int64_t ns) {
  const wattpipe::acquire::UtcFields f = wattpipe::acquire::utc_fields(ns);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", f.year, f.month, f.day, f.hour, f.minute, f.second,
                     f.ns);
}

// --from/--to: seconds from the log's first time, or an ISO UTC time.
struct TimeBound {
  bool set = false, absolute = false;
  double seconds = 0;
  std::int64_t ns = 0;
  [[nodiscard]] std::int64_t resolve(std::int64_t first_ns) const {
    return absolute ? ns : first_ns + std::llround(seconds * 1e9);
  }
};

TimeBound parse_bound(const std::string& s, const char* flag) {
  TimeBound b;
  if (s.empty()) return b;
  b.set = true;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() + s.size() && std::isfinite(v)) {
    b.seconds = v;
    return b;
  }
  std::tm tm{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) throw UsageError(fmt::format("{} '{}': seconds from the start, or YYYY-MM-DDTHH:MM:SS[.f]Z", flag, s));
  std::int64_t frac = 0;
  if (*rest == '.') {
    int digits = 0;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest)
      if (digits < 9) frac = frac * 10 + (*rest - '0'), ++digits;
    for (; digits < 9; ++digits) frac *= 10;
  }
  if (*rest == 'Z') ++rest;
  if (*rest != '\0') throw UsageError(fmt::format("{} '{}': a UTC time ends in Z", flag, s));
  b.absolute = true;
  b.ns = std::int64_t(timegm(&tm)) * 1'000'000'000 + frac;
  return b;
}

// ---- HDF5 -------------------------------------------------------------------

void h5_check(long long rc, const std::string& what) {
  if (rc < 0) throw std::runtime_error("HDF5: " + what + " failed");
}

// Variable-length UTF-8: h5py reads it as str, MATLAB as char.
hid_t h5_string_type() {
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

void h5_attr(hid_t obj, const char* name, const std::string& value) {
  const hid_t t = h5_string_type();
  const hid_t sp = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  h5_check(a, std::string("attribute ") + name);
  const char* p = value.c_str();
  h5_check(H5Awrite(a, t, &p), std::string("attribute ") + name);
  H5Aclose(a), H5Sclose(sp), H5Tclose(t);
}

void h5_strings(hid_t group, const char* name, const std::vector<std::string>& values) {
  const hid_t t = h5_string_type();
  const hsize_t n = values.size();
  const hid_t sp = H5Screate_simple(1, &n, nullptr);
  const hid_t ds = H5Dcreate2(group, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  h5_check(ds, std::string("dataset ") + name);
  std::vector<const char*> p;
  for (const auto& v : values) p.push_back(v.c_str());
  const herr_t rc = H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data());
  H5Dclose(ds), H5Sclose(sp), H5Tclose(t);
  h5_check(rc, std::string("dataset ") + name);
}

template <typename T>
void h5_attr_num(hid_t obj, const char* name, T value, hid_t type) {
  const hid_t sp = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  h5_check(a, std::string("attribute ") + name);
  h5_check(H5Awrite(a, type, &value), std::string("attribute ") + name);
  H5Aclose(a), H5Sclose(sp);
}

// A growing dataset of `width` values per row (1: a 1-D dataset).
class H5Series {
 public:
  H5Series(hid_t group, const std::string& name, hid_t type, hsize_t width, const std::string& units)
      : type_(type), width_(width) {
    const int rank = width == 1 ? 1 : 2;
    hsize_t dims[2] = {0, width}, maxd[2] = {H5S_UNLIMITED, width};
    hsize_t chunk[2] = {std::max<hsize_t>(1, 65536 / width), width};
    const hid_t sp = H5Screate_simple(rank, dims, maxd);
    const hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, rank, chunk);
    H5Pset_deflate(pl, 1);  // a little compression: logs are smooth and repetitive
    ds_ = H5Dcreate2(group, name.c_str(), type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl), H5Sclose(sp);
    h5_check(ds_, "dataset " + name);
    if (!units.empty()) h5_attr(ds_, "units", units);
  }
  ~H5Series() {
    if (ds_ >= 0) H5Dclose(ds_);
  }
  // Flushes and closes the dataset: a full disk shows here (the destructor
  // cannot say it, and the file's own close waits for its last dataset).
  void close() {
    const herr_t rc = ds_ >= 0 ? H5Dclose(ds_) : 0;
    ds_ = -1;
    h5_check(rc, "writing a dataset");
  }
  H5Series(const H5Series&) = delete;
  H5Series& operator=(const H5Series&) = delete;
  void append(const void* data, hsize_t rows) {
    if (rows == 0) return;
    const int rank = width_ == 1 ? 1 : 2;
    hsize_t size[2] = {n_ + rows, width_}, start[2] = {n_, 0}, count[2] = {rows, width_};
    h5_check(H5Dset_extent(ds_, size), "extend");
    const hid_t fs = H5Dget_space(ds_);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, nullptr, count, nullptr);
    const hid_t ms = H5Screate_simple(rank, count, nullptr);
    const herr_t rc = H5Dwrite(ds_, type_, ms, fs, H5P_DEFAULT, data);
    H5Sclose(ms), H5Sclose(fs);
    h5_check(rc, "write");
    n_ += rows;
  }
  [[nodiscard]] hid_t id() const noexcept { return ds_; }

 private:
  hid_t ds_ = -1, type_;
  hsize_t width_, n_ = 0;
};

class H5File {
 public:
  explicit H5File(const std::string& path) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors reported here, not as HDF5's stack dump
    id_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (id_ < 0) throw UsageError(fmt::format("cannot create HDF5 file '{}'", path));
    g_created = path;
  }
  ~H5File() {
    for (auto& [_, g] : groups_) H5Gclose(g);
    if (id_ >= 0) H5Fclose(id_);
  }
  hid_t group(const std::string& name) {
    auto it = groups_.find(name);
    if (it != groups_.end()) return it->second;
    const hid_t g = H5Gcreate2(id_, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    h5_check(g, "group " + name);
    return groups_[name] = g;
  }
  [[nodiscard]] hid_t id() const noexcept { return id_; }
  void close() {
    for (auto& [_, g] : groups_) H5Gclose(g);
    groups_.clear();
    const herr_t rc = H5Fclose(id_);
    id_ = -1;
    h5_check(rc, "closing the file");
  }

 private:
  hid_t id_ = -1;
  std::map<std::string, hid_t> groups_;
};

// Units from a window record key: the unit is its last unit-like part.
std::string units_of(const std::string& key) {
  if (key.find("_A_per_s") != std::string::npos || key.find("_a_per_s") != std::string::npos) return "A/s";
  // The log's keys (power_W, thd_U_percent) and the database's columns (p_l1_w, thd_u_l1_pct).
  static const std::map<std::string, std::string> kUnits = {
      {"V", "V"}, {"A", "A"}, {"W", "W"}, {"VA", "VA"}, {"VAR", "var"}, {"Wh", "Wh"}, {"Hz", "Hz"},
      {"percent", "%"}, {"deg", "deg"}, {"ms", "ms"}, {"s", "s"}, {"ns", "ns"}, {"PF", "1"},
      {"v", "V"}, {"a", "A"}, {"w", "W"}, {"va", "VA"}, {"var", "var"}, {"wh", "Wh"}, {"hz", "Hz"},
      {"pct", "%"}, {"pf", "1"}};
  std::string best;
  std::size_t at = 0;
  while (at <= key.size()) {
    const std::size_t us = key.find('_', at);
    const std::string tok = key.substr(at, us == std::string::npos ? std::string::npos : us - at);
    if (auto it = kUnits.find(tok); it != kUnits.end()) best = it->second;
    if (us == std::string::npos) break;
    at = us + 1;
  }
  return best;
}

// ---- window logs --------------------------------------------------------------

// One column of the window export: a JSON pointer and, for arrays of numbers
// (harmonics), their length.
struct Column {
  std::string name, pointer, top;  // top: the record's key it comes from (for units)
  std::size_t width = 1;
  // Times in ns since the epoch: int64, which a double cannot hold to the ns.
  [[nodiscard]] bool ns() const { return width == 1 && name.size() > 3 && name.compare(name.size() - 3, 3, "_ns") == 0; }
};

// Every number and flag of a record, flattened: objects join with '_', arrays
// of numbers stay arrays (width), arrays of objects number their items from 1.
void flatten(simdjson::dom::element e, const std::string& name, const std::string& ptr, const std::string& top,
             std::vector<Column>& out, std::map<std::string, std::size_t>& seen) {
  auto add = [&](std::size_t width) {
    auto [it, fresh] = seen.emplace(name, out.size());
    if (fresh) out.push_back({name, ptr, top, width});
    else out[it->second].width = std::max(out[it->second].width, width);
  };
  switch (e.type()) {
    case simdjson::dom::element_type::OBJECT:
      for (auto [k, v] : e.get_object()) {
        const std::string key(k);
        flatten(v, name.empty() ? key : name + "_" + key, ptr + "/" + key, top.empty() ? key : top, out, seen);
      }
      break;
    case simdjson::dom::element_type::ARRAY: {
      simdjson::dom::array a = e.get_array();
      bool numbers = true;
      for (auto v : a) numbers &= v.is_number();
      if (numbers) {
        add(a.size());
      } else {
        std::size_t k = 0;
        for (auto v : a) {
          ++k;
          flatten(v, fmt::format("{}_{}", name, k), fmt::format("{}/{}", ptr, k - 1), top, out, seen);
        }
      }
      break;
    }
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64:
    case simdjson::dom::element_type::DOUBLE:
    case simdjson::dom::element_type::BOOL: add(1); break;
    default: break;  // strings: the times are in t_s/time_utc, meter_id an attribute
  }
}

double number(simdjson::dom::element doc, const std::string& ptr);

std::int64_t integer(simdjson::dom::element doc, const std::string& ptr) {
  std::int64_t v = 0;
  if (doc.at_pointer(ptr).get_int64().get(v) == simdjson::SUCCESS) return v;
  return std::int64_t(number(doc, ptr));
}

double number(simdjson::dom::element doc, const std::string& ptr) {
  simdjson::dom::element e;
  if (doc.at_pointer(ptr).get(e) != simdjson::SUCCESS) return std::numeric_limits<double>::quiet_NaN();
  switch (e.type()) {
    case simdjson::dom::element_type::INT64: return double(int64_t(e));
    case simdjson::dom::element_type::UINT64: return double(uint64_t(e));
    case simdjson::dom::element_type::DOUBLE: return double(e);
    case simdjson::dom::element_type::BOOL: return bool(e) ? 1 : 0;
    default: return std::numeric_limits<double>::quiet_NaN();
  }
}

struct Options {
  std::string input, output, format = "csv", comtrade_type = "float32";
  std::string store, module_id;  // --store: read the database store instead of a file
  std::string label, source_name;  // for messages ('FILE' or module M in DB) and the HDF5 attribute
  TimeBound from, to;
  unsigned decimate = 1;
  bool log2csv = false;
  bool efficiency_map = false;   // CSV: the map instead of the windows
  double efficiency_bin_kw = 10;
};

// The window records, one JSON object each, in time order, to `f`: from a
// JSONL log or from the database store. Called once per pass.
using Lines = std::function<void(const std::function<void(std::string_view)>&)>;

Lines file_lines(const std::string& path, std::uint64_t size) {
  return [path, size](const std::function<void(std::string_view)>& f) {
    std::ifstream in(path, std::ios::binary);
    wattpipe::tools::Progress progress(g_tool);
    std::uint64_t done = 0;
    std::string line;
    while (std::getline(in, line)) {
      done += line.size() + 1;
      progress.update(double(done), double(size));
      f(line);
    }
  };
}

// -o NAME, NAME.cfg or NAME.dat: the record's NAME.
std::string comtrade_base(std::string base) {
  for (const char* ext : {".cfg", ".CFG", ".dat", ".DAT"})
    if (base.size() > 4 && base.compare(base.size() - 4, 4, ext) == 0) base.resize(base.size() - 4);
  return base;
}

// COMTRADE's phase id of a window column: 1..3 for L1..L3, N for the neutral.
std::string phase_of(const std::string& name) {
  for (const char* n : {"1", "2", "3"})
    if (name.find(std::string("_L") + n) != std::string::npos || name.find(std::string("_l") + n) != std::string::npos)
      return n;
  if (name.ends_with("_N") || name.starts_with("un_") || name.starts_with("in_") || name.starts_with("UN_")) return "N";
  return "";
}

// Reads the records twice: the columns (every field any record has), then the rows.
int export_windows(const Options& o, const Lines& lines) {
  if (o.decimate != 1) throw UsageError("--decimate is for raw logs");
  simdjson::dom::parser parser;
  std::vector<Column> cols, step_cols;
  std::map<std::string, std::size_t> seen, step_seen;
  std::int64_t first_ns = -1;
  std::string meter_id, measured_by;  // measured_by: the log header's software id (docs/legal.md)
  std::uint64_t overflows = 0, bad = 0;
  auto for_each = [&](const std::function<void(simdjson::dom::element, bool)>& f) {
    lines([&](std::string_view line) {
      simdjson::dom::element doc;
      if (line.empty()) return;
      if (parser.parse(line.data(), line.size(), true).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
        ++bad;
        return;
      }
      std::string_view type;
      if (doc["type"].get_string().get(type) == simdjson::SUCCESS) {
        std::string_view sid;
        if (type == "overflow") ++overflows;
        if (type == "header" && measured_by.empty() && doc["software_id"].get_string().get(sid) == simdjson::SUCCESS)
          measured_by = std::string(sid);
        return;  // overflow and header records are not windows
      }
      f(doc, doc["event"].error() == simdjson::SUCCESS);
    });
  };
  for_each([&](simdjson::dom::element doc, bool event) {
    if (event) {
      flatten(doc, "", "", "", step_cols, step_seen);
      return;
    }
    std::int64_t start = 0;
    if (doc["start_ns"].get_int64().get(start) == simdjson::SUCCESS && first_ns < 0) first_ns = start;
    std::string_view id;
    if (meter_id.empty() && doc["meter_id"].get_string().get(id) == simdjson::SUCCESS) meter_id = std::string(id);
    flatten(doc, "", "", "", cols, seen);
  });
  if (first_ns < 0) {
    std::fprintf(stderr, "%s: %s holds no window record (a window log from --log, or a raw log from --log-raw)\n",
                 g_tool.c_str(), o.label.c_str());
    return kExitUsage;
  }
  overflows = bad = 0;
  const std::int64_t lo = o.from.set ? o.from.resolve(first_ns) : std::numeric_limits<std::int64_t>::min();
  const std::int64_t hi = o.to.set ? o.to.resolve(first_ns) : std::numeric_limits<std::int64_t>::max();
  std::uint64_t rows = 0, events = 0;
  std::int64_t t_ref = -1;  // t_s counts from the first row exported
  // The windows in the range with their start; step events only counted (CSV and COMTRADE hold windows).
  auto each_window = [&](const std::function<void(simdjson::dom::element, std::int64_t)>& f) {
    for_each([&](simdjson::dom::element doc, bool event) {
      if (event) {
        ++events;
        return;
      }
      const std::int64_t start = integer(doc, "/start_ns");
      if (start >= lo && start <= hi) f(doc, start);
    });
  };
  // The car side of a charger (windows with P_in_W): its efficiency map over
  // the windows exported, binned as the daemon bins it (charging windows, not partial ones).
  auto efficiency_map = [&] {
    wattpipe::pipeline::EfficiencyMap map(o.efficiency_bin_kw * 1e3);
    const std::uint64_t events_before = events;
    bool two_points = false;
    each_window([&](simdjson::dom::element doc, std::int64_t start) {
      const double p_in = number(doc, "/P_in_W"), p_out = number(doc, "/power_W/total");
      bool partial = false;
      if (doc["partial"].get_bool().get(partial) != simdjson::SUCCESS) partial = false;
      two_points = two_points || doc["P_in_W"].error() == simdjson::SUCCESS;
      if (!(p_in > 0 && p_out >= 0) || partial) return;
      const double hours = double(integer(doc, "/end_ns") - start) * 1e-9 / 3600;
      map.add(p_out, p_in * hours, p_out * hours);
    });
    events = events_before;
    return std::pair{map, two_points};
  };
  if (o.efficiency_map && o.format != "csv") throw UsageError("--efficiency-map: CSV only (HDF5 always has /efficiency_map)");

  if (o.format == "csv" && o.efficiency_map) {
    const auto [map, two_points] = efficiency_map();
    if (!two_points)
      throw UsageError(o.label + " has no window measured against an input (the car side of --points grid,car)");
    std::FILE* out = o.output.empty() ? stdout : std::fopen(o.output.c_str(), "w");
    if (out == nullptr) throw UsageError(fmt::format("cannot write '{}'", o.output));
    if (out != stdout) g_created = o.output;
    std::fprintf(out, "p_lo_W,p_hi_W,efficiency,E_in_Wh,E_out_Wh,windows\n");
    for (const auto& b : map.bins()) {
      std::fprintf(out, "%.10g,%.10g,%.10g,%.10g,%.10g,%llu\n", b.p_lo_w, b.p_hi_w, b.efficiency(), b.e_in_wh,
                   b.e_out_wh, static_cast<unsigned long long>(b.windows));
      ++rows;
    }
    const bool ok = std::fflush(out) == 0 && !std::ferror(out);
    if (out != stdout) std::fclose(out);
    if (!ok) throw std::runtime_error(fmt::format("writing '{}' failed", o.output));
    std::fprintf(stderr, "%s: the efficiency map, %llu bins of %g kW\n", g_tool.c_str(),
                 static_cast<unsigned long long>(rows), o.efficiency_bin_kw);
    return rows > 0 ? 0 : kExitUsage;
  }
  if (o.format == "csv") {
    std::FILE* out = o.output.empty() ? stdout : std::fopen(o.output.c_str(), "w");
    if (out == nullptr) throw UsageError(fmt::format("cannot write '{}'", o.output));
    if (out != stdout) g_created = o.output;
    std::setvbuf(out, nullptr, _IOFBF, 1 << 20);
    std::fprintf(out, "t_s,time_utc");
    for (const Column& c : cols)
      for (std::size_t k = 0; k < c.width; ++k)
        std::fprintf(out, c.width == 1 ? ",%s" : ",%s_%zu", c.name.c_str(), k + 1);
    std::fputc('\n', out);
    each_window([&](simdjson::dom::element doc, std::int64_t start) {
      if (t_ref < 0) t_ref = start;
      std::fprintf(out, "%.9f,%s", double(start - t_ref) * 1e-9, iso_utc(start).c_str());
      for (const Column& c : cols) {
        if (c.ns()) {
          std::fprintf(out, ",%lld", static_cast<long long>(integer(doc, c.pointer)));
          continue;
        }
        for (std::size_t k = 0; k < c.width; ++k) {
          const double v = number(doc, c.width == 1 ? c.pointer : fmt::format("{}/{}", c.pointer, k));
          if (std::isnan(v)) std::fputs(",", out);
          else std::fprintf(out, ",%.10g", v);
        }
      }
      std::fputc('\n', out);
      ++rows;
    });
    const bool ok = std::fflush(out) == 0 && !std::ferror(out);
    if (out != stdout) std::fclose(out);
    if (!ok) throw std::runtime_error(fmt::format("writing '{}' failed", o.output));
    if (events > 0)
      std::fprintf(stderr, "%s: %llu step events left out (rows are windows; HDF5 keeps them in /steps)\n",
                   g_tool.c_str(), static_cast<unsigned long long>(events));
  } else if (o.format == "comtrade") {
    // A trend record: every quantity with a unit, one sample per window at its start (nrates 0).
    std::vector<const Column*> quantities;
    std::vector<comtrade::ChannelSpec> specs;
    for (const Column& c : cols) {
      const std::string unit = c.width == 1 && !c.ns() ? units_of(c.top) : "";
      if (unit.empty() || unit == "s") continue;
      quantities.push_back(&c);
      specs.push_back({c.name, phase_of(c.name), unit});
    }
    if (quantities.empty()) throw UsageError("no quantity with a unit to write as COMTRADE");
    std::unique_ptr<comtrade::Writer> w;
    std::vector<float> x(quantities.size());
    const auto type = o.comtrade_type == "binary32" ? comtrade::DataType::binary32 : comtrade::DataType::float32;
    each_window([&](simdjson::dom::element doc, std::int64_t start) {
      if (!w) w = std::make_unique<comtrade::Writer>(comtrade_base(o.output), specs, start, type);
      for (std::size_t k = 0; k < quantities.size(); ++k) x[k] = float(number(doc, quantities[k]->pointer));
      w->write_at(x.data(), start);
      ++rows;
    });
    if (w) w->close();
    if (events > 0)
      std::fprintf(stderr, "%s: %llu step events left out (a COMTRADE trend holds windows; HDF5 keeps them in /steps)\n",
                   g_tool.c_str(), static_cast<unsigned long long>(events));
  } else {
    H5File h5(o.output);
    h5_attr(h5.id(), "kind", "wattpipe windows");
    h5_attr(h5.id(), o.store.empty() ? "source_file" : "source_database", o.source_name);
    h5_attr(h5.id(), "meter_id", meter_id);
    h5_attr(h5.id(), "wattpipe_version", WATTPIPE_VERSION);
    if (!measured_by.empty()) h5_attr(h5.id(), "software_id", measured_by);  // of the daemon that measured
    // 1-D quantities in /windows (a DataFrame each column), arrays (harmonics) in /spectra.
    const hid_t gw = h5.group("/windows");
    // A column's values, buffered: doubles, or int64 for times in ns.
    struct Buffered {
      std::unique_ptr<H5Series> series;
      std::vector<double> d;
      std::vector<std::int64_t> i;
    };
    auto make = [&](hid_t g, const Column& c) {
      return Buffered{std::make_unique<H5Series>(g, c.name, c.ns() ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, c.width,
                                                 c.ns() ? "ns" : units_of(c.top)),
                      {}, {}};
    };
    std::vector<Buffered> buf, sbuf;
    for (const Column& c : cols) buf.push_back(make(c.width == 1 ? gw : h5.group("/spectra"), c));
    H5Series t_s(gw, "t_s", H5T_NATIVE_DOUBLE, 1, "s");
    for (const Column& c : step_cols) sbuf.push_back(make(h5.group("/steps"), c));
    std::vector<std::string> phases;  // of the steps
    constexpr std::size_t kChunk = 4096;
    std::vector<double> tbuf;
    std::size_t pending = 0, spending = 0;
    auto flush_all = [](std::vector<Buffered>& bs, std::size_t rows) {
      for (auto& b : bs) {
        if (b.i.empty()) b.series->append(b.d.data(), rows);
        else b.series->append(b.i.data(), rows);
        b.d.clear(), b.i.clear();
      }
    };
    auto flush = [&] {
      flush_all(buf, pending);
      t_s.append(tbuf.data(), pending);
      tbuf.clear();
      pending = 0;
      flush_all(sbuf, spending);
      spending = 0;
    };
    for_each([&](simdjson::dom::element doc, bool event) {
      auto row = [&](const std::vector<Column>& cs, std::vector<Buffered>& b) {
        for (std::size_t k = 0; k < cs.size(); ++k) {
          if (cs[k].ns()) {
            b[k].i.push_back(integer(doc, cs[k].pointer));
            continue;
          }
          for (std::size_t j = 0; j < cs[k].width; ++j)
            b[k].d.push_back(number(doc, cs[k].width == 1 ? cs[k].pointer : fmt::format("{}/{}", cs[k].pointer, j)));
        }
      };
      if (event) {
        const std::int64_t t = integer(doc, "/t_start_ns");
        if (t < lo || t > hi) return;
        row(step_cols, sbuf);
        std::string_view ph;
        phases.emplace_back(doc["phase"].get_string().get(ph) == simdjson::SUCCESS ? ph : "");
        ++spending, ++events;
      } else {
        const std::int64_t start = integer(doc, "/start_ns");
        if (start < lo || start > hi) return;
        if (t_ref < 0) t_ref = start;
        row(cols, buf);
        tbuf.push_back(double(start - t_ref) * 1e-9);
        ++pending, ++rows;
      }
      if (pending >= kChunk || spending >= kChunk) flush();
    });
    flush();
    if (!step_cols.empty()) h5_strings(h5.group("/steps"), "phase", phases);
    // Two points: /efficiency_map, one row per bin of output power.
    if (const auto [map, two_points] = efficiency_map(); two_points) {
      const hid_t gm = h5.group("/efficiency_map");
      h5_attr_num<double>(gm, "bin_W", map.bin_w(), H5T_NATIVE_DOUBLE);
      const auto bins = map.bins();
      std::vector<double> v(bins.size());
      const std::pair<const char*, const char*> fields[] = {{"p_lo_W", "W"},   {"p_hi_W", "W"},    {"efficiency", "1"},
                                                            {"E_in_Wh", "Wh"}, {"E_out_Wh", "Wh"}, {"windows", "1"}};
      for (std::size_t f = 0; f < std::size(fields); ++f) {
        for (std::size_t k = 0; k < bins.size(); ++k) {
          const auto& b = bins[k];
          const double x[] = {b.p_lo_w, b.p_hi_w, b.efficiency(), b.e_in_wh, b.e_out_wh, double(b.windows)};
          v[k] = x[f];
        }
        H5Series ds(gm, fields[f].first, H5T_NATIVE_DOUBLE, 1, fields[f].second);
        if (!v.empty()) ds.append(v.data(), v.size());
        ds.close();
      }
    }
    h5_attr(h5.id(), "start_utc", iso_utc(t_ref < 0 ? first_ns : t_ref));
    h5_attr_num<std::int64_t>(h5.id(), "start_ns", t_ref < 0 ? first_ns : t_ref, H5T_NATIVE_INT64);
    for (auto* bs : {&buf, &sbuf})
      for (auto& b : *bs) b.series->close();
    t_s.close();
    h5.close();
  }
  std::fprintf(stderr, "%s: %llu windows%s%s\n", g_tool.c_str(), static_cast<unsigned long long>(rows),
               overflows ? fmt::format(" ({} overflow records: windows were lost)", overflows).c_str() : "",
               bad ? fmt::format(" ({} unreadable lines skipped)", bad).c_str() : "");
  return rows > 0 ? 0 : kExitUsage;
}

// ---- raw logs -----------------------------------------------------------------


// Calls `f(block)` for each good piece of the raw log, read by the replay
// source (the daemon's own reader: the same checks, the same reasons for
// stopping at a cut or corrupt block, said on stderr).
void for_each_block(const std::string& path, const std::function<void(const wattpipe::acquire::SampleBlock&)>& f) {
  wattpipe::acquire::ReplaySource src(path, /*max_rate=*/true, /*loop=*/false);
  auto b = std::make_unique<wattpipe::acquire::SampleBlock>();
  wattpipe::tools::Progress progress(g_tool);
  while (src.read(*b, std::chrono::seconds(1)) == wattpipe::acquire::ReadStatus::ok) {
    progress.update(double(src.bytes_read()), double(src.file_size()));
    f(*b);
  }
}

int export_raw(const Options& o) {
  // The frames kept: in the time range, every decimate-th from the first kept.
  std::int64_t first_ns = -1, lo = 0, hi = 0, t_ref = -1;
  std::uint64_t rows = 0, kept_index = 0, next_frame = 0;
  bool have_prev = false;
  Layout layout{};
  double rate = 0;
  std::uint32_t ch = 0;
  // Per kept frame: its time and samples, handed to the format's writer.
  std::function<void(std::int64_t, std::uint64_t, const float*)> emit;
  auto visit = [&](const wattpipe::acquire::SampleBlock& h) {
    const float* x = h.data.data();
    if (first_ns < 0) {
      first_ns = h.t0_ns;
      lo = o.from.set ? o.from.resolve(first_ns) : std::numeric_limits<std::int64_t>::min();
      hi = o.to.set ? o.to.resolve(first_ns) : std::numeric_limits<std::int64_t>::max();
      layout = h.layout;
      rate = h.sample_rate_hz;
      ch = wattpipe::acquire::layout_info(h.layout).channels;
    }
    if (h.layout != layout)
      throw UsageError(fmt::format("the layout changes at frame {} ({} -> {}); export the parts with --from/--to",
                                   h.first_frame, wattpipe::acquire::layout_name(layout),
                                   wattpipe::acquire::layout_name(h.layout)));
    for (std::uint32_t f = 0; f < h.frames; ++f) {
      const std::int64_t t = h.t0_ns + std::llround(double(f) * 1e9 / h.sample_rate_hz);
      if (t < lo || t > hi) continue;
      if (o.format == "comtrade") {
        // COMTRADE has one rate and no gaps: refuse what it cannot say.
        if (h.sample_rate_hz != rate)
          throw UsageError(fmt::format("the sample rate changes at frame {} ({} -> {} Hz); COMTRADE holds one rate: "
                                       "export the parts with --from/--to", h.first_frame + f, rate, h.sample_rate_hz));
        if (have_prev && h.first_frame + f != next_frame)
          throw UsageError(fmt::format("{} frames missing before frame {}; COMTRADE needs continuous samples: "
                                       "export the parts with --from/--to", h.first_frame + f - next_frame,
                                       h.first_frame + f));
      }
      have_prev = true;
      next_frame = h.first_frame + f + 1;
      if (kept_index++ % o.decimate != 0) continue;
      if (t_ref < 0) t_ref = t;
      emit(t, h.first_frame + f, x + std::size_t{f} * ch);
      ++rows;
    }
  };
  // The layout and rate come from the first block; read it before any writer opens.
  auto first_block = std::make_unique<wattpipe::acquire::SampleBlock>();
  std::string measured_by;  // the software id in the log's note (docs/legal.md)
  {
    wattpipe::acquire::ReplaySource src(o.input, true, false);
    if (src.read(*first_block, std::chrono::seconds(1)) != wattpipe::acquire::ReadStatus::ok)
      throw UsageError(fmt::format("'{}': the first block is unreadable: {}", o.input, src.end_reason()));
    simdjson::dom::parser p;
    simdjson::dom::element note;
    std::string_view sid;
    if (!src.note().empty() && p.parse(src.note()).get(note) == simdjson::SUCCESS &&
        note["software_id"].get_string().get(sid) == simdjson::SUCCESS)
      measured_by = std::string(sid);
  }
  const wattpipe::acquire::SampleBlock& first = *first_block;
  const std::uint32_t nch = wattpipe::acquire::layout_info(first.layout).channels;
  auto name = [&](std::uint32_t c) { return std::string(wattpipe::acquire::channel_name(first.layout, c)); };

  if (o.format == "csv") {
    std::FILE* out = o.output.empty() ? stdout : std::fopen(o.output.c_str(), "w");
    if (out == nullptr) throw UsageError(fmt::format("cannot write '{}'", o.output));
    if (out != stdout) g_created = o.output;
    std::setvbuf(out, nullptr, _IOFBF, 1 << 20);
    std::fprintf(out, "frame,t_s,time_utc");
    for (std::uint32_t c = 0; c < nch; ++c) std::fprintf(out, ",%s_%s", name(c).c_str(), name(c)[0] == 'U' ? "V" : "A");
    std::fputc('\n', out);
    emit = [&](std::int64_t t, std::uint64_t frame, const float* x) {
      std::fprintf(out, "%llu,%.9f,%s", static_cast<unsigned long long>(frame), double(t - t_ref) * 1e-9,
                   iso_utc(t).c_str());
      for (std::uint32_t c = 0; c < nch; ++c) std::fprintf(out, ",%.9g", double(x[c]));
      std::fputc('\n', out);
    };
    for_each_block(o.input, visit);
    const bool ok = std::fflush(out) == 0 && !std::ferror(out);
    if (out != stdout) std::fclose(out);
    if (!ok) throw std::runtime_error(fmt::format("writing '{}' failed", o.output));
  } else if (o.format == "comtrade") {
    const std::string base = comtrade_base(o.output);
    std::unique_ptr<comtrade::Writer> w;
    std::vector<float> batch;
    emit = [&](std::int64_t t, std::uint64_t, const float* x) {
      if (!w)
        w = std::make_unique<comtrade::Writer>(base, first.layout, first.sample_rate_hz / o.decimate, t,
                                               o.comtrade_type == "binary32" ? comtrade::DataType::binary32
                                                                             : comtrade::DataType::float32);
      batch.insert(batch.end(), x, x + nch);
      if (batch.size() >= 4096 * nch) w->write(batch.data(), batch.size() / nch), batch.clear();
    };
    for_each_block(o.input, visit);
    if (w) {
      w->write(batch.data(), batch.size() / nch);
      w->close();
    }
  } else {
    H5File h5(o.output);
    h5_attr(h5.id(), "kind", "wattpipe raw samples");
    h5_attr(h5.id(), "source_file", std::filesystem::path(o.input).filename().string());
    h5_attr(h5.id(), "wattpipe_version", WATTPIPE_VERSION);
    if (!measured_by.empty()) h5_attr(h5.id(), "software_id", measured_by);  // of the daemon that recorded
    h5_attr(h5.id(), "layout", std::string(wattpipe::acquire::layout_name(first.layout)));
    const hid_t g = h5.group("/raw");
    h5_attr_num<double>(g, "sample_rate_Hz", first.sample_rate_hz / o.decimate, H5T_NATIVE_DOUBLE);
    std::vector<std::unique_ptr<H5Series>> chans;
    for (std::uint32_t c = 0; c < nch; ++c)
      chans.push_back(std::make_unique<H5Series>(g, name(c), H5T_NATIVE_FLOAT, 1, name(c)[0] == 'U' ? "V" : "A"));
    H5Series t_s(g, "t_s", H5T_NATIVE_DOUBLE, 1, "s");
    H5Series frame(g, "frame", H5T_NATIVE_UINT64, 1, "");
    constexpr std::size_t kChunk = 65536;
    std::vector<std::vector<float>> buf(nch);
    std::vector<double> tb;
    std::vector<std::uint64_t> fb;
    auto flush = [&] {
      for (std::uint32_t c = 0; c < nch; ++c) chans[c]->append(buf[c].data(), buf[c].size()), buf[c].clear();
      t_s.append(tb.data(), tb.size());
      frame.append(fb.data(), fb.size());
      tb.clear(), fb.clear();
    };
    emit = [&](std::int64_t t, std::uint64_t f, const float* x) {
      for (std::uint32_t c = 0; c < nch; ++c) buf[c].push_back(x[c]);
      tb.push_back(double(t - t_ref) * 1e-9);
      fb.push_back(f);
      if (tb.size() >= kChunk) flush();
    };
    for_each_block(o.input, visit);
    flush();
    h5_attr(h5.id(), "start_utc", iso_utc(t_ref < 0 ? first.t0_ns : t_ref));
    h5_attr_num<std::int64_t>(h5.id(), "start_ns", t_ref < 0 ? first.t0_ns : t_ref, H5T_NATIVE_INT64);
    for (auto& c : chans) c->close();
    t_s.close();
    frame.close();
    h5.close();
  }
  std::fprintf(stderr, "%s: %llu frames\n", g_tool.c_str(), static_cast<unsigned long long>(rows));
  return rows > 0 ? 0 : kExitUsage;
}

// A module's windows and steps from the database store, through the window export.
int export_store(Options o) {
  if (!o.input.empty()) throw UsageError("--store reads the database: no log file as well");
  if (o.module_id.empty()) throw UsageError("--store needs --module-id (whose windows)");
  wattpipe::tools::StoreReader db(o.store, o.module_id);
  o.label = fmt::format("module '{}' in the database {}", o.module_id, db.target());
  o.source_name = fmt::format("{} module {}", db.target(), o.module_id);
  const std::int64_t first = db.first_ns();
  if (first < 0) {
    std::fprintf(stderr, "%s: %s holds no window record\n", g_tool.c_str(), o.label.c_str());
    return kExitUsage;
  }
  // The bounds, resolved once against the module's first window, go to the query and to the export.
  const std::int64_t lo = o.from.set ? o.from.resolve(first) : first;
  const std::int64_t hi = o.to.set ? o.to.resolve(first) : std::numeric_limits<std::int64_t>::max() / 2;
  o.from = TimeBound{true, true, 0, lo};
  o.to = TimeBound{true, true, 0, hi};
  const std::uint64_t total = db.windows_between(lo, hi);
  return export_windows(o, [&](const std::function<void(std::string_view)>& f) {
    wattpipe::tools::Progress progress(g_tool);
    std::uint64_t n = 0;
    db.windows(lo, hi, [&](std::string_view row) {
      progress.update(double(++n), double(total));
      f(row);
    });
    db.steps(lo, hi, f);
  });
}

}  // namespace

// A failed export: its message, and no partial output file left behind.
int failed(const char* what, int code) {
  std::fprintf(stderr, "%s: %s\n", g_tool.c_str(), what);
  if (!g_created.empty()) {
    std::error_code ec;
    if (std::filesystem::remove(g_created, ec)) std::fprintf(stderr, "%s: removed the partial '%s'\n", g_tool.c_str(), g_created.c_str());
  }
  return code;
}

int main(int argc, char** argv) {
  // HDF5 1.10's exit handler crashes closing a file whose flush failed (a
  // full disk); every file is closed here, so it has nothing to do.
  H5dont_atexit();
  Options o;
  o.log2csv = std::filesystem::path(argv[0]).filename().string() == "wattpipe-log2csv";
  if (o.log2csv) g_tool = "wattpipe-log2csv";
  CLI::App app{g_tool + ": a window log (JSON Lines, --log) or a raw log (WPRB, --log-raw) as CSV, HDF5 or COMTRADE"};
  std::string from, to;
  app.add_option("input", o.input, "the log file (or --store)");
  app.add_option("--store", o.store, "read a module's windows back from the database store instead: a libpq "
                                     "connection string, postgresql://USER@HOST:PORT/DB (docs/store.md)");
  app.add_option("--module-id", o.module_id, "with --store: whose windows");
  app.add_option("-o,--output", o.output,
                 "output file (CSV: default standard output; COMTRADE: FILE gives FILE.cfg and FILE.dat)");
  app.add_option("-f,--format", o.format, "csv, hdf5, or comtrade (raw logs: the samples; windows: a trend, a sample per window)")
      ->check(CLI::IsMember({"csv", "hdf5", "comtrade"}))
      ->capture_default_str();
  app.add_option("--from", from, "first time exported: seconds from the log's start, or a UTC time 2026-11-23T20:12:58.5Z");
  app.add_option("--to", to, "last time exported, as --from");
  app.add_option("--decimate", o.decimate, "raw logs: keep every Nth frame (no filtering)")
      ->check(CLI::Range(1u, 1000000u))
      ->capture_default_str();
  app.add_option("--comtrade-type", o.comtrade_type, "COMTRADE data: float32 (exact) or binary32")
      ->check(CLI::IsMember({"float32", "binary32"}))
      ->capture_default_str();
  app.add_flag("--efficiency-map", o.efficiency_map,
               "the car side of a charger's window log: its efficiency map by output power as CSV, instead of the windows");
  app.add_option("--efficiency-bin-kw", o.efficiency_bin_kw, "the efficiency map's bins of output power")
      ->check(CLI::Range(0.001, 1e6))
      ->capture_default_str();
  wattpipe::tools::add_version(app, g_tool.c_str());
  if (const int rc = wattpipe::tools::parse(app, argc, argv); rc >= 0) return rc;
  // The raw-log reader reports through spdlog: to stderr, as the tool's own lines (CSV may go to stdout).
  spdlog::set_default_logger(spdlog::stderr_logger_st(g_tool));
  spdlog::set_pattern(g_tool + ": %v");
  try {
    o.from = parse_bound(from, "--from");
    o.to = parse_bound(to, "--to");
    if (o.format != "csv" && o.output.empty()) throw UsageError("--format " + o.format + " needs -o FILE");
    if (!o.store.empty()) return export_store(o);
    if (o.input.empty()) throw UsageError("name a log file, or --store URL --module-id M");
    std::ifstream in(o.input, std::ios::binary);
    if (!in) throw UsageError(fmt::format("cannot read '{}'", o.input));
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::uint64_t>(in.tellg());
    in.seekg(0);
    char magic[4] = {};
    in.read(magic, 4);
    const std::string_view m(magic, 4);
    if (m == "WPRB" || m == "WPRN") return export_raw(o);  // (WPRN: a raw log's note)
    o.label = "'" + o.input + "'";
    o.source_name = std::filesystem::path(o.input).filename().string();
    return export_windows(o, file_lines(o.input, size));
  } catch (const UsageError& e) {
    return failed(e.what(), kExitUsage);
  } catch (const comtrade::Error& e) {
    return failed(e.what(), kExitFailure);
  } catch (const std::exception& e) {
    return failed(e.what(), kExitFailure);
  }
}

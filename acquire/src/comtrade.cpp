// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/comtrade.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "wattpipe/acquire/clock.hpp"

namespace wattpipe::acquire::comtrade {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t at = 0;
  for (;;) {
    const std::size_t comma = line.find(',', at);
    out.push_back(trim(line.substr(at, comma == std::string_view::npos ? std::string_view::npos : comma - at)));
    if (comma == std::string_view::npos) return out;
    at = comma + 1;
  }
}

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& ch : u) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  return u;
}

// Lines of a text with their numbers, and errors that name them.
class Lines {
 public:
  Lines(std::string_view text, std::string name, int line0) : text_(text), name_(std::move(name)), line_(line0 - 1) {}
  std::string_view next(const char* what) {
    if (at_ >= text_.size()) fail_at(line_ + 1, fmt::format("ends before the {} line", what));
    const std::size_t nl = text_.find('\n', at_);
    const std::string_view l = text_.substr(at_, nl == std::string_view::npos ? std::string_view::npos : nl - at_);
    at_ = nl == std::string_view::npos ? text_.size() : nl + 1;
    ++line_;
    return trim(l);
  }
  [[nodiscard]] bool done() const {
    return trim(text_.substr(std::min(at_, text_.size()))).find_first_not_of("\r\n \t") == std::string_view::npos;
  }
  [[noreturn]] void fail(const std::string& why) const { fail_at(line_, why); }
  [[noreturn]] void fail_at(int line, const std::string& why) const {
    throw Error(fmt::format("{} line {}: {}", name_, line, why));
  }
  template <typename T>
  T number(std::string_view s, const char* what) const {
    T v{};
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size())
      fail(fmt::format("{} '{}' is not a number", what, s));
    return v;
  }
  double real(std::string_view s, const char* what) const {
    // from_chars for double does not take a leading '+' or forms like "1.e3"; strtod does.
    const std::string t(s);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || errno == ERANGE || !std::isfinite(v))
      fail(fmt::format("{} '{}' is not a number", what, s));
    return v;
  }

 private:
  std::string_view text_;
  std::string name_;
  std::size_t at_ = 0;
  int line_;
};

// "dd/mm/yyyy,hh:mm:ss.ssssss" (mm/dd/yy in 1991) to ns since the epoch, and
// the resolution its fraction is written in.
std::int64_t parse_time(const Lines& L, std::string_view line, int rev, std::int64_t* unit_ns) {
  const auto f = split(line);
  if (f.size() != 2) L.fail(fmt::format("expected date,time, got '{}'", line));
  std::string date(f[0]);
  for (char& ch : date)
    if (ch == '/') ch = ',';
  const auto dp = split(date);
  if (dp.size() != 3) L.fail(fmt::format("date '{}' is not dd/mm/yyyy", f[0]));
  int a = L.number<int>(dp[0], "day"), b = L.number<int>(dp[1], "month"), y = L.number<int>(dp[2], "year");
  int day = a, month = b;
  if (rev < 1999) std::swap(day, month);  // 1991: mm/dd/yy
  if (y < 100) y += y < 70 ? 2000 : 1900;
  std::string tm(f[1]);
  for (char& ch : tm)
    if (ch == ':') ch = ',';
  const auto tp = split(tm);
  if (tp.size() != 3) L.fail(fmt::format("time '{}' is not hh:mm:ss.ssssss", f[1]));
  const int hh = L.number<int>(tp[0], "hour"), mi = L.number<int>(tp[1], "minute");
  const std::string_view sec = tp[2];
  const std::size_t dot = sec.find('.');
  const int ss = L.number<int>(sec.substr(0, dot), "second");
  std::int64_t frac_ns = 0;
  std::size_t digits = 0;
  if (dot != std::string_view::npos) {
    const std::string_view fr = sec.substr(dot + 1);
    digits = fr.size();
    if (digits == 0 || digits > 9) L.fail(fmt::format("seconds '{}': 1 to 9 decimals", sec));
    frac_ns = L.number<std::int64_t>(fr, "fraction of a second");
    if (frac_ns < 0) L.fail(fmt::format("seconds '{}': not a fraction", sec));
    for (std::size_t k = digits; k < 9; ++k) frac_ns *= 10;
  }
  // Years that ns since the epoch in 64 bits can hold.
  if (month < 1 || month > 12 || day < 1 || day > 31 || hh > 23 || mi > 59 || ss > 60 || hh < 0 || mi < 0 || ss < 0 ||
      y < 1678 || y > 2261)
    L.fail(fmt::format("date or time out of range: '{}'", line));
  if (unit_ns != nullptr) *unit_ns = digits > 6 ? 1 : 1000;  // 2013: nanosecond dates mean nanosecond time stamps
  const std::int64_t days = days_from_civil(y, unsigned(month), unsigned(day));
  return ((days * 24 + hh) * 60 + mi) * 60'000'000'000LL + std::int64_t{ss} * 1'000'000'000 + frac_ns;
}

// 2013 time_code: "+5h30", "-4", "0"; "x" (not applicable) counts as 0.
std::int64_t parse_time_code(const Lines& L, std::string_view s) {
  if (s.empty() || s == "x" || s == "X" || s == "Z" || s == "z") return 0;
  int sign = 1;
  if (s.front() == '+' || s.front() == '-') {
    sign = s.front() == '-' ? -1 : 1;
    s.remove_prefix(1);
  }
  const std::size_t h = s.find_first_of("hH");
  const int hours = L.number<int>(s.substr(0, h), "time_code hours");
  const int minutes = h == std::string_view::npos ? 0 : L.number<int>(s.substr(h + 1), "time_code minutes");
  if (hours > 24 || minutes > 59) L.fail(fmt::format("time_code '{}' out of range", s));
  return sign * (std::int64_t{hours} * 3600 + std::int64_t{minutes} * 60) * 1'000'000'000;
}

double unit_prefix(std::string_view u, char base) {
  if (u.size() == 1 && (u[0] == base || u[0] == char(std::tolower(base)))) return 1;
  if (u.size() != 2 || std::toupper(static_cast<unsigned char>(u[1])) != base) return 0;
  switch (u[0]) {
    case 'k': case 'K': return 1e3;
    case 'M': return 1e6;
    case 'm': return 1e-3;
    case 'u': return 1e-6;
    default: return 0;
  }
}

std::size_t analog_bytes(DataType t) { return t == DataType::binary ? 2 : 4; }

}  // namespace

bool Analog::is_voltage() const noexcept { return unit_prefix(unit, 'V') != 0; }
bool Analog::is_current() const noexcept { return unit_prefix(unit, 'A') != 0; }

double Analog::to_si_primary() const noexcept {
  const double u = is_voltage() ? unit_prefix(unit, 'V') : unit_prefix(unit, 'A');
  const double ratio = (ps == 'S' || ps == 's') && secondary != 0 && primary != 0 ? primary / secondary : 1.0;
  return u * ratio;
}

Config parse_cfg(std::string_view text, const std::string& name, int line0) {
  Lines L(text, name, line0);
  Config c;
  {
    const auto f = split(L.next("station_name,rec_dev_id,rev_year"));
    if (f.size() < 2) L.fail("expected station_name,rec_dev_id,rev_year");
    c.station = std::string(f[0]);
    c.device = std::string(f[1]);
    c.rev_year = f.size() >= 3 && !f[2].empty() ? L.number<int>(f[2], "rev_year") : 1991;
    if (c.rev_year != 1991 && c.rev_year != 1999 && c.rev_year != 2013)
      L.fail(fmt::format("rev_year {}: 1991, 1999 or 2013", c.rev_year));
  }
  std::size_t na = 0, nd = 0;
  {
    const auto f = split(L.next("TT,##A,##D"));
    if (f.size() != 3 || f[1].empty() || f[2].empty() || upper(f[1]).back() != 'A' || upper(f[2]).back() != 'D')
      L.fail("expected TT,##A,##D");
    const auto tt = L.number<std::size_t>(f[0], "TT");
    na = L.number<std::size_t>(f[1].substr(0, f[1].size() - 1), "##A");
    nd = L.number<std::size_t>(f[2].substr(0, f[2].size() - 1), "##D");
    if (tt != na + nd) L.fail(fmt::format("TT {} is not {}A + {}D", tt, na, nd));
    if (na > 100000 || nd > 100000) L.fail("more than 100000 channels");
  }
  for (std::size_t k = 0; k < na; ++k) {
    const auto f = split(L.next("analog channel"));
    if (f.size() != 10 && f.size() != 13)
      L.fail(fmt::format("analog channel: {} fields, expected 13 (or 10 in 1991)", f.size()));
    if (L.number<std::size_t>(f[0], "An") != k + 1) L.fail(fmt::format("analog channel number {} out of order", f[0]));
    Analog a;
    a.id = std::string(f[1]);
    a.phase = std::string(f[2]);
    a.ccbm = std::string(f[3]);
    a.unit = std::string(f[4]);
    a.a = L.real(f[5], "a");
    a.b = L.real(f[6], "b");
    a.skew_us = f[7].empty() ? 0 : L.real(f[7], "skew");
    a.min = L.real(f[8], "min");
    a.max = L.real(f[9], "max");
    if (f.size() == 13) {
      a.primary = L.real(f[10], "primary");
      a.secondary = L.real(f[11], "secondary");
      const std::string ps = upper(f[12]);
      if (ps != "P" && ps != "S") L.fail(fmt::format("PS '{}': P or S", f[12]));
      a.ps = ps[0];
      if (ps == "S" && (a.primary == 0 || a.secondary == 0)) L.fail("secondary values need non-zero primary and secondary");
    }
    c.analog.push_back(std::move(a));
  }
  for (std::size_t k = 0; k < nd; ++k) {
    const auto f = split(L.next("status channel"));
    if (f.size() != 3 && f.size() != 5) L.fail(fmt::format("status channel: {} fields, expected 5 (or 3 in 1991)", f.size()));
    c.digital.emplace_back(f[1]);
  }
  c.line_hz = L.real(L.next("line frequency"), "line frequency");
  const auto nrates = L.number<std::size_t>(L.next("nrates"), "nrates");
  if (nrates > 1000) L.fail("nrates over 1000");
  std::uint64_t prev_end = 0;
  for (std::size_t k = 0; k < std::max<std::size_t>(nrates, 1); ++k) {
    const auto f = split(L.next("samp,endsamp"));
    if (f.size() != 2) L.fail("expected samp,endsamp");
    const double samp = L.real(f[0], "samp");
    const auto end = L.number<std::uint64_t>(f[1], "endsamp");
    if (samp < 0 || samp > 1e9) L.fail(fmt::format("samp {} outside [0, 1 GHz]", samp));
    if (end <= prev_end && nrates > 0) L.fail(fmt::format("endsamp {} does not grow", end));
    prev_end = end;
    c.rates.push_back({nrates == 0 ? 0.0 : samp, end});
  }
  c.start_ns = parse_time(L, L.next("first data point time"), c.rev_year, &c.timestamp_unit_ns);
  c.trigger_ns = parse_time(L, L.next("trigger point time"), c.rev_year, nullptr);
  {
    const std::string ft = upper(L.next("file type"));
    if (ft == "ASCII") c.type = DataType::ascii;
    else if (ft == "BINARY") c.type = DataType::binary;
    else if (ft == "BINARY32") c.type = DataType::binary32;
    else if (ft == "FLOAT32") c.type = DataType::float32;
    else L.fail(fmt::format("file type '{}': ASCII, BINARY, BINARY32 or FLOAT32", ft));
  }
  if (c.rev_year >= 1999 && !L.done()) {
    c.timemult = L.real(L.next("timemult"), "timemult");
    if (!(c.timemult > 0 && c.timemult <= 1e9)) L.fail("timemult must be in (0, 1e9]");
  }
  if (c.rev_year >= 2013 && !L.done()) {
    const auto f = split(L.next("time_code,local_code"));
    c.utc_offset_ns = parse_time_code(L, f[0]);
    if (!L.done()) L.next("tmq_code,leapsec");
  }
  // Times in the record are local: UTC = local - offset.
  c.start_ns -= c.utc_offset_ns;
  c.trigger_ns -= c.utc_offset_ns;
  return c;
}

std::size_t record_bytes(const Config& c) noexcept {
  return 8 + c.analog.size() * analog_bytes(c.type) + 2 * ((c.digital.size() + 15) / 16);
}

ChannelMap map_channels(const Config& c, const std::string& spec) {
  ChannelMap m;
  auto find = [&](std::string_view key, std::string_view v) {
    if (!v.empty() && v.find_first_not_of("0123456789") == std::string_view::npos) {
      const auto idx = std::stoul(std::string(v));
      if (idx < 1 || idx > c.analog.size())
        throw Error(fmt::format("--channel-map {}={}: the record has analog channels 1 to {}", key, v, c.analog.size()));
      return int(idx - 1);
    }
    int hit = -1;
    for (std::size_t k = 0; k < c.analog.size(); ++k)
      if (c.analog[k].id == v) {
        if (hit >= 0) throw Error(fmt::format("--channel-map {}={}: several channels have that name; use its index", key, v));
        hit = int(k);
      }
    if (hit < 0) throw Error(fmt::format("--channel-map {}={}: no analog channel has that name", key, v));
    return hit;
  };
  static constexpr std::string_view kNames[] = {"U1", "U2", "U3", "UN", "I1", "I2", "I3", "IN", "U", "I"};
  int pick[10];
  std::fill(std::begin(pick), std::end(pick), -1);
  if (!spec.empty()) {
    for (const auto item : split(spec)) {
      const std::size_t eq = item.find('=');
      const std::string key = upper(trim(item.substr(0, eq)));
      const auto it = std::find(std::begin(kNames), std::end(kNames), key);
      if (eq == std::string_view::npos || it == std::end(kNames))
        throw Error(fmt::format("--channel-map: '{}' is not KEY=CHANNEL with KEY one of U1 U2 U3 UN I1 I2 I3 IN U I", item));
      pick[it - std::begin(kNames)] = find(key, trim(item.substr(eq + 1)));
    }
  } else if (c.analog.size() == 10 &&
             std::equal(std::begin(kNames), std::end(kNames), c.analog.begin(), [](std::string_view n, const Analog& a) {
               return a.id == n;
             })) {
    for (int k = 0; k < 10; ++k) pick[k] = k;  // wattpipe's own AC3N_DC export: both points, by name
  } else {
    std::vector<int> u, i;
    for (std::size_t k = 0; k < c.analog.size(); ++k) {
      if (c.analog[k].is_voltage()) u.push_back(int(k));
      if (c.analog[k].is_current()) i.push_back(int(k));
    }
    if (u.empty() || i.empty())
      throw Error("no voltage (V) and current (A) channels by unit; give --channel-map U1=...,I1=...");
    if (u.size() >= 3 && i.size() >= 3) {
      for (int k = 0; k < 3; ++k) pick[k] = u[std::size_t(k)], pick[4 + k] = i[std::size_t(k)];
    } else if (c.line_hz == 0) {
      pick[8] = u[0], pick[9] = i[0];
    } else {
      pick[0] = u[0], pick[4] = i[0];
    }
  }
  auto has = [&](std::initializer_list<int> ks) {
    for (int k : ks)
      if (pick[k] < 0) return false;
    return true;
  };
  const int given = int(std::count_if(std::begin(pick), std::end(pick), [](int p) { return p >= 0; }));
  if (given == 10) {  // both points: the grid (AC3N) and the DC output
    m.layout = Layout::ac3n_dc;
    m.analog.assign(pick, pick + 10);
  } else if (has({8, 9}) && given == 2) {
    m.layout = Layout::dc;
    m.analog = {pick[8], pick[9]};
  } else if (has({0, 1, 2, 3, 4, 5, 6, 7}) && given == 8) {
    m.layout = Layout::ac3n;
    m.analog.assign(pick, pick + 8);
  } else if (has({0, 1, 2, 4, 5, 6}) && given == 6) {
    m.layout = Layout::ac3;
    m.analog = {pick[0], pick[1], pick[2], pick[4], pick[5], pick[6]};
  } else if (has({0, 4}) && given == 2) {
    m.layout = Layout::ac1;
    m.analog = {pick[0], pick[4]};
  } else {
    throw Error("--channel-map: give U,I (DC), U1,I1 (AC1), U1-U3,I1-I3 (AC3), U1-U3,UN,I1-I3,IN (AC3N) or all "
                "ten (AC3N_DC: the grid side and the DC output)");
  }
  for (std::size_t k = 0; k < m.analog.size(); ++k) {
    const Analog& a = c.analog[std::size_t(m.analog[k])];
    const bool want_u = is_voltage(m.layout, std::uint32_t(k));
    if (want_u ? !a.is_voltage() : !a.is_current())
      throw Error(fmt::format("channel {} '{}' has unit '{}', not {}", m.analog[k] + 1, a.id, a.unit,
                              want_u ? "a voltage (V, kV, mV)" : "a current (A, kA, mA)"));
  }
  return m;
}

// ---- DatReader --------------------------------------------------------------

DatReader::DatReader(const Config& c, const std::string& path, std::uint64_t offset, std::uint64_t size)
    : c_(c), path_(path), left_(size), bounded_(size > 0) {
  f_ = std::fopen(path.c_str(), "rb");
  if (f_ == nullptr) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  if (std::fseek(f_, long(offset), SEEK_SET) != 0) throw Error(fmt::format("{}: cannot seek", path));
  rec_.resize(record_bytes(c));
}

DatReader::~DatReader() {
  if (f_ != nullptr) std::fclose(f_);
}

bool DatReader::next(std::int64_t& ts, std::vector<double>& analog) {
  const std::size_t na = c_.analog.size();
  analog.resize(na);
  if (c_.type != DataType::ascii) {
    if (bounded_ && left_ == 0) return false;
    const std::size_t got = std::fread(rec_.data(), 1, rec_.size(), f_);
    if (got == 0 && !bounded_) return false;
    if (got < rec_.size() || (bounded_ && left_ < rec_.size()))
      throw Error(fmt::format("{}: sample record {} is cut short ({} of {} bytes)", path_, n_ + 1, got, rec_.size()));
    left_ -= bounded_ ? rec_.size() : 0;
    ++n_;
    std::uint32_t num, t;
    std::memcpy(&num, rec_.data(), 4);
    std::memcpy(&t, rec_.data() + 4, 4);
    ts = t == 0xffffffffu ? -1 : std::int64_t{t};
    const unsigned char* p = rec_.data() + 8;
    for (std::size_t k = 0; k < na; ++k) {
      double x;
      bool missing;
      if (c_.type == DataType::binary) {
        std::int16_t v;
        std::memcpy(&v, p + 2 * k, 2);
        missing = v == std::numeric_limits<std::int16_t>::min();
        x = v;
      } else if (c_.type == DataType::binary32) {
        std::int32_t v;
        std::memcpy(&v, p + 4 * k, 4);
        missing = v == std::numeric_limits<std::int32_t>::min();
        x = v;
      } else {
        float v;
        std::memcpy(&v, p + 4 * k, 4);
        missing = !std::isfinite(v);
        x = v;
      }
      if (missing)
        throw Error(fmt::format("{}: sample record {} (n = {}): channel {} '{}' holds the missing-data marker", path_,
                                n_, num, k + 1, c_.analog[k].id));
      analog[k] = c_.analog[k].a * x + c_.analog[k].b;
    }
    return true;
  }
  // ASCII: n,timestamp,A1..Ak,D1..Dm per line.
  for (;;) {
    text_.clear();
    int ch;
    while ((ch = std::fgetc(f_)) != EOF && ch != '\n') text_.push_back(char(ch));
    if (ch == EOF && text_.empty()) return false;
    ++line_;
    const std::string_view l = trim(text_);
    if (l.empty() || l == "\x1a") continue;  // blank line, DOS end-of-file mark
    const auto f = split(l);
    const Lines L(l, path_, int(line_) + 1);
    if (f.size() != 2 + na + c_.digital.size())
      L.fail(fmt::format("{} fields, expected {} (n, timestamp, {} analog, {} status)", f.size(),
                         2 + na + c_.digital.size(), na, c_.digital.size()));
    ++n_;
    if (!f[1].empty()) {
      const double t = L.real(f[1], "timestamp");
      if (t < 0 || t > 9.0e15) L.fail(fmt::format("timestamp {} outside [0, 9e15]", f[1]));
      ts = std::llround(t);
    } else {
      ts = -1;
    }
    for (std::size_t k = 0; k < na; ++k) {
      // Missing data: an empty field; 99999 before 2013.
      if (f[2 + k].empty() || (c_.rev_year < 2013 && f[2 + k] == "99999"))
        L.fail(fmt::format("channel {} '{}' is missing (missing-data marker)", k + 1, c_.analog[k].id));
      analog[k] = c_.analog[k].a * L.real(f[2 + k], "sample") + c_.analog[k].b;
    }
    return true;
  }
}

Files open_record(const std::string& path) {
  namespace fs = std::filesystem;
  Files r;
  const fs::path p(path);
  std::string ext = p.extension().string();
  for (char& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  auto slurp = [](const fs::path& f, std::size_t limit) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw Error(fmt::format("{}: cannot open: {}", f.string(), std::strerror(errno)));
    in.seekg(0, std::ios::end);
    limit = std::min<std::size_t>(limit, static_cast<std::size_t>(std::max<std::streamoff>(0, in.tellg())));
    in.seekg(0);
    std::string s(limit, '\0');
    in.read(s.data(), std::streamsize(limit));
    s.resize(std::size_t(in.gcount()));
    return s;
  };
  if (ext == ".cfg") {
    r.cfg = parse_cfg(slurp(p, 16 << 20), p.string());
    for (const char* e : {".dat", ".DAT", ".Dat"}) {
      fs::path d = p;
      d.replace_extension(e);
      if (fs::exists(d)) {
        r.dat_path = d.string();
        return r;
      }
    }
    throw Error(fmt::format("{}: no .dat file beside it", path));
  }
  if (ext != ".cff") throw Error(fmt::format("{}: a COMTRADE record is a .cfg (with its .dat) or a .cff", path));
  // A .cff: text sections "--- file type: X ---", the DAT last.
  const std::string head = slurp(p, 64 << 20);
  std::size_t at = 0, cfg_at = std::string::npos, cfg_end = 0;
  int line = 1, cfg_line = 0;
  while (at < head.size()) {
    const std::size_t nl = head.find('\n', at);
    if (nl == std::string::npos) break;
    const std::string_view l = trim(std::string_view(head).substr(at, nl - at));
    const std::string u = upper(l);
    if (u.rfind("--- FILE TYPE:", 0) == 0) {
      if (cfg_at != std::string::npos && cfg_end == 0) cfg_end = at;
      if (u.find("CFG") != std::string::npos) cfg_at = nl + 1, cfg_line = line + 1;
      if (u.find(": DAT") != std::string::npos) {
        if (cfg_at == std::string::npos) throw Error(fmt::format("{} line {}: DAT before CFG", path, line));
        r.cfg = parse_cfg(std::string_view(head).substr(cfg_at, cfg_end - cfg_at), path, cfg_line);
        r.dat_path = path;
        r.dat_offset = nl + 1;
        const bool ascii = u.find("DAT ASCII") != std::string::npos;
        if (ascii != (r.cfg.type == DataType::ascii))
          throw Error(fmt::format("{} line {}: '{}' does not match the CFG's file type", path, line, l));
        if (!ascii) {
          // "--- file type: DAT BINARY: <bytes> ---"
          const std::size_t colon = l.rfind(':');
          std::string_view n = trim(l.substr(colon + 1));
          if (n.size() >= 3 && n.substr(n.size() - 3) == "---") n = trim(n.substr(0, n.size() - 3));
          const Lines L(l, path, line);
          r.dat_size = L.number<std::uint64_t>(n, "DAT byte count");
          if (r.dat_size == 0) L.fail("DAT of 0 bytes");
        }
        return r;
      }
    }
    at = nl + 1;
    ++line;
  }
  throw Error(fmt::format("{}: no '--- file type: DAT ... ---' section", path));
}

// ---- ComtradeSource ---------------------------------------------------------

ComtradeSource::ComtradeSource(const std::string& path, const std::string& channel_map, bool max_rate)
    : files_(open_record(path)), map_(map_channels(files_.cfg, channel_map)), max_rate_(max_rate) {
  const Config& c = files_.cfg;
  if (c.rates.size() > 1)
    throw Error(fmt::format("{}: {} sampling rates in one record; wattpipe replays records of one rate", path,
                            c.rates.size()));
  for (const int a : map_.analog) scale_.push_back(c.analog[std::size_t(a)].to_si_primary());
  // Check the whole record now: a bad sample refuses the source before anything is measured.
  std::int64_t ts = 0, first = -1, last = -1, prev = -1;
  {
    DatReader r(c, files_.dat_path, files_.dat_offset, files_.dat_size);
    while (r.next(ts, analog_)) {
      if (!c.uniform_rate()) {
        if (ts < 0) throw Error(fmt::format("{}: sample {} has no time stamp and the record gives no rate", path, r.samples_read()));
        if (ts <= prev) throw Error(fmt::format("{}: sample {}: time stamp {} does not grow", path, r.samples_read(), ts));
        prev = ts;
        if (first < 0) first = ts;
        last = ts;
      }
    }
    const std::uint64_t n = r.samples_read();
    if (n == 0) throw Error(fmt::format("{}: no samples", path));
    if (c.samples() != 0 && n != c.samples())
      throw Error(fmt::format("{}: {} samples, the configuration says {}", path, n, c.samples()));
    if (c.uniform_rate()) {
      rate_hz_ = c.rates[0].samp_hz;
    } else {
      if (n < 2 || last <= first) throw Error(fmt::format("{}: no rate and too few time stamps to find one", path));
      const double span_ns = double(last - first) * c.timemult * double(c.timestamp_unit_ns);
      if (span_ns > 1e18) throw Error(fmt::format("{}: the time stamps span more than 31 years", path));
      rate_hz_ = double(n - 1) / (span_ns * 1e-9);
      first_ts_ = first;
    }
  }
  if (!(rate_hz_ >= 1 && rate_hz_ <= 1e9)) throw Error(fmt::format("{}: sample rate {} Hz outside [1 Hz, 1 GHz]", path, rate_hz_));
  if (double(c.samples()) / rate_hz_ > 1e9) throw Error(fmt::format("{}: the record is longer than 31 years", path));
  reader_ = std::make_unique<DatReader>(c, files_.dat_path, files_.dat_offset, files_.dat_size);
}

ReadStatus ComtradeSource::read(SampleBlock& out, std::chrono::nanoseconds timeout) {
  const Config& c = files_.cfg;
  const LayoutInfo li = layout_info(map_.layout);
  const std::uint64_t left = c.samples() != 0 ? c.samples() - frame_ : kBlockFrames;
  const std::uint32_t want = std::uint32_t(std::min<std::uint64_t>(kBlockFrames, left));
  if (want == 0) return ReadStatus::end;
  // Paced: a block leaves when its last frame is due, on the record's time.
  if (!max_rate_ && !pacer_.wait(std::llround(double(frame_ + want) * 1e9 / rate_hz_), timeout.count()))
    return ReadStatus::timeout;
  std::int64_t ts = 0, t0 = 0;
  std::uint32_t n = 0;
  for (; n < want; ++n) {
    if (!reader_->next(ts, analog_)) break;
    if (n == 0) {
      t0 = c.uniform_rate() || ts < 0
               ? c.start_ns + std::llround(double(frame_) * 1e9 / rate_hz_)
               : c.start_ns + std::llround(double(ts - first_ts_) * c.timemult * double(c.timestamp_unit_ns));
    }
    for (std::size_t k = 0; k < li.channels; ++k)
      out.data[n * li.channels + k] = float(analog_[std::size_t(map_.analog[k])] * scale_[k]);
  }
  if (n == 0) return ReadStatus::end;
  out.layout = map_.layout;
  out.channels = li.channels;
  out.frames = n;
  out.sequence = sequence_++;
  out.first_frame = frame_;
  out.t0_ns = t0;
  out.sample_rate_hz = rate_hz_;
  out.clock_synced = false;
  out.lost_frames = 0;
  frame_ += n;
  return ReadStatus::ok;
}

// ---- Writer -----------------------------------------------------------------

Writer::Writer(const std::string& base_path, Layout layout, double sample_rate_hz, std::int64_t start_utc_ns,
               DataType type, double line_hz, const std::string& station)
    : base_(base_path), dc_(layout_info(layout).dc), rate_(sample_rate_hz), line_hz_(line_hz), start_ns_(start_utc_ns),
      type_(type), station_(station) {
  for (std::uint32_t k = 0; k < layout_info(layout).channels; ++k) {
    const std::string nm(channel_name(layout, k));
    const std::string phase = nm.size() > 1 && nm[1] != 'N' ? std::string(1, nm[1]) : (nm.size() > 1 ? "N" : "");
    channels_.push_back({nm, phase, nm[0] == 'U' ? "V" : "A"});
  }
  open_spool();
}

Writer::Writer(const std::string& base_path, std::vector<ChannelSpec> channels, std::int64_t start_utc_ns,
               DataType type, double line_hz, const std::string& station)
    : base_(base_path), channels_(std::move(channels)), rate_(0), line_hz_(line_hz), start_ns_(start_utc_ns),
      type_(type), station_(station) {
  if (channels_.empty()) throw Error("COMTRADE out: no channel to write");
  open_spool();
}

void Writer::open_spool() {
  if (type_ != DataType::binary32 && type_ != DataType::float32) throw Error("COMTRADE out: BINARY32 or FLOAT32");
  // The samples are spooled as float32 and the .dat written at close(): the
  // time stamps' timemult needs the record's length, BINARY32's factors the
  // channels' ranges.
  tmp_dat_ = base_ + ".dat.part";
  dat_ = std::fopen(tmp_dat_.c_str(), "wb");
  if (dat_ == nullptr) throw Error(fmt::format("{}: cannot create: {}", tmp_dat_, std::strerror(errno)));
  lo_.assign(channels_.size(), std::numeric_limits<float>::infinity());
  hi_.assign(channels_.size(), -std::numeric_limits<float>::infinity());
}

Writer::~Writer() {
  if (dat_ != nullptr) std::fclose(dat_);
  if (!closed_) std::remove(tmp_dat_.c_str());  // an export that stopped leaves no half record behind
}

void Writer::write(const float* frames, std::size_t count) {
  const std::size_t ch = lo_.size();
  if (std::fwrite(frames, 4 * ch, count, dat_) != count)
    throw Error(fmt::format("{}: write failed: {}", tmp_dat_, std::strerror(errno)));
  for (std::size_t f = 0; f < count; ++f)
    for (std::size_t k = 0; k < ch; ++k)
      if (std::isfinite(frames[f * ch + k]))  // (a trend's missing value is NaN)
        lo_[k] = std::min(lo_[k], frames[f * ch + k]), hi_[k] = std::max(hi_[k], frames[f * ch + k]);
  n_ += count;
}

void Writer::write_at(const float* sample, std::int64_t utc_ns) {
  if (!times_.empty() && utc_ns < times_.back()) throw Error(fmt::format("{}: a sample earlier than the last", base_));
  write(sample, 1);
  times_.push_back(utc_ns);
}

void Writer::close() {
  if (closed_) return;
  closed_ = true;
  const std::size_t ch = channels_.size();
  const bool spooled = std::fclose(dat_) == 0;
  dat_ = nullptr;
  if (!spooled) throw Error(fmt::format("{}: write failed: {}", tmp_dat_, std::strerror(errno)));
  for (std::size_t k = 0; k < ch; ++k)
    if (lo_[k] > hi_[k]) lo_[k] = hi_[k] = 0;  // no finite sample
  // Time stamps are 32-bit microseconds: a coarser timemult keeps long records in range.
  const double span_us = rate_ > 0 ? double(n_) / rate_ * 1e6 : times_.empty() ? 0.0 : double(times_.back() - start_ns_) / 1e3;
  const double timemult = std::max(1.0, std::ceil(span_us / 4.0e9));
  std::vector<double> a(ch, 1.0);
  const bool b32 = type_ == DataType::binary32;
  if (b32)
    for (std::size_t k = 0; k < ch; ++k)
      a[k] = std::max(std::max(std::fabs(double(lo_[k])), std::fabs(double(hi_[k]))), 1e-9) / 2147483647.0;
  {
    const std::string dat = base_ + ".dat";
    std::FILE* in = std::fopen(tmp_dat_.c_str(), "rb");
    std::FILE* out = std::fopen(dat.c_str(), "wb");
    bool ok = in != nullptr && out != nullptr;
    std::vector<float> x(ch);
    rec_.resize(8 + 4 * ch);
    for (std::uint64_t s = 0; s < n_ && ok; ++s) {
      ok = std::fread(x.data(), 4, ch, in) == ch;
      const auto num = std::uint32_t(s + 1);
      const double us = rate_ > 0 ? double(s) / rate_ * 1e6 : double(times_[s] - start_ns_) / 1e3;
      const auto t = std::uint32_t(std::llround(us / timemult) & 0xffffffffLL);
      std::memcpy(rec_.data(), &num, 4);
      std::memcpy(rec_.data() + 4, &t, 4);
      for (std::size_t k = 0; k < ch; ++k) {
        if (b32) {
          // A missing value: the most negative integer, as COMTRADE marks missing binary data.
          const auto v = !std::isfinite(x[k]) ? std::numeric_limits<std::int32_t>::min()
                                               : std::int32_t(std::clamp(std::llround(double(x[k]) / a[k]),
                                                                         -2147483647LL, 2147483647LL));
          std::memcpy(rec_.data() + 8 + 4 * k, &v, 4);
        } else {
          std::memcpy(rec_.data() + 8 + 4 * k, &x[k], 4);
        }
      }
      ok = ok && std::fwrite(rec_.data(), 1, rec_.size(), out) == rec_.size();
    }
    if (in != nullptr) std::fclose(in);
    if (out != nullptr) ok = std::fclose(out) == 0 && ok;
    std::remove(tmp_dat_.c_str());
    if (!ok) throw Error(fmt::format("{}: write failed", dat));
  }
  std::string cfg = fmt::format("{},wattpipe,2013\r\n{},{}A,0D\r\n", station_, ch, ch);
  for (std::size_t k = 0; k < ch; ++k) {
    const ChannelSpec& c = channels_[k];
    cfg += fmt::format("{},{},{},,{},{:.17g},0,0,{:.9g},{:.9g},1,1,P\r\n", k + 1, c.name, c.phase, c.unit, a[k],
                       b32 ? -2147483647.0 : double(lo_[k]), b32 ? 2147483647.0 : double(hi_[k]));
  }
  auto stamp = [](std::int64_t ns) {
    const UtcFields f = utc_fields(ns);
    return fmt::format("{:02}/{:02}/{:04},{:02}:{:02}:{:02}.{:06}", f.day, f.month, f.year, f.hour, f.minute,
                       f.second, f.ns / 1000);
  };
  // A trend: nrates 0, the time stamps are the times (samp 0, endsamp n).
  cfg += fmt::format("{}\r\n{}\r\n{:.17g},{}\r\n{}\r\n{}\r\n{}\r\n{}\r\n0,0\r\n0,0\r\n", dc_ ? 0.0 : line_hz_,
                     rate_ > 0 ? 1 : 0, rate_, n_,
                     stamp(start_ns_), stamp(start_ns_), b32 ? "BINARY32" : "FLOAT32",
                     timemult);
  const std::string path = base_ + ".cfg";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw Error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  const bool ok = std::fwrite(cfg.data(), 1, cfg.size(), f) == cfg.size();
  if (std::fclose(f) != 0 || !ok) throw Error(fmt::format("{}: write failed", path));
}

}  // namespace wattpipe::acquire::comtrade

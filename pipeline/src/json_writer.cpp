// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/json_writer.hpp"

#include <charconv>
#include <cmath>
#include <cstring>

namespace wattpipe::pipeline {
namespace {

constexpr std::int64_t kPow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};

// Days since 1970-01-01 to civil date (H. Hinnant's algorithm).
void civil_from_days(std::int64_t z, int& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t yy = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int>(yy + (m <= 2));
}

inline void put2(char* p, unsigned v) noexcept {
  p[0] = char('0' + v / 10);
  p[1] = char('0' + v % 10);
}

}  // namespace

void format_timestamp_ms(std::int64_t utc_ns, char out[24]) noexcept {
  std::int64_t ms = utc_ns >= 0 ? utc_ns / 1'000'000 : -((-utc_ns + 999'999) / 1'000'000);
  std::int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  const unsigned milli = static_cast<unsigned>(ms - secs * 1000);
  std::int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  const unsigned sod = static_cast<unsigned>(secs - days * 86400);
  int y;
  unsigned mo, d;
  civil_from_days(days, y, mo, d);
  y = y < 0 ? 0 : (y > 9999 ? 9999 : y);
  out[0] = char('0' + y / 1000);
  out[1] = char('0' + (y / 100) % 10);
  out[2] = char('0' + (y / 10) % 10);
  out[3] = char('0' + y % 10);
  out[4] = '-';
  put2(out + 5, mo);
  out[7] = '-';
  put2(out + 8, d);
  out[10] = 'T';
  put2(out + 11, sod / 3600);
  out[13] = ':';
  put2(out + 14, (sod / 60) % 60);
  out[16] = ':';
  put2(out + 17, sod % 60);
  out[19] = '.';
  out[20] = char('0' + milli / 100);
  put2(out + 21, milli % 100);
  out[23] = 'Z';
}

void JsonWriter::raw(std::string_view s) noexcept {
  if (static_cast<std::size_t>(end_ - p_) < s.size()) {
    overflow_ = true;
    return;
  }
  std::memcpy(p_, s.data(), s.size());
  p_ += s.size();
}

void JsonWriter::string(std::string_view s) noexcept {
  static constexpr char kHex[] = "0123456789abcdef";
  raw('"');
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = u[i];
    if (c == '"' || c == '\\') {
      raw('\\');
      raw(char(c));
      ++i;
    } else if (c < 0x20) {
      raw("\\u00");
      raw(kHex[c >> 4]);
      raw(kHex[c & 15]);
      ++i;
    } else if (c < 0x80) {
      raw(char(c));
      ++i;
    } else {
      // Validate one UTF-8 sequence; copy it or write U+FFFD.
      std::size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
      bool ok = len != 0 && i + len <= n;
      for (std::size_t k = 1; ok && k < len; ++k) ok = (u[i + k] & 0xC0) == 0x80;
      if (ok && len == 3) ok = !(c == 0xE0 && u[i + 1] < 0xA0) && !(c == 0xED && u[i + 1] >= 0xA0);
      if (ok && len == 4) ok = !(c == 0xF0 && u[i + 1] < 0x90) && !(c == 0xF4 && u[i + 1] >= 0x90);
      if (ok) {
        raw(std::string_view(s.data() + i, len));
        i += len;
      } else {
        raw("\xEF\xBF\xBD");
        ++i;
      }
    }
  }
  raw('"');
}

void JsonWriter::key(std::string_view k) noexcept {
  if (!first_) raw(',');
  first_ = false;
  raw('"');
  raw(k);
  raw("\":");
}

void JsonWriter::integer(std::int64_t v) noexcept {
  char tmp[24];
  const auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  raw(std::string_view(tmp, static_cast<std::size_t>(r.ptr - tmp)));
}

void JsonWriter::uinteger(std::uint64_t v) noexcept {
  char tmp[24];
  const auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  raw(std::string_view(tmp, static_cast<std::size_t>(r.ptr - tmp)));
}

void JsonWriter::scaled(std::int64_t units, int decimals) noexcept {
  if (decimals <= 0) {
    integer(units);
    return;
  }
  const bool neg = units < 0;
  const std::uint64_t a = neg ? std::uint64_t(0) - std::uint64_t(units) : std::uint64_t(units);
  const std::uint64_t p = static_cast<std::uint64_t>(kPow10[decimals]);
  const std::uint64_t whole = a / p, frac = a % p;
  char tmp[48];
  char* q = tmp;
  if (neg) *q++ = '-';
  q = std::to_chars(q, tmp + 30, whole).ptr;
  *q++ = '.';
  std::uint64_t f = frac;
  for (int k = decimals - 1; k >= 0; --k) {
    q[k] = char('0' + f % 10);
    f /= 10;
  }
  q += decimals;
  raw(std::string_view(tmp, static_cast<std::size_t>(q - tmp)));
}

void JsonWriter::fixed(double v, int decimals) noexcept {
  decimals = decimals < 0 ? 0 : (decimals > 9 ? 9 : decimals);
  if (!std::isfinite(v)) {
    bad_number_ = true;
    raw('0');
    return;
  }
  const double scaled_v = v * double(kPow10[decimals]);
  if (std::abs(scaled_v) < 9.0e15) {
    scaled(std::llround(scaled_v), decimals);
    return;
  }
  // Huge values: shortest round-trip form (still a valid JSON number).
  char tmp[32];
  const auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
  raw(std::string_view(tmp, static_cast<std::size_t>(r.ptr - tmp)));
}

void JsonWriter::single(std::string_view name, std::string_view k, double v, int decimals) noexcept {
  if (!std::isfinite(v)) return;
  key(name);
  begin_object();
  field_fixed(k, v, decimals);
  end_object();
}

void JsonWriter::timestamp_ms(std::int64_t utc_ns) noexcept {
  char ts[24];
  format_timestamp_ms(utc_ns, ts);
  raw('"');
  raw(std::string_view(ts, 24));
  raw('"');
}

}  // namespace wattpipe::pipeline

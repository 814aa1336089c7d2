// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/legal/json_writer.hpp"

#include <charconv>
#include <cmath>
#include <cstring>

#include "wattpipe/acquire/clock.hpp"

namespace wattpipe::legal {
namespace {

constexpr std::int64_t kPow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};

inline void put2(char* p, unsigned v) noexcept {
  p[0] = char('0' + v / 10);
  p[1] = char('0' + v % 10);
}

}  // namespace

void format_timestamp_ms(std::int64_t utc_ns, char out[24]) noexcept {
  const acquire::UtcFields f = acquire::utc_fields(utc_ns);
  const int y = f.year < 0 ? 0 : (f.year > 9999 ? 9999 : f.year);
  const auto milli = static_cast<unsigned>(f.ns / 1'000'000);
  out[0] = char('0' + y / 1000);
  out[1] = char('0' + (y / 100) % 10);
  out[2] = char('0' + (y / 10) % 10);
  out[3] = char('0' + y % 10);
  out[4] = '-';
  put2(out + 5, f.month);
  out[7] = '-';
  put2(out + 8, f.day);
  out[10] = 'T';
  put2(out + 11, f.hour);
  out[13] = ':';
  put2(out + 14, f.minute);
  out[16] = ':';
  put2(out + 17, f.second);
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

}  // namespace wattpipe::legal

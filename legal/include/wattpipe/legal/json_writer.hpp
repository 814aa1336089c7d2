// SPDX-License-Identifier: Apache-2.0
// A small JSON writer into a caller's buffer: no allocation, fixed-point
// numbers formatted from integers (exact, and fast), never NaN or Infinity.
//
// Part of the legal part (docs/legal.md): it writes the OCMF payloads that
// are signed and the transaction journal, so its bytes are legally relevant;
// the rest of wattpipe shares it for MQTT, the page and the logs, and a
// change to it changes the software id.
//
// Threading: one writer per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace wattpipe::legal {

class JsonWriter {
 public:
  explicit JsonWriter(std::span<char> buf) noexcept : begin_(buf.data()), p_(buf.data()), end_(buf.data() + buf.size()) {}

  void raw(std::string_view s) noexcept;
  void raw(char c) noexcept {
    if (p_ < end_) *p_++ = c; else overflow_ = true;
  }
  // A JSON string with escapes; invalid UTF-8 bytes become U+FFFD.
  void string(std::string_view s) noexcept;
  // "key": (with the comma when needed inside the current object)
  void key(std::string_view k) noexcept;
  void begin_object() noexcept { raw('{'); first_ = true; }
  void end_object() noexcept { raw('}'); first_ = false; }
  // Arrays: call separator() before each value.
  void begin_array() noexcept { raw('['); first_ = true; }
  void end_array() noexcept { raw(']'); first_ = false; }
  void boolean(bool b) noexcept { raw(b ? std::string_view("true") : std::string_view("false")); }
  void integer(std::int64_t v) noexcept;
  void uinteger(std::uint64_t v) noexcept;
  // v with exactly `decimals` decimals (0..9). Non-finite values write 0 and
  // set bad_number(): callers omit such fields before writing them.
  void fixed(double v, int decimals) noexcept;
  // An integer count of 10^-decimals units, e.g. micro-watt-hours as Wh.
  void scaled(std::int64_t units, int decimals) noexcept;
  // RFC 3339 UTC with milliseconds: 2024-09-27T07:21:14.127Z
  void timestamp_ms(std::int64_t utc_ns) noexcept;
  // "key": value pairs.
  void field(std::string_view k, std::string_view v) noexcept { key(k), string(v); }
  void field_bool(std::string_view k, bool v) noexcept { key(k), boolean(v); }  // (not an overload: "x" would pick bool)
  void field_int(std::string_view k, std::int64_t v) noexcept { key(k), integer(v); }
  void field_uint(std::string_view k, std::uint64_t v) noexcept { key(k), uinteger(v); }
  void field_fixed(std::string_view k, double v, int decimals) noexcept { key(k), fixed(v, decimals); }
  // "name":{"k":v} with v fixed-point; nothing when v is not finite.
  void single(std::string_view name, std::string_view k, double v, int decimals) noexcept;

  // Comma bookkeeping for values in arrays.
  void separator() noexcept {
    if (!first_) raw(',');
    first_ = false;
  }

  [[nodiscard]] std::string_view view() const noexcept { return {begin_, static_cast<std::size_t>(p_ - begin_)}; }
  [[nodiscard]] bool overflow() const noexcept { return overflow_; }
  [[nodiscard]] bool bad_number() const noexcept { return bad_number_; }
  void reset() noexcept { p_ = begin_, overflow_ = bad_number_ = false, first_ = true; }

 private:
  char* begin_;
  char* p_;
  char* end_;
  bool first_ = true;
  bool overflow_ = false;
  bool bad_number_ = false;
};

// Writes RFC 3339 UTC with milliseconds into out[0..24).
void format_timestamp_ms(std::int64_t utc_ns, char out[24]) noexcept;

// Runs fill(JsonWriter&) into a growing string until it fits (not for hot paths).
template <typename Fill>
std::string write_json(std::size_t hint, Fill&& fill) {
  std::string out(hint < 64 ? 64 : hint, '\0');
  for (;;) {
    JsonWriter w(std::span<char>(out.data(), out.size()));
    fill(w);
    if (!w.overflow()) {
      out.resize(w.view().size());
      return out;
    }
    out.assign(out.size() * 2, '\0');
  }
}

}  // namespace wattpipe::legal

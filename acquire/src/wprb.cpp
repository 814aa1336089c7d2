// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/wprb.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace wattpipe::acquire::wprb {
namespace {

static_assert(std::endian::native == std::endian::little, "WPRB is little-endian; add byte swaps for BE hosts");

template <typename T>
T load(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void store(std::byte* p, T v) noexcept {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace

bool is_note(std::span<const std::byte> b) noexcept { return b.size() >= 4 && std::memcmp(b.data(), "WPRN", 4) == 0; }

bool parse_note_header(std::span<const std::byte> b, std::uint32_t& length, std::string& error) {
  if (b.size() < kHeaderBytes || !is_note(b)) {
    error = "not a note";
    return false;
  }
  const std::byte* p = b.data();
  if (load<std::uint16_t>(p + 4) != kVersion || load<std::uint16_t>(p + 6) != kHeaderBytes) {
    error = "unsupported note version or header size";
    return false;
  }
  length = load<std::uint32_t>(p + 8);
  if (length == 0 || length > kMaxNoteBytes) {
    error = "note length " + std::to_string(length) + " outside 1 to " + std::to_string(kMaxNoteBytes);
    return false;
  }
  return true;
}

void encode_note(std::string_view text, std::vector<std::byte>& out) {
  const std::size_t n = std::min<std::size_t>(text.size(), kMaxNoteBytes);
  const std::size_t at = out.size();
  out.resize(at + kHeaderBytes + n);
  std::byte* p = out.data() + at;
  std::memset(p, 0, kHeaderBytes);
  std::memcpy(p, "WPRN", 4);
  store<std::uint16_t>(p + 4, kVersion);
  store<std::uint16_t>(p + 6, std::uint16_t(kHeaderBytes));
  store<std::uint32_t>(p + 8, std::uint32_t(n));
  std::memcpy(p + kHeaderBytes, text.data(), n);
}

bool parse_header(std::span<const std::byte> b, Header& h, std::string& error) {
  if (b.size() < kHeaderBytes) {
    error = "short header";
    return false;
  }
  const std::byte* p = b.data();
  if (std::memcmp(p, "WPRB", 4) != 0) {
    error = "bad magic";
    return false;
  }
  if (load<std::uint16_t>(p + 4) != kVersion) {
    error = "unsupported version " + std::to_string(load<std::uint16_t>(p + 4));
    return false;
  }
  if (load<std::uint16_t>(p + 6) != kHeaderBytes) {
    error = "bad header size " + std::to_string(load<std::uint16_t>(p + 6));
    return false;
  }
  const auto layout = load<std::uint16_t>(p + 8);
  if (!layout_valid(layout)) {
    error = "bad layout " + std::to_string(layout);
    return false;
  }
  const auto fmt = load<std::uint16_t>(p + 10);
  if (fmt < 1 || fmt > 3) {
    error = "bad sample format " + std::to_string(fmt);
    return false;
  }
  h.layout = static_cast<Layout>(layout);
  h.format = static_cast<SampleFormat>(fmt);
  h.frame_count = load<std::uint32_t>(p + 12);
  h.sequence = load<std::uint64_t>(p + 16);
  h.first_frame = load<std::uint64_t>(p + 24);
  h.t0_ns = load<std::int64_t>(p + 32);
  h.sample_rate_hz = load<double>(p + 40);
  h.volts_per_count = load<float>(p + 48);
  h.amperes_per_count = load<float>(p + 52);
  h.flags = load<std::uint32_t>(p + 56);
  if (h.frame_count == 0 || h.frame_count > kMaxFramesPerBlock) {
    error = "bad frame_count " + std::to_string(h.frame_count);
    return false;
  }
  // [1 Hz, 1 GHz]: below it one sample would span hours of energy.
  if (!(h.sample_rate_hz >= 1 && h.sample_rate_hz <= 1e9)) {
    error = "sample_rate_hz " + std::to_string(h.sample_rate_hz) + " outside [1 Hz, 1 GHz]";
    return false;
  }
  if (h.format != SampleFormat::float32 &&
      (!std::isfinite(h.volts_per_count) || !std::isfinite(h.amperes_per_count) ||
       h.volts_per_count == 0 || h.amperes_per_count == 0)) {
    error = "bad scale factors";
    return false;
  }
  return true;
}

void write_header(const Header& h, std::span<std::byte, kHeaderBytes> out) noexcept {
  std::byte* p = out.data();
  std::memset(p, 0, kHeaderBytes);
  std::memcpy(p, "WPRB", 4);
  store<std::uint16_t>(p + 4, kVersion);
  store<std::uint16_t>(p + 6, kHeaderBytes);
  store<std::uint16_t>(p + 8, static_cast<std::uint16_t>(h.layout));
  store<std::uint16_t>(p + 10, static_cast<std::uint16_t>(h.format));
  store<std::uint32_t>(p + 12, h.frame_count);
  store<std::uint64_t>(p + 16, h.sequence);
  store<std::uint64_t>(p + 24, h.first_frame);
  store<std::int64_t>(p + 32, h.t0_ns);
  store<double>(p + 40, h.sample_rate_hz);
  store<float>(p + 48, h.volts_per_count);
  store<float>(p + 52, h.amperes_per_count);
  store<std::uint32_t>(p + 56, h.flags);
}

bool decode_frames(const Header& h, std::span<const std::byte> payload, std::uint32_t first,
                   std::uint32_t count, float* out, std::string& error) noexcept {
  const LayoutInfo li = layout_info(h.layout);
  const std::size_t ch = li.channels;
  const std::size_t sb = sample_bytes(h.format);
  const std::byte* src = payload.data() + std::size_t{first} * ch * sb;
  const std::size_t n = std::size_t{count} * ch;
  // Per-channel scale: voltages and currents.
  float scale[kMaxChannels];
  for (std::uint32_t c = 0; c < ch; ++c) scale[c] = is_voltage(h.layout, c) ? h.volts_per_count : h.amperes_per_count;

  switch (h.format) {
    case SampleFormat::float32: {
      // Copied and checked in one pass, four samples at a time: a float is
      // finite unless its exponent bits are all ones (a copy, then a check
      // of every sample, read the block twice).
      using v4u = std::uint32_t __attribute__((vector_size(16)));
      const v4u exp_bits = {0x7f800000u, 0x7f800000u, 0x7f800000u, 0x7f800000u};
      v4u bad{};
      std::size_t k = 0;
      for (; k + 4 <= n; k += 4) {
        v4u u;
        std::memcpy(&u, src + 4 * k, sizeof u);
        std::memcpy(out + k, &u, sizeof u);
        bad |= (u & exp_bits) == exp_bits;
      }
      std::uint32_t any = bad[0] | bad[1] | bad[2] | bad[3];
      for (; k < n; ++k) {
        std::uint32_t u;
        std::memcpy(&u, src + 4 * k, sizeof u);
        std::memcpy(out + k, &u, sizeof u);
        any |= (u & 0x7f800000u) == 0x7f800000u;
      }
      if (any != 0) {
        error = "non-finite sample";
        return false;
      }
      return true;
    }
    case SampleFormat::int16:
      for (std::size_t k = 0; k < n; ++k) out[k] = float(load<std::int16_t>(src + 2 * k)) * scale[k % ch];
      return true;
    case SampleFormat::int32:
      for (std::size_t k = 0; k < n; ++k) out[k] = float(load<std::int32_t>(src + 4 * k)) * scale[k % ch];
      return true;
  }
  error = "bad sample format";
  return false;
}

namespace {
Header header_of(const SampleBlock& b, std::uint64_t sequence, SampleFormat fmt, float vpc, float apc) {
  Header h;
  h.layout = b.layout;
  h.format = fmt;
  h.frame_count = b.frames;
  h.sequence = sequence;
  h.first_frame = b.first_frame;
  h.t0_ns = b.t0_ns;
  h.sample_rate_hz = b.sample_rate_hz;
  h.volts_per_count = vpc;
  h.amperes_per_count = apc;
  h.flags = b.clock_synced ? 1u : 0u;
  return h;
}

std::byte* append(std::vector<std::byte>& out, const Header& h) {
  const std::size_t at = out.size();
  out.resize(at + kHeaderBytes + payload_bytes(h));
  write_header(h, std::span<std::byte, kHeaderBytes>(out.data() + at, kHeaderBytes));
  return out.data() + at + kHeaderBytes;
}
}  // namespace

void encode_block(const SampleBlock& b, std::uint64_t sequence, std::vector<std::byte>& out) {
  const Header h = header_of(b, sequence, SampleFormat::float32, 1.0f, 1.0f);
  std::memcpy(append(out, h), b.data.data(), payload_bytes(h));
}

void encode_block_int(const SampleBlock& b, std::uint64_t sequence, SampleFormat fmt,
                      float volts_per_count, float amperes_per_count, std::vector<std::byte>& out) {
  const Header h = header_of(b, sequence, fmt, volts_per_count, amperes_per_count);
  std::byte* dst = append(out, h);
  const LayoutInfo li = layout_info(b.layout);
  float inv[kMaxChannels];
  for (std::uint32_t c = 0; c < li.channels; ++c) inv[c] = 1.0f / (is_voltage(b.layout, c) ? volts_per_count : amperes_per_count);
  const std::size_t n = std::size_t{b.frames} * li.channels;
  for (std::size_t k = 0; k < n; ++k) {
    const double counts = std::nearbyint(double(b.data[k]) * inv[k % li.channels]);
    if (fmt == SampleFormat::int16) {
      store<std::int16_t>(dst + 2 * k, static_cast<std::int16_t>(std::clamp(counts, -32768.0, 32767.0)));
    } else {
      store<std::int32_t>(dst + 4 * k, static_cast<std::int32_t>(std::clamp(counts, -2147483648.0, 2147483647.0)));
    }
  }
}

}  // namespace wattpipe::acquire::wprb

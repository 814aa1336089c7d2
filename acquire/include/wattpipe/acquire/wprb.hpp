// SPDX-License-Identifier: Apache-2.0
// WPRB v1, the raw sample block format (docs/wprb.md): a 64-byte little-endian
// header followed by frame_count interleaved frames.
//
// Threading: plain functions; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wattpipe/acquire/sample_block.hpp"

namespace wattpipe::acquire::wprb {

inline constexpr std::size_t kHeaderBytes = 64;
inline constexpr std::uint16_t kVersion = 1;
// Upper bound on frames in one block: keeps a corrupt header from asking for gigabytes.
inline constexpr std::uint32_t kMaxFramesPerBlock = 1u << 22;

enum class SampleFormat : std::uint16_t { int16 = 1, int32 = 2, float32 = 3 };

struct Header {
  Layout layout = Layout::ac3n;
  SampleFormat format = SampleFormat::float32;
  std::uint32_t frame_count = 0;
  std::uint64_t sequence = 0;
  std::uint64_t first_frame = 0;
  std::int64_t t0_ns = 0;
  double sample_rate_hz = 0;
  float volts_per_count = 1;
  float amperes_per_count = 1;
  std::uint32_t flags = 0;  // bit 0: clock synchronised
};

constexpr std::size_t sample_bytes(SampleFormat f) noexcept {
  return f == SampleFormat::int16 ? 2 : 4;
}
constexpr std::size_t payload_bytes(const Header& h) noexcept {
  return std::size_t{h.frame_count} * layout_info(h.layout).channels * sample_bytes(h.format);
}

// Decodes and validates a header. On failure returns false and sets `error`.
bool parse_header(std::span<const std::byte> bytes, Header& out, std::string& error);

// Writes the 64-byte header.
void write_header(const Header& h, std::span<std::byte, kHeaderBytes> out) noexcept;

// Converts frames [first, first+count) of a validated payload into volts and
// amperes. False (with `error`) when a sample is NaN or infinite.
bool decode_frames(const Header& h, std::span<const std::byte> payload, std::uint32_t first,
                   std::uint32_t count, float* out, std::string& error) noexcept;

// A note (docs/wprb.md, "Notes"): magic WPRN, version, header bytes, the
// note's length (u32 at 8), zeros to 64 bytes, then that many bytes of UTF-8
// JSON. Raw logs start every file with one naming what wrote it; readers
// keep the text and skip it, it carries no samples.
inline constexpr std::uint32_t kMaxNoteBytes = 1u << 16;
// True when `bytes` starts with a note's magic.
bool is_note(std::span<const std::byte> bytes) noexcept;
// Validates a note's 64-byte header; its text's length in `length`.
bool parse_note_header(std::span<const std::byte> bytes, std::uint32_t& length, std::string& error);
// Appends a whole note (header and text) to `out`.
void encode_note(std::string_view text, std::vector<std::byte>& out);

// Appends header + float32 payload of a block to `out` (used by logs and the DAQ tool).
void encode_block(const SampleBlock& b, std::uint64_t sequence, std::vector<std::byte>& out);

// Appends header + payload in an integer format (counts = value / scale, rounded).
void encode_block_int(const SampleBlock& b, std::uint64_t sequence, SampleFormat fmt,
                      float volts_per_count, float amperes_per_count, std::vector<std::byte>& out);

}  // namespace wattpipe::acquire::wprb

// SPDX-License-Identifier: Apache-2.0
// A block of interleaved sample frames, the unit that moves through the rings.
//
// Threading: a plain value type; ownership passes through SpscRing.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace wattpipe::acquire {

// Channel layouts of WPRB v1 (docs/wprb.md): values are the on-wire codes.
// AC3N_DC carries two measuring points on one clock: a charger's grid input
// (AC3N) and its DC output; it is split into them before any metrology
// (points_of).
enum class Layout : std::uint16_t { ac1 = 1, ac3 = 2, ac3n = 3, dc = 4, ac3n_dc = 5 };

inline constexpr std::size_t kMaxChannels = 10;
inline constexpr std::size_t kMaxPhases = 3;

// Where each quantity sits in a frame for a layout.
struct LayoutInfo {
  std::uint32_t channels;
  std::uint32_t phases;              // 1 for AC1 and DC
  std::array<std::uint8_t, 3> u;     // voltage channel of phase k
  std::array<std::uint8_t, 3> i;     // current channel of phase k
  bool neutral;                      // UN and IN present (AC3N)
  std::uint8_t un, in;               // neutral channels when present
  bool dc;
};

constexpr LayoutInfo layout_info(Layout l) noexcept {
  switch (l) {
    case Layout::ac1: return {2, 1, {0, 0, 0}, {1, 0, 0}, false, 0, 0, false};
    case Layout::ac3: return {6, 3, {0, 1, 2}, {3, 4, 5}, false, 0, 0, false};
    case Layout::ac3n: return {8, 3, {0, 1, 2}, {4, 5, 6}, true, 3, 7, false};
    case Layout::dc: return {2, 1, {0, 0, 0}, {1, 0, 0}, false, 0, 0, true};
    // Two points: the grid side's quantities here; the DC output's are at points_of()[1].
    case Layout::ac3n_dc: return {10, 3, {0, 1, 2}, {4, 5, 6}, true, 3, 7, false};
  }
  return {0, 0, {0, 0, 0}, {0, 0, 0}, false, 0, 0, false};
}

constexpr bool layout_valid(std::uint16_t code) noexcept { return code >= 1 && code <= 5; }

// A measuring point inside a layout's frame: its name, its own layout, and
// where its channels begin (they follow each other in the point's order).
struct PointPart {
  std::string_view name;
  Layout layout;
  std::uint8_t first;
};

struct Points {
  std::array<PointPart, 2> part;
  std::uint32_t count;
};

// The measuring points of a layout: one (unnamed) for every layout but
// AC3N_DC, which is `grid` (AC3N, channels 0-7) and `car` (DC, 8-9).
constexpr Points points_of(Layout l) noexcept {
  if (l == Layout::ac3n_dc) return {{{{"grid", Layout::ac3n, 0}, {"car", Layout::dc, 8}}}, 2};
  return {{{{"", l, 0}, {"", l, 0}}}, 1};
}

// Whether a layout has a measuring point of this name (--points): a new
// point (a second DC output) is a row of points_of(), not code elsewhere.
constexpr bool known_point(std::string_view name) noexcept {
  for (std::uint16_t c = 1; layout_valid(c); ++c) {
    const Points p = points_of(Layout(c));
    for (std::uint32_t k = 0; k < p.count; ++k)
      if (p.count > 1 && p.part[k].name == name) return true;
  }
  return false;
}

constexpr std::string_view layout_name(Layout l) noexcept {
  switch (l) {
    case Layout::ac1: return "AC1";
    case Layout::ac3: return "AC3";
    case Layout::ac3n: return "AC3N";
    case Layout::dc: return "DC";
    case Layout::ac3n_dc: return "AC3N_DC";
  }
  return "?";
}

// Name of channel k of a layout, in its frame order: U1..U3, UN, I1..I3, IN
// (AC3N; AC3 and AC1 a subset), U and I for DC; AC3N_DC: AC3N's, then U, I.
constexpr std::string_view channel_name(Layout l, std::uint32_t k) noexcept {
  constexpr std::string_view ac1[] = {"U1", "I1"}, ac3[] = {"U1", "U2", "U3", "I1", "I2", "I3"},
                             ac3n[] = {"U1", "U2", "U3", "UN", "I1", "I2", "I3", "IN", "U", "I"}, dc[] = {"U", "I"};
  switch (l) {
    case Layout::ac1: return k < 2 ? ac1[k] : "?";
    case Layout::ac3: return k < 6 ? ac3[k] : "?";
    case Layout::ac3n: return k < 8 ? ac3n[k] : "?";
    case Layout::dc: return k < 2 ? dc[k] : "?";
    case Layout::ac3n_dc: return k < 10 ? ac3n[k] : "?";
  }
  return "?";
}

// Whether channel k of a layout is a voltage (else a current).
constexpr bool is_voltage(Layout l, std::uint32_t k) noexcept { return channel_name(l, k)[0] == 'U'; }

// Frames per block. 1024 AC3N frames = 32 KiB: big enough to amortise the
// ring's one release store, small enough to stay in L1/L2 while processed.
inline constexpr std::size_t kBlockFrames = 1024;

struct SampleBlock {
  Layout layout = Layout::ac3n;
  std::uint32_t channels = 8;
  std::uint32_t frames = 0;           // valid frames in data
  std::uint64_t sequence = 0;         // source block counter
  std::uint64_t first_frame = 0;      // stream index of frame 0
  std::int64_t t0_ns = 0;             // UTC ns of frame 0
  double sample_rate_hz = 0;          // per channel
  std::uint64_t lost_frames = 0;      // frames lost (gaps, ring drops) just before this block
  bool clock_synced = false;
  // A point measured against another on the same samples (the car side of
  // AC3N_DC): the other point's instantaneous power per frame, W (the grid
  // side's sum of u * i over its phases), for efficiency and loss.
  bool has_ref_power = false;
  // One spare frame so vector loads of the last frame never leave the array.
  alignas(64) std::array<float, (kBlockFrames + 1) * kMaxChannels> data{};
  alignas(64) std::array<float, kBlockFrames> ref_power{};

  float* frame(std::size_t f) noexcept { return data.data() + f * channels; }
  const float* frame(std::size_t f) const noexcept { return data.data() + f * channels; }

  // The header alone (every field but the samples) into `out`.
  void copy_header_to(SampleBlock& out) const noexcept {
    out.layout = layout;
    out.channels = channels;
    out.frames = frames;
    out.sequence = sequence;
    out.first_frame = first_frame;
    out.t0_ns = t0_ns;
    out.sample_rate_hz = sample_rate_hz;
    out.lost_frames = lost_frames;
    out.clock_synced = clock_synced;
    out.has_ref_power = has_ref_power;
  }
  // The header and only the frames in use into `out` (a block is mostly
  // empty at low rates; a whole copy would move 40 KiB every time).
  void copy_to(SampleBlock& out) const noexcept {
    copy_header_to(out);
    std::memcpy(out.data.data(), data.data(), std::size_t{frames} * channels * sizeof(float));
    if (has_ref_power) std::memcpy(out.ref_power.data(), ref_power.data(), frames * sizeof(float));
  }
};

}  // namespace wattpipe::acquire

// SPDX-License-Identifier: Apache-2.0
// Metrology kernels: plain functions over spans of interleaved frames.
//
// Window sums are kept in four lanes. Three-phase layouts put phase k (and
// the neutral) in lane k; single-phase layouts (AC1, DC) put consecutive
// frames in the four lanes and fold them when the window closes. U*I is
// formed in double from float samples, which is exact (24+24 bits < 53), so
// only the additions of the energy's sum round.
//
// Threading: pure functions and plain values.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/pipeline/window.hpp"

namespace wattpipe::pipeline {

using acquire::Layout;

struct Sums {
  using Lanes = std::array<double, 4>;
  Lanes su{}, si{};            // sum u, sum i
  Lanes suu{}, sii{};          // sum u^2, sum i^2
  Lanes sui{};                 // sum u*i
  Lanes suc{}, sus{};          // sum u*cos(ref), u*sin(ref): single-bin DFT of U
  Lanes sic{}, sis{};          // same for I
  double w = 0;                // weight: frames covered

  void clear() noexcept { *this = Sums{}; }
};

// The DFT's reference: a unit phasor (cos, sin of the reference angle).
struct Phasor {
  double c = 1, s = 0;
};

// Accumulates frames [0, n) of `frames` (interleaved, layout `l`), each with
// weight 1, against the reference phasor z at frame 0, turning by r every
// frame; z comes back turned by n frames (DC: no DFT, z untouched).
// Three-phase layouts sum U*I (the energy) in double, the same to the last
// bit on every instruction set, and the means, U^2, I^2 and the DFT in float
// over short runs (metrology.cpp says how; their error is bounded, and
// tested); single-phase layouts sum everything in double.
void accumulate(Layout l, const float* frames, std::size_t n, Phasor& z, Phasor r, Sums& s) noexcept;

// Which kernel accumulate() runs on this CPU ("avx512", "avx2+fma" or "portable";
// the environment variable WATTPIPE_ISA=avx2|portable caps it).
const char* kernel_isa() noexcept;
// True when that choice is an AVX2+FMA one (the analysis kernels follow it).
bool kernels_avx2() noexcept;

// Accumulates one frame with weight w (fractional edge samples).
void accumulate_one(Layout l, const float* frame, double ref_c, double ref_s, double w, Sums& s) noexcept;

// Plain sum of every sample in [0, n) frames: the memory-speed baseline for benchmarks.
double plain_sum(const float* frames, std::size_t n, std::uint32_t channels) noexcept;

// Fills ref_c/ref_s[0..n] with cos/sin of a phasor (zc, zs) turning by (rc, rs)
// per frame (computed in double, stored in float; up to n + 15 may be
// written), and advances (zc, zs) by n steps. Sixteen interleaved chains keep
// the recurrence off the critical path; the caller renormalises per block.
void reference_table(double& zc, double& zs, double rc, double rs, std::size_t n, float* ref_c,
                     float* ref_s) noexcept;

// The lanes folded into phases (index 3: the neutral of AC3N).
struct PhaseSums {
  double su, si, suu, sii, sui, suc, sus, sic, sis;
};
std::array<PhaseSums, 4> phase_sums(Layout l, const Sums& s) noexcept;

// Window values from the sums: RMS, means, P, Q1 (IEEE 1459 fundamental
// reactive power from the single-bin DFT), S, N, PF and energy per phase,
// neutral RMS, totals, and the phase sequence when U1 and U2 both carry at
// least `min_seq_voltage_v` of fundamental. `fs_hz` converts sums to energy.
void compute_values(Layout l, const Sums& s, double fs_hz, WindowRecord& out,
                    double min_seq_voltage_v = 10) noexcept;

}  // namespace wattpipe::pipeline

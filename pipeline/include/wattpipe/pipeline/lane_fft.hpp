// SPDX-License-Identifier: Apache-2.0
// Fast Fourier transforms for the analysis: four complex transforms of one
// power-of-two size at once, one per lane of a 4-float vector (SSE on
// x86-64, NEON on ARM). The three phases of a window fill three lanes; one
// long transform (a DC window) is split into four quarters that fill all
// four and are joined by a last radix-4 stage.
//
// Why not a library: kissfft, the permissive FFT Debian packages, has no
// SIMD and took half the analysis' time (16 us per 1024 points, double);
// FFTW is GPL. Single precision is enough: the error is about 1e-7 of the
// window's largest component times log2(n), far below the analysis' goals
// (docs/analysis.md), and the tests compare with a double-precision DFT.
//
// On x86-64 with AVX2 and FMA (the metrology kernels' choice, capped by
// WATTPIPE_ISA=portable) the stages run two vectors per instruction.
//
// Threading: a LaneFft is immutable after construction; transforms on any
// thread, each with its own buffers.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "wattpipe/pipeline/analysis.hpp"

namespace wattpipe::pipeline::analysis {

class LaneFft {
 public:
  // n: a power of two, >= 1. Allocates the tables.
  explicit LaneFft(std::size_t n);
  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  // Forward transform, X_k = sum_j x_j e^{-2 pi i jk/n}, unnormalised, in
  // place on n vectors of real and of imaginary parts (lane l: transform l).
  void forward(v4f* re, v4f* im) const noexcept;

 private:
  std::size_t n_;
  // Twiddles per radix-2 stage: the stage of butterfly span `half` reads
  // e^{-i pi k/half} = tw_re_[half - 1 + k] + i tw_im_[half - 1 + k], k < half.
  std::vector<float> tw_re_, tw_im_;
  std::vector<std::uint32_t> rev_;    // bit-reversed indices
  bool avx2_ = false;
};

// One complex transform of 4m points through a LaneFft of size m: x_j goes
// in lane j % 4 at index j / 4 of re/im (m vectors each; overwritten); the
// n = 4m outputs go to out. `quarter` has size m.
class QuadFft {
 public:
  explicit QuadFft(std::size_t n);  // n: a power of two, >= 4
  [[nodiscard]] std::size_t size() const noexcept { return 4 * quarter_.size(); }
  void forward(v4f* re, v4f* im, std::complex<float>* out) const noexcept;

 private:
  LaneFft quarter_;
  std::vector<v4f> tw_re_, tw_im_;  // e^{-2 pi i rk/n} in lane r, for k < m
};

}  // namespace wattpipe::pipeline::analysis

// SPDX-License-Identifier: Apache-2.0
// Analysis kernels: plain functions over spans, beside the metrology kernels.
// The stateful stage that runs them per window is analyzer.hpp; definitions
// and accuracy are in docs/analysis.md.
//
// Threading: pure functions and plain values.
#pragma once

#include <complex>
#include <cstddef>
#include <span>
#include <vector>

#include "wattpipe/pipeline/window.hpp"

namespace wattpipe::pipeline::analysis {

using Complex = std::complex<double>;
// Four floats (GCC vector extension: SSE on any x86-64, NEON on ARM).
using v4f = float __attribute__((vector_size(16)));

// Folds the per-channel minimum and maximum of n interleaved frames of
// `channels` channels (2, 6 or 8: the layouts) into mn[c] and mx[c].
void channel_minmax(const float* frames, std::size_t n, unsigned channels, float* mn, float* mx) noexcept;
// Adds the per-channel sum of squares of n frames to sq[c] (summed in float
// over the call, so keep n to a few thousand frames).
void channel_sumsq(const float* frames, std::size_t n, unsigned channels, double* sq) noexcept;
// Both in one pass over the frames.
void channel_minmax_sumsq(const float* frames, std::size_t n, unsigned channels, float* mn, float* mx,
                          double* sq) noexcept;
// The sums of both channels of n two-channel frames, in double: s[0], s[1].
void pair_sums(const float* frames, std::size_t n, double s[2]) noexcept;

// The AC part of a signal from its RMS and mean: sqrt(RMS^2 - mean^2), 0 when
// rounding makes the difference negative.
double ripple_rms(double rms, double mean) noexcept;

// Low-pass FIR for decimation by d: Kaiser-windowed sinc (beta 7, about 70 dB
// stop band), 16*d taps, cut-off at half the output rate, gain 1 at DC. The
// pass band, flat to 3e-4, ends at kDecimationPassBand of the output rate.
inline constexpr double kDecimationPassBand = 0.36;
std::vector<float> decimation_fir(unsigned d);

// out[c] = sum_j w[j] x[j * channels + c] for each of `channels` (<= 8)
// channels of `taps` interleaved frames: the decimating FIR's output frame.
// x is readable kFirPadFloats floats past its last frame. AVX2+FMA where
// the metrology kernels use it.
inline constexpr std::size_t kFirPadFloats = 8;
// The first stage of a cascade: three boxcars of d frames convolved
// (3 d - 2 taps, sum 1), nulls of third order at multiples of fs / d.
std::vector<float> boxcar3_fir(unsigned d);
// How a decimation by about d is done: the boxcars by d1, then
// decimation_fir(d2), in all by d1 * d2 (<= d). decimation_fir costs 16
// multiply-adds per input frame and channel whatever its d; for more than
// two channels from d = 46 the boxcars (3 per frame) take the rate down by
// d1 = d / 23 first, so that the FIR runs at 23 times the output rate or
// more, where the boxcars' droop is small and their nulls sit on what would
// alias into the pass band (tests: AnalysisKernels.BoxcarsThenFir...). Two
// channels keep the one FIR: the analyzer's two-frame vectors for it
// measured cheaper than the cascade (bm_metrology, DC 20 MS/s).
struct DecimationStages {
  unsigned d1 = 1, d2 = 1;
};
DecimationStages decimation_stages(unsigned d, unsigned channels) noexcept;
void fir_frames(const float* x, unsigned channels, const float* w, std::size_t taps, float* out) noexcept;

// 8-point Lagrange weights for values at mu in [0, 1) past node 3 of nodes
// 0..7 (so between nodes 3 and 4), four points at once: lane l of w[m] is
// node m's weight for the point at lane l of mu.
void lagrange8_weights(v4f mu, v4f w[8]) noexcept;

// Floats a ring read by lagrange8_resample needs past its last frame.
inline constexpr std::size_t kResamplePadFloats = 8;

// n points of a ring of `ring_frames` frames (a power of two) of `channels`
// (<= 8) interleaved channels, by 8-point Lagrange interpolation at sample
// positions q0 + step * j (position q: between samples floor(q) and
// floor(q) + 1, whose three and four neighbours on each side must be in the
// ring). Point j's channels u0..u0+3 go to re[j], i0..i0+3 to im[j]; lanes
// past `channels` hold whatever follows. The ring is followed by
// kResamplePadFloats floats. AVX2+FMA where the metrology kernels use it.
void lagrange8_resample(const float* ring, std::size_t ring_frames, unsigned channels, double q0, double step,
                        std::size_t n, unsigned u0, unsigned i0, v4f* re, v4f* im) noexcept;

// IEC 61000-4-7 harmonic subgroups: G_h = sqrt(C_{ch-1}^2 + C_ch^2 + C_{ch+1}^2)
// over a spectrum of `cycles` whole cycles, where bins[k] is the RMS phasor
// of bin k (k cycles per window). Writes orders 1..g.size(); orders whose
// bins are past the spectrum are 0.
void harmonic_subgroups(std::span<const Complex> bins, unsigned cycles, std::span<float> g) noexcept;

// Subgroup total harmonic distortion in %: sqrt(sum_{h>=2} G_h^2) / G_1.
// g[0] is order 1; 0 when G_1 is 0.
double thd_percent(std::span<const float> g) noexcept;

// Harmonic phases over a spectrum of `cycles` whole cycles: for orders
// 1..deg.size(), the angle of bin cycles*h relative to h times the angle of
// ref (phi_h - h phi_ref), in (-180, 180] deg; 0 for a component below 1e-5
// of the spectrum's own fundamental (no phase to speak of).
void harmonic_phases_deg(std::span<const Complex> bins, unsigned cycles, Complex ref, std::span<float> deg) noexcept;

// Voltage unbalance from the three fundamental phasors (IEC 61000-4-30, by
// symmetrical components): u2 = |U-| / |U+|, u0 = |U0| / |U+|, in %.
struct Unbalance {
  double u2_percent = 0, u0_percent = 0;
};
Unbalance unbalance(Complex u1, Complex u2, Complex u3) noexcept;

// The one-sided power spectra of two real signals u and v transformed
// together as z = u + j v (z: the n-point transform, n a power of two >= 8):
// for k < n / 2, pow_u[k] = c_k |(Z_k + conj Z_{n-k}) / 2|^2 scale and
// pow_v[k] = c_k |(Z_k - conj Z_{n-k}) / 2|^2 scale, c_0 = 1, c_k = 2.
// Single precision arithmetic (the transform's), double results.
void split_power(const std::complex<float>* z, std::size_t n, double scale, double* pow_u, double* pow_v) noexcept;

// RMS in [f_lo, f_hi) of a one-sided power spectrum (power[k] at k * bin_hz,
// in signal units squared): the square root of its bins' sum (four partial
// sums; reads only, so a band costs its bins and no running sums are kept).
double band_rms(std::span<const double> power, double bin_hz, double f_lo_hz, double f_hi_hz) noexcept;

// The largest local maxima of a Hann-windowed power spectrum at or above
// bin k_min, largest first: frequency and height refined by a parabola
// through the log magnitudes, amplitude = amp_scale * sqrt(power); peaks
// 80 dB below the largest are left out. Returns how many were found.
std::size_t largest_peaks(std::span<const double> power, double bin_hz, double amp_scale, std::size_t k_min,
                          std::span<RipplePeak> out) noexcept;

}  // namespace wattpipe::pipeline::analysis

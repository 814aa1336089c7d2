// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/analysis.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <numbers>

#include "target.hpp"
#include "wattpipe/pipeline/metrology.hpp"

namespace wattpipe::pipeline::analysis {
namespace {

// Whole frames that fill whole vectors: C = 8 one frame in two vectors,
// C = 6 two frames in three, C = 2 two frames in one.
template <unsigned C>
constexpr unsigned kChunkFloats = C % 4 == 0 ? C : (C % 2 == 0 ? 2 * C : 4 * C);

// op(acc[v], x[v]) over the chunks, then fold(c, lane value) per position;
// the frames of the last, partial chunk go to tail(frame pointer).
template <unsigned C, typename Init, typename Op, typename Fold, typename Tail>
void over_chunks(const float* x, std::size_t n, Init init, Op op, Fold fold, Tail tail) noexcept {
  constexpr unsigned kFloats = kChunkFloats<C>, kVecs = kFloats / 4, kFrames = kFloats / C;
  v4f acc[kVecs];
  for (unsigned v = 0; v < kVecs; ++v)
    for (unsigned l = 0; l < 4; ++l) acc[v][l] = init((4 * v + l) % C);
  const std::size_t whole = n / kFrames;
  for (std::size_t k = 0; k < whole; ++k, x += kFloats)
    for (unsigned v = 0; v < kVecs; ++v) {
      v4f xv;
      std::memcpy(&xv, x + 4 * v, sizeof xv);
      acc[v] = op(acc[v], xv);
    }
  for (unsigned v = 0; v < kVecs; ++v)
    for (unsigned l = 0; l < 4; ++l) fold((4 * v + l) % C, acc[v][l]);
  for (std::size_t f = whole * kFrames; f < n; ++f, x += C) tail(x);
}

template <typename Fn>
void by_channels(unsigned channels, Fn fn) noexcept {
  switch (channels) {
    case 2: return fn(std::integral_constant<unsigned, 2>{});
    case 6: return fn(std::integral_constant<unsigned, 6>{});
    default: return fn(std::integral_constant<unsigned, 8>{});
  }
}

// Four floats stored as doubles. On x86-64 in SSE2 (this file's baseline):
// the compiler's own conversion of a four-double vector went through the stack.
inline void store_as_double(double* out, v4f x) noexcept {
#if defined(__x86_64__)
  _mm_storeu_pd(out, _mm_cvtps_pd(x));
  _mm_storeu_pd(out + 2, _mm_cvtps_pd(_mm_movehl_ps(x, x)));
#else
  for (unsigned l = 0; l < 4; ++l) out[l] = x[l];
#endif
}

double bessel_i0(double x) noexcept {
  double sum = 1, term = 1;
  for (int k = 1; k < 50; ++k) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return sum;
}

}  // namespace

namespace {
void minmax_portable(const float* frames, std::size_t n, unsigned channels, float* mn, float* mx) noexcept {
  by_channels(channels, [&](auto c) {
    constexpr unsigned C = decltype(c)::value;
    auto tail = [&](const float* x) {
      for (unsigned k = 0; k < C; ++k) mn[k] = std::min(mn[k], x[k]), mx[k] = std::max(mx[k], x[k]);
    };
    over_chunks<C>(frames, n, [&](unsigned k) { return mn[k]; }, [](v4f a, v4f x) { return x < a ? x : a; },
                   [&](unsigned k, float v) { mn[k] = std::min(mn[k], v); }, tail);
    over_chunks<C>(frames, n, [&](unsigned k) { return mx[k]; }, [](v4f a, v4f x) { return x > a ? x : a; },
                   [&](unsigned k, float v) { mx[k] = std::max(mx[k], v); }, [](const float*) {});
  });
}

void sumsq_portable(const float* frames, std::size_t n, unsigned channels, double* sq) noexcept {
  by_channels(channels, [&](auto c) {
    constexpr unsigned C = decltype(c)::value;
    over_chunks<C>(frames, n, [](unsigned) { return 0.0f; }, [](v4f a, v4f x) { return a + x * x; },
                   [&](unsigned k, float v) { sq[k] += v; },
                   [&](const float* x) {
                     for (unsigned k = 0; k < C; ++k) sq[k] += double(x[k]) * x[k];
                   });
  });
}

#if defined(__x86_64__)
// Both in one pass, 8 floats a vector: whole frames fill V vectors (C = 8
// and C = 2: one; C = 6: three), U such groups at a time in separate
// accumulators (one would wait on the fused multiply-add's latency). Lane l
// of accumulator v is channel (8 v + l) % C.
template <unsigned C>
WP_AVX2 void minmax_sumsq_avx2(const float* x, std::size_t n, float* mn, float* mx, double* sq) noexcept {
  constexpr unsigned V = C == 6 ? 3 : 1, U = C == 6 ? 2 : 4, A = U * V, kFrames = 8 * A / C;
  alignas(32) float lo[8 * A], hi[8 * A], s2[8 * A];
  for (unsigned l = 0; l < 8 * A; ++l) lo[l] = mn ? mn[l % C] : 0, hi[l] = mx ? mx[l % C] : 0, s2[l] = 0;
  __m256 vlo[A], vhi[A], vs[A];
  for (unsigned v = 0; v < A; ++v)
    vlo[v] = _mm256_load_ps(lo + 8 * v), vhi[v] = _mm256_load_ps(hi + 8 * v), vs[v] = _mm256_setzero_ps();
  const std::size_t whole = n / kFrames;
  for (std::size_t k = 0; k < whole; ++k, x += 8 * A)
    for (unsigned v = 0; v < A; ++v) {
      const __m256 xv = _mm256_loadu_ps(x + 8 * v);
      if (mn) vlo[v] = _mm256_min_ps(vlo[v], xv), vhi[v] = _mm256_max_ps(vhi[v], xv);
      if (sq) vs[v] = _mm256_fmadd_ps(xv, xv, vs[v]);
    }
  for (unsigned v = 0; v < A; ++v)
    _mm256_store_ps(lo + 8 * v, vlo[v]), _mm256_store_ps(hi + 8 * v, vhi[v]), _mm256_store_ps(s2 + 8 * v, vs[v]);
  for (unsigned l = 0; l < 8 * A; ++l) {
    if (mn) mn[l % C] = std::min(mn[l % C], lo[l]), mx[l % C] = std::max(mx[l % C], hi[l]);
    if (sq) sq[l % C] += s2[l];
  }
  for (std::size_t f = whole * kFrames; f < n; ++f, x += C)
    for (unsigned c = 0; c < C; ++c) {
      if (mn) mn[c] = std::min(mn[c], x[c]), mx[c] = std::max(mx[c], x[c]);
      if (sq) sq[c] += double(x[c]) * x[c];
    }
}

void minmax_sumsq_avx2(const float* frames, std::size_t n, unsigned channels, float* mn, float* mx,
                       double* sq) noexcept {
  switch (channels) {
    case 2: return minmax_sumsq_avx2<2>(frames, n, mn, mx, sq);
    case 6: return minmax_sumsq_avx2<6>(frames, n, mn, mx, sq);
    default: return minmax_sumsq_avx2<8>(frames, n, mn, mx, sq);
  }
}
#endif
}  // namespace

void channel_minmax_sumsq(const float* frames, std::size_t n, unsigned channels, float* mn, float* mx,
                          double* sq) noexcept {
#if defined(__x86_64__)
  if (kernels_avx2()) return minmax_sumsq_avx2(frames, n, channels, mn, mx, sq);
#endif
  if (mn != nullptr) minmax_portable(frames, n, channels, mn, mx);
  if (sq != nullptr) sumsq_portable(frames, n, channels, sq);
}

void channel_minmax(const float* frames, std::size_t n, unsigned channels, float* mn, float* mx) noexcept {
  channel_minmax_sumsq(frames, n, channels, mn, mx, nullptr);
}

void channel_sumsq(const float* frames, std::size_t n, unsigned channels, double* sq) noexcept {
  channel_minmax_sumsq(frames, n, channels, nullptr, nullptr, sq);
}

DecimationStages decimation_stages(unsigned d, unsigned channels) noexcept {
  const unsigned d1 = channels > 2 ? std::max(1u, d / 23) : 1u;
  return {d1, d / d1};
}

void pair_sums(const float* frames, std::size_t n, double s[2]) noexcept {
  std::size_t j = 0;
  s[0] = s[1] = 0;
#if defined(__x86_64__)
  // A frame per vector converted to {u, i} in double, four sums (one would
  // wait on every add). SSE2, the baseline: the compiler's own conversion of
  // two-float vectors went one float at a time.
  __m128d acc[4] = {_mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd(), _mm_setzero_pd()};
  for (; j + 4 <= n; j += 4)
    for (unsigned a = 0; a < 4; ++a)
      acc[a] = _mm_add_pd(acc[a], _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(
                                      reinterpret_cast<const __m128i*>(frames + 2 * (j + a))))));
  alignas(16) double t[2];
  _mm_store_pd(t, _mm_add_pd(_mm_add_pd(acc[0], acc[1]), _mm_add_pd(acc[2], acc[3])));
  s[0] = t[0], s[1] = t[1];
#endif
  for (; j < n; ++j) s[0] += frames[2 * j], s[1] += frames[2 * j + 1];
}

double ripple_rms(double rms, double mean) noexcept {
  const double v = (rms - mean) * (rms + mean);
  return v > 0 ? std::sqrt(v) : 0.0;
}

std::vector<float> decimation_fir(unsigned d) {
  if (d <= 1) return {1.0f};
  const std::size_t taps = 16 * std::size_t(d);
  constexpr double beta = 7.0;
  const double mid = double(taps - 1) / 2, fc = 0.5 / d;  // cut-off, cycles per input sample
  std::vector<double> h(taps);
  double sum = 0;
  for (std::size_t k = 0; k < taps; ++k) {
    const double t = double(k) - mid;
    const double sinc = t == 0 ? 2 * fc : std::sin(2 * std::numbers::pi * fc * t) / (std::numbers::pi * t);
    const double r = t / mid;
    h[k] = sinc * bessel_i0(beta * std::sqrt(std::max(0.0, 1 - r * r))) / bessel_i0(beta);
    sum += h[k];
  }
  std::vector<float> out(taps);
  for (std::size_t k = 0; k < taps; ++k) out[k] = static_cast<float>(h[k] / sum);
  return out;
}

std::vector<float> boxcar3_fir(unsigned d) {
  if (d <= 1) return {1.0f};
  std::vector<double> h(1, 1.0);
  for (int k = 0; k < 3; ++k) {
    std::vector<double> c(h.size() + d - 1, 0.0);
    for (std::size_t i = 0; i < h.size(); ++i)
      for (unsigned j = 0; j < d; ++j) c[i + j] += h[i];
    h = std::move(c);
  }
  const double sum = std::pow(double(d), 3);
  std::vector<float> out(h.size());
  for (std::size_t k = 0; k < h.size(); ++k) out[k] = static_cast<float>(h[k] / sum);
  return out;
}

namespace {
// Inline, so that the AVX2 resampler compiles it with its own instructions.
inline void lagrange8(v4f mu, v4f w[8]) noexcept {
  // Nodes -3..4: w_j = prod_{m != j} (mu - x_m) / den_j, the products from
  // both sides (no division, exact at the nodes too).
  static constexpr float kInvDen[8] = {-1.0f / 5040, 1.0f / 720, -1.0f / 240, 1.0f / 144,
                                       -1.0f / 144,  1.0f / 240, -1.0f / 720, 1.0f / 5040};
  v4f d[8], left[8], right[8];
  for (int j = 0; j < 8; ++j) d[j] = mu - float(j - 3);
  left[0] = v4f{} + 1.0f;
  for (int j = 1; j < 8; ++j) left[j] = left[j - 1] * d[j - 1];
  right[7] = v4f{} + 1.0f;
  for (int j = 6; j >= 0; --j) right[j] = right[j + 1] * d[j + 1];
  for (int j = 0; j < 8; ++j) w[j] = left[j] * right[j] * kInvDen[j];
}

}  // namespace

void lagrange8_weights(v4f mu, v4f w[8]) noexcept { lagrange8(mu, w); }

namespace {
// Frames read 8 floats at a time (two vectors; lanes past `channels` are
// the next frame's and are not written out), two taps per pass in separate
// accumulators (one would wait on the add's latency every tap).
void fir_portable(const float* x, unsigned channels, const float* w, std::size_t taps, float* out) noexcept {
  v4f acc[2][2] = {};
  std::size_t j = 0;
  for (; j + 1 < taps; j += 2)
    for (unsigned p = 0; p < 2; ++p) {
      const float* f = x + (j + p) * channels;
      v4f a, b;
      std::memcpy(&a, f, sizeof a);
      std::memcpy(&b, f + 4, sizeof b);
      acc[p][0] += w[j + p] * a;
      acc[p][1] += w[j + p] * b;
    }
  for (; j < taps; ++j) {
    v4f a, b;
    std::memcpy(&a, x + j * channels, sizeof a);
    std::memcpy(&b, x + j * channels + 4, sizeof b);
    acc[0][0] += w[j] * a;
    acc[0][1] += w[j] * b;
  }
  float r[8];
  const v4f lo = acc[0][0] + acc[1][0], hi = acc[0][1] + acc[1][1];
  std::memcpy(r, &lo, sizeof lo);
  std::memcpy(r + 4, &hi, sizeof hi);
  std::memcpy(out, r, channels * sizeof(float));
}

#if defined(__x86_64__)
// A frame per vector, four taps per pass.
WP_AVX2 void fir_avx2(const float* x, unsigned channels, const float* w, std::size_t taps, float* out) noexcept {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  std::size_t j = 0;
  for (; j + 4 <= taps; j += 4)
    for (unsigned p = 0; p < 4; ++p)
      acc[p] = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j + p), _mm256_loadu_ps(x + (j + p) * channels), acc[p]);
  for (; j < taps; ++j) acc[0] = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j), _mm256_loadu_ps(x + j * channels), acc[0]);
  alignas(32) float r[8];
  _mm256_store_ps(r, _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  std::memcpy(out, r, channels * sizeof(float));
}
#endif
}  // namespace

void fir_frames(const float* x, unsigned channels, const float* w, std::size_t taps, float* out) noexcept {
#if defined(__x86_64__)
  if (kernels_avx2()) return fir_avx2(x, channels, w, taps, out);
#endif
  fir_portable(x, channels, w, taps, out);
}

namespace {
// Four consecutive points: node m's weight for point l at w[m][l], and the
// first of point l's 8 frames at x[l] (in the ring, or in `wrap` where they
// go round its end).
struct FourPoints {
  alignas(16) float w[8][4];
  const float* x[4];
  float wrap[4][8 * 8 + kResamplePadFloats];
};

inline void four_points(const float* ring, std::size_t ring_frames, unsigned channels, double q0, double step,
                        std::size_t j, FourPoints& p) noexcept {
  const std::uint64_t mask = ring_frames - 1;
  v4f mu;
  std::uint64_t base[4];
  for (unsigned l = 0; l < 4; ++l) {
    const double q = q0 + step * double(j + l), fl = std::floor(q);
    mu[l] = static_cast<float>(q - fl);
    base[l] = (static_cast<std::uint64_t>(fl) - 3) & mask;
  }
  v4f w[8];
  lagrange8(mu, w);
  std::memcpy(p.w, w, sizeof p.w);
  for (unsigned l = 0; l < 4; ++l) {
    p.x[l] = ring + base[l] * channels;
    if (base[l] + 8 > ring_frames) {
      for (unsigned m = 0; m < 8; ++m)
        std::memcpy(p.wrap[l] + m * channels, ring + ((base[l] + m) & mask) * channels, channels * sizeof(float));
      p.x[l] = p.wrap[l];
    }
  }
}

void resample_portable(const float* ring, std::size_t ring_frames, unsigned channels, double q0, double step,
                       std::size_t n, unsigned u0, unsigned i0, v4f* re, v4f* im) noexcept {
  FourPoints p{};
  for (std::size_t j = 0; j < n; j += 4) {
    four_points(ring, ring_frames, channels, q0, step, j, p);
    for (unsigned l = 0; l < 4 && j + l < n; ++l) {
      const float* x = p.x[l];
      v4f acc[2] = {};
      for (unsigned m = 0; m < 8; ++m, x += channels) {
        v4f a, b;
        std::memcpy(&a, x, sizeof a);
        std::memcpy(&b, x + 4, sizeof b);
        acc[0] += p.w[m][l] * a;
        acc[1] += p.w[m][l] * b;
      }
      float out[12] = {};
      std::memcpy(out, acc, sizeof acc);
      std::memcpy(&re[j + l], out + u0, sizeof(v4f));
      std::memcpy(&im[j + l], out + i0, sizeof(v4f));
    }
  }
}

#if defined(__x86_64__)
// A whole frame (up to 8 channels) in one vector: 8 fused multiply-adds a point.
WP_AVX2 void resample_avx2(const float* ring, std::size_t ring_frames, unsigned channels, double q0, double step,
                           std::size_t n, unsigned u0, unsigned i0, v4f* re, v4f* im) noexcept {
  FourPoints p{};
  // The U and I lanes picked out in registers (a 32-byte store read back in
  // 16-byte halves stalls the store forwarding).
  const __m256i pick_u = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 0, 0, 0, 0), _mm256_set1_epi32(int(u0)));
  const __m256i pick_i = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 0, 0, 0, 0), _mm256_set1_epi32(int(i0)));
  for (std::size_t j = 0; j < n; j += 4) {
    four_points(ring, ring_frames, channels, q0, step, j, p);
    for (unsigned l = 0; l < 4 && j + l < n; ++l) {
      const float* x = p.x[l];
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      for (unsigned m = 0; m < 8; m += 2, x += 2 * channels) {
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&p.w[m][l]), _mm256_loadu_ps(x), a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&p.w[m + 1][l]), _mm256_loadu_ps(x + channels), a1);
      }
      const __m256 acc = _mm256_add_ps(a0, a1);
      _mm_storeu_ps(reinterpret_cast<float*>(&re[j + l]), _mm256_castps256_ps128(_mm256_permutevar8x32_ps(acc, pick_u)));
      _mm_storeu_ps(reinterpret_cast<float*>(&im[j + l]), _mm256_castps256_ps128(_mm256_permutevar8x32_ps(acc, pick_i)));
    }
  }
}
#endif
}  // namespace

void lagrange8_resample(const float* ring, std::size_t ring_frames, unsigned channels, double q0, double step,
                        std::size_t n, unsigned u0, unsigned i0, v4f* re, v4f* im) noexcept {
#if defined(__x86_64__)
  if (kernels_avx2()) return resample_avx2(ring, ring_frames, channels, q0, step, n, u0, i0, re, im);
#endif
  resample_portable(ring, ring_frames, channels, q0, step, n, u0, i0, re, im);
}

void harmonic_subgroups(std::span<const Complex> bins, unsigned cycles, std::span<float> g) noexcept {
  for (std::size_t h = 1; h <= g.size(); ++h) {
    const std::size_t k = h * cycles;
    double s = 0;
    if (k + 1 < bins.size())
      for (std::size_t j = k - 1; j <= k + 1; ++j) s += std::norm(bins[j]);
    g[h - 1] = static_cast<float>(std::sqrt(s));
  }
}

double thd_percent(std::span<const float> g) noexcept {
  if (g.empty() || !(g[0] > 0)) return 0;
  double s = 0;
  for (std::size_t h = 1; h < g.size(); ++h) s += double(g[h]) * double(g[h]);
  return 100.0 * std::sqrt(s) / g[0];
}

void harmonic_phases_deg(std::span<const Complex> bins, unsigned cycles, Complex ref, std::span<float> deg) noexcept {
  // Rotate bin cycles*h back by h times ref's angle: one atan2 per order.
  const double r = std::abs(ref);
  const Complex back = r > 0 ? std::conj(ref) / r : Complex(1, 0);
  const double floor2 = cycles < bins.size() ? 1e-10 * std::norm(bins[cycles]) : 0.0;
  Complex rot(1, 0);
  for (std::size_t h = 1; h <= deg.size(); ++h) {
    rot *= back;
    const std::size_t k = h * cycles;
    const bool has = k < bins.size() && std::norm(bins[k]) > floor2;
    deg[h - 1] = has ? static_cast<float>(std::arg(bins[k] * rot) * 180 / std::numbers::pi) : 0.0f;
  }
}

Unbalance unbalance(Complex u1, Complex u2, Complex u3) noexcept {
  const Complex a = std::polar(1.0, 2 * std::numbers::pi / 3);
  const Complex zero = (u1 + u2 + u3) / 3.0;
  const Complex pos = (u1 + a * u2 + a * a * u3) / 3.0;
  const Complex neg = (u1 + a * a * u2 + a * u3) / 3.0;
  const double p = std::abs(pos);
  if (!(p > 0)) return {};
  return {100 * std::abs(neg) / p, 100 * std::abs(zero) / p};
}

void split_power(const std::complex<float>* z, std::size_t n, double scale, double* pow_u, double* pow_v) noexcept {
  const std::size_t half = n / 2;
  auto one = [&](std::size_t k) {
    const std::complex<double> zp = z[k], zm = std::conj(std::complex<double>(z[k == 0 ? 0 : n - k]));
    const double c = k == 0 ? 1.0 : 2.0;
    pow_u[k] = c * std::norm(0.5 * (zp + zm)) * scale;
    pow_v[k] = c * std::norm(0.5 * (zp - zm)) * scale;  // |(zp - zm) / 2j|
  };
  for (std::size_t k = 0; k < 4; ++k) one(k);
  // Four bins at a time: Z_k..Z_k+3 and, reversed, Z_{n-k}..Z_{n-k-3}.
  const auto s4 = static_cast<float>(0.5 * scale);  // c_k / 4 with c_k = 2
  const float* f = reinterpret_cast<const float*>(z);
  for (std::size_t k = 4; k < half; k += 4) {
    v4f a, b, c, d;
    std::memcpy(&a, f + 2 * k, sizeof a);
    std::memcpy(&b, f + 2 * k + 4, sizeof b);
    std::memcpy(&c, f + 2 * (n - k - 3), sizeof c);
    std::memcpy(&d, f + 2 * (n - k - 3) + 4, sizeof d);
    const v4f pr = __builtin_shufflevector(a, b, 0, 2, 4, 6), pi = __builtin_shufflevector(a, b, 1, 3, 5, 7);
    const v4f mr = __builtin_shufflevector(c, d, 6, 4, 2, 0), mi = -__builtin_shufflevector(c, d, 7, 5, 3, 1);
    const v4f ur = pr + mr, ui = pi + mi, vr = pr - mr, vi = pi - mi;
    store_as_double(pow_u + k, (ur * ur + ui * ui) * s4);
    store_as_double(pow_v + k, (vr * vr + vi * vi) * s4);
  }
}

double band_rms(std::span<const double> power, double bin_hz, double f_lo_hz, double f_hi_hz) noexcept {
  if (!(bin_hz > 0) || power.empty()) return 0;
  const double bins = double(power.size());
  const auto k0 = static_cast<std::size_t>(std::clamp(std::ceil(f_lo_hz / bin_hz), 0.0, bins));
  const auto k1 = static_cast<std::size_t>(std::clamp(std::ceil(f_hi_hz / bin_hz), 0.0, bins));
  double s[4] = {};
  std::size_t k = k0;
  for (; k + 4 <= k1; k += 4)
    for (unsigned l = 0; l < 4; ++l) s[l] += power[k + l];
  for (; k < k1; ++k) s[0] += power[k];
  return std::sqrt(std::max(0.0, (s[0] + s[1]) + (s[2] + s[3])));
}

std::size_t largest_peaks(std::span<const double> m, double bin_hz, double amp_scale, std::size_t k_min,
                          std::span<RipplePeak> out) noexcept {
  std::size_t found = 0;
  std::size_t idx[kRipplePeaks] = {};
  const std::size_t want = std::min<std::size_t>(out.size(), kRipplePeaks);
  // Once the list is full, only a bin above its last can enter: eight bins at
  // a time are passed over by their largest (the local-maximum test branches
  // on every bin of a noisy spectrum, and mispredicts a third of them).
  double floor = 0;
  const std::size_t end = m.size() > 0 ? m.size() - 1 : 0;
  for (std::size_t k = std::max<std::size_t>(k_min, 1); k < end; ++k) {
    if (k + 8 <= end) {
      double top = floor;
      for (unsigned j = 0; j < 8; ++j) top = std::max(top, m[k + j]);
      if (!(top > floor)) {
        k += 7;
        continue;
      }
    }
    if (!(m[k] > floor && m[k] > m[k - 1] && m[k] >= m[k + 1])) continue;
    // Insert into the sorted top list.
    std::size_t pos = found;
    while (pos > 0 && m[idx[pos - 1]] < m[k]) --pos;
    if (pos >= want) continue;
    for (std::size_t j = std::min(found, want - 1); j > pos; --j) idx[j] = idx[j - 1];
    idx[pos] = k;
    found = std::min(found + 1, want);
    if (found == want) floor = m[idx[want - 1]];
  }
  // Side lobes and rounding are not components: keep peaks within 80 dB of the largest.
  while (found > 1 && m[idx[found - 1]] < 1e-8 * m[idx[0]]) --found;  // (power: 80 dB)
  for (std::size_t j = 0; j < found; ++j) {
    const std::size_t k = idx[j];
    // Log magnitudes: half the log powers.
    const double a = 0.5 * std::log(m[k - 1]), b = 0.5 * std::log(m[k]), c = 0.5 * std::log(std::max(m[k + 1], 1e-300));
    const double den = a - 2 * b + c;
    const double p = den < 0 ? std::clamp(0.5 * (a - c) / den, -0.5, 0.5) : 0.0;
    out[j].f_hz = (double(k) + p) * bin_hz;
    out[j].amplitude = amp_scale * std::exp(b - 0.25 * (a - c) * p);
  }
  return found;
}

}  // namespace wattpipe::pipeline::analysis

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/pipeline/metrology.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "target.hpp"

// The vector helpers below are internal and inlined: the AVX calling-
// convention note GCC gives for them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace wattpipe::pipeline {
namespace {

// Everything a kernel calls is forced inline, so the AVX2 entry point gets
// AVX2 code for all of it (an out-of-line copy would be baseline code).
#define WP_INLINE inline __attribute__((always_inline))

using v4d = double __attribute__((vector_size(32)));
using v4f = float __attribute__((vector_size(16)));
using v8f = float __attribute__((vector_size(32)));

WP_INLINE v4d load4f(const float* p) noexcept {
  v4f f;
  std::memcpy(&f, p, sizeof f);
  return __builtin_convertvector(f, v4d);
}
WP_INLINE void add_to(Sums::Lanes& a, v4d v) noexcept {
  for (int k = 0; k < 4; ++k) a[k] += v[k];
}

struct Acc {
  v4d su{}, si{}, suu{}, sii{}, sui{}, suc{}, sus{}, sic{}, sis{};

  template <bool kDft>
  WP_INLINE void step(v4d u, v4d i, v4d c, v4d s) noexcept {
    su += u;
    si += i;
    suu += u * u;
    sii += i * i;
    sui += u * i;
    if constexpr (kDft) {
      suc += u * c;
      sus += u * s;
      sic += i * c;
      sis += i * s;
    }
  }
  WP_INLINE void merge(const Acc& o) noexcept {
    su += o.su, si += o.si, suu += o.suu, sii += o.sii, sui += o.sui;
    suc += o.suc, sus += o.sus, sic += o.sic, sis += o.sis;
  }
  WP_INLINE void store(Sums& s, double w) const noexcept {
    add_to(s.su, su), add_to(s.si, si), add_to(s.suu, suu), add_to(s.sii, sii), add_to(s.sui, sui);
    add_to(s.suc, suc), add_to(s.sus, sus), add_to(s.sic, sic), add_to(s.sis, sis);
    s.w += w;
  }
};

// Three-phase layouts, 256 bits: a frame is one register of eight floats
// [U1 U2 U3 UN|0, I1 I2 I3 IN|0] (AC3: zero for the neutral).
// - U*I (P and the energy) is summed in double, from products that are
//   exact there, a pair of frames at a time: the first frame's product, the
//   second's fused onto it, then added to the sum. Every instruction set
//   gives the same sum to the last bit (a pair's sum of two exact products
//   rounds once, fused or not).
// - The means, U^2 and I^2 (the RMS) take the frame as it is, eight lanes at
//   a time, in float, over runs of kRun frames, each run then added to the
//   double sums; so does the fundamental's single-bin DFT (Q1, the phase
//   sequence), against a reference made here: a group of 16 frames is
//   summed against r^j (j = 0..15, constants of the call), and the group's
//   sums are turned by its first frame's phasor, z r^(16 g) in double. No
//   table of the reference is written and read back. The float sums'
//   relative error is bounded by about (kRun + 16) x 2^-24 of the sums of
//   magnitudes (metrology_test.cpp holds it).
// The kernel and its helpers carry the AVX2 target themselves: a baseline
// helper's vectors are lowered to SSE2 halves before it is inlined.
constexpr std::size_t kRun = 64, kGroup = 16;

// The phasor turned by r^j, j = 0..15, in a few dependent steps (a chain of
// fifteen products waited about a hundred cycles per call).
WP_INLINE void powers16(double rc, double rs, double* pc, double* ps) noexcept {
  pc[0] = 1, ps[0] = 0, pc[1] = rc, ps[1] = rs;
  for (int m = 2; m < 16; m *= 2) {  // r^m = (r^(m/2))^2, then r^(m+j) = r^m x r^j
    const int h = m / 2;
    pc[m] = pc[h] * pc[h] - ps[h] * ps[h];
    ps[m] = 2 * pc[h] * ps[h];
    for (int j = 1; j < m; ++j) {
      pc[m + j] = pc[m] * pc[j] - ps[m] * ps[j];
      ps[m + j] = pc[m] * ps[j] + ps[m] * pc[j];
    }
  }
}

// The step's powers r^j (j = 0..16): in double to turn a phasor, in float
// for a group's sums.
struct Turns {
  double pc[17], ps[17];
  alignas(32) float qc[kGroup], qs[kGroup];
  WP_INLINE explicit Turns(Phasor r) noexcept {
    powers16(r.c, r.s, pc, ps);
    pc[16] = pc[15] * r.c - ps[15] * r.s, ps[16] = pc[15] * r.s + ps[15] * r.c;
    for (std::size_t j = 0; j < kGroup; ++j) qc[j] = float(pc[j]), qs[j] = float(ps[j]);
  }
  // z turned by j steps.
  WP_INLINE Phasor turn(Phasor z, std::size_t j) const noexcept {
    return {z.c * pc[j] - z.s * ps[j], z.c * ps[j] + z.s * pc[j]};
  }
};

template <bool kAc3>
WP_INLINE WP_AVX2 v8f load_frame8(const float* f) noexcept {
  v8f x;
  std::memcpy(&x, f, sizeof x);
  if constexpr (kAc3) x = __builtin_shufflevector(x, v8f{}, 0, 1, 2, 8, 3, 4, 5, 8);
  return x;
}
// Intrinsics on x86: GCC 12 lowers the generic four-float conversion into
// two halves and an insert, and a broadcast into a load and inserts.
WP_INLINE WP_AVX2 v4d lo4d(v8f x) noexcept {
#if defined(__x86_64__)
  return v4d(_mm256_cvtps_pd(_mm256_castps256_ps128(__m256(x))));
#else
  return __builtin_convertvector(__builtin_shufflevector(x, x, 0, 1, 2, 3), v4d);
#endif
}
WP_INLINE WP_AVX2 v4d hi4d(v8f x) noexcept {
#if defined(__x86_64__)
  return v4d(_mm256_cvtps_pd(_mm256_extractf128_ps(__m256(x), 1)));
#else
  return __builtin_convertvector(__builtin_shufflevector(x, x, 4, 5, 6, 7), v4d);
#endif
}
WP_INLINE WP_AVX2 v4d cvt4d(const float* p) noexcept {
#if defined(__x86_64__)
  return v4d(_mm256_cvtps_pd(_mm_loadu_ps(p)));
#else
  return load4f(p);
#endif
}
WP_INLINE WP_AVX2 v8f splat8(const float* p) noexcept {
#if defined(__x86_64__)
  return v8f(_mm256_broadcast_ss(p));
#else
  return v8f{*p, *p, *p, *p, *p, *p, *p, *p};
#endif
}
WP_INLINE WP_AVX2 v8f splat8(float x) noexcept { return v8f{} + x; }

// a * b + c with one rounding (intrinsics on x86: the order is fixed, not left to contraction).
WP_INLINE WP_AVX2 v4d fmadd(v4d a, v4d b, v4d c) noexcept {
#if defined(__x86_64__)
  return v4d(_mm256_fmadd_pd(__m256d(a), __m256d(b), __m256d(c)));
#else
  return a * b + c;
#endif
}
WP_INLINE WP_AVX2 v8f fmadd(v8f a, v8f b, v8f c) noexcept {
#if defined(__x86_64__)
  return v8f(_mm256_fmadd_ps(__m256(a), __m256(b), __m256(c)));
#else
  return a * b + c;
#endif
}

template <bool kAc3>
WP_INLINE WP_AVX2 void kernel_3ph(const float* x, std::size_t n, Phasor& z, const Turns& t, Sums& out) noexcept {
  constexpr std::size_t kStride = kAc3 ? 6 : 8;
  // AC3 reads two floats past a frame: stop a frame early so the last read
  // stays inside the caller's buffer. Frames go in pairs.
  const std::size_t margin = kAc3 ? 1 : 0;
  const std::size_t paired = (n > margin ? n - margin : 0) & ~std::size_t{1};
  v4d ui{};
  std::size_t k = 0;
  while (k < paired) {
    const std::size_t run_end = std::min(paired, k + kRun);
    v8f m{}, sq{}, c{}, s{};
    while (k < run_end) {
      const std::size_t len = std::min(kGroup, run_end - k);  // even
      const float* f = x + k * kStride;
      v8f c0{}, s0{}, c1{}, s1{};
      for (std::size_t j = 0; j < len; j += 2, f += 2 * kStride) {
        const v8f a = load_frame8<kAc3>(f), b = load_frame8<kAc3>(f + kStride);
        // AC3N: converted straight from memory (no extract of the upper half).
        const v4d ua = kAc3 ? lo4d(a) : cvt4d(f), ia = kAc3 ? hi4d(a) : cvt4d(f + 4);
        const v4d ub = kAc3 ? lo4d(b) : cvt4d(f + kStride), ib = kAc3 ? hi4d(b) : cvt4d(f + kStride + 4);
        ui += fmadd(ub, ib, ua * ia);
        sq += fmadd(b, b, a * a);
        m += a + b;
        c0 = fmadd(a, splat8(t.qc + j), c0), s0 = fmadd(a, splat8(t.qs + j), s0);
        c1 = fmadd(b, splat8(t.qc + j + 1), c1), s1 = fmadd(b, splat8(t.qs + j + 1), s1);
      }
      // sum x (z r^j) = z (sum x r^j): the group's sums turned by its first phasor.
      const v8f pc = c0 + c1, ps = s0 + s1, zc = splat8(float(z.c)), zs = splat8(float(z.s));
      c = fmadd(-zs, ps, fmadd(zc, pc, c));  // c - zs ps, one rounding: the negation is exact
      s = fmadd(zs, pc, fmadd(zc, ps, s));
      z = t.turn(z, len);
      k += len;
    }
    for (int p = 0; p < 4; ++p) {
      out.su[p] += double(m[p]), out.si[p] += double(m[4 + p]);
      out.suu[p] += double(sq[p]), out.sii[p] += double(sq[4 + p]);
      out.suc[p] += double(c[p]), out.sic[p] += double(c[4 + p]);
      out.sus[p] += double(s[p]), out.sis[p] += double(s[4 + p]);
    }
  }
  add_to(out.sui, ui);
  out.w += double(k);
  for (; k < n; ++k, z = t.turn(z, 1))
    accumulate_one(kAc3 ? Layout::ac3 : Layout::ac3n, x + k * kStride, z.c, z.s, 1.0, out);
}

// Four interleaved (U, I) frames into a U vector and an I vector.
WP_INLINE void load_ui(const float* p, v4d& u, v4d& i) noexcept {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  const v4f uf = __builtin_shufflevector(v, v, 0, 2, 4, 6);
  const v4f if_ = __builtin_shufflevector(v, v, 1, 3, 5, 7);
  u = __builtin_convertvector(uf, v4d);
  i = __builtin_convertvector(if_, v4d);
}

// Single-phase layouts (U, I): lanes are four consecutive frames.
template <bool kDft>
WP_INLINE void kernel_1ph(const float* x, std::size_t n, const float* rc, const float* rs, Sums& out) noexcept {
  Acc a, b;
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    v4d u0, i0, u1, i1;
    load_ui(x + 2 * k, u0, i0);
    load_ui(x + 2 * k + 8, u1, i1);
    if constexpr (kDft) {
      a.step<true>(u0, i0, load4f(rc + k), load4f(rs + k));
      b.step<true>(u1, i1, load4f(rc + k + 4), load4f(rs + k + 4));
    } else {
      a.step<false>(u0, i0, v4d{}, v4d{});
      b.step<false>(u1, i1, v4d{}, v4d{});
    }
  }
  a.merge(b);
  a.store(out, double(k));
  for (; k < n; ++k)
    accumulate_one(kDft ? Layout::ac1 : Layout::dc, x + 2 * k, kDft ? rc[k] : 0.0, kDft ? rs[k] : 0.0, 1.0, out);
}

// ---- two-lane kernels (x86-64 baseline, SSE2: 16 registers) ------------------
// Three-phase frames as in kernel_3ph, in two passes over each run (together
// they would not fit in 16 XMM registers): the means and the DFT, four lanes
// at a time; then U^2 and I^2 four lanes at a time and U*I in double, two
// lanes at a time. Each takes a pair of frames, their two terms added
// before the sum (SSE2 has no fused multiply-add: a multiply, then an add).
// The FP add ports bound these loops (on AMD Zen 4, adds and conversions
// share them), so nothing else goes there: the powers are broadcast once per
// call and multiplied from memory, and AC3N's upper lanes are converted to
// double straight from memory rather than shuffled down first.
// Single-phase frames two at a time.

using v2d = double __attribute__((vector_size(16)));
using v2f = float __attribute__((vector_size(8)));

WP_INLINE v2d load2f(const float* p) noexcept {
  v2f f;
  std::memcpy(&f, p, sizeof f);
  return __builtin_convertvector(f, v2d);
}
// Two lanes of four in double (GCC 12 makes the generic form go through integer registers).
WP_INLINE v2d lo2d(v4f x) noexcept {
#if defined(__x86_64__)
  return v2d(_mm_cvtps_pd(__m128(x)));
#else
  return __builtin_convertvector(__builtin_shufflevector(x, x, 0, 1), v2d);
#endif
}
WP_INLINE v2d hi2d(v4f x) noexcept {
#if defined(__x86_64__)
  return v2d(_mm_cvtps_pd(_mm_movehl_ps(__m128(x), __m128(x))));
#else
  return __builtin_convertvector(__builtin_shufflevector(x, x, 2, 3), v2d);
#endif
}
// Floats p[0], p[1] in double, converted straight from memory (the two
// floats taken as one 64-bit load: memcpy, not a cast, keeps aliasing sound).
WP_INLINE v2d cvt2d(const float* p) noexcept {
#if defined(__x86_64__)
  double pair;
  std::memcpy(&pair, p, sizeof pair);
  return v2d(_mm_cvtps_pd(_mm_castpd_ps(_mm_set_sd(pair))));
#else
  return load2f(p);
#endif
}
WP_INLINE v4f splat4f(float x) noexcept { return v4f{x, x, x, x}; }
// The float powers broadcast to four lanes, to multiply from memory (SSE2
// has no broadcast load: a splat in the loop is a shuffle on a busy port).
struct Turns4 : Turns {
  v4f qc4[kGroup], qs4[kGroup];
  explicit Turns4(Phasor r) noexcept : Turns(r) {
    for (std::size_t j = 0; j < kGroup; ++j) qc4[j] = splat4f(qc[j]), qs4[j] = splat4f(qs[j]);
  }
};
WP_INLINE void add_pair(Sums::Lanes& a, std::size_t at, v2d v) noexcept {
  a[at] += v[0];
  a[at + 1] += v[1];
}

template <bool kAc3>
WP_INLINE void kernel_3ph_x2(const float* x, std::size_t n, Phasor& z, const Turns4& t, Sums& out) noexcept {
  constexpr std::size_t kStride = kAc3 ? 6 : 8, kIOff = kAc3 ? 3 : 4;
  const std::size_t margin = kAc3 ? 1 : 0;  // AC3 reads a float past the frame (its currents' fourth lane)
  const std::size_t paired = (n > margin ? n - margin : 0) & ~std::size_t{1};
  // AC3 has no neutral: the lane that would be UN/IN is masked.
  const v4f mask = kAc3 ? v4f{1, 1, 1, 0} : v4f{1, 1, 1, 1};
  auto frame4 = [&](const float* f, v4f& u, v4f& i) {
    std::memcpy(&u, f, sizeof u);
    std::memcpy(&i, f + kIOff, sizeof i);
    if constexpr (kAc3) u *= mask, i *= mask;
  };
  v2d ui_lo{}, ui_hi{};
  std::size_t k = 0;
  while (k < paired) {
    const std::size_t end = std::min(paired, k + kRun);
    v4f mu{}, mi{}, uc{}, us{}, ic{}, is{};
    for (std::size_t g = k; g < end; g += kGroup) {
      const std::size_t len = std::min(kGroup, end - g);
      v4f puc{}, pus{}, pic{}, pis{};
      for (std::size_t j = 0; j < len; j += 2) {
        v4f u0, i0, u1, i1;
        frame4(x + (g + j) * kStride, u0, i0);
        frame4(x + (g + j + 1) * kStride, u1, i1);
        const v4f c0 = t.qc4[j], s0 = t.qs4[j], c1 = t.qc4[j + 1], s1 = t.qs4[j + 1];
        mu += u0 + u1, mi += i0 + i1;
        puc += u0 * c0 + u1 * c1, pus += u0 * s0 + u1 * s1, pic += i0 * c0 + i1 * c1, pis += i0 * s0 + i1 * s1;
      }
      const v4f zc = splat4f(float(z.c)), zs = splat4f(float(z.s));
      uc += zc * puc - zs * pus, us += zc * pus + zs * puc;
      ic += zc * pic - zs * pis, is += zc * pis + zs * pic;
      z = t.turn(z, len);
    }
    v4f squ{}, sqi{};
    for (std::size_t j = k; j < end; j += 2) {
      v4f u0, i0, u1, i1;
      frame4(x + j * kStride, u0, i0);
      frame4(x + (j + 1) * kStride, u1, i1);
      squ += u0 * u0 + u1 * u1, sqi += i0 * i0 + i1 * i1;
      ui_lo += lo2d(u0) * lo2d(i0) + lo2d(u1) * lo2d(i1);
      if constexpr (kAc3) {  // the masked neutral lane: from the register
        ui_hi += hi2d(u0) * hi2d(i0) + hi2d(u1) * hi2d(i1);
      } else {  // from memory: no shuffle on the busy port
        const float* f = x + j * kStride;
        ui_hi += cvt2d(f + 2) * cvt2d(f + 6) + cvt2d(f + kStride + 2) * cvt2d(f + kStride + 6);
      }
    }
    for (int p = 0; p < 4; ++p) {
      out.su[p] += double(mu[p]), out.si[p] += double(mi[p]);
      out.suu[p] += double(squ[p]), out.sii[p] += double(sqi[p]);
      out.suc[p] += double(uc[p]), out.sus[p] += double(us[p]), out.sic[p] += double(ic[p]), out.sis[p] += double(is[p]);
    }
    k = end;
  }
  add_pair(out.sui, 0, ui_lo), add_pair(out.sui, 2, ui_hi);
  out.w += double(k);
  for (; k < n; ++k, z = t.turn(z, 1))
    accumulate_one(kAc3 ? Layout::ac3 : Layout::ac3n, x + k * kStride, z.c, z.s, 1.0, out);
}

template <bool kDft>
WP_INLINE void kernel_1ph_x2(const float* x, std::size_t n, const float* rc, const float* rs, Sums& out) noexcept {
  v2d su{}, si{}, suu{}, sii{}, sui{}, suc{}, sus{}, sic{}, sis{};
  std::size_t k = 0;
  for (; k + 2 <= n; k += 2) {
    const v2d a = load2f(x + 2 * k), b = load2f(x + 2 * k + 2);  // (u0 i0), (u1 i1)
    const v2d u = __builtin_shufflevector(a, b, 0, 2), i = __builtin_shufflevector(a, b, 1, 3);
    su += u, si += i, suu += u * u, sii += i * i, sui += u * i;
    if constexpr (kDft) {
      const v2d c = load2f(rc + k), s = load2f(rs + k);
      suc += u * c, sus += u * s, sic += i * c, sis += i * s;
    }
  }
  add_pair(out.su, 0, su), add_pair(out.si, 0, si), add_pair(out.suu, 0, suu), add_pair(out.sii, 0, sii);
  add_pair(out.sui, 0, sui), add_pair(out.suc, 0, suc), add_pair(out.sus, 0, sus), add_pair(out.sic, 0, sic);
  add_pair(out.sis, 0, sis);
  out.w += double(k);
  for (; k < n; ++k)
    accumulate_one(kDft ? Layout::ac1 : Layout::dc, x + 2 * k, kDft ? rc[k] : 0.0, kDft ? rs[k] : 0.0, 1.0, out);
}

// ---- eight-lane kernels (AVX-512: one register per frame) -------------------

using v8d = double __attribute__((vector_size(64)));

WP_INLINE v8d load8f(const float* p) noexcept {
  v8f f;
  std::memcpy(&f, p, sizeof f);
  return __builtin_convertvector(f, v8d);
}
WP_INLINE void fold8(Sums::Lanes& a, v8d v) noexcept {
  for (int k = 0; k < 4; ++k) a[k] += v[k];
  for (int k = 0; k < 4; ++k) a[k] += v[4 + k];
}

// Single-phase: eight consecutive frames per register.
template <bool kDft>
WP_INLINE void kernel_1ph_x8(const float* x, std::size_t n, const float* rc, const float* rs, Sums& out) noexcept {
  using v16f = float __attribute__((vector_size(64)));
  v8d su{}, si{}, suu{}, sii{}, sui{}, suc{}, sus{}, sic{}, sis{};
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    v16f v;
    std::memcpy(&v, x + 2 * k, sizeof v);
    const v8d u = __builtin_convertvector(__builtin_shufflevector(v, v, 0, 2, 4, 6, 8, 10, 12, 14), v8d);
    const v8d i = __builtin_convertvector(__builtin_shufflevector(v, v, 1, 3, 5, 7, 9, 11, 13, 15), v8d);
    su += u, si += i, suu += u * u, sii += i * i, sui += u * i;
    if constexpr (kDft) {
      const v8d c = load8f(rc + k), s = load8f(rs + k);
      suc += u * c, sus += u * s, sic += i * c, sis += i * s;
    }
  }
  fold8(out.su, su), fold8(out.si, si), fold8(out.suu, suu), fold8(out.sii, sii), fold8(out.sui, sui);
  fold8(out.suc, suc), fold8(out.sus, sus), fold8(out.sic, sic), fold8(out.sis, sis);
  out.w += double(k);
  for (; k < n; ++k)
    accumulate_one(kDft ? Layout::ac1 : Layout::dc, x + 2 * k, kDft ? rc[k] : 0.0, kDft ? rs[k] : 0.0, 1.0, out);
}

}  // namespace

// Runtime dispatch: the same kernels compiled for the portable baseline and
// for AVX2+FMA, picked once by CPUID. (A plain function pointer rather than
// an ifunc: ifunc resolvers run before sanitizer runtimes are up.)
namespace {

template <int kIsa>
WP_INLINE double plain_sum_impl(const float* frames, std::size_t n, std::uint32_t channels) noexcept {
  const std::size_t total = n * channels;
  v8f a{}, b{}, c{}, d{};
  std::size_t k = 0;
  for (; k + 32 <= total; k += 32) {
    v8f x0, x1, x2, x3;
    std::memcpy(&x0, frames + k, 32);
    std::memcpy(&x1, frames + k + 8, 32);
    std::memcpy(&x2, frames + k + 16, 32);
    std::memcpy(&x3, frames + k + 24, 32);
    a += x0, b += x1, c += x2, d += x3;
  }
  a += b + c + d;
  double sum = 0;
  for (int j = 0; j < 8; ++j) sum += a[j];
  for (; k < total; ++k) sum += frames[k];
  return sum;
}

// Single-phase AC kernels take the reference from a table, made a chunk at a time.
template <typename Kernel>
WP_INLINE void with_table(const float* f, std::size_t n, Phasor& z, Phasor r, Kernel&& kernel) noexcept {
  constexpr std::size_t kChunk = 256;
  alignas(32) float c[kChunk + 16], s[kChunk + 16];
  for (std::size_t k = 0; k < n; k += kChunk) {
    const std::size_t len = std::min(kChunk, n - k);
    reference_table(z.c, z.s, r.c, r.s, len, c, s);
    kernel(f + 2 * k, len, c, s);
  }
}

// Each entry point picks its kernels itself: a kernel with a target of its
// own inlines only into a function of that target (or a wider one).
void accumulate_portable(Layout l, const float* f, std::size_t n, Phasor& z, Phasor r, Sums& out) noexcept {
  switch (l) {
    case Layout::ac3n: kernel_3ph_x2<false>(f, n, z, Turns4(r), out); break;
    case Layout::ac3: kernel_3ph_x2<true>(f, n, z, Turns4(r), out); break;
    case Layout::ac1:
      with_table(f, n, z, r, [&](const float* g, std::size_t m, const float* c, const float* s) {
        kernel_1ph_x2<true>(g, m, c, s, out);
      });
      break;
    case Layout::dc: kernel_1ph_x2<false>(f, n, nullptr, nullptr, out); break;
    case Layout::ac3n_dc: break;  // never here: split into its points first (PointSource)
  }
}
WP_AVX2 void accumulate_avx2(Layout l, const float* f, std::size_t n, Phasor& z, Phasor r, Sums& out) noexcept {
  switch (l) {
    case Layout::ac3n: kernel_3ph<false>(f, n, z, Turns(r), out); break;
    case Layout::ac3: kernel_3ph<true>(f, n, z, Turns(r), out); break;
    case Layout::ac1:
      with_table(f, n, z, r, [&](const float* g, std::size_t m, const float* c, const float* s) WP_AVX2 {
        kernel_1ph<true>(g, m, c, s, out);
      });
      break;
    case Layout::dc: kernel_1ph<false>(f, n, nullptr, nullptr, out); break;
    case Layout::ac3n_dc: break;
  }
}
// Three phases: the 256-bit kernel, here with the 32 registers of AVX-512VL
// (eight-lane frames were slower on AMD Zen 4, which splits 512-bit work).
WP_AVX512 void accumulate_avx512(Layout l, const float* f, std::size_t n, Phasor& z, Phasor r, Sums& out) noexcept {
  switch (l) {
    case Layout::ac3n: kernel_3ph<false>(f, n, z, Turns(r), out); break;
    case Layout::ac3: kernel_3ph<true>(f, n, z, Turns(r), out); break;
    case Layout::ac1:
      with_table(f, n, z, r, [&](const float* g, std::size_t m, const float* c, const float* s) WP_AVX512 {
        kernel_1ph_x8<true>(g, m, c, s, out);
      });
      break;
    case Layout::dc: kernel_1ph_x8<false>(f, n, nullptr, nullptr, out); break;
    case Layout::ac3n_dc: break;
  }
}
double plain_sum_portable(const float* f, std::size_t n, std::uint32_t ch) noexcept { return plain_sum_impl<0>(f, n, ch); }
WP_AVX2 double plain_sum_avx2(const float* f, std::size_t n, std::uint32_t ch) noexcept {
  return plain_sum_impl<1>(f, n, ch);
}

enum class Isa { portable, avx2, avx512 };

Isa detect_isa() noexcept {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::portable;
}

// WATTPIPE_ISA=portable|avx2 caps the choice (benchmarks, tests of each path).
Isa chosen_isa() noexcept {
  static const Isa isa = [] {
    Isa best = detect_isa();
    if (const char* cap = std::getenv("WATTPIPE_ISA")) {
      if (std::strcmp(cap, "portable") == 0) best = Isa::portable;
      if (std::strcmp(cap, "avx2") == 0 && best == Isa::avx512) best = Isa::avx2;
    }
    return best;
  }();
  return isa;
}

}  // namespace

void accumulate(Layout l, const float* frames, std::size_t n, Phasor& z, Phasor r, Sums& s) noexcept {
  static const auto fn = chosen_isa() == Isa::avx512 ? &accumulate_avx512
                         : chosen_isa() == Isa::avx2 ? &accumulate_avx2
                                                     : &accumulate_portable;
  fn(l, frames, n, z, r, s);
}

const char* kernel_isa() noexcept {
  switch (chosen_isa()) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2+fma";
    case Isa::portable: break;
  }
  return "portable";
}

bool kernels_avx2() noexcept { return chosen_isa() != Isa::portable; }

void accumulate_one(Layout l, const float* x, double c, double sn, double w, Sums& s) noexcept {
  const acquire::LayoutInfo li = acquire::layout_info(l);
  auto add = [&](int lane, double u, double i) {
    s.su[lane] += w * u;
    s.si[lane] += w * i;
    s.suu[lane] += w * u * u;
    s.sii[lane] += w * i * i;
    s.sui[lane] += w * u * i;
    s.suc[lane] += w * u * c;
    s.sus[lane] += w * u * sn;
    s.sic[lane] += w * i * c;
    s.sis[lane] += w * i * sn;
  };
  for (std::uint32_t k = 0; k < li.phases; ++k) add(int(k), double(x[li.u[k]]), double(x[li.i[k]]));
  if (li.neutral) add(3, double(x[li.un]), double(x[li.in]));
  s.w += w;
}

double plain_sum(const float* frames, std::size_t n, std::uint32_t channels) noexcept {
  static const auto fn = chosen_isa() != Isa::portable ? &plain_sum_avx2 : &plain_sum_portable;
  return fn(frames, n, channels);
}

namespace {
template <typename V>
WP_INLINE void reference_table_impl(double& zc, double& zs, double rc, double rs, std::size_t n, float* ref_c,
                                    float* ref_s) noexcept {
  // An anchor every 16 frames, the phasor in double (its recurrence waits
  // once per 16 frames); the frames from an anchor are the anchor turned by
  // r^j, j = 0..15, in float (the table's precision), a vector at a time.
  constexpr int kLanes = sizeof(V) / sizeof(float), kVecs = kGroup / kLanes;
  const Turns t(Phasor{rc, rs});
  V qc[kVecs], qs[kVecs];
  std::memcpy(qc, t.qc, sizeof qc);
  std::memcpy(qs, t.qs, sizeof qs);
  Phasor a{zc, zs};
  for (std::size_t k = 0;; k += kGroup) {  // through entry n, for the hand-back
    const V c = V{} + float(a.c), s = V{} + float(a.s);
    for (int q = 0; q < kVecs; ++q) {
      const V tc = c * qc[q] - s * qs[q], ts = c * qs[q] + s * qc[q];
      std::memcpy(ref_c + k + kLanes * q, &tc, sizeof tc);
      std::memcpy(ref_s + k + kLanes * q, &ts, sizeof ts);
    }
    if (n < k + kGroup) {  // the phasor at n, in double
      const Phasor at = t.turn(a, n - k);
      zc = at.c, zs = at.s;
      return;
    }
    a = t.turn(a, kGroup);
  }
}
void reference_table_portable(double& zc, double& zs, double rc, double rs, std::size_t n, float* c, float* s) noexcept {
  reference_table_impl<v4f>(zc, zs, rc, rs, n, c, s);
}
WP_AVX2 void reference_table_avx2(double& zc, double& zs, double rc, double rs, std::size_t n, float* c,
                                  float* s) noexcept {
  reference_table_impl<v8f>(zc, zs, rc, rs, n, c, s);
}
}  // namespace

void reference_table(double& zc, double& zs, double rc, double rs, std::size_t n, float* ref_c,
                     float* ref_s) noexcept {
  static const auto fn = chosen_isa() != Isa::portable ? &reference_table_avx2 : &reference_table_portable;
  fn(zc, zs, rc, rs, n, ref_c, ref_s);
}

std::array<PhaseSums, 4> phase_sums(Layout l, const Sums& s) noexcept {
  std::array<PhaseSums, 4> p{};
  auto lane = [&](int k) {
    return PhaseSums{s.su[k], s.si[k], s.suu[k], s.sii[k], s.sui[k], s.suc[k], s.sus[k], s.sic[k], s.sis[k]};
  };
  if (acquire::layout_info(l).phases == 3) {
    for (int k = 0; k < 4; ++k) p[k] = lane(k);
  } else {
    for (int k = 0; k < 4; ++k) {
      const PhaseSums q = lane(k);
      PhaseSums& t = p[0];
      t.su += q.su, t.si += q.si, t.suu += q.suu, t.sii += q.sii, t.sui += q.sui;
      t.suc += q.suc, t.sus += q.sus, t.sic += q.sic, t.sis += q.sis;
    }
  }
  return p;
}

void compute_values(Layout l, const Sums& s, double fs_hz, WindowRecord& out, double min_seq_voltage_v) noexcept {
  const acquire::LayoutInfo li = acquire::layout_info(l);
  const auto p = phase_sums(l, s);
  const double w = s.w;
  out.phases = static_cast<std::uint8_t>(li.phases);
  out.dc = li.dc;
  out.neutral = li.neutral;
  out.samples = w;
  out.p_total_w = out.q1_total_var = out.s_total_va = out.energy_total_wh = 0;
  for (int k = 0; k < 3; ++k) out.ph[k] = PhaseValues{};
  out.un_rms_v = out.in_rms_a = 0;
  if (w <= 0) return;
  const double inv_w = 1.0 / w;
  for (std::uint32_t k = 0; k < li.phases; ++k) {
    const PhaseSums& q = p[k];
    PhaseValues& v = out.ph[k];
    v.urms_v = std::sqrt(std::max(q.suu * inv_w, 0.0));
    v.irms_a = std::sqrt(std::max(q.sii * inv_w, 0.0));
    v.u_mean_v = q.su * inv_w;
    v.i_mean_a = q.si * inv_w;
    v.p_w = q.sui * inv_w;
    // IEEE 1459 Q1 = Im(U1 conj(I1)) with RMS phasors sqrt(2)/W * sum x e^{-j ref}.
    v.q1_var = li.dc ? 0.0 : 2.0 * (q.suc * q.sis - q.sus * q.sic) * inv_w * inv_w;
    v.s_va = v.urms_v * v.irms_a;
    v.n_va = std::sqrt(std::max(v.s_va * v.s_va - v.p_w * v.p_w, 0.0));
    v.pf = v.s_va > 0 ? v.p_w / v.s_va : 0.0;
    v.energy_wh = q.sui / fs_hz / 3600.0;
    out.p_total_w += v.p_w;
    out.q1_total_var += v.q1_var;
    out.s_total_va += v.s_va;
    out.energy_total_wh += v.energy_wh;
  }
  if (li.neutral) {
    out.un_rms_v = std::sqrt(std::max(p[3].suu * inv_w, 0.0));
    out.in_rms_a = std::sqrt(std::max(p[3].sii * inv_w, 0.0));
  }
  out.phase_seq_valid = false;
  out.phase_seq_error = false;
  if (li.phases == 3) {
    // Fundamental RMS of U1, U2: sqrt(2) |X| / W.
    const double u1 = std::sqrt(2.0) * std::hypot(p[0].suc, p[0].sus) * inv_w;
    const double u2 = std::sqrt(2.0) * std::hypot(p[1].suc, p[1].sus) * inv_w;
    if (u1 >= min_seq_voltage_v && u2 >= min_seq_voltage_v) {
      out.phase_seq_valid = true;
      // Im(X2 conj(X1)) > 0: U2 leads U1.
      out.phase_seq_error = p[1].suc * p[0].sus - p[1].sus * p[0].suc > 0;
    }
  }
}

}  // namespace wattpipe::pipeline

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
// All four lanes x: a broadcast (v4d{} + x would add to +0.0 first).
WP_INLINE v4d splat4(double x) noexcept { return v4d{x, x, x, x}; }
WP_INLINE v4d load4d(const double* p) noexcept {
  v4d d;
  std::memcpy(&d, p, sizeof d);
  return d;
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

// Three-phase layouts: lanes are channels. Two accumulator sets halve the
// add-latency chains.
template <std::size_t kStride, std::size_t kIOff, bool kMask>
WP_AVX2 void kernel_3ph(const float* x, std::size_t n, const double* rc, const double* rs, Sums& out) noexcept {
  const v4d mask = kMask ? v4d{1, 1, 1, 0} : v4d{1, 1, 1, 1};
  // One set of nine accumulators: with two, 18 of them and the frames' four
  // vectors do not fit in 16 registers, and the loop spilled to the stack.
  Acc a;
  std::size_t k = 0;
  // AC3 reads one float past each frame's currents: stop a frame early so the
  // last read stays inside the caller's buffer.
  const std::size_t margin = kMask ? 1 : 0;
  for (; k + 1 + margin <= n; ++k) {
    const float* f0 = x + k * kStride;
#if defined(__x86_64__)
    // Intrinsics, in this AVX2 function itself: GCC 12 lowers the generic
    // four-float conversion into two halves and an insert, and a broadcast
    // into a load, a duplicate and an insert.
    v4d u0 = v4d(_mm256_cvtps_pd(_mm_loadu_ps(f0))), i0 = v4d(_mm256_cvtps_pd(_mm_loadu_ps(f0 + kIOff)));
    const v4d c = v4d(_mm256_broadcast_sd(rc + k)), s = v4d(_mm256_broadcast_sd(rs + k));
#else
    v4d u0 = load4f(f0), i0 = load4f(f0 + kIOff);
    const v4d c = splat4(rc[k]), s = splat4(rs[k]);
#endif
    if constexpr (kMask) u0 *= mask, i0 *= mask;
    a.step<true>(u0, i0, c, s);
  }
  a.store(out, double(k));
  for (; k < n; ++k) accumulate_one(kStride == 8 ? Layout::ac3n : Layout::ac3, x + k * kStride, rc[k], rs[k], 1.0, out);
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
WP_INLINE void kernel_1ph(const float* x, std::size_t n, const double* rc, const double* rs, Sums& out) noexcept {
  Acc a, b;
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    v4d u0, i0, u1, i1;
    load_ui(x + 2 * k, u0, i0);
    load_ui(x + 2 * k + 8, u1, i1);
    if constexpr (kDft) {
      a.step<true>(u0, i0, load4d(rc + k), load4d(rs + k));
      b.step<true>(u1, i1, load4d(rc + k + 4), load4d(rs + k + 4));
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
// Nine four-lane accumulators would not fit in 16 XMM registers; pairs of
// lanes do: three-phase frames are taken in two passes (L1 L2, then L3 N),
// single-phase frames two at a time.

using v2d = double __attribute__((vector_size(16)));
using v2f = float __attribute__((vector_size(8)));

WP_INLINE v2d load2f(const float* p) noexcept {
  v2f f;
  std::memcpy(&f, p, sizeof f);
  return __builtin_convertvector(f, v2d);
}
WP_INLINE void add_pair(Sums::Lanes& a, std::size_t at, v2d v) noexcept {
  a[at] += v[0];
  a[at + 1] += v[1];
}

template <std::size_t kStride, std::size_t kIOff, bool kAc3>
WP_INLINE void kernel_3ph_x2(const float* x, std::size_t n, const double* rc, const double* rs, Sums& out) noexcept {
  const std::size_t margin = kAc3 ? 1 : 0;  // AC3's second pass reads a float past the frame
  const std::size_t full = n > margin ? n - margin : 0;
  for (std::size_t half = 0; half < 2; ++half) {
    // AC3 has no neutral: its second pass masks the lane that would be UN/IN.
    const v2d mask = kAc3 && half == 1 ? v2d{1, 0} : v2d{1, 1};
    v2d su{}, si{}, suu{}, sii{}, sui{}, suc{}, sus{}, sic{}, sis{};
    for (std::size_t k = 0; k < full; ++k) {
      const float* f = x + k * kStride + 2 * half;
      const v2d u = load2f(f) * mask, i = load2f(f + kIOff) * mask;
      const v2d c = v2d{} + rc[k], s = v2d{} + rs[k];
      su += u, si += i, suu += u * u, sii += i * i, sui += u * i;
      suc += u * c, sus += u * s, sic += i * c, sis += i * s;
    }
    const std::size_t at = 2 * half;
    add_pair(out.su, at, su), add_pair(out.si, at, si), add_pair(out.suu, at, suu), add_pair(out.sii, at, sii);
    add_pair(out.sui, at, sui), add_pair(out.suc, at, suc), add_pair(out.sus, at, sus), add_pair(out.sic, at, sic);
    add_pair(out.sis, at, sis);
  }
  out.w += double(full);
  for (std::size_t k = full; k < n; ++k)
    accumulate_one(kAc3 ? Layout::ac3 : Layout::ac3n, x + k * kStride, rc[k], rs[k], 1.0, out);
}

template <bool kDft>
WP_INLINE void kernel_1ph_x2(const float* x, std::size_t n, const double* rc, const double* rs, Sums& out) noexcept {
  v2d su{}, si{}, suu{}, sii{}, sui{}, suc{}, sus{}, sic{}, sis{};
  std::size_t k = 0;
  for (; k + 2 <= n; k += 2) {
    const v2d a = load2f(x + 2 * k), b = load2f(x + 2 * k + 2);  // (u0 i0), (u1 i1)
    const v2d u = __builtin_shufflevector(a, b, 0, 2), i = __builtin_shufflevector(a, b, 1, 3);
    su += u, si += i, suu += u * u, sii += i * i, sui += u * i;
    if constexpr (kDft) {
      v2d c, s;
      std::memcpy(&c, rc + k, sizeof c);
      std::memcpy(&s, rs + k, sizeof s);
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
WP_INLINE v8d load8d(const double* p) noexcept {
  v8d d;
  std::memcpy(&d, p, sizeof d);
  return d;
}
WP_INLINE void add_lo(Sums::Lanes& a, v8d v) noexcept {
  for (int k = 0; k < 4; ++k) a[k] += v[k];
}
WP_INLINE void add_hi(Sums::Lanes& a, v8d v) noexcept {
  for (int k = 0; k < 4; ++k) a[k] += v[4 + k];
}

// A three-phase frame as [U1 U2 U3 UN|0, I1 I2 I3 IN|0].
template <bool kAc3>
WP_INLINE v8d load_frame_x8(const float* f) noexcept {
  v8d v = load8f(f);
  if constexpr (kAc3) v = __builtin_shufflevector(v, v8d{}, 0, 1, 2, 8, 3, 4, 5, 8);
  return v;
}

WP_INLINE void fold8(Sums::Lanes& a, v8d v) noexcept {
  add_lo(a, v);
  add_hi(a, v);
}

// Three-phase: a frame is one register [U1 U2 U3 UN|0, I1 I2 I3 IN|0], so
// x*x gives U^2 and I^2 at once and x*swap(x) gives U*I.
template <bool kAc3>
WP_INLINE void kernel_3ph_x8(const float* x, std::size_t n, const double* rc, const double* rs, Sums& out) noexcept {
  constexpr std::size_t kStride = kAc3 ? 6 : 8;
  v8d s0{}, q0{}, p0{}, c0{}, n0{}, s1{}, q1{}, p1{}, c1{}, n1{};
  std::size_t k = 0;
  const std::size_t margin = kAc3 ? 1 : 0;  // AC3 reads two floats past a frame
  for (; k + 2 + margin <= n; k += 2) {
    const v8d a = load_frame_x8<kAc3>(x + k * kStride), b = load_frame_x8<kAc3>(x + (k + 1) * kStride);
    const v8d as = __builtin_shufflevector(a, a, 4, 5, 6, 7, 0, 1, 2, 3);
    const v8d bs = __builtin_shufflevector(b, b, 4, 5, 6, 7, 0, 1, 2, 3);
    s0 += a, q0 += a * a, p0 += a * as, c0 += a * rc[k], n0 += a * rs[k];
    s1 += b, q1 += b * b, p1 += b * bs, c1 += b * rc[k + 1], n1 += b * rs[k + 1];
  }
  s0 += s1, q0 += q1, p0 += p1, c0 += c1, n0 += n1;
  add_lo(out.su, s0), add_hi(out.si, s0), add_lo(out.suu, q0), add_hi(out.sii, q0), add_lo(out.sui, p0);
  add_lo(out.suc, c0), add_hi(out.sic, c0), add_lo(out.sus, n0), add_hi(out.sis, n0);
  out.w += double(k);
  for (; k < n; ++k) accumulate_one(kAc3 ? Layout::ac3 : Layout::ac3n, x + k * kStride, rc[k], rs[k], 1.0, out);
}

// Single-phase: eight consecutive frames per register.
template <bool kDft>
WP_INLINE void kernel_1ph_x8(const float* x, std::size_t n, const double* rc, const double* rs, Sums& out) noexcept {
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
      const v8d c = load8d(rc + k), s = load8d(rs + k);
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
WP_INLINE void accumulate_impl(Layout l, const float* frames, std::size_t n, const double* ref_c, const double* ref_s,
                               Sums& s) noexcept {
  if constexpr (kIsa == 2) {
    switch (l) {
      case Layout::ac3n: kernel_3ph_x8<false>(frames, n, ref_c, ref_s, s); break;
      case Layout::ac3: kernel_3ph_x8<true>(frames, n, ref_c, ref_s, s); break;
      case Layout::ac1: kernel_1ph_x8<true>(frames, n, ref_c, ref_s, s); break;
      case Layout::dc: kernel_1ph_x8<false>(frames, n, nullptr, nullptr, s); break;
      case Layout::ac3n_dc: break;  // never here: split into its points first (PointSource)
    }
  } else if constexpr (kIsa == 0) {
    switch (l) {
      case Layout::ac3n: kernel_3ph_x2<8, 4, false>(frames, n, ref_c, ref_s, s); break;
      case Layout::ac3: kernel_3ph_x2<6, 3, true>(frames, n, ref_c, ref_s, s); break;
      case Layout::ac1: kernel_1ph_x2<true>(frames, n, ref_c, ref_s, s); break;
      case Layout::dc: kernel_1ph_x2<false>(frames, n, nullptr, nullptr, s); break;
      case Layout::ac3n_dc: break;  // never here: split into its points first (PointSource)
    }
  } else {
    switch (l) {
      case Layout::ac3n: kernel_3ph<8, 4, false>(frames, n, ref_c, ref_s, s); break;
      case Layout::ac3: kernel_3ph<6, 3, true>(frames, n, ref_c, ref_s, s); break;
      case Layout::ac1: kernel_1ph<true>(frames, n, ref_c, ref_s, s); break;
      case Layout::dc: kernel_1ph<false>(frames, n, nullptr, nullptr, s); break;
      case Layout::ac3n_dc: break;  // never here: split into its points first (PointSource)
    }
  }
}

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

void accumulate_portable(Layout l, const float* f, std::size_t n, const double* c, const double* s, Sums& out) noexcept {
  accumulate_impl<0>(l, f, n, c, s, out);
}
WP_AVX2 void accumulate_avx2(Layout l, const float* f, std::size_t n, const double* c, const double* s,
                             Sums& out) noexcept {
  accumulate_impl<1>(l, f, n, c, s, out);
}
WP_AVX512 void accumulate_avx512(Layout l, const float* f, std::size_t n, const double* c, const double* s,
                                 Sums& out) noexcept {
  accumulate_impl<2>(l, f, n, c, s, out);
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

void accumulate(Layout l, const float* frames, std::size_t n, const double* ref_c, const double* ref_s,
                Sums& s) noexcept {
  static const auto fn = chosen_isa() == Isa::avx512 ? &accumulate_avx512
                         : chosen_isa() == Isa::avx2 ? &accumulate_avx2
                                                     : &accumulate_portable;
  fn(l, frames, n, ref_c, ref_s, s);
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
WP_INLINE void reference_table_impl(double& zc, double& zs, double rc, double rs, std::size_t n, double* ref_c,
                                    double* ref_s) noexcept {
  // Seeds z * r^j for j = 0..7, then every chain steps by r^8.
  v4d c0, s0, c1, s1;
  double pc = zc, ps = zs;
  for (int j = 0; j < 8; ++j) {
    (j < 4 ? c0 : c1)[j & 3] = pc;
    (j < 4 ? s0 : s1)[j & 3] = ps;
    const double t = pc * rc - ps * rs;
    ps = pc * rs + ps * rc;
    pc = t;
  }
  // r^8 by squaring.
  double r8c = rc, r8s = rs;
  for (int j = 0; j < 3; ++j) {
    const double t = r8c * r8c - r8s * r8s;
    r8s = 2 * r8c * r8s;
    r8c = t;
  }
  std::size_t k = 0;
  for (; k <= n; k += 8) {  // one step past n, so entry n exists for the hand-back
    std::memcpy(ref_c + k, &c0, 32), std::memcpy(ref_c + k + 4, &c1, 32);
    std::memcpy(ref_s + k, &s0, 32), std::memcpy(ref_s + k + 4, &s1, 32);
    const v4d nc0 = c0 * r8c - s0 * r8s, nc1 = c1 * r8c - s1 * r8s;
    s0 = c0 * r8s + s0 * r8c, s1 = c1 * r8s + s1 * r8c;
    c0 = nc0, c1 = nc1;
  }
  zc = ref_c[n];
  zs = ref_s[n];
}
void reference_table_portable(double& zc, double& zs, double rc, double rs, std::size_t n, double* c, double* s) noexcept {
  reference_table_impl(zc, zs, rc, rs, n, c, s);
}
WP_AVX2 void reference_table_avx2(double& zc, double& zs, double rc, double rs, std::size_t n, double* c,
                                  double* s) noexcept {
  reference_table_impl(zc, zs, rc, rs, n, c, s);
}
}  // namespace

void reference_table(double& zc, double& zs, double rc, double rs, std::size_t n, double* ref_c,
                     double* ref_s) noexcept {
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

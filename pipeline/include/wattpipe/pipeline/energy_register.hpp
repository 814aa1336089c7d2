// SPDX-License-Identifier: Apache-2.0
// Energy registers that do not drift: whole micro-watt-hours in an integer,
// the fraction carried in a double that stays in [0, 1). Adding a window's
// energy rounds nothing away; the only error is the double addition of the
// window energy to a value below 1 uWh (~1e-10 uWh per window).
//
// No input can corrupt a register: an addition that is negative, NaN or
// infinite is refused, and one that would pass kMaxUwh saturates there;
// both are reported to the caller (never wraps, never goes back).
//
// Threading: plain values; the processing thread owns the live registers.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace wattpipe::pipeline {

// 1e18 uWh = 1 TWh: far beyond any charger's life, far inside int64.
inline constexpr std::int64_t kMaxUwh = 1'000'000'000'000'000'000;

enum class AddResult { ok, refused, saturated };

struct CompensatedRegister {
  std::int64_t uwh = 0;  // whole micro-watt-hours, [0, kMaxUwh]
  double frac_uwh = 0;   // carried fraction, [0, 1)

  // Adds x >= 0 uWh. Refuses (adds nothing) a negative or non-finite x;
  // saturates at kMaxUwh instead of overflowing.
  AddResult add_uwh(double x) noexcept {
    if (!(x >= 0) || !std::isfinite(x)) return AddResult::refused;
    const double f = frac_uwh + x;
    const double whole = std::floor(f);
    if (whole >= double(kMaxUwh - uwh)) {
      uwh = kMaxUwh;
      frac_uwh = 0;
      return AddResult::saturated;
    }
    uwh += static_cast<std::int64_t>(whole);
    frac_uwh = f - whole;
    if (!(frac_uwh >= 0 && frac_uwh < 1)) frac_uwh = 0;  // rounding at the edge of [0, 1)
    return AddResult::ok;
  }
  // True when the values are ones add_uwh() can produce (for restored state).
  [[nodiscard]] bool sane() const noexcept { return uwh >= 0 && uwh <= kMaxUwh && frac_uwh >= 0 && frac_uwh < 1; }
  [[nodiscard]] double wh() const noexcept { return (static_cast<double>(uwh) + frac_uwh) * 1e-6; }
  friend bool operator==(const CompensatedRegister&, const CompensatedRegister&) = default;
};

// All registers of a meter: imported and exported energy per phase and in total.
struct Registers {
  std::array<CompensatedRegister, 3> import_phase{};
  std::array<CompensatedRegister, 3> export_phase{};
  CompensatedRegister import_total{};
  CompensatedRegister export_total{};

  // Books one segment's net energies (uWh per phase, as many as `phases`):
  // each phase by its own sign, the total by the sign of the sum, so a phase
  // exporting while others import nets out as billing meters do. A segment
  // with a non-finite energy is refused whole (nothing booked); otherwise
  // the worst result of the additions is returned.
  AddResult book(const double* phase_uwh, unsigned phases) noexcept {
    double sum = 0;
    for (unsigned k = 0; k < phases; ++k) sum += phase_uwh[k];
    if (!std::isfinite(sum)) return AddResult::refused;
    AddResult worst = AddResult::ok;
    auto note = [&](AddResult r) {
      if (r != AddResult::ok) worst = r;
    };
    for (unsigned k = 0; k < phases; ++k) {
      const double e = phase_uwh[k];
      note(e >= 0 ? import_phase[k].add_uwh(e) : export_phase[k].add_uwh(-e));
    }
    note(sum >= 0 ? import_total.add_uwh(sum) : export_total.add_uwh(-sum));
    return worst;
  }
  [[nodiscard]] bool sane() const noexcept {
    for (int k = 0; k < 3; ++k)
      if (!import_phase[k].sane() || !export_phase[k].sane()) return false;
    return import_total.sane() && export_total.sane();
  }

  // True when no register of *this is below the same register of `o`.
  [[nodiscard]] bool covers(const Registers& o) const noexcept {
    auto ge = [](const CompensatedRegister& a, const CompensatedRegister& b) {
      return a.uwh > b.uwh || (a.uwh == b.uwh && a.frac_uwh >= b.frac_uwh);
    };
    for (int k = 0; k < 3; ++k)
      if (!ge(import_phase[k], o.import_phase[k]) || !ge(export_phase[k], o.export_phase[k])) return false;
    return ge(import_total, o.import_total) && ge(export_total, o.export_total);
  }
  friend bool operator==(const Registers&, const Registers&) = default;
};

}  // namespace wattpipe::pipeline

// Energy registers that do not drift: whole micro-watt-hours in an integer,
// the fraction carried in a double that stays in [0, 1). Adding a window's
// energy rounds nothing away; the only error is the double addition of the
// window energy to a value below 1 uWh (~1e-10 uWh per window).
//
// Threading: plain values; the processing thread owns the live registers.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace wattpipe::pipeline {

struct CompensatedRegister {
  std::int64_t uwh = 0;  // whole micro-watt-hours
  double frac_uwh = 0;   // carried fraction, [0, 1)

  void add_uwh(double x) noexcept {
    frac_uwh += x;
    const double whole = std::floor(frac_uwh);
    uwh += static_cast<std::int64_t>(whole);
    frac_uwh -= whole;
  }
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
  // exporting while others import nets out as billing meters do.
  void book(const double* phase_uwh, unsigned phases) noexcept {
    double sum = 0;
    for (unsigned k = 0; k < phases; ++k) {
      const double e = phase_uwh[k];
      sum += e;
      if (e >= 0) {
        import_phase[k].add_uwh(e);
      } else {
        export_phase[k].add_uwh(-e);
      }
    }
    if (sum >= 0) {
      import_total.add_uwh(sum);
    } else {
      export_total.add_uwh(-sum);
    }
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

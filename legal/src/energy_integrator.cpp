// SPDX-License-Identifier: Apache-2.0
// Energy integration: the open window's sum of u·i per phase becomes energy
// in the registers, booked once (docs/legal.md).
#include <cmath>

#include "wattpipe/legal/legal.hpp"

namespace wattpipe::legal {

AddResult EnergyIntegrator::book(const Segment& s, Registers& r) const noexcept {
  double uwh[3] = {0, 0, 0};
  const double to_uwh = s.fs_hz > 0 ? 1e6 / (s.fs_hz * 3600.0) : 0.0;
  // Full scale over the window's length so far bounds what one phase can carry.
  const double limit = fs_v_ * fs_a_ * (s.frames + 1) * to_uwh;
  const unsigned phases = s.phases < 3 ? s.phases : 3;
  for (unsigned k = 0; k < phases; ++k) {
    uwh[k] = (s.sui[k] - committed_sui_[k]) * to_uwh;
    if (!(std::fabs(uwh[k]) <= limit)) return AddResult::refused;  // also NaN
  }
  return r.book(uwh, phases);
}

void EnergyIntegrator::count(AddResult a) noexcept {
  if (a == AddResult::refused) ++faults_.energy_refused;
  if (a == AddResult::saturated) ++faults_.saturated;
}

AddResult EnergyIntegrator::commit(const Segment& s) noexcept {
  const AddResult a = book(s, reg_);
  count(a);
  committed_sui_ = s.sui;
  return a;
}

AddResult EnergyIntegrator::close(const Segment& s) noexcept {
  const AddResult a = book(s, reg_);
  count(a);
  committed_sui_ = {};
  return a;
}

Registers EnergyIntegrator::folded(const Segment& s) const noexcept {
  Registers r = reg_;
  book(s, r);
  return r;
}

}  // namespace wattpipe::legal

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/meter_transactions.hpp"

#include <cmath>

#include <spdlog/spdlog.h>

#include "wattpipe/legal/json_writer.hpp"

namespace wattpipe::publish {

void MeterTransactions::enable_view() {
  view_on_ = true;
  refresh_view();
}

SignedMeterValue MeterTransactions::smv(const legal::SignedRecord& r) const {
  return SignedMeterValue{r.record, std::string(legal::kSigningMethod), std::string(legal::kEncodingMethod),
                          meter_.public_key_hex(), r.utc_ns};
}

namespace {
// A refusal of the legal part, as EVerest's reply carries it; false when there was none.
template <typename Reply>
bool refused(std::string& error, Reply& r) {
  if (error.empty()) return false;
  r.status = TransactionStatus::unexpected_error;
  r.error = std::move(error);
  return true;
}
}  // namespace

void MeterTransactions::to_store(const std::string& id, const std::string& evse_id, const legal::SignedRecord& begin,
                                 const legal::SignedRecord* end, const Balance* balance) {
  if (store_ == nullptr) return;
  StoreTransaction t{id, evse_id, begin.utc_ns, begin.record, std::nullopt, {}};
  if (end != nullptr) t.end_utc_ns = end->utc_ns, t.end_record = end->record;
  if (balance != nullptr) t.e_in_wh = balance->e_in_wh, t.e_out_wh = balance->e_out_wh, t.efficiency = balance->efficiency;
  store_->add_transaction(std::move(t));
}

StartTransactionReply MeterTransactions::start(const StartTransactionRequest& req, const legal::Reading& reading) {
  legal::StartResult res = meter_.start_transaction(req, reading);
  note_closed(res.closed, reading);
  StartTransactionReply r;
  if (refused(res.error, r)) return r;
  r.min_stop_utc_ns = res.min_stop_utc_ns;
  r.max_stop_utc_ns = res.max_stop_utc_ns;
  if (res.begin) {
    r.signed_meter_value = smv(*res.begin);
    to_store(req.transaction_id, req.evse_id, *res.begin, nullptr);
    if (std::isfinite(input_wh_))
      began_[req.transaction_id] =
          Began{input_wh_, reading.registers.import_total.uwh - reading.registers.export_total.uwh};
  }
  refresh_view();
  return r;
}

StopTransactionReply MeterTransactions::stop(const StopTransactionRequest& req, const legal::Reading& reading) {
  legal::StopResult res = meter_.stop_transaction(req.transaction_id, reading);
  const std::vector<Balance> balances = note_closed(res.closed, reading);
  StopTransactionReply r;
  if (refused(res.error, r)) return r;
  if (res.end) r.signed_meter_value = smv(*res.end);
  if (res.begin) r.start_signed_meter_value = smv(*res.begin);
  if (!balances.empty()) {  // the last closed: the one whose records the reply carries
    r.energy_in_wh = balances.back().e_in_wh;
    r.energy_out_wh = balances.back().e_out_wh;
    r.efficiency = balances.back().efficiency;
  }
  return r;
}

MeterTransactions::Checked MeterTransactions::check(const std::string& record) const {
  const legal::ocmf::Verification v = legal::ocmf::verify(record, meter_.public_key_hex());
  const bool ok = v.verdict == legal::ocmf::Verification::Verdict::valid;
  return Checked{record, ok ? std::string() : v.reason, v.pagination, ok};
}

// The check already made of this transaction's begin record, or a new one.
MeterTransactions::Checked MeterTransactions::checked_begin(const std::string& id, const std::string& record) const {
  const auto it = open_checked_.find(id);
  return it != open_checked_.end() && it->second.record == record ? it->second : check(record);
}

// Two points: the energy into the charger and out of it over the transaction, and their ratio.
MeterTransactions::Balance MeterTransactions::balance(const std::string& id, const legal::Reading& end) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  Balance b{kNaN, kNaN, kNaN};
  const auto it = began_.find(id);
  if (it == began_.end()) return b;
  if (std::isfinite(input_wh_)) {
    b.e_in_wh = input_wh_ - it->second.input_wh;
    b.e_out_wh = double(end.registers.import_total.uwh - end.registers.export_total.uwh - it->second.net_uwh) / 1e6;
    if (b.e_in_wh > 0 && b.e_out_wh >= 0) b.efficiency = b.e_out_wh / b.e_in_wh;
    spdlog::info("transaction '{}': {:.6f} Wh out of {:.6f} Wh in: efficiency {:.4f}", id, b.e_out_wh, b.e_in_wh,
                 b.efficiency);
  }
  began_.erase(it);
  return b;
}

std::vector<MeterTransactions::Balance> MeterTransactions::note_closed(const std::vector<legal::ClosedTransaction>& closed,
                                                                      const legal::Reading& at) {
  std::vector<Balance> balances;
  for (const auto& c : closed) {
    balances.push_back(balance(c.id, at));
    to_store(c.id, c.evse_id, c.begin, &c.end, &balances.back());
  }
  if (!view_on_ || closed.empty()) return balances;
  for (std::size_t k = 0; k < closed.size(); ++k) {
    const auto& c = closed[k];
    closed_.push_front({c.id, c.evse_id, checked_begin(c.id, c.begin.record), check(c.end.record), balances[k].e_in_wh,
                        balances[k].e_out_wh, balances[k].efficiency});
    if (closed_.size() > kViewClosed) closed_.pop_back();
  }
  refresh_view();
  return balances;
}

void MeterTransactions::refresh_view() {
  if (!view_on_) return;
  auto record = [&](legal::JsonWriter& w, std::string_view name, const Checked& c) {
    w.key(name);
    w.begin_object();
    w.field("record", c.record);
    w.field_bool("verifies", c.verifies);
    if (!c.verifies) w.field("reason", c.reason);
    w.field("pagination", c.pagination);
    w.end_object();
  };
  const std::vector<legal::OpenTransaction> open = meter_.open_transactions();
  // Forget the checks of transactions no longer open; check the new ones once.
  std::map<std::string, Checked> still;
  for (const auto& t : open) still.emplace(t.id, checked_begin(t.id, t.begin.record));
  open_checked_ = std::move(still);
  auto json = std::make_shared<const std::string>(legal::write_json(4096, [&](legal::JsonWriter& w) {
    w.begin_array();
    for (const auto& t : open) {
      w.separator();
      w.begin_object();
      w.field("id", t.id);
      w.field("evse_id", t.evse_id);
      w.field_bool("open", true);
      w.key("begin_utc");
      w.timestamp_ms(t.begin.utc_ns);
      record(w, "begin", open_checked_.at(t.id));
      w.end_object();
    }
    for (const Closed& c : closed_) {
      w.separator();
      w.begin_object();
      w.field("id", c.id);
      w.field("evse_id", c.evse_id);
      w.field_bool("open", false);
      record(w, "begin", c.begin);
      record(w, "end", c.end);
      // Extras beside the signed records (two points): not signed, not billing.
      if (std::isfinite(c.e_in_wh)) w.field_fixed("energy_in_Wh", c.e_in_wh, 6);
      if (std::isfinite(c.e_out_wh)) w.field_fixed("energy_out_Wh", c.e_out_wh, 6);
      if (std::isfinite(c.efficiency)) w.field_fixed("efficiency", c.efficiency, 6);
      w.end_object();
    }
    w.end_array();
  }));
  const std::lock_guard lock(view_mutex_);
  view_ = std::move(json);
}

}  // namespace wattpipe::publish

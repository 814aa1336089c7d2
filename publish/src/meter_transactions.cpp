// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/meter_transactions.hpp"

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
                                 const legal::SignedRecord* end) {
  if (store_ == nullptr) return;
  StoreTransaction t{id, evse_id, begin.utc_ns, begin.record, std::nullopt, {}};
  if (end != nullptr) t.end_utc_ns = end->utc_ns, t.end_record = end->record;
  store_->add_transaction(std::move(t));
}

StartTransactionReply MeterTransactions::start(const StartTransactionRequest& req, const legal::Reading& reading) {
  legal::StartResult res = meter_.start_transaction(req, reading);
  note_closed(res.closed);
  StartTransactionReply r;
  if (refused(res.error, r)) return r;
  r.min_stop_utc_ns = res.min_stop_utc_ns;
  r.max_stop_utc_ns = res.max_stop_utc_ns;
  if (res.begin) {
    r.signed_meter_value = smv(*res.begin);
    to_store(req.transaction_id, req.evse_id, *res.begin, nullptr);
  }
  refresh_view();
  return r;
}

StopTransactionReply MeterTransactions::stop(const StopTransactionRequest& req, const legal::Reading& reading) {
  legal::StopResult res = meter_.stop_transaction(req.transaction_id, reading);
  note_closed(res.closed);
  StopTransactionReply r;
  if (refused(res.error, r)) return r;
  if (res.end) r.signed_meter_value = smv(*res.end);
  if (res.begin) r.start_signed_meter_value = smv(*res.begin);
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

void MeterTransactions::note_closed(const std::vector<legal::ClosedTransaction>& closed) {
  for (const auto& c : closed) to_store(c.id, c.evse_id, c.begin, &c.end);
  if (!view_on_ || closed.empty()) return;
  for (const auto& c : closed) {
    closed_.push_front({c.id, c.evse_id, checked_begin(c.id, c.begin.record), check(c.end.record)});
    if (closed_.size() > kViewClosed) closed_.pop_back();
  }
  refresh_view();
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
      w.end_object();
    }
    w.end_array();
  }));
  const std::lock_guard lock(view_mutex_);
  view_ = std::move(json);
}

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/ocmf_transactions.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace wattpipe::publish {

namespace ocmf = pipeline::ocmf;

namespace {
ocmf::ReadingPoint point(const pipeline::Reading& r, char tx) {
  ocmf::ReadingPoint p;
  p.import_uwh = r.registers.import_total.uwh;
  p.export_uwh = r.registers.export_total.uwh;
  p.utc_ns = r.utc_ns;
  p.clock_synced = r.clock_synced;
  p.dc = r.dc;
  p.tx = tx;
  return p;
}
}  // namespace

OcmfTransactions::OcmfTransactions(ocmf::Signer signer, pipeline::TransactionJournal& journal, OcmfOptions opts)
    : signer_(std::move(signer)), journal_(journal), opts_(std::move(opts)) {}

void OcmfTransactions::enable_view() {
  view_on_ = true;
  refresh_view();
}

OcmfTransactions::Checked OcmfTransactions::check(const std::string& record) const {
  const ocmf::Verification v = ocmf::verify(record, signer_.public_key_hex());
  const bool ok = v.verdict == ocmf::Verification::Verdict::valid;
  return Checked{record, ok ? std::string() : v.reason, v.pagination, ok};
}

const OcmfTransactions::Checked& OcmfTransactions::begin_checked(const pipeline::JournalTransaction& t) {
  auto it = open_checked_.find(t.id);
  if (it == open_checked_.end() || it->second.record != t.begin_record)
    it = open_checked_.insert_or_assign(t.id, check(t.begin_record)).first;
  return it->second;
}

void OcmfTransactions::refresh_view() {
  if (!view_on_) return;
  auto record = [&](pipeline::JsonWriter& w, std::string_view name, const Checked& c) {
    w.key(name);
    w.begin_object();
    w.field("record", c.record);
    w.field_bool("verifies", c.verifies);
    if (!c.verifies) w.field("reason", c.reason);
    w.field("pagination", c.pagination);
    w.end_object();
  };
  // Forget the checks of transactions no longer open.
  const auto& open = journal_.open_transactions();
  std::erase_if(open_checked_, [&](const auto& kv) { return !open.contains(kv.first); });
  auto json = std::make_shared<const std::string>(pipeline::write_json(4096, [&](pipeline::JsonWriter& w) {
    w.begin_array();
    for (const auto& [id, t] : open) {
      w.separator();
      w.begin_object();
      w.field("id", id);
      w.field("evse_id", t.ident.evse_id);
      w.field_bool("open", true);
      w.key("begin_utc");
      w.timestamp_ms(t.begin.utc_ns);
      record(w, "begin", begin_checked(t));
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

SignedMeterValue OcmfTransactions::smv(const std::string& record, std::int64_t utc_ns) const {
  return SignedMeterValue{record, std::string(ocmf::kSigningMethod), "OCMF", signer_.public_key_hex(), utc_ns};
}

StartTransactionReply OcmfTransactions::start(const StartTransactionRequest& req, const pipeline::Reading& reading) {
  auto fail = [](std::string e) {
    StartTransactionReply r;
    r.status = TransactionStatus::unexpected_error;
    r.error = std::move(e);
    return r;
  };
  if (req.transaction_id.empty()) return fail("transaction_id is empty");
  const auto& open = journal_.open_transactions();
  if (auto it = open.find(req.transaction_id); it != open.end()) {
    // A repeated start (EVerest retrying): the same transaction, the same record.
    StartTransactionReply r;
    r.signed_meter_value = smv(it->second.begin_record, it->second.begin.utc_ns);
    return r;
  }
  std::string error;
  // One transaction per EVSE: a dangling one is closed (aborted) first.
  for (auto it = open.begin(); it != open.end();) {
    const pipeline::JournalTransaction t = it->second;
    ++it;
    if (t.ident.evse_id != req.evse_id) continue;
    if (std::uint64_t sup = 0; log_limit_.allow(sup))
      spdlog::warn("OCMF: EVSE '{}' starts transaction '{}' while '{}' is open; closing that one as aborted",
                   req.evse_id, req.transaction_id, t.id);
    if (!close(t, reading, 'A', error)) return fail(error);
    it = open.begin();
  }
  pipeline::JournalTransaction t;
  t.id = req.transaction_id;
  t.ident.assigned = req.identification_status == "ASSIGNED";
  t.ident.level = req.identification_level.empty() ? "NONE" : req.identification_level;
  t.ident.flags = req.identification_flags;
  t.ident.type = req.identification_type;
  t.ident.data = req.identification_data;
  t.ident.tariff_text = req.tariff_text;
  t.ident.evse_id = req.evse_id;
  t.begin = point(reading, 'B');
  t.begin_outages = reading.outages;
  // Begun while the source is down: the reading is the last measured one.
  if (!reading.source_live) t.begin.error_flags = "E";
  const auto pg = journal_.take_pagination(error);
  if (!pg) return fail(error);
  const ocmf::ReadingPoint readings[] = {t.begin};
  t.begin_record = ocmf::sign_record(signer_, ocmf::build_payload(opts_.meter, *pg, t.ident, readings));
  if (t.begin_record.empty()) return fail("signing the begin record failed");
  if (!journal_.add(t, error)) return fail(error);
  StartTransactionReply r;
  if (opts_.min_stop_s > 0) r.min_stop_utc_ns = reading.utc_ns + std::int64_t(opts_.min_stop_s * 1e9);
  if (opts_.max_stop_s > 0) r.max_stop_utc_ns = reading.utc_ns + std::int64_t(opts_.max_stop_s * 1e9);
  r.signed_meter_value = smv(t.begin_record, reading.utc_ns);
  refresh_view();
  if (std::uint64_t sup = 0; log_limit_.allow(sup))
    spdlog::info("OCMF: transaction '{}' started on EVSE '{}' at {} kWh (PG T{}){}", t.id, t.ident.evse_id,
                 ocmf::format_kwh(t.begin.import_uwh), *pg,
                 sup ? fmt::format(" ({} more transaction lines suppressed)", sup) : "");
  return r;
}

std::optional<StopTransactionReply> OcmfTransactions::close(const pipeline::JournalTransaction& t,
                                                            const pipeline::Reading& reading, char tx,
                                                            std::string& error) {
  ocmf::ReadingPoint end = point(reading, tx);
  // Energy measured across a restart or a source outage may lack what was
  // not measured: the reading says so.
  const bool outage = reading.outages != t.begin_outages || !reading.source_live;
  if (t.restored || outage) end.error_flags = "E";
  const auto pg = journal_.take_pagination(error);
  if (!pg) return std::nullopt;
  const ocmf::ReadingPoint readings[] = {t.begin, end};
  const std::string record = ocmf::sign_record(signer_, ocmf::build_payload(opts_.meter, *pg, t.ident, readings));
  if (record.empty()) {
    error = "signing the end record failed";
    return std::nullopt;
  }
  if (!journal_.remove(t.id, error, *pg)) return std::nullopt;
  StopTransactionReply r;
  r.signed_meter_value = smv(record, reading.utc_ns);
  r.start_signed_meter_value = smv(t.begin_record, t.begin.utc_ns);
  if (view_on_) {
    Checked begin = begin_checked(t);
    closed_.push_front({t.id, t.ident.evse_id, std::move(begin), check(record)});
    if (closed_.size() > kViewClosed) closed_.pop_back();
    refresh_view();
  }
  if (std::uint64_t sup = 0; log_limit_.allow(sup))
    spdlog::info("OCMF: transaction '{}' stopped at {} kWh (began at {} kWh; PG T{}{}){}", t.id,
                 ocmf::format_kwh(end.import_uwh), ocmf::format_kwh(t.begin.import_uwh), *pg,
                 t.restored ? "; it crossed a restart, EF E" : outage ? "; it spanned a source outage, EF E" : "",
                 sup ? fmt::format(" ({} more transaction lines suppressed)", sup) : "");
  return r;
}

StopTransactionReply OcmfTransactions::stop(const StopTransactionRequest& req, const pipeline::Reading& reading) {
  auto fail = [](std::string e) {
    StopTransactionReply r;
    r.status = TransactionStatus::unexpected_error;
    r.error = std::move(e);
    return r;
  };
  std::string error;
  const auto& open = journal_.open_transactions();
  if (req.transaction_id.empty()) {
    // EvseManager clears dangling transactions at start-up with "".
    if (open.empty()) return fail("no open transaction");
    std::optional<StopTransactionReply> last;
    while (!open.empty()) {
      const pipeline::JournalTransaction t = open.begin()->second;
      last = close(t, reading, 'E', error);
      if (!last) return fail(error);
    }
    return *last;
  }
  const auto it = open.find(req.transaction_id);
  if (it == open.end()) return fail("unknown transaction id '" + req.transaction_id + "'");
  const pipeline::JournalTransaction t = it->second;
  auto r = close(t, reading, 'E', error);
  return r ? *r : fail(error);
}

}  // namespace wattpipe::publish

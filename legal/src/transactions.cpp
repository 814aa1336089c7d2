// SPDX-License-Identifier: Apache-2.0
#include "transactions.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace wattpipe::legal {

namespace {
ocmf::ReadingPoint point(const Reading& r, char tx) {
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

Transactions::Transactions(ocmf::Signer signer, TransactionJournal& journal, TransactionOptions opts)
    : signer_(std::move(signer)), journal_(journal), opts_(std::move(opts)) {}

StartResult Transactions::start(const TransactionStart& req, const Reading& reading) {
  StartResult r;
  auto fail = [&r](std::string e) {
    r.error = std::move(e);
    return r;
  };
  if (req.transaction_id.empty()) return fail("transaction_id is empty");
  const auto& open = journal_.open_transactions();
  if (auto it = open.find(req.transaction_id); it != open.end()) {
    // A repeated start (EVerest retrying): the same transaction, the same record.
    r.begin = SignedRecord{it->second.begin_record, it->second.begin.utc_ns};
    return r;
  }
  std::string error;
  // One transaction per EVSE: a dangling one is closed (aborted) first.
  for (auto it = open.begin(); it != open.end();) {
    const JournalTransaction t = it->second;
    ++it;
    if (t.ident.evse_id != req.evse_id) continue;
    if (std::uint64_t sup = 0; log_limit_.allow(sup))
      spdlog::warn("OCMF: EVSE '{}' starts transaction '{}' while '{}' is open; closing that one as aborted",
                   req.evse_id, req.transaction_id, t.id);
    auto c = close(t, reading, 'A', error);
    if (!c) return fail(error);
    r.closed.push_back(std::move(*c));
    it = open.begin();
  }
  JournalTransaction t;
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
  if (opts_.min_stop_s > 0) r.min_stop_utc_ns = reading.utc_ns + std::int64_t(opts_.min_stop_s * 1e9);
  if (opts_.max_stop_s > 0) r.max_stop_utc_ns = reading.utc_ns + std::int64_t(opts_.max_stop_s * 1e9);
  r.begin = SignedRecord{t.begin_record, reading.utc_ns};
  if (std::uint64_t sup = 0; log_limit_.allow(sup))
    spdlog::info("OCMF: transaction '{}' started on EVSE '{}' at {} kWh (PG T{}){}", t.id, t.ident.evse_id,
                 ocmf::format_kwh(t.begin.import_uwh), *pg,
                 sup ? fmt::format(" ({} more transaction lines suppressed)", sup) : "");
  return r;
}

std::optional<ClosedTransaction> Transactions::close(const JournalTransaction& t, const Reading& reading, char tx,
                                                     std::string& error) {
  ocmf::ReadingPoint end = point(reading, tx);
  // Energy measured across a restart or a source outage may lack what was
  // not measured: the reading says so.
  const bool outage = reading.outages != t.begin_outages || !reading.source_live;
  if (t.restored || outage) end.error_flags = "E";
  const auto pg = journal_.take_pagination(error);
  if (!pg) return std::nullopt;
  const ocmf::ReadingPoint readings[] = {t.begin, end};
  std::string record = ocmf::sign_record(signer_, ocmf::build_payload(opts_.meter, *pg, t.ident, readings));
  if (record.empty()) {
    error = "signing the end record failed";
    return std::nullopt;
  }
  if (!journal_.remove(t.id, error, *pg)) return std::nullopt;
  if (std::uint64_t sup = 0; log_limit_.allow(sup))
    spdlog::info("OCMF: transaction '{}' stopped at {} kWh (began at {} kWh; PG T{}{}){}", t.id,
                 ocmf::format_kwh(end.import_uwh), ocmf::format_kwh(t.begin.import_uwh), *pg,
                 t.restored ? "; it crossed a restart, EF E" : outage ? "; it spanned a source outage, EF E" : "",
                 sup ? fmt::format(" ({} more transaction lines suppressed)", sup) : "");
  return ClosedTransaction{t.id, t.ident.evse_id, SignedRecord{t.begin_record, t.begin.utc_ns},
                           SignedRecord{std::move(record), reading.utc_ns}};
}

StopResult Transactions::stop(const std::string& id, const Reading& reading) {
  StopResult r;
  std::string error;
  const auto& open = journal_.open_transactions();
  auto take = [&](const JournalTransaction& t) {
    auto c = close(t, reading, 'E', error);
    if (!c) return false;
    r.end = c->end;
    r.begin = c->begin;
    r.closed.push_back(std::move(*c));
    return true;
  };
  if (id.empty()) {
    // EvseManager clears dangling transactions at start-up with "".
    if (open.empty()) r.error = "no open transaction";
    while (!open.empty() && r.error.empty())
      if (!take(JournalTransaction(open.begin()->second))) r.error = error;
    return r;
  }
  const auto it = open.find(id);
  if (it == open.end()) {
    r.error = "unknown transaction id '" + id + "'";
  } else if (!take(JournalTransaction(it->second))) {
    r.error = error;
  }
  return r;
}

}  // namespace wattpipe::legal

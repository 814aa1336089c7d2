// SPDX-License-Identifier: Apache-2.0
// The meter's legal state behind one object: the state directory's lock,
// the register store and its writer thread, the transaction journal, the
// OCMF key and the transaction rules, opened in that order and checked
// against each other before anything measures.
#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ocmf.hpp"
#include "state_store.hpp"
#include "transaction_journal.hpp"
#include "transactions.hpp"
#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/legal/json_writer.hpp"
#include "wattpipe/legal/legal.hpp"

namespace wattpipe::legal {

struct Meter::State {
  bool persist = false;
  StateDirLock lock;
  RegisterStore store;
  RegisterStore::Recovered recovered;
  TransactionJournal journal;
  std::optional<Transactions> transactions;
  acquire::TripleBuffer<StateSnapshot> snapshots;
  acquire::Waker snapshot_waker, persisted_waker;
  std::unique_ptr<StateWriter> writer;
  MeterCounters no_writer;  // counters while there is no writer (in memory only)
};

namespace {

// Damage anywhere in the state refuses the start (naming the files and the
// best value found) unless `recover`: then the best surviving value is
// used, the event journalled and logged at error level, and OCMF pagination
// skips far past anything that could have been handed out.
bool check_state(const std::string& dir, bool recover, RegisterStore& store, const RegisterStore::Recovered& rec,
                 TransactionJournal& journal, std::string& error) {
  std::vector<std::string> damage = rec.damage;
  for (const auto& d : journal.damage()) damage.push_back(d);
  if (damage.empty()) return true;
  std::string list;
  for (const auto& d : damage) list += (list.empty() ? "" : "; ") + d;
  const std::string best =
      fmt::format("the best surviving value is record {}: import {:.6f} Wh, export {:.6f} Wh", rec.serial,
                  rec.registers.import_total.wh(), rec.registers.export_total.wh());
  if (!recover) {
    error = fmt::format("STATE DAMAGED in '{}': {}; {}. Refusing to start: keep a copy of the directory, then "
                        "start with --state-recover to continue from that value",
                        dir, list, best);
    return false;
  }
  // Margin: the registers' copy of the reservation may lag the journal by a block or two.
  const std::uint64_t floor = std::max(journal.highest_pagination_seen() + 1, rec.pg_reserved) +
                              64 * TransactionJournal::kPaginationBlock;
  const std::string event = write_json(512 + list.size() * 2, [&](JsonWriter& w) {
    w.begin_object();
    w.field("op", "recover");
    w.field("damage", list);
    w.field_uint("serial", rec.serial);
    w.field_int("import_uwh", rec.registers.import_total.uwh);
    w.field_int("export_uwh", rec.registers.export_total.uwh);
    w.field_uint("pg_from", floor);
    w.field_int("utc", acquire::utc_now_ns());
    w.end_object();
  });
  std::string err;
  if (!store.make_ready(err) || !journal.skip_to(floor, err) || !journal.note(event, err)) {
    error = "--state-recover: cannot record the recovery: " + err;
    return false;
  }
  spdlog::error("STATE DAMAGED in '{}': {}; RECOVERING (--state-recover): {}; OCMF pagination continues at T{}", dir,
                list, best, floor);
  return true;
}

}  // namespace

std::unique_ptr<Meter> Meter::open(const MeterOptions& o, OpenError& error) {
  auto s = std::make_unique<State>();
  s->persist = !o.state_dir.empty() && o.state_dir != "none";
  const std::string& dir = o.state_dir;
  std::string err;
  auto fail = [&](std::string message, bool usage) -> std::unique_ptr<Meter> {
    error = OpenError{std::move(message), usage};
    return nullptr;
  };
  if (s->persist) {
    bool held = false;
    if (!s->lock.lock(dir, err, held)) return fail("--state-dir: " + err, held);
    if (!s->store.open(dir, s->recovered, err)) return fail("--state-dir: " + err, false);
  }
  JournalExpect expect;
  expect.pagination_floor = s->recovered.pg_reserved;
  expect.entries = s->recovered.journal_entries;
  expect.must_exist = s->persist && !s->recovered.fresh;
  expect.write = s->recovered.damage.empty();
  if (!s->journal.open(s->persist ? dir : std::string(), err, expect)) return fail("--state-dir: " + err, false);
  if (s->persist && !check_state(dir, o.recover, s->store, s->recovered, s->journal, err)) return fail(err, false);

  std::optional<ocmf::Signer> signer;
  bool created = false;
  if (!o.ocmf_key.empty()) {
    signer = ocmf::Signer::load(o.ocmf_key, err);
    if (!signer) return fail("--ocmf-key: " + err, true);
  } else if (s->persist) {
    signer = ocmf::Signer::load_or_create(dir + "/ocmf-key.pem", err, created);
  } else {
    signer = ocmf::Signer::generate(err);
    spdlog::warn("no state dir: the OCMF key, registers and transactions last only as long as this run");
  }
  if (!signer) return fail(err, false);
  if (created) spdlog::info("OCMF: generated a new signing key in {}/ocmf-key.pem", dir);
  s->transactions.emplace(std::move(*signer), s->journal, TransactionOptions{o.meter, o.min_stop_s, o.max_stop_s});
  if (s->persist) {
    s->writer = std::make_unique<StateWriter>(s->store, s->snapshots, s->snapshot_waker, &s->persisted_waker,
                                              &s->journal.pagination_reserved(), &s->journal.entries_written());
    spdlog::info("state: registers restored from record {} (import {:.6f} Wh, export {:.6f} Wh){}; {} open "
                 "transaction(s)",
                 s->recovered.serial, s->recovered.registers.import_total.wh(),
                 s->recovered.registers.export_total.wh(),
                 s->recovered.corrupt ? fmt::format("; {} corrupt record(s) skipped", s->recovered.corrupt) : "",
                 s->journal.open_transactions().size());
  }
  return std::unique_ptr<Meter>(new Meter(std::move(s)));
}

Meter::Meter(std::unique_ptr<State> s) : s_(std::move(s)) {}
Meter::~Meter() {
  if (s_->writer) stop_writer();
}

const Registers& Meter::restored_registers() const noexcept { return s_->recovered.registers; }
std::uint64_t Meter::restored_serial() const noexcept { return s_->recovered.serial; }
std::uint64_t Meter::corrupt_records_skipped() const noexcept { return s_->recovered.corrupt; }
bool Meter::persistent() const noexcept { return s_->persist; }

acquire::TripleBuffer<StateSnapshot>* Meter::snapshots() noexcept { return s_->persist ? &s_->snapshots : nullptr; }
acquire::Waker* Meter::snapshot_waker() noexcept { return s_->persist ? &s_->snapshot_waker : nullptr; }
const std::atomic<std::uint64_t>* Meter::persisted_windows() const noexcept {
  return s_->writer ? &s_->writer->persisted_windows() : nullptr;
}
acquire::Waker* Meter::persisted_waker() noexcept { return s_->persist ? &s_->persisted_waker : nullptr; }

void Meter::start_writer() {
  if (s_->writer) s_->writer->start();
}
void Meter::stop_writer() {
  if (!s_->writer) return;
  s_->writer->stop();
  s_->writer->join();
}
const MeterCounters& Meter::counters() const noexcept { return s_->writer ? s_->writer->counters() : s_->no_writer; }

const std::atomic<bool>* Meter::state_healthy() const noexcept { return s_->writer ? &s_->writer->healthy() : nullptr; }

namespace {
// Why no transaction may begin or end now, or "" when it may: one whose
// registers a restart could take back cannot be kept.
std::string state_refusal(const StateWriter* w) {
  if (w == nullptr || w->healthy().load(std::memory_order_relaxed)) return {};
  return fmt::format("the meter cannot save its registers ({}); no transaction starts or stops until it can",
                     std::strerror(w->last_errno()));
}
}  // namespace

StartResult Meter::start_transaction(const TransactionStart& request, const Reading& reading) {
  if (std::string why = state_refusal(s_->writer.get()); !why.empty()) {
    StartResult r;
    r.error = std::move(why);
    return r;
  }
  return s_->transactions->start(request, reading);
}
StopResult Meter::stop_transaction(const std::string& transaction_id, const Reading& reading) {
  if (std::string why = state_refusal(s_->writer.get()); !why.empty()) {
    StopResult r;
    r.error = std::move(why);
    return r;
  }
  return s_->transactions->stop(transaction_id, reading);
}
std::vector<OpenTransaction> Meter::open_transactions() const {
  std::vector<OpenTransaction> v;
  for (const auto& [id, t] : s_->journal.open_transactions())
    v.push_back(OpenTransaction{id, t.ident.evse_id, SignedRecord{t.begin_record, t.begin.utc_ns}});
  return v;
}
const std::string& Meter::public_key_hex() const noexcept { return s_->transactions->public_key_hex(); }

}  // namespace wattpipe::legal

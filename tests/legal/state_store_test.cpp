// SPDX-License-Identifier: Apache-2.0
#include "state_store.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <tuple>

#include "transaction_journal.hpp"

using namespace wattpipe::legal;
using wattpipe::acquire::TripleBuffer;
using wattpipe::acquire::Waker;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    static int n = 0;
    path = (fs::temp_directory_path() / ("wattpipe-state-" + std::to_string(::getpid()) + "-" + std::to_string(++n))).string();
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

Registers regs(std::int64_t base) {
  Registers r;
  for (int k = 0; k < 3; ++k) r.import_phase[k].uwh = base + k, r.export_phase[k].uwh = base / 10 + k;
  r.import_total.uwh = 3 * base;
  r.import_total.frac_uwh = 0.25;
  r.export_total.uwh = base / 5;
  return r;
}

void flip_byte(const std::string& path, std::size_t at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(at));
  char c;
  f.read(&c, 1);
  c ^= 0x5a;
  f.seekp(std::streamoff(at));
  f.write(&c, 1);
}

}  // namespace

TEST(RegisterStore, RecoversTheLastRecordAcrossReopens) {
  TempDir d;
  {
    RegisterStore s;
    RegisterStore::Recovered rec;
    std::string err;
    ASSERT_TRUE(s.open(d.path, rec, err)) << err;
    EXPECT_EQ(rec.serial, 0u) << "a new meter starts from nothing";
    for (int i = 1; i <= 5000; ++i) ASSERT_TRUE(s.write(regs(i * 1000), i, err)) << err;  // wraps the ring
  }
  RegisterStore s;
  RegisterStore::Recovered rec;
  std::string err;
  ASSERT_TRUE(s.open(d.path, rec, err)) << err;
  EXPECT_EQ(rec.serial, 5000u);
  EXPECT_EQ(rec.registers, regs(5'000'000));
  EXPECT_EQ(rec.utc_ns, 5000);
  EXPECT_EQ(rec.corrupt, 0u);
  // Serials keep rising after a restart (the ring slot is the serial).
  ASSERT_TRUE(s.write(regs(6'000'000), 6000, err));
  EXPECT_EQ(s.serial(), 5001u);
}

// A new store in `dir` with records 1..n written to it.
void write_records(const std::string& dir, int n) {
  std::string err;
  RegisterStore s;
  RegisterStore::Recovered rec;
  ASSERT_TRUE(s.open(dir, rec, err)) << err;
  for (int i = 1; i <= n; ++i) ASSERT_TRUE(s.write(regs(i), i, err)) << err;
}

RegisterStore::Recovered reopen(const std::string& dir) {
  std::string err;
  RegisterStore s;
  RegisterStore::Recovered rec;
  EXPECT_TRUE(s.open(dir, rec, err)) << err;
  return rec;
}

TEST(RegisterStore, CorruptNewestRecordIsReportedAndItsTwinKeepsTheValue) {
  TempDir d;
  write_records(d.path, 10);
  // Record 10 sits in slot 10: damage one byte of its registers.
  flip_byte(d.path + "/registers.wal", 10 * RegisterStore::kRecordBytes + 40);
  const auto rec = reopen(d.path);
  EXPECT_EQ(rec.serial, 10u) << "the twin ring still holds the newest record";
  EXPECT_EQ(rec.registers, regs(10));
  EXPECT_EQ(rec.corrupt, 1u);
  ASSERT_EQ(rec.damage.size(), 1u);
  EXPECT_NE(rec.damage[0].find("registers.wal: 1 record(s) fail"), std::string::npos) << rec.damage[0];
}

TEST(RegisterStore, BothRingsDamagedFallBackToThePreviousGoodRecord) {
  TempDir d;
  write_records(d.path, 10);
  flip_byte(d.path + "/registers.wal", 10 * RegisterStore::kRecordBytes + 40);
  flip_byte(d.path + "/registers.wal.b", 10 * RegisterStore::kRecordBytes + 40);
  const auto rec = reopen(d.path);
  EXPECT_EQ(rec.serial, 9u);
  EXPECT_EQ(rec.registers, regs(9));
  EXPECT_EQ(rec.damage.size(), 2u);
}

TEST(RegisterStore, EveryKindOfDamageIsReported) {
  std::string err;
  auto made = [&](TempDir& d, bool snapshot) {
    RegisterStore s;
    RegisterStore::Recovered rec;
    ASSERT_TRUE(s.open(d.path, rec, err));
    EXPECT_TRUE(rec.fresh);
    EXPECT_TRUE(rec.damage.empty());
    for (int i = 1; i <= 20; ++i) ASSERT_TRUE(s.write(regs(i), i, err, 1000 + i));
    if (snapshot) {
      ASSERT_TRUE(s.write_snapshot(err));
    }
    ASSERT_TRUE(s.write(regs(21), 21, err, 1021));
  };
  {  // intact
    TempDir d;
    made(d, true);
    auto rec = reopen(d.path);
    EXPECT_TRUE(rec.damage.empty());
    EXPECT_FALSE(rec.fresh);
    EXPECT_EQ(rec.registers, regs(21));
    EXPECT_EQ(rec.pg_reserved, 1021u) << "the pagination backup survives in the records";
  }
  {  // a ring cut short
    TempDir d;
    made(d, true);
    fs::resize_file(d.path + "/registers.wal", 1000);
    auto rec = reopen(d.path);
    ASSERT_FALSE(rec.damage.empty());
    EXPECT_NE(rec.damage[0].find("1000 bytes"), std::string::npos) << rec.damage[0];
    EXPECT_EQ(rec.registers, regs(21)) << "one damaged file never costs a value";
  }
  // A ring deleted; the snapshot the records speak of gone: one finding each.
  for (const auto& [file, finding, value_kept] :
       {std::tuple{"registers.wal.b", "missing", true}, std::tuple{"registers.snap", "registers.snap: missing", false}}) {
    TempDir d;
    made(d, true);
    fs::remove(d.path + "/" + file);
    auto rec = reopen(d.path);
    ASSERT_EQ(rec.damage.size(), 1u) << file;
    EXPECT_NE(rec.damage[0].find(finding), std::string::npos) << file;
    if (value_kept) {
      EXPECT_EQ(rec.registers, regs(21));
    }
  }
  {  // garbage snapshot
    TempDir d;
    made(d, true);
    std::ofstream(d.path + "/registers.snap", std::ios::trunc) << std::string(256, 'x');
    auto rec = reopen(d.path);
    ASSERT_EQ(rec.damage.size(), 1u);
    EXPECT_EQ(rec.registers, regs(21));
  }
  {  // everything replaced by garbage: nothing survives, and that is said
    TempDir d;
    made(d, true);
    for (const char* f : {"/registers.wal", "/registers.wal.b", "/registers.snap"})
      std::ofstream(d.path + f, std::ios::trunc) << std::string(4096, '\x5a');
    auto rec = reopen(d.path);
    EXPECT_FALSE(rec.fresh);
    EXPECT_GE(rec.damage.size(), 3u);
    EXPECT_EQ(rec.serial, 0u);
  }
}

TEST(RegisterStore, RestoredRegistersThatNoAdditionCouldMakeAreRefused) {
  unsigned char rec[RegisterStore::kRecordBytes];
  Registers r = regs(5);
  r.import_total.uwh = -5;
  RegisterStore::encode(3, r, 3, rec);
  std::uint64_t serial;
  Registers out;
  std::int64_t utc;
  EXPECT_FALSE(RegisterStore::decode(rec, serial, out, utc)) << "a negative register is damage, even with a good CRC";
  r.import_total.uwh = kMaxUwh + 1;
  RegisterStore::encode(3, r, 3, rec);
  EXPECT_FALSE(RegisterStore::decode(rec, serial, out, utc));
}

TEST(StateDirLock, ASecondHolderIsRefusedWithTheFirstOnesPid) {
  TempDir d;
  std::string err;
  bool held = false;
  StateDirLock a;
  ASSERT_TRUE(a.lock(d.path, err, held)) << err;
  // flock locks belong to open file descriptions: a second open in this process conflicts too.
  StateDirLock b;
  EXPECT_FALSE(b.lock(d.path, err, held));
  EXPECT_TRUE(held);
  EXPECT_NE(err.find("pid " + std::to_string(::getpid())), std::string::npos) << err;
}

TEST(RegisterStore, TornRecordIsNeverTrusted) {
  TempDir d;
  std::string err;
  {
    RegisterStore s;
    RegisterStore::Recovered rec;
    ASSERT_TRUE(s.open(d.path, rec, err));
    for (int i = 1; i <= 3; ++i) ASSERT_TRUE(s.write(regs(i), i, err));
  }
  // A torn write: the first half of record 4 in place, the rest still zero.
  unsigned char full[RegisterStore::kRecordBytes];
  RegisterStore::encode(4, regs(4), 4, full);
  {
    std::fstream f(d.path + "/registers.wal", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4 * RegisterStore::kRecordBytes);
    f.write(reinterpret_cast<const char*>(full), 128);
  }
  RegisterStore s;
  RegisterStore::Recovered rec;
  ASSERT_TRUE(s.open(d.path, rec, err));
  EXPECT_EQ(rec.serial, 3u);
  EXPECT_EQ(rec.corrupt, 1u);
}

TEST(RegisterStore, SnapshotCoversALostRing) {
  TempDir d;
  std::string err;
  {
    RegisterStore s;
    RegisterStore::Recovered rec;
    ASSERT_TRUE(s.open(d.path, rec, err));
    ASSERT_TRUE(s.write(regs(77), 77, err));
    ASSERT_TRUE(s.write_snapshot(err)) << err;
  }
  fs::remove(d.path + "/registers.wal");
  RegisterStore s;
  RegisterStore::Recovered rec;
  ASSERT_TRUE(s.open(d.path, rec, err));
  EXPECT_EQ(rec.registers, regs(77));
}

TEST(RegisterStore, UnusableDirectoryIsAClearErrorAtStartUp) {
  TempDir d;
  fs::create_directories(d.path);
  std::ofstream(d.path + "/file") << "x";
  RegisterStore s;
  RegisterStore::Recovered rec;
  std::string err;
  EXPECT_FALSE(s.open(d.path + "/file/state", rec, err));
  EXPECT_NE(err.find("state dir"), std::string::npos) << err;
}

TEST(StateWriter, PersistsSnapshotsAndReportsTheWindowsCovered) {
  TempDir d;
  RegisterStore store;
  RegisterStore::Recovered rec;
  std::string err;
  ASSERT_TRUE(store.open(d.path, rec, err));
  TripleBuffer<StateSnapshot> in;
  Waker w, published;
  StateWriter writer(store, in, w, &published);
  writer.start();
  for (std::uint64_t k = 1; k <= 50; ++k) {
    in.write(StateSnapshot{regs(std::int64_t(k)), k, std::int64_t(k), k});
    w.notify();
    // Wait on the writer's progress, not on time: it must save each snapshot
    // while it runs (stop() would save the newest one by itself).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (writer.persisted_windows().load(std::memory_order_acquire) < k && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    ASSERT_EQ(writer.persisted_windows().load(), k) << "snapshot " << k << " was not saved while the writer ran";
  }
  EXPECT_EQ(writer.counters().records.load(), 50u) << "one record per snapshot, all before stop()";
  writer.stop();
  writer.join();
  EXPECT_EQ(writer.persisted_windows().load(), 50u);
  EXPECT_EQ(writer.counters().write_errors.load(), 0u);
  RegisterStore again;
  ASSERT_TRUE(again.open(d.path, rec, err));
  EXPECT_EQ(rec.registers, regs(50));
}

TEST(TransactionJournal, TransactionsAndPaginationSurviveRestarts) {
  TempDir d;
  std::string err;
  std::uint64_t last_pg = 0;
  {
    TransactionJournal j;
    ASSERT_TRUE(j.open(d.path, err)) << err;
    for (int i = 0; i < 5; ++i) last_pg = *j.take_pagination(err);
    JournalTransaction t;
    t.id = "tx-1";
    t.ident.evse_id = "E1";
    t.ident.flags = {"RFID_PLAIN"};
    t.ident.data = "quote\" and\nnewline";
    t.begin.import_uwh = 123456789;
    t.begin.utc_ns = 42;
    t.begin_record = "OCMF|{\"a\":1}|{\"SD\":\"00\"}";
    ASSERT_TRUE(j.add(t, err));
    t.id = "tx-2";
    ASSERT_TRUE(j.add(t, err));
    ASSERT_TRUE(j.remove("tx-2", err));
  }
  TransactionJournal j;
  ASSERT_TRUE(j.open(d.path, err)) << err;
  ASSERT_EQ(j.open_transactions().size(), 1u);
  const JournalTransaction& t = j.open_transactions().at("tx-1");
  EXPECT_TRUE(t.restored);
  EXPECT_EQ(t.ident.data, "quote\" and\nnewline");
  EXPECT_EQ(t.ident.flags, std::vector<std::string>{"RFID_PLAIN"});
  EXPECT_EQ(t.begin.import_uwh, 123456789);
  EXPECT_EQ(t.begin_record, "OCMF|{\"a\":1}|{\"SD\":\"00\"}");
  EXPECT_GT(*j.take_pagination(err), last_pg) << "pagination never repeats";
}

// A journal in `dir` holding open transactions with these ids.
void journal_with(const std::string& dir, std::initializer_list<const char*> ids) {
  std::string err;
  TransactionJournal j;
  ASSERT_TRUE(j.open(dir, err)) << err;
  for (const char* id : ids) {
    JournalTransaction t;
    t.id = id;
    ASSERT_TRUE(j.add(t, err)) << err;
  }
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(TransactionJournal, CorruptLinesAreSkipped) {
  TempDir d;
  std::string err;
  journal_with(d.path, {"keep", "damaged"});
  // Damage the last line's JSON (its CRC no longer matches) and append half a line.
  std::string text = read_text(d.path + "/transactions.journal");
  text[text.rfind("damaged") + 1] = 'X';
  text += "0badcafe {\"op\":\"clo";
  std::ofstream(d.path + "/transactions.journal") << text;
  TransactionJournal j;
  ASSERT_TRUE(j.open(d.path, err));
  EXPECT_EQ(j.open_transactions().count("keep"), 1u);
  EXPECT_EQ(j.open_transactions().count("damaged"), 0u);
  EXPECT_EQ(j.skipped_lines(), 2u);
  // The damaged middle entry is damage; the torn tail (a crash mid-append) is not.
  ASSERT_EQ(j.damage().size(), 1u);
  EXPECT_NE(j.damage()[0].find("1 entry"), std::string::npos) << j.damage()[0];
}

TEST(TransactionJournal, ATornEntryNeverHidesTheNextOne) {
  TempDir d;
  std::string err;
  journal_with(d.path, {"before"});
  // A torn entry without its newline, as a full disk leaves it, then a good one appended after it.
  {
    std::ofstream f(d.path + "/transactions.journal", std::ios::app);
    f << "0000004a 1234abcd {\"op\":\"open\",\"id\":\"tor";
  }
  {
    TransactionJournal j;
    ASSERT_TRUE(j.open(d.path, err));
    EXPECT_TRUE(j.damage().empty()) << "a torn last line is not damage";
    JournalTransaction t;
    t.id = "after";
    ASSERT_TRUE(j.add(t, err));
  }
  TransactionJournal j;
  ASSERT_TRUE(j.open(d.path, err));
  EXPECT_EQ(j.open_transactions().count("before"), 1u);
  EXPECT_EQ(j.open_transactions().count("after"), 1u);
  EXPECT_TRUE(j.damage().empty());
}

TEST(TransactionJournal, SizeStaysBoundedAndPaginationNeverRepeats) {
  TempDir d;
  std::string err;
  std::uint64_t last = 0;
  TransactionJournal j;
  ASSERT_TRUE(j.open(d.path, err));
  for (int i = 0; i < 5000; ++i) {
    JournalTransaction t;
    t.id = "tx-" + std::to_string(i);
    t.begin_record = std::string(300, 'r');
    ASSERT_TRUE(j.add(t, err));
    const auto pg = j.take_pagination(err);
    ASSERT_TRUE(pg);
    ASSERT_GT(*pg, last);
    last = *pg;
    ASSERT_TRUE(j.remove(t.id, err, *pg));
  }
  const auto size = fs::file_size(d.path + "/transactions.journal");
  // kCompactEvery entries of ~400 bytes plus the history: well under 300 KB whatever the count.
  EXPECT_LT(size, 300'000u);
  EXPECT_GE(j.pagination_reserved().load(), last + 1);
  TransactionJournal again;
  ASSERT_TRUE(again.open(d.path, err));
  EXPECT_GE(again.highest_pagination_seen(), last);
  EXPECT_GT(*again.take_pagination(err), last);
}

TEST(TransactionJournal, PaginationFloorFromTheRegisterStoreWins) {
  TempDir d;
  std::string err;
  TransactionJournal j;
  ASSERT_TRUE(j.open(d.path, err, JournalExpect{5000, 0, false}));
  EXPECT_GE(*j.take_pagination(err), 5000u);
  ASSERT_TRUE(j.skip_to(90000, err));
  EXPECT_GE(*j.take_pagination(err), 90000u);
}

TEST(TransactionJournal, ACutOrMissingJournalIsSeenThroughTheRegistersCopyAndLeftUntouched) {
  TempDir d;
  std::string err;
  std::uint64_t entries = 0, reserved = 0;
  {
    TransactionJournal j;
    ASSERT_TRUE(j.open(d.path, err));
    for (int i = 0; i < 3; ++i) {
      JournalTransaction t;
      t.id = "tx-" + std::to_string(i);
      ASSERT_TRUE(j.add(t, err));
      ASSERT_TRUE(j.take_pagination(err));
    }
    entries = j.entries_written().load();
    reserved = j.pagination_reserved().load();
  }
  const std::string path = d.path + "/transactions.journal";
  {
    TransactionJournal j;
    ASSERT_TRUE(j.open(d.path, err, JournalExpect{reserved, entries, true}));
    EXPECT_TRUE(j.damage().empty()) << "intact: the copy matches";
  }
  // Cut at a line boundary: each line is valid, but entries are gone.
  const std::string text = read_text(path);
  const std::string cut = text.substr(0, text.find('\n') + 1);
  std::ofstream(path, std::ios::trunc) << cut;
  {
    TransactionJournal j;
    ASSERT_TRUE(j.open(d.path, err, JournalExpect{reserved, entries + 4, true}));
    ASSERT_FALSE(j.damage().empty());
    EXPECT_NE(j.damage()[0].find("ends at entry"), std::string::npos) << j.damage()[0];
  }
  EXPECT_EQ(read_text(path), cut) << "a damaged journal is evidence: nothing is rewritten";
  fs::remove(path);
  TransactionJournal j;
  ASSERT_TRUE(j.open(d.path, err, JournalExpect{reserved, entries, true}));
  ASSERT_EQ(j.damage().size(), 1u);
  EXPECT_NE(j.damage()[0].find("missing"), std::string::npos);
  ASSERT_TRUE(j.skip_to(reserved + 1000, err));
  EXPECT_GE(*j.take_pagination(err), reserved + 1000) << "recovery never reuses a number";
}

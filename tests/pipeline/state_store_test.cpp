#include "wattpipe/pipeline/state_store.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "wattpipe/pipeline/transaction_journal.hpp"

using namespace wattpipe::pipeline;
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

TEST(RegisterStore, CorruptNewestRecordFallsBackToThePreviousGoodOne) {
  TempDir d;
  std::string err;
  {
    RegisterStore s;
    RegisterStore::Recovered rec;
    ASSERT_TRUE(s.open(d.path, rec, err));
    for (int i = 1; i <= 10; ++i) ASSERT_TRUE(s.write(regs(i), i, err));
  }
  // Record 10 sits in slot 10: damage one byte of its registers.
  flip_byte(d.path + "/registers.wal", 10 * RegisterStore::kRecordBytes + 40);
  RegisterStore s;
  RegisterStore::Recovered rec;
  ASSERT_TRUE(s.open(d.path, rec, err));
  EXPECT_EQ(rec.serial, 9u);
  EXPECT_EQ(rec.registers, regs(9));
  EXPECT_EQ(rec.corrupt, 1u);
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
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  writer.stop();
  writer.join();
  EXPECT_EQ(writer.persisted_windows().load(), 50u);
  EXPECT_GE(writer.counters().records.load(), 1u);
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

TEST(TransactionJournal, CorruptLinesAreSkipped) {
  TempDir d;
  std::string err;
  {
    TransactionJournal j;
    ASSERT_TRUE(j.open(d.path, err));
    JournalTransaction t;
    t.id = "keep";
    ASSERT_TRUE(j.add(t, err));
    t.id = "damaged";
    ASSERT_TRUE(j.add(t, err));
  }
  // Damage the last line's JSON (its CRC no longer matches) and append half a line.
  std::string text;
  {
    std::ifstream f(d.path + "/transactions.journal");
    text.assign(std::istreambuf_iterator<char>(f), {});
  }
  text[text.rfind("damaged") + 1] = 'X';
  text += "0badcafe {\"op\":\"clo";
  std::ofstream(d.path + "/transactions.journal") << text;
  TransactionJournal j;
  ASSERT_TRUE(j.open(d.path, err));
  EXPECT_EQ(j.open_transactions().count("keep"), 1u);
  EXPECT_EQ(j.open_transactions().count("damaged"), 0u);
  EXPECT_EQ(j.skipped_lines(), 2u);
}

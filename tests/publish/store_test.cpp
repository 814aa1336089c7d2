// SPDX-License-Identifier: Apache-2.0
// The database store's rows (COPY text, one per column of the schema) and
// its spool on disk (order, restart, the limit's drop order, damaged files).
// The store against a real server: tests/integration/test_store.py.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "store_rows.hpp"
#include "store_spool.hpp"

namespace st = wattpipe::publish::store;
namespace fs = std::filesystem;
using wattpipe::pipeline::WindowRecord;

namespace {

std::size_t fields(const std::string& line) { return std::size_t(std::count(line.begin(), line.end(), '\t')) + 1; }

WindowRecord ac3_window() {
  WindowRecord r;
  r.seq = 7;
  r.start_utc_ns = 1'764'819'296'123'456'789;  // 2025-12-04 03:34:56.123457 (rounded to the us)
  r.end_utc_ns = r.start_utc_ns + 200'000'000;
  r.phases = 3;
  r.neutral = true;
  r.frequency_valid = true;
  r.frequency_hz = 50.01;
  r.phase_seq_valid = true;
  for (int k = 0; k < 3; ++k) r.ph[k].urms_v = 230 + k, r.ph[k].irms_a = 10, r.ph[k].p_w = 2300;
  r.p_total_w = 6900;
  r.registers.import_total.uwh = 1'234'567'890'123;  // 1234567.890123 Wh
  r.an.valid = r.an.harmonics_valid = true;
  r.an.thd_i_percent[0] = 4.5;
  r.an.harm_u_v[2][49] = 1.5f;
  r.an.steps = 1;
  r.an.step[0].phase = 2;
  r.an.step[0].t_start_utc_ns = r.start_utc_ns + 1000;
  r.an.step[0].delay_ms = -1;
  return r;
}

st::Batch batch(std::uint64_t seq, std::int64_t t0, std::size_t pad = 0) {
  st::Batch b;
  b.seq = seq;
  b.t_first_ns = t0;
  b.t_last_ns = t0 + 1000;
  b.text[st::windows] = std::string(pad, 'w') + "w\n";
  b.rows[st::windows] = 1;
  b.text[st::spectra] = std::string(pad, 'x') + "x\n";
  b.rows[st::spectra] = 1;
  return b;
}

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("wattpipe-spool-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST(StoreRows, EveryWindowRowHasOneFieldPerColumn) {
  const WindowRecord ac = ac3_window();
  WindowRecord dc;
  dc.dc = true;
  dc.phases = 1;
  dc.ph[0].u_mean_v = 800;
  dc.an.valid = true;
  for (const WindowRecord* r : {&ac, static_cast<const WindowRecord*>(&dc)}) {
    std::string out;
    st::append_window_row(out, "bench\t1", "meter", *r);
    ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
    EXPECT_EQ(fields(out.substr(0, out.size() - 1)), st::columns(st::Table::windows).size()) << out;
  }
  std::string s;
  ASSERT_TRUE(st::append_spectra_row(s, "bench", ac));
  EXPECT_EQ(fields(s.substr(0, s.size() - 1)), st::columns(st::Table::spectra).size());
  std::string steps;
  EXPECT_EQ(st::append_step_rows(steps, "bench", ac), 1u);
  EXPECT_EQ(fields(steps.substr(0, steps.size() - 1)), st::columns(st::Table::steps).size());
  EXPECT_NE(steps.find("\tL2\t"), std::string::npos);
  EXPECT_TRUE(steps.ends_with("\t\\N\n")) << "no demand seen: delay_ms is NULL";
  WindowRecord none;
  std::string empty;
  EXPECT_FALSE(st::append_spectra_row(empty, "bench", none));
  EXPECT_TRUE(empty.empty());
}

TEST(StoreRows, ValuesAsPostgreSqlReadsThem) {
  const WindowRecord ac = ac3_window();
  std::string out;
  st::append_window_row(out, "bench\t1", "meter", ac);
  // Text escaped, the key time to the microsecond, the register exact, NULL where a layout has nothing.
  EXPECT_TRUE(out.starts_with("bench\\t1\t2025-12-04 03:34:56.123457+00\t2025-12-04 03:34:56.323457+00\tmeter\t7\tAC3N\t"))
      << out;
  EXPECT_NE(out.find("\t1234567.890123\t0.000000\t"), std::string::npos) << out;
  EXPECT_NE(out.find("\t50.01\t"), std::string::npos);
  EXPECT_NE(out.find("\t\\N\t\\N\t"), std::string::npos) << "u_dc_v, i_dc_a of an AC window";
  std::string s;
  st::append_spectra_row(s, "bench", ac);
  EXPECT_NE(s.find("1.5}}\t"), std::string::npos) << "harmonics as a 3 x 50 array: " << s.substr(0, 80);
  EXPECT_EQ(std::count(s.begin(), s.begin() + long(s.find('\t', s.find('{'))), '{'), 4);
  std::string t;
  st::append_timestamp(t, 0);
  EXPECT_EQ(t, "1970-01-01 00:00:00.000000+00");
  t.clear();
  st::append_timestamp(t, 951'782'400'000'000'000);  // a leap day
  EXPECT_EQ(t, "2000-02-29 00:00:00.000000+00");
  WindowRecord bad = ac;
  bad.ph[0].p_w = std::numeric_limits<double>::quiet_NaN();
  bad.p_total_w = -std::numeric_limits<double>::infinity();
  std::string b;
  st::append_window_row(b, "m", "meter", bad);
  EXPECT_NE(b.find("\tNaN\t"), std::string::npos);
  EXPECT_NE(b.find("\t-Infinity\t"), std::string::npos);
}

TEST(StoreRows, SchemaAndStatementsFollowTheColumns) {
  const std::string ddl = st::schema_sql();
  for (auto t : {st::Table::windows, st::Table::steps, st::Table::spectra})
    for (const auto& c : st::columns(t)) EXPECT_NE(ddl.find(std::string(c.name) + " "), std::string::npos) << c.name;
  EXPECT_NE(ddl.find("PRIMARY KEY (module_id, t_start)"), std::string::npos);
  EXPECT_TRUE(st::copy_sql(st::Table::steps).starts_with("COPY wattpipe_steps (module_id, t_start, phase, "));
  EXPECT_TRUE(st::copy_sql(st::Table::steps, "x_in").starts_with("COPY x_in ("));
}

TEST_F(SpoolTest, BatchesComeBackInOrderAfterARestart) {
  std::string error;
  st::DropReport d;
  {
    st::Spool s(dir_.string(), 0);
    ASSERT_TRUE(s.append(batch(5, 500), error, d)) << error;
    ASSERT_TRUE(s.append(batch(3, 300), error, d)) << error;
    EXPECT_EQ(s.batches(), 2u);
  }
  std::ofstream(dir_ / "00000000000000000009.w.tmp") << "cut short";  // a write a crash cut
  st::Spool s(dir_.string(), 0);
  EXPECT_EQ(s.batches(), 2u);
  EXPECT_EQ(s.next_seq(), 6u);
  EXPECT_FALSE(fs::exists(dir_ / "00000000000000000009.w.tmp"));
  st::Batch b;
  ASSERT_TRUE(s.oldest(b, error));
  EXPECT_EQ(b.seq, 3u);
  EXPECT_EQ(b.text[st::windows], "w\n");
  EXPECT_EQ(b.rows[st::spectra], 1u);
  EXPECT_EQ(b.t_first_ns, 300);
  s.remove(3);
  ASSERT_TRUE(s.oldest(b, error));
  EXPECT_EQ(b.seq, 5u);
  s.remove(5);
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.bytes(), 0u);
}

TEST_F(SpoolTest, TheLimitDropsSpectraFirstThenWindowsOutsideTransactions) {
  std::string error;
  st::DropReport d;
  st::Spool s(dir_.string(), 10'000);
  s.note({1'000, 3'500});  // a transaction over batches 1 to 3
  for (std::uint64_t k = 1; k <= 4; ++k) ASSERT_TRUE(s.append(batch(k, std::int64_t(k) * 1000, 1500), error, d));
  // 4 x (1.5 kB windows + 1.5 kB spectra): spectra go first, oldest first.
  EXPECT_GT(d.spectra_rows, 0u);
  EXPECT_EQ(d.window_rows, 0u);
  EXPECT_LE(s.bytes(), 10'000u);
  st::DropReport d2;
  for (std::uint64_t k = 5; k <= 8; ++k) ASSERT_TRUE(s.append(batch(k, std::int64_t(k) * 1000, 1500), error, d2));
  EXPECT_GT(d2.window_rows, 0u);
  EXPECT_LE(s.bytes(), 10'000u);
  // Batches 1..3 touch the transaction: their windows are kept; 4 and on go first.
  std::vector<std::uint64_t> left;
  st::Batch b;
  while (s.oldest(b, error)) {
    if (b.rows[st::windows] > 0) left.push_back(b.seq);
    s.remove(b.seq);
  }
  ASSERT_GE(left.size(), 3u);
  EXPECT_EQ(left[0], 1u);
  EXPECT_EQ(left[1], 2u);
  EXPECT_EQ(left[2], 3u);
  EXPECT_EQ(left.back(), 8u) << "the newest stay";
}

TEST_F(SpoolTest, ADamagedFileIsSetAsideAndTheRestIsSent) {
  std::string error;
  st::DropReport d;
  {
    st::Spool s(dir_.string(), 0);
    ASSERT_TRUE(s.append(batch(1, 100), error, d));
    ASSERT_TRUE(s.append(batch(2, 200), error, d));
  }
  std::ofstream(dir_ / "00000000000000000001.w", std::ios::trunc) << "not a spool file\n";
  st::Spool s(dir_.string(), 0);
  EXPECT_TRUE(fs::exists(dir_ / "00000000000000000001.w.bad"));
  st::Batch b;
  ASSERT_TRUE(s.oldest(b, error));
  EXPECT_EQ(b.seq, 1u);
  EXPECT_EQ(b.rows[st::windows], 0u) << "its windows set aside";
  EXPECT_EQ(b.rows[st::spectra], 1u) << "its whole spectra still sent";
}

TEST_F(SpoolTest, AFullDiskLeavesNothingHalfWritten) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  st::Spool s(dir_.string(), 0);
  // The windows file of batch 1 is /dev/full: its write fails with ENOSPC.
  fs::create_symlink("/dev/full", dir_ / "00000000000000000001.w.tmp");
  std::string error;
  st::DropReport d;
  EXPECT_FALSE(s.append(batch(1, 100), error, d));
  EXPECT_NE(error.find("No space left"), std::string::npos) << error;
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(fs::exists(dir_ / "00000000000000000001.x"));
}

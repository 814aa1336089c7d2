// SPDX-License-Identifier: Apache-2.0
// Measuring points as rows of one configuration (--points): what each point
// keeps of the daemon's, what it gets of its own, and the refusals; and how
// a configuration error names its source.
#include "wattpipe/publish/config.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

using namespace wattpipe::publish;

namespace {
struct Parsed {
  ParseOutcome outcome;
  Config cfg;
  std::string error;
};
Parsed parse(std::vector<const char*> args) {
  args.insert(args.begin(), "wattpipe");
  Parsed p;
  p.outcome = parse_config(int(args.size()), args.data(), p.cfg, p.error);
  return p;
}
}  // namespace

TEST(PointConfig, TheCarSideBillsAndKeepsTheDaemonsOwnTheGridSideGetsItsOwn) {
  const Parsed p = parse({"--sim-profile", "charger", "--points", "grid,car", "--module-id", "bench", "--grid-module-id",
                          "bench_in", "--state-dir", "st", "--log", "run.jsonl", "--log-raw", "raw.wprb",
                          "--meter-serial", "S1", "--http", "127.0.0.1:0", "--stats-json", "s.json"});
  ASSERT_EQ(p.outcome, ParseOutcome::run) << p.error;
  EXPECT_EQ(billing_point(p.cfg), "car");
  const Config car = point_config(p.cfg, "car"), grid = point_config(p.cfg, "grid");
  EXPECT_EQ(car.point, "car");
  EXPECT_EQ(car.module_id, "bench");
  EXPECT_EQ(car.state_dir, "st");
  EXPECT_EQ(car.log, "run.jsonl");
  EXPECT_EQ(car.log_raw, "raw.wprb");
  EXPECT_EQ(car.meter_serial, "S1");
  EXPECT_EQ(car.http, "127.0.0.1:0");
  EXPECT_EQ(car.stats_json, "s.json");
  EXPECT_EQ(grid.point, "grid");
  EXPECT_EQ(grid.module_id, "bench_in");
  EXPECT_EQ(grid.state_dir, "st/grid");
  EXPECT_EQ(grid.log, "run.grid.jsonl");
  EXPECT_EQ(grid.log_raw, "") << "the car side's raw log records the whole stream";
  EXPECT_EQ(grid.meter_serial, "S1-grid");
  EXPECT_TRUE(grid.http.empty()) << "one page, the billing point's";
  EXPECT_TRUE(grid.stats_json.empty()) << "one stats file, every point in it";
}

TEST(PointConfig, DefaultsAndOrder) {
  // The grid side's module by default; the car side bills whatever the order.
  const Parsed p = parse({"--sim-profile", "charger", "--points", "car,grid", "--state-dir", "none"});
  ASSERT_EQ(p.outcome, ParseOutcome::run) << p.error;
  EXPECT_EQ(billing_point(p.cfg), "car");
  EXPECT_EQ(point_config(p.cfg, "grid").module_id, p.cfg.module_id + "_grid");
  EXPECT_EQ(point_config(p.cfg, "grid").state_dir, "none") << "no state stays no state";
  // One point alone keeps everything of the daemon's.
  const Parsed one = parse({"--sim-profile", "charger", "--point", "grid", "--state-dir", "st"});
  ASSERT_EQ(one.outcome, ParseOutcome::run) << one.error;
  EXPECT_EQ(point_config(one.cfg, "grid").module_id, one.cfg.module_id);
  EXPECT_EQ(point_config(one.cfg, "grid").state_dir, "st");
}

TEST(PointConfig, RefusesWhatNoLayoutHas) {
  for (const auto& [args, words] : std::vector<std::pair<std::vector<const char*>, std::string>>{
           {{"--points", "grid,dc2"}, "'dc2' is not a measuring point"},
           {{"--points", "car,car"}, "'car' twice"},
           {{"--point", "car", "--points", "grid,car"}, "give one of them"},
           {{"--points", "grid,car", "--grid-module-id", "wattpipe"}, "the same as --module-id"}}) {
    const Parsed p = parse(args);
    EXPECT_EQ(p.outcome, ParseOutcome::bad) << words;
    EXPECT_NE(p.error.find(words), std::string::npos) << p.error;
  }
}

// An error names the config file only when there is one, and once.
TEST(ConfigErrors, NameTheFileOnlyWhenThereIsOne) {
  const Parsed flags = parse({"--full-scale-v", "100"});
  EXPECT_EQ(flags.outcome, ParseOutcome::bad);
  EXPECT_EQ(flags.error, "sim.phases[0].urms-v: peak beyond full scale 100 V (--full-scale-v)");
  const std::string path = ::testing::TempDir() + "wattpipe-config-test.yaml";
  for (const auto& [yaml, want] : std::vector<std::pair<std::string, std::string>>{
           {"full-scale-v: 100\n", "sim.phases[0].urms-v: peak beyond full scale 100 V (--full-scale-v)"},
           {"sim:\n  frequency_hz: high\n", "sim.frequency-hz: expected a number"},
           {"bogus_key: 3\n", "bogus-key: unknown key"}}) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(yaml.c_str(), f);
    std::fclose(f);
    const Parsed p = parse({"--config", path.c_str()});
    EXPECT_EQ(p.outcome, ParseOutcome::bad) << yaml;
    EXPECT_EQ(p.error, "config " + path + ": " + want) << yaml;
  }
  std::remove(path.c_str());
}

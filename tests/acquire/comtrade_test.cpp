// SPDX-License-Identifier: Apache-2.0
// COMTRADE records written by hand (ASCII, BINARY, a .cff) and by the Writer
// (BINARY32, FLOAT32), read back through ComtradeSource; malformed records
// refused with the line or sample record named.
#include "wattpipe/acquire/comtrade.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "wattpipe/acquire/simulator.hpp"

using namespace wattpipe::acquire;
using namespace wattpipe::acquire::comtrade;

namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/wattpipe-comtrade-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void put(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// 2 V channels in kV (secondary values of a 20000:100 VT), 1 A channel: AC1
// from the default map, 1999 ASCII at 4 kS/s.
std::string cfg_1999_ascii(const std::string& rates = "1\n4000,4\n") {
  return "Bench 7,REC-1,1999\n"
         "4,3A,1D\n"
         "1,VA,A,Feeder,kV,0.001,0,0,-32767,32767,20000,100,S\n"
         "2,VB,B,Feeder,kV,0.001,0,0,-32767,32767,20000,100,S\n"
         "3,IA,A,Feeder,A,0.5,1,0,-32767,32767,1,1,P\n"
         "1,Trip,,,0\n"
         "50\n" +
         rates +
         "23/11/2026,20:12:58.085000\n"
         "23/11/2026,20:12:58.085500\n"
         "ASCII\n"
         "1\n";
}

std::unique_ptr<SampleBlock> read_one(ComtradeSource& s) {
  auto b = std::make_unique<SampleBlock>();
  EXPECT_EQ(s.read(*b, std::chrono::seconds(1)), ReadStatus::ok);
  return b;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Comtrade, Ascii1999ScalesToPrimaryAndTakesTimeFromTheRate) {
  TempDir d;
  put(d.file("r.cfg"), cfg_1999_ascii());
  put(d.file("r.dat"), "1,0,100,-50,10,0\n2,250,200,-100,20,1\n3,500,300,-150,30,0\n4,750,400,-200,40,0\n");
  ComtradeSource s(d.file("r.cfg"), "", true);
  EXPECT_EQ(s.layout(), Layout::ac1);
  EXPECT_EQ(s.sample_rate_hz(), 4000.0);
  auto b = read_one(s);
  ASSERT_EQ(b->frames, 4u);
  // 100 counts * 0.001 kV = 0.1 kV secondary -> x200 -> 20000 V primary.
  EXPECT_FLOAT_EQ(b->data[0], 20000.0f);
  EXPECT_FLOAT_EQ(b->data[1], 0.5f * 10 + 1);
  EXPECT_FLOAT_EQ(b->data[6], 80000.0f);
  EXPECT_FLOAT_EQ(b->data[7], 0.5f * 40 + 1);
  // 2026-11-23T20:12:58.085Z
  EXPECT_EQ(b->t0_ns, 1795464778085000000);
  EXPECT_EQ(b->first_frame, 0u);
  auto end = std::make_unique<SampleBlock>();
  EXPECT_EQ(s.read(*end, std::chrono::seconds(1)), ReadStatus::end);
}

TEST(Comtrade, ChannelMapByNameAndIndex) {
  TempDir d;
  put(d.file("r.cfg"), cfg_1999_ascii());
  put(d.file("r.dat"), "1,0,100,-50,10,0\n2,250,200,-100,20,1\n3,500,300,-150,30,0\n4,750,400,-200,40,0\n");
  ComtradeSource s(d.file("r.cfg"), "U1=VB,I1=3", true);
  auto b = read_one(s);
  EXPECT_FLOAT_EQ(b->data[0], -10000.0f);
  EXPECT_NE(error_of([&] { ComtradeSource(d.file("r.cfg"), "U1=VC,I1=3", true); }).find("no analog channel"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ComtradeSource(d.file("r.cfg"), "U1=1,I1=9", true); }).find("channels 1 to 3"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ComtradeSource(d.file("r.cfg"), "U1=3,I1=1", true); }).find("not a voltage"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ComtradeSource(d.file("r.cfg"), "U1=1,U2=2,I1=3", true); }).find("give U,I"),
            std::string::npos);
  ComtradeSource dc(d.file("r.cfg"), "U=1,I=3", true);
  EXPECT_EQ(dc.layout(), Layout::dc);
}

TEST(Comtrade, TimeFromTheDataWhenTheRateIsZero) {
  TempDir d;
  put(d.file("r.cfg"), cfg_1999_ascii("0\n0,4\n"));
  // 2000 us steps: 500 S/s, timemult 1.
  put(d.file("r.dat"), "1,1000,100,-50,10,0\n2,3000,200,-100,20,1\n3,5000,300,-150,30,0\n4,7000,400,-200,40,0\n");
  ComtradeSource s(d.file("r.cfg"), "", true);
  EXPECT_DOUBLE_EQ(s.sample_rate_hz(), 500.0);
  auto b = read_one(s);
  EXPECT_EQ(b->frames, 4u);
  EXPECT_EQ(b->t0_ns, 1795464778085000000);
}

TEST(Comtrade, Binary2013CffWithTimeCode) {
  TempDir d;
  // 2013, local time UTC+1h30, one V and one A channel, DC (lf 0) by default.
  const std::string cfg =
      "Lab,DAQ,2013\r\n2,2A,0D\r\n1,U,,,V,0.1,0,0,-32767,32767,1,1,P\r\n2,I,,,A,0.01,0,0,-32767,32767,1,1,P\r\n"
      "0\r\n1\r\n1000,3\r\n23/11/2026,21:42:58.085000\r\n23/11/2026,21:42:58.085000\r\nBINARY\r\n1\r\n+1h30,0\r\n0,0\r\n";
  std::string dat;
  auto rec = [&](std::uint32_t n, std::int16_t u, std::int16_t i) {
    const std::uint32_t ts = (n - 1) * 1000;
    dat.append(reinterpret_cast<const char*>(&n), 4).append(reinterpret_cast<const char*>(&ts), 4);
    dat.append(reinterpret_cast<const char*>(&u), 2).append(reinterpret_cast<const char*>(&i), 2);
  };
  rec(1, 4000, 2500);
  rec(2, 4010, 2490);
  rec(3, -4000, -2500);
  put(d.file("r.cff"), "--- file type: CFG ---\r\n" + cfg + "--- file type: INF ---\r\n--- file type: HDR ---\r\n" +
                           "--- file type: DAT BINARY: " + std::to_string(dat.size()) + " ---\r\n" + dat);
  ComtradeSource s(d.file("r.cff"), "", true);
  EXPECT_EQ(s.layout(), Layout::dc);
  auto b = read_one(s);
  ASSERT_EQ(b->frames, 3u);
  EXPECT_FLOAT_EQ(b->data[0], 400.0f);
  EXPECT_FLOAT_EQ(b->data[1], 25.0f);
  EXPECT_FLOAT_EQ(b->data[5], -25.0f);
  EXPECT_EQ(b->t0_ns, 1795464778085000000);  // 21:42:58.085 at +1h30 is 20:12:58.085Z

  // The missing-data marker 0x8000 names its sample record.
  dat.replace(dat.size() - 4, 2, "\x00\x80", 2);
  put(d.file("m.cff"), "--- file type: CFG ---\r\n" + cfg + "--- file type: DAT BINARY: " + std::to_string(dat.size()) +
                           " ---\r\n" + dat);
  const std::string e = error_of([&] { ComtradeSource(d.file("m.cff"), "", true); });
  EXPECT_NE(e.find("sample record 3"), std::string::npos) << e;
  EXPECT_NE(e.find("missing-data marker"), std::string::npos) << e;
}

TEST(Comtrade, MalformedRecordsNameTheLine) {
  TempDir d;
  put(d.file("r.dat"), "1,0,100,-50,10,0\n2,250,200,-100,20,1\n3,500,,-150,30,0\n4,750,400,-200,40,0\n");
  put(d.file("r.cfg"), cfg_1999_ascii());
  std::string e = error_of([&] { ComtradeSource(d.file("r.cfg"), "", true); });
  EXPECT_NE(e.find("r.dat line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;

  put(d.file("r.dat"), "1,0,100,-50,10,0\n2,250,200,-100,20,1\n");
  e = error_of([&] { ComtradeSource(d.file("r.cfg"), "", true); });
  EXPECT_NE(e.find("2 samples, the configuration says 4"), std::string::npos) << e;

  put(d.file("r.cfg"), cfg_1999_ascii("2\n4000,2\n8000,4\n"));
  e = error_of([&] { ComtradeSource(d.file("r.cfg"), "", true); });
  EXPECT_NE(e.find("2 sampling rates"), std::string::npos) << e;

  std::string bad = cfg_1999_ascii();
  bad.replace(bad.find("0.5,1"), 5, "0.5,x");
  put(d.file("r.cfg"), bad);
  e = error_of([&] { ComtradeSource(d.file("r.cfg"), "", true); });
  EXPECT_NE(e.find("r.cfg line 5: b 'x' is not a number"), std::string::npos) << e;

  bad = cfg_1999_ascii();
  bad.replace(bad.find("ASCII"), 5, "BINARY64");
  put(d.file("r.cfg"), bad);
  e = error_of([&] { ComtradeSource(d.file("r.cfg"), "", true); });
  EXPECT_NE(e.find("line 12: file type 'BINARY64'"), std::string::npos) << e;

  put(d.file("r.cfg"), "Bench,REC,1999\n");
  e = error_of([&] { ComtradeSource(d.file("r.cfg"), "", true); });
  EXPECT_NE(e.find("line 2: ends before the TT,##A,##D line"), std::string::npos) << e;

  e = error_of([&] { ComtradeSource(d.file("nothing.cfg"), "", true); });
  EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
}

// Writer -> ComtradeSource: FLOAT32 identical; BINARY32 within half a count.
TEST(Comtrade, WriterRoundTripsThroughTheReader) {
  TempDir d;
  SimConfig cfg = *sim_profile("ac3", 20000);
  cfg.start_utc_ns = 1795464778085000000;
  Simulator sim(cfg);
  std::vector<float> all;
  auto b = std::make_unique<SampleBlock>();
  for (int k = 0; k < 5; ++k) {
    sim.generate(*b, kBlockFrames);
    all.insert(all.end(), b->data.begin(), b->data.begin() + kBlockFrames * 8);
  }
  for (const DataType t : {DataType::float32, DataType::binary32}) {
    const std::string base = d.file(t == DataType::float32 ? "f" : "b");
    Writer w(base, Layout::ac3n, 20000, cfg.start_utc_ns, t);
    w.write(all.data(), all.size() / 8 / 2);
    w.write(all.data() + all.size() / 2, all.size() / 8 / 2);
    w.close();
    ComtradeSource s(base + ".cfg", "U1=U1,U2=U2,U3=U3,UN=UN,I1=I1,I2=I2,I3=I3,IN=IN", true);
    EXPECT_EQ(s.layout(), Layout::ac3n);
    std::size_t at = 0;
    double worst[2] = {0, 0};
    auto got = std::make_unique<SampleBlock>();
    while (s.read(*got, std::chrono::seconds(1)) == ReadStatus::ok) {
      if (at == 0) {
        EXPECT_EQ(got->t0_ns, cfg.start_utc_ns);
        EXPECT_EQ(got->sample_rate_hz, 20000.0);
      }
      for (std::size_t k = 0; k < got->frames * 8; ++k)
        worst[(k % 8) >= 4] = std::max(worst[(k % 8) >= 4], std::fabs(double(got->data[k]) - double(all[at + k])));
      at += got->frames * 8;
    }
    EXPECT_EQ(at, all.size());
    if (t == DataType::float32) {
      EXPECT_EQ(worst[0], 0.0);
      EXPECT_EQ(worst[1], 0.0);
    } else {
      EXPECT_LE(worst[0], 400.0 / 2147483647.0);  // half a count of a ~325 V peak channel, with float rounding
      EXPECT_LE(worst[1], 40.0 / 2147483647.0 + 4e-6);
    }
  }
}

// Outside input: every truncation and many byte flips of a configuration,
// and every truncation of a .cff, either parse or throw Error; nothing else.
TEST(Comtrade, DamagedInputOnlyEverThrowsError) {
  const std::string good = cfg_1999_ascii();
  std::size_t parsed = 0, refused = 0;
  auto attempt = [&](const std::string& text) {
    try {
      (void)parse_cfg(text, "fuzz.cfg");
      ++parsed;
    } catch (const Error&) {
      ++refused;
    }
  };
  for (std::size_t k = 0; k <= good.size(); ++k) attempt(good.substr(0, k));
  std::uint32_t seed = 12345;
  for (int round = 0; round < 20000; ++round) {
    std::string t = good;
    for (int flips = 0; flips < 1 + round % 4; ++flips) {
      seed = seed * 1664525u + 1013904223u;
      const std::size_t at = (seed >> 8) % t.size();
      static constexpr char kBytes[] = {',', '\n', '/', ':', '.', '-', '0', '9', 'x', ' ', '\0', '\x7f'};
      t[at] = kBytes[(seed >> 4) % sizeof kBytes];
    }
    attempt(t);
  }
  EXPECT_GT(parsed, 0u);
  EXPECT_GT(refused, 10000u);

  TempDir d;
  std::string dat;
  for (std::uint32_t n = 1; n <= 3; ++n) {
    const std::uint32_t ts = n * 1000;
    const std::int16_t u = 100, i = 10;
    dat.append(reinterpret_cast<const char*>(&n), 4).append(reinterpret_cast<const char*>(&ts), 4);
    dat.append(reinterpret_cast<const char*>(&u), 2).append(reinterpret_cast<const char*>(&i), 2);
  }
  const std::string cff = "--- file type: CFG ---\r\nL,D,2013\r\n2,2A,0D\r\n1,U,,,V,1,0,0,-9,9,1,1,P\r\n"
                          "2,I,,,A,1,0,0,-9,9,1,1,P\r\n50\r\n1\r\n1000,3\r\n01/01/2026,00:00:00.000000\r\n"
                          "01/01/2026,00:00:00.000000\r\nBINARY\r\n1\r\n0,0\r\n0,0\r\n--- file type: DAT BINARY: " +
                          std::to_string(dat.size()) + " ---\r\n" + dat;
  std::size_t opened = 0;
  for (std::size_t k = 0; k <= cff.size(); ++k) {
    put(d.file("t.cff"), cff.substr(0, k));
    try {
      ComtradeSource s(d.file("t.cff"), "U1=1,I1=2", true);
      ++opened;
    } catch (const Error&) {
    }
  }
  EXPECT_EQ(opened, 1u) << "only the whole file is a record";
}

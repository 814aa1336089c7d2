// SPDX-License-Identifier: Apache-2.0
// COMTRADE (IEEE C37.111-1991, -1999, -2013) records: reading .cfg + .dat and
// single-file .cff in ASCII, BINARY, BINARY32 and FLOAT32, and writing
// 2013 records in BINARY32 or FLOAT32. docs/comtrade.md says what is read and
// how the channels map onto wattpipe's layouts.
//
// Threading: plain functions and values; a ComtradeSource is owned and
// called by the acquisition thread only (see Source); a Writer by one thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/acquire/source.hpp"

namespace wattpipe::acquire::comtrade {

// A malformed or unsupported record. The message names the file and the line
// (configuration, ASCII data) or the sample record (binary data).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DataType { ascii, binary, binary32, float32 };

struct Analog {
  std::string id, phase, ccbm, unit;
  double a = 1, b = 0, skew_us = 0, min = 0, max = 0, primary = 1, secondary = 1;
  char ps = 'P';  // the values a*x+b are primary (P) or secondary (S) values
  // Factor from a*x+b in `unit` to primary volts or amperes; 0 when the unit
  // is neither a voltage nor a current.
  [[nodiscard]] double to_si_primary() const noexcept;
  [[nodiscard]] bool is_voltage() const noexcept;
  [[nodiscard]] bool is_current() const noexcept;
};

struct Config {
  std::string station, device;
  int rev_year = 1991;
  std::vector<Analog> analog;
  std::vector<std::string> digital;  // status channel ids
  double line_hz = 0;
  struct Rate {
    double samp_hz;
    std::uint64_t endsamp;
  };
  std::vector<Rate> rates;  // none: time from the data's timestamps
  std::int64_t start_ns = 0, trigger_ns = 0;  // UTC, ns since the epoch
  std::int64_t timestamp_unit_ns = 1000;      // the data's time stamps count this (us, or ns in 2013)
  DataType type = DataType::ascii;
  double timemult = 1;
  std::int64_t utc_offset_ns = 0;  // local time = UTC + this (2013 time_code)

  [[nodiscard]] std::uint64_t samples() const noexcept { return rates.empty() ? 0 : rates.back().endsamp; }
  [[nodiscard]] bool uniform_rate() const noexcept { return rates.size() == 1 && rates[0].samp_hz > 0; }
};

// Parses the text of a .cfg (or the CFG section of a .cff). `name` is used in
// error messages; `line0` is the line number of the text's first line.
Config parse_cfg(std::string_view text, const std::string& name, int line0 = 1);

// Bytes of one sample record in a binary DAT.
std::size_t record_bytes(const Config& c) noexcept;

// The analog channels wattpipe reads from a record, and the layout they make.
struct ChannelMap {
  Layout layout = Layout::ac3;
  std::vector<int> analog;  // analog channel (0-based) for each channel of the layout, in its order; -1: zero
};

// Resolves `--channel-map` ("U1=NAME_OR_INDEX,...", 1-based index or ch_id);
// empty: the first voltage and current channels by unit (see docs).
ChannelMap map_channels(const Config& c, const std::string& spec);

// Reads the samples of a record, in order. Throws Error on a malformed or
// missing value, naming the line or sample record.
class DatReader {
 public:
  // Opens `path` at byte `offset`; `size` bytes of data (0: to the end).
  DatReader(const Config& c, const std::string& path, std::uint64_t offset, std::uint64_t size);
  ~DatReader();
  DatReader(const DatReader&) = delete;
  DatReader& operator=(const DatReader&) = delete;
  // Reads the next sample: its time stamp (in the data's units, before
  // timemult; -1 when absent) and every analog channel as a*x+b. False at
  // the end of the data.
  bool next(std::int64_t& timestamp, std::vector<double>& analog);
  [[nodiscard]] std::uint64_t samples_read() const noexcept { return n_; }

 private:
  const Config& c_;
  std::string path_;
  std::FILE* f_ = nullptr;
  std::uint64_t left_ = 0;  // bytes of data left (binary)
  bool bounded_ = false;
  std::uint64_t n_ = 0, line_ = 0;
  std::vector<unsigned char> rec_;
  std::string text_;
};

// A record as found on disk: the .cfg and .dat (or the .cff) and where the
// data starts.
struct Files {
  Config cfg;
  std::string dat_path;
  std::uint64_t dat_offset = 0, dat_size = 0;  // size 0: to the end of the file
};
// Opens FILE.cfg (with FILE.dat beside it, any case of the extension) or FILE.cff.
Files open_record(const std::string& path);

// Replays a COMTRADE record through the pipeline (`--source comtrade:FILE`),
// paced by its time or at max rate. The whole record is checked when the
// source is made, so a bad record is refused before anything is measured.
class ComtradeSource final : public Source {
 public:
  ComtradeSource(const std::string& path, const std::string& channel_map, bool max_rate);
  ReadStatus read(SampleBlock& out, std::chrono::nanoseconds timeout) override;
  [[nodiscard]] bool real_time() const noexcept override { return !max_rate_; }
  [[nodiscard]] bool bursts() const noexcept override { return max_rate_; }
  [[nodiscard]] bool wall_clock() const noexcept override { return false; }
  [[nodiscard]] std::string end_reason() const override { return {}; }
  [[nodiscard]] Layout layout() const noexcept { return map_.layout; }
  [[nodiscard]] double sample_rate_hz() const noexcept { return rate_hz_; }

 private:
  Files files_;
  ChannelMap map_;
  std::vector<double> scale_;  // per layout channel: to primary V or A
  double rate_hz_ = 0;
  std::int64_t first_ts_ = 0;  // data time stamp of sample 0 (non-uniform records)
  bool max_rate_;
  std::unique_ptr<DatReader> reader_;
  std::vector<double> analog_;
  std::uint64_t sequence_ = 0, frame_ = 0;
  Pacer pacer_;
};

// One analog channel a Writer writes: its name, phase id and unit.
struct ChannelSpec {
  std::string name, phase, unit;
};

// Writes a 2013 record: FILE.cfg and FILE.dat (BINARY32 or FLOAT32), of
// primary values. Either frames of a wattpipe layout at one sample rate
// (channels named U1, I1, ... in V and A), or a trend of any channels
// (window values) with a time stamp for each sample (nrates 0).
class Writer {
 public:
  Writer(const std::string& base_path, Layout layout, double sample_rate_hz, std::int64_t start_utc_ns,
         DataType type, double line_hz = 50, const std::string& station = "wattpipe");
  // A trend: samples come with their times (write_at).
  Writer(const std::string& base_path, std::vector<ChannelSpec> channels, std::int64_t start_utc_ns, DataType type,
         double line_hz = 50, const std::string& station = "wattpipe");
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  // Appends `frames` interleaved frames (a layout's record).
  void write(const float* frames, std::size_t count);
  // Appends one sample of every channel at `utc_ns`, no earlier than the last (a trend).
  void write_at(const float* sample, std::int64_t utc_ns);
  // Writes the .dat and the .cfg from the spooled samples (timemult needs
  // the record's length, BINARY32's factors the channels' ranges). Throws on
  // an I/O error. Without it, the destructor removes the spool.
  void close();

 private:
  void open_spool();
  std::string base_;
  std::vector<ChannelSpec> channels_;
  bool dc_ = false;
  double rate_, line_hz_;  // rate_ 0: a trend, time stamps in times_
  std::int64_t start_ns_;
  DataType type_;
  std::string station_;
  std::FILE* dat_ = nullptr;
  std::string tmp_dat_;
  std::uint64_t n_ = 0;
  std::vector<float> lo_, hi_;
  std::vector<std::int64_t> times_;
  std::vector<unsigned char> rec_;
  bool closed_ = false;
};

}  // namespace wattpipe::acquire::comtrade

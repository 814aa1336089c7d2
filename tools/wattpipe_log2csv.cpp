// SPDX-License-Identifier: Apache-2.0
// wattpipe-log2csv: a window log (JSON Lines from --log) or a raw log (WPRB
// from --log-raw) as CSV, one row per window or per frame, for spreadsheets
// and pandas.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include <fmt/format.h>
#include <simdjson.h>

#include "progress.hpp"
#include "wattpipe/acquire/wprb.hpp"

namespace wprb = wattpipe::acquire::wprb;

namespace {

// Columns of a window row: (header, JSON pointer). Built from the first record.
std::vector<std::pair<std::string, std::string>> window_columns(simdjson::dom::element first) {
  std::vector<std::pair<std::string, std::string>> cols = {
      {"seq", "/seq"},           {"start_ns", "/start_ns"}, {"end_ns", "/end_ns"},
      {"samples", "/samples"},   {"frames_dropped", "/frames_dropped"}, {"whole_cycles", "/whole_cycles"},
      {"frequency_Hz", "/frequency_Hz/L1"}};
  const bool dc = first.at_pointer("/voltage_V/DC").error() == simdjson::SUCCESS;
  std::vector<std::string> phases;
  for (const char* l : {"L1", "L2", "L3"})
    if (first.at_pointer(std::string("/power_W/") + l).error() == simdjson::SUCCESS) phases.emplace_back(l);
  if (dc) {
    cols.insert(cols.end(), {{"U_DC_V", "/voltage_V/DC"}, {"I_DC_A", "/current_A/DC"}});
  } else {
    for (const auto& l : phases) cols.emplace_back("U_" + l + "_V", "/voltage_V/" + l);
    for (const auto& l : phases) cols.emplace_back("I_" + l + "_A", "/current_A/" + l);
    if (first.at_pointer("/current_A/N").error() == simdjson::SUCCESS) cols.emplace_back("I_N_A", "/current_A/N");
  }
  cols.emplace_back("P_total_W", "/power_W/total");
  for (const auto& l : phases) cols.emplace_back("P_" + l + "_W", "/power_W/" + l);
  if (!dc) {
    cols.emplace_back("Q1_total_VAR", "/VAR/total");
    for (const auto& l : phases) cols.emplace_back("Q1_" + l + "_VAR", "/VAR/" + l);
    cols.emplace_back("S_total_VA", "/S_VA/total");
    for (const auto& l : phases) cols.emplace_back("PF_" + l, "/PF/" + l);
  } else {
    cols.insert(cols.end(), {{"S_total_VA", "/S_VA/total"}, {"PF_total", "/PF/total"}});
  }
  cols.insert(cols.end(), {{"E_import_total_Wh", "/energy_Wh_import/total"},
                           {"E_export_total_Wh", "/energy_Wh_export/total"},
                           {"E_window_Wh", "/energy_Wh_window/total"}});
  // Analysis (docs/analysis.md): empty cells where a window has none.
  if (dc) {
    for (const char* k : {"ripple_U_rms_V", "ripple_I_rms_A", "ripple_U_pp_V", "ripple_I_pp_A", "U_min_V", "U_max_V",
                          "I_min_A", "I_max_A"})
      cols.emplace_back(k, std::string("/") + k);
  } else {
    for (const char* q : {"thd_U_percent", "thd_I_percent", "crest_factor_I"})
      for (const auto& l : phases) cols.emplace_back(fmt::format("{}_{}", q, l), fmt::format("/{}/{}", q, l));
    if (phases.size() == 3)
      cols.insert(cols.end(), {{"unbalance_u2_percent", "/unbalance_u2_percent"},
                               {"unbalance_u0_percent", "/unbalance_u0_percent"}});
  }
  return cols;
}

std::string cell(simdjson::dom::element doc, const std::string& ptr) {
  simdjson::dom::element e;
  if (doc.at_pointer(ptr).get(e) != simdjson::SUCCESS) return "";
  switch (e.type()) {
    case simdjson::dom::element_type::INT64: return std::to_string(int64_t(e));
    case simdjson::dom::element_type::UINT64: return std::to_string(uint64_t(e));
    case simdjson::dom::element_type::DOUBLE: return fmt::format("{}", double(e));
    case simdjson::dom::element_type::BOOL: return bool(e) ? "1" : "0";
    default: return "";
  }
}

int jsonl_to_csv(std::istream& in, std::uint64_t size, std::FILE* out) {
  simdjson::dom::parser parser;
  std::vector<std::pair<std::string, std::string>> cols;
  std::string line;
  std::uint64_t rows = 0, overflows = 0, events = 0, done = 0;
  wattpipe::tools::Progress progress("log2csv");
  while (std::getline(in, line)) {
    done += line.size() + 1;
    progress.update(double(done), double(size));
    simdjson::dom::element doc;
    if (line.empty() || parser.parse(line).get(doc) != simdjson::SUCCESS) continue;
    std::string_view type;
    if (doc["type"].get_string().get(type) == simdjson::SUCCESS && type == "overflow") {
      ++overflows;  // a gap the log itself reports; rows stay one per window
      continue;
    }
    if (doc["event"].error() == simdjson::SUCCESS) {
      ++events;  // step events: lines of their own, not windows
      continue;
    }
    if (cols.empty()) {
      cols = window_columns(doc);
      for (std::size_t k = 0; k < cols.size(); ++k) std::fprintf(out, "%s%s", k ? "," : "", cols[k].first.c_str());
      std::fputc('\n', out);
    }
    for (std::size_t k = 0; k < cols.size(); ++k) std::fprintf(out, "%s%s", k ? "," : "", cell(doc, cols[k].second).c_str());
    std::fputc('\n', out);
    ++rows;
  }
  if (events > 0) std::fprintf(stderr, "wattpipe-log2csv: %llu step events left out (rows are windows)\n",
                               static_cast<unsigned long long>(events));
  std::fprintf(stderr, "wattpipe-log2csv: %llu windows%s\n", static_cast<unsigned long long>(rows),
               overflows ? fmt::format(" ({} overflow records: windows were lost)", overflows).c_str() : "");
  return rows > 0 ? 0 : 1;
}

int wprb_to_csv(std::istream& in, std::uint64_t size, std::FILE* out) {
  static constexpr const char* kNames[5][8] = {{},
                                                {"U1_V", "I1_A"},
                                                {"U1_V", "U2_V", "U3_V", "I1_A", "I2_A", "I3_A"},
                                                {"U1_V", "U2_V", "U3_V", "UN_V", "I1_A", "I2_A", "I3_A", "IN_A"},
                                                {"U_V", "I_A"}};
  std::vector<std::byte> buf;
  std::vector<float> frames;
  std::uint64_t rows = 0, done = 0;
  bool header = false;
  std::int64_t t_first = 0;
  wattpipe::tools::Progress progress("log2csv");
  for (;;) {
    std::byte hdr[wprb::kHeaderBytes];
    if (!in.read(reinterpret_cast<char*>(hdr), sizeof hdr)) break;
    wprb::Header h;
    std::string error;
    if (!wprb::parse_header(std::span<const std::byte>(hdr, sizeof hdr), h, error)) {
      std::fprintf(stderr, "wattpipe-log2csv: stopping at a corrupt block: %s\n", error.c_str());
      break;
    }
    buf.resize(wprb::payload_bytes(h));
    if (!in.read(reinterpret_cast<char*>(buf.data()), std::streamsize(buf.size()))) {
      std::fprintf(stderr, "wattpipe-log2csv: stopping at a truncated block\n");
      break;
    }
    done += sizeof hdr + buf.size();
    progress.update(double(done), double(size));
    const auto li = wattpipe::acquire::layout_info(h.layout);
    frames.resize(std::size_t{h.frame_count} * li.channels);
    if (!wprb::decode_frames(h, buf, 0, h.frame_count, frames.data(), error)) continue;
    if (!header) {
      t_first = h.t0_ns;
      std::fprintf(out, "frame,t_s");
      for (std::uint32_t c = 0; c < li.channels; ++c) std::fprintf(out, ",%s", kNames[int(h.layout)][c]);
      std::fputc('\n', out);
      header = true;
    }
    for (std::uint32_t f = 0; f < h.frame_count; ++f) {
      const double t = double(h.t0_ns - t_first) * 1e-9 + double(f) / h.sample_rate_hz;
      std::fprintf(out, "%llu,%.9f", static_cast<unsigned long long>(h.first_frame + f), t);
      for (std::uint32_t c = 0; c < li.channels; ++c) std::fprintf(out, ",%.7g", double(frames[f * li.channels + c]));
      std::fputc('\n', out);
      ++rows;
    }
  }
  std::fprintf(stderr, "wattpipe-log2csv: %llu frames\n", static_cast<unsigned long long>(rows));
  return rows > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wattpipe-log2csv: window JSON Lines (--log) or raw WPRB (--log-raw) to CSV"};
  std::string input, output;
  app.add_option("input", input, "the log file")->required();
  app.add_option("-o,--output", output, "CSV file (default: standard output)");
  wattpipe::tools::add_version(app, "wattpipe-log2csv");
  if (const int rc = wattpipe::tools::parse(app, argc, argv); rc >= 0) return rc;
  std::ifstream in(input, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "wattpipe-log2csv: cannot read '%s'\n", input.c_str());
    return 2;
  }
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::uint64_t>(in.tellg());
  in.seekg(0);
  char magic[4] = {};
  in.read(magic, 4);
  in.seekg(0);
  std::FILE* out = output.empty() ? stdout : std::fopen(output.c_str(), "w");
  if (out == nullptr) {
    std::fprintf(stderr, "wattpipe-log2csv: cannot write '%s'\n", output.c_str());
    return 2;
  }
  std::setvbuf(out, nullptr, _IOFBF, 1 << 20);
  const int rc = std::string_view(magic, 4) == "WPRB" ? wprb_to_csv(in, size, out) : jsonl_to_csv(in, size, out);
  if (out != stdout) std::fclose(out);
  return rc;
}

// SPDX-License-Identifier: Apache-2.0
// JSON on the MQTT thread: writing a full powermeter_values message, and
// parsing a start_transaction request, each against nlohmann::json doing the
// same work in the same run.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cmath>

#include <nlohmann/json.hpp>

#include "wattpipe/publish/everest_api.hpp"

namespace {
using namespace wattpipe;

pipeline::WindowRecord full_window() {
  pipeline::WindowRecord r;
  r.phases = 3;
  r.neutral = true;
  r.end_utc_ns = 1727421674127000000;
  for (int k = 0; k < 3; ++k) {
    r.ph[k] = {230.1234 + k, 16.25 - k, 0, 0, 3496.098 + k, 1148.78 + k, 3680, 1150, 0.95, 0.001};
    r.registers.import_phase[k].uwh = 123456789012 + k;
    r.registers.export_phase[k].uwh = 1234 + k;
  }
  r.registers.import_total.uwh = 370370367036;
  r.registers.export_total.uwh = 3705;
  r.p_total_w = 10488.294;
  r.q1_total_var = 3446.34;
  r.in_rms_a = 0.0123;
  r.frequency_valid = true;
  r.frequency_hz = 50.0012;
  r.phase_seq_valid = true;
  return r;
}

void BM_PowermeterValues_Write(benchmark::State& state) {
  const auto r = full_window();
  std::array<char, 4096> buf;
  std::size_t bytes = 0;
  for (auto _ : state) {
    legal::JsonWriter w(buf);
    const auto v = publish::write_powermeter_values(r, "WATTPIPE-0001", w);
    bytes = v.size();
    benchmark::DoNotOptimize(v.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["bytes"] = double(bytes);
}
BENCHMARK(BM_PowermeterValues_Write);

// The same message through nlohmann::json: the same fields and precision.
void BM_PowermeterValues_WriteNlohmann(benchmark::State& state) {
  const auto r = full_window();
  auto round = [](double v, int dec) { return std::round(v * std::pow(10, dec)) / std::pow(10, dec); };
  std::size_t bytes = 0;
  for (auto _ : state) {
    nlohmann::ordered_json j;
    char ts[24];
    legal::format_timestamp_ms(r.end_utc_ns, ts);
    j["timestamp"] = std::string(ts, 24);
    j["meter_id"] = "WATTPIPE-0001";
    auto energy = [&](const legal::CompensatedRegister& t, const std::array<legal::CompensatedRegister, 3>& p) {
      return nlohmann::ordered_json{{"total", double(t.uwh) / 1e6},
                                    {"L1", double(p[0].uwh) / 1e6},
                                    {"L2", double(p[1].uwh) / 1e6},
                                    {"L3", double(p[2].uwh) / 1e6}};
    };
    j["energy_Wh_import"] = energy(r.registers.import_total, r.registers.import_phase);
    j["energy_Wh_export"] = energy(r.registers.export_total, r.registers.export_phase);
    j["power_W"] = {{"total", round(r.p_total_w, 3)}, {"L1", round(r.ph[0].p_w, 3)}, {"L2", round(r.ph[1].p_w, 3)},
                    {"L3", round(r.ph[2].p_w, 3)}};
    j["voltage_V"] = {{"L1", round(r.ph[0].urms_v, 3)}, {"L2", round(r.ph[1].urms_v, 3)}, {"L3", round(r.ph[2].urms_v, 3)}};
    j["current_A"] = {{"L1", round(r.ph[0].irms_a, 3)}, {"L2", round(r.ph[1].irms_a, 3)},
                      {"L3", round(r.ph[2].irms_a, 3)}, {"N", round(r.in_rms_a, 3)}};
    j["frequency_Hz"] = {{"L1", round(r.frequency_hz, 4)}};
    j["VAR"] = {{"total", round(r.q1_total_var, 3)}, {"L1", round(r.ph[0].q1_var, 3)}, {"L2", round(r.ph[1].q1_var, 3)},
                {"L3", round(r.ph[2].q1_var, 3)}};
    j["phase_seq_error"] = r.phase_seq_error;
    const std::string s = j.dump();
    bytes = s.size();
    benchmark::DoNotOptimize(s.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["bytes"] = double(bytes);
}
BENCHMARK(BM_PowermeterValues_WriteNlohmann);

constexpr std::string_view kStart =
    R"({"headers":{"replyTo":"everest_api/1/powermeter/pm1/m2e/reply/0f6c1a2e-5d1b-4f5e-9a3c-7f2b1d9e8c41"},"payload":)"
    R"({"evse_id":"DE*PNX*E12345*1","transaction_id":"a4c7e1f2-9b3d-4e5a-8f6c-1d2e3f4a5b6c","identification_status":"ASSIGNED",)"
    R"("identification_level":"HEARSAY","identification_flags":["RFID_PLAIN","OCPP_AUTH","ISO15118_NONE","PLMN_NONE"],)"
    R"("identification_type":"ISO14443","identification_data":"04A2B3C4D5E6F7","tariff_text":"0.49 EUR/kWh"}})";

void BM_StartRequest_Parse(benchmark::State& state) {
  publish::RequestParser p;
  for (auto _ : state) {
    auto r = p.parse(publish::Request::Kind::start, kStart);
    if (!r.ok) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(r.request.start.transaction_id.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StartRequest_Parse);

// nlohmann::json parse plus the same extraction and checks.
void BM_StartRequest_ParseNlohmann(benchmark::State& state) {
  static const std::array<std::string_view, 17> kFlags{
      "RFID_NONE",      "RFID_PLAIN",   "RFID_RELATED", "RFID_PSK", "OCPP_NONE", "OCPP_RS",
      "OCPP_AUTH",      "OCPP_RS_TLS",  "OCPP_AUTH_TLS", "OCPP_CACHE", "OCPP_WHITELIST", "OCPP_CERTIFIED",
      "ISO15118_NONE",  "ISO15118_PNC", "PLMN_NONE", "PLMN_RING", "PLMN_SMS"};
  for (auto _ : state) {
    const auto j = nlohmann::json::parse(kStart, nullptr, false);
    if (j.is_discarded() || !j.contains("payload")) state.SkipWithError("parse failed");
    publish::Request req;
    req.reply_to = j.at("headers").at("replyTo").get<std::string>();
    if (!publish::valid_reply_topic(*req.reply_to)) state.SkipWithError("bad replyTo");
    const auto& pl = j.at("payload");
    auto& s = req.start;
    s.evse_id = pl.at("evse_id").get<std::string>();
    s.transaction_id = pl.at("transaction_id").get<std::string>();
    s.identification_status = pl.at("identification_status").get<std::string>();
    s.identification_level = pl.value("identification_level", "");
    s.identification_type = pl.at("identification_type").get<std::string>();
    s.identification_data = pl.value("identification_data", "");
    s.tariff_text = pl.value("tariff_text", "");
    for (const auto& f : pl.at("identification_flags")) {
      const auto v = f.get<std::string>();
      if (std::find(kFlags.begin(), kFlags.end(), v) == kFlags.end()) state.SkipWithError("bad flag");
      s.identification_flags.push_back(v);
    }
    benchmark::DoNotOptimize(s.transaction_id.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StartRequest_ParseNlohmann);

}  // namespace

BENCHMARK_MAIN();

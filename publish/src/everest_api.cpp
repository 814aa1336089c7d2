// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/everest_api.hpp"

#include "wattpipe/publish/analysis_json.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>

#include <simdjson.h>

namespace wattpipe::publish {

Topics Topics::make(std::string_view module_id, std::string_view prefix) {
  Topics t;
  std::string root(prefix);
  if (!root.empty() && root.back() != '/') root += '/';
  t.base = root + "everest_api/1/powermeter/" + std::string(module_id);
  t.powermeter_values = t.base + "/m2e/powermeter_values";
  t.public_key_ocmf = t.base + "/m2e/public_key_ocmf";
  t.communication_check = t.base + "/m2e/communication_check";
  t.start_transaction = t.base + "/e2m/start_transaction";
  t.stop_transaction = t.base + "/e2m/stop_transaction";
  t.heartbeat = t.base + "/e2m/heartbeat";
  t.wattpipe_base = root + "wattpipe/" + std::string(module_id);
  t.analysis = t.wattpipe_base + "/analysis";
  t.events = t.wattpipe_base + "/events";
  t.demand = t.wattpipe_base + "/demand";
  return t;
}

bool valid_utf8(std::string_view s) noexcept { return simdjson::validate_utf8(s.data(), s.size()); }

bool valid_reply_topic(std::string_view t) noexcept {
  if (t.empty() || t.size() > 65535) return false;
  if (t.find_first_of(std::string_view("+#\0", 3)) != std::string_view::npos) return false;
  return valid_utf8(t);
}

std::string_view to_string(TransactionStatus s) noexcept {
  switch (s) {
    case TransactionStatus::ok: return "OK";
    case TransactionStatus::not_supported: return "NOT_SUPPORTED";
    case TransactionStatus::unexpected_error: return "UNEXPECTED_ERROR";
  }
  return "UNEXPECTED_ERROR";
}

// ---- parsing ---------------------------------------------------------------

namespace {

constexpr std::array<std::string_view, 2> kIdStatus{"ASSIGNED", "NOT_ASSIGNED"};
constexpr std::array<std::string_view, 10> kIdLevel{"NONE",     "HEARSAY",  "TRUSTED", "VERIFIED", "CERTIFIED",
                                                    "SECURE",   "MISMATCH", "INVALID", "OUTDATED", "UNKNOWN"};
constexpr std::array<std::string_view, 17> kIdFlags{
    "RFID_NONE",  "RFID_PLAIN",     "RFID_RELATED",   "RFID_PSK",      "OCPP_NONE",     "OCPP_RS",
    "OCPP_AUTH",  "OCPP_RS_TLS",    "OCPP_AUTH_TLS",  "OCPP_CACHE",    "OCPP_WHITELIST", "OCPP_CERTIFIED",
    "ISO15118_NONE", "ISO15118_PNC", "PLMN_NONE",     "PLMN_RING",     "PLMN_SMS"};
constexpr std::array<std::string_view, 18> kIdType{
    "NONE",     "DENIED",      "UNDEFINED", "ISO14443",  "ISO15693",  "EMAID", "EVCCID",  "EVCOID",    "ISO7812",
    "CARD_TXN_NR", "CENTRAL", "CENTRAL_1", "CENTRAL_2", "LOCAL", "LOCAL_1", "LOCAL_2", "PHONE_NUMBER", "KEY_CODE"};

template <std::size_t N>
bool one_of(const std::array<std::string_view, N>& set, std::string_view v) {
  return std::find(set.begin(), set.end(), v) != set.end();
}

// Best effort for documents simdjson rejects (not JSON, invalid UTF-8):
// find "replyTo":"<topic>" by scanning, so the sender still gets an answer.
std::optional<std::string> scavenge_reply_to(std::string_view raw) {
  const std::string_view key = "\"replyTo\"";
  const std::size_t at = raw.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t i = at + key.size();
  auto skip_ws = [&] {
    while (i < raw.size() && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r')) ++i;
  };
  skip_ws();
  if (i >= raw.size() || raw[i] != ':') return std::nullopt;
  ++i;
  skip_ws();
  if (i >= raw.size() || raw[i] != '"') return std::nullopt;
  const std::size_t start = ++i;
  while (i < raw.size() && raw[i] != '"' && raw[i] != '\\') ++i;
  if (i >= raw.size() || raw[i] != '"') return std::nullopt;
  std::string t(raw.substr(start, i - start));
  if (!valid_reply_topic(t)) return std::nullopt;
  return t;
}

}  // namespace

// Requests are a few hundred bytes; anything past 64 KiB is refused before
// parsing (its replyTo is scavenged for the error reply), which also bounds
// the parser's memory. Nesting deeper than 64 is an error, not a deep stack.
constexpr std::size_t kMaxRequestBytes = 64 * 1024;
constexpr std::size_t kMaxDepth = 64;

struct RequestParser::Impl {
  simdjson::dom::parser parser{kMaxRequestBytes};
  Impl() {
    if (parser.allocate(kMaxRequestBytes, kMaxDepth) != simdjson::SUCCESS) throw std::bad_alloc();
  }
};

RequestParser::RequestParser() : impl_(std::make_unique<Impl>()) {}
RequestParser::~RequestParser() = default;

// A small JSON message (heartbeat, demand) into doc; false when empty, too
// large or not JSON. Empty first: a zero-length MQTT payload may come with a
// null pointer.
static bool parse_small(simdjson::dom::parser& parser, std::string_view payload, simdjson::dom::element& doc) {
  if (payload.empty() || payload.data() == nullptr || payload.size() > kMaxRequestBytes) return false;
  return parser.parse(payload.data(), payload.size(), true).get(doc) == simdjson::SUCCESS;
}

std::optional<std::uint64_t> RequestParser::parse_heartbeat(std::string_view payload) {
  simdjson::dom::element doc;
  if (!parse_small(impl_->parser, payload, doc)) return std::nullopt;
  std::uint64_t v;
  if (doc.get_uint64().get(v) != simdjson::SUCCESS) return std::nullopt;
  return v;
}

std::optional<double> RequestParser::parse_demand(std::string_view payload) {
  simdjson::dom::element doc;
  if (!parse_small(impl_->parser, payload, doc)) return std::nullopt;
  double v;
  if (doc.is_object()) {
    if (doc["current_A"].get_double().get(v) != simdjson::SUCCESS) return std::nullopt;
  } else if (doc.get_double().get(v) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

ParseResult RequestParser::parse(Request::Kind kind, std::string_view payload) {
  ParseResult r;
  r.request.kind = kind;
  simdjson::dom::element doc;
  if (payload.empty() || payload.data() == nullptr) {
    r.error = "empty payload";
    return r;
  }
  if (payload.size() > kMaxRequestBytes) {
    r.error = "request larger than " + std::to_string(kMaxRequestBytes) + " bytes";
    r.reply_to = scavenge_reply_to(payload);
    return r;
  }
  if (const auto err = impl_->parser.parse(payload.data(), payload.size(), true).get(doc); err != simdjson::SUCCESS) {
    r.error = std::string("not valid JSON: ") + simdjson::error_message(err);
    r.reply_to = scavenge_reply_to(payload);
    return r;
  }
  simdjson::dom::object root;
  if (doc.get_object().get(root) != simdjson::SUCCESS) {
    r.error = "request is not a JSON object";
    return r;
  }
  // headers.replyTo first: every later error can then be answered.
  simdjson::dom::element headers;
  if (root["headers"].get(headers) == simdjson::SUCCESS) {
    simdjson::dom::object hobj;
    if (headers.get_object().get(hobj) != simdjson::SUCCESS) {
      r.error = "headers is not an object";
      return r;
    }
    simdjson::dom::element rt;
    if (hobj["replyTo"].get(rt) == simdjson::SUCCESS) {
      std::string_view t;
      if (rt.get_string().get(t) != simdjson::SUCCESS) {
        r.error = "headers.replyTo is not a string";
        return r;
      }
      if (!valid_reply_topic(t)) {
        r.error = "headers.replyTo is not a valid topic";
        return r;
      }
      r.reply_to = std::string(t);
      r.request.reply_to = r.reply_to;
    }
  }
  simdjson::dom::element body;
  if (root["payload"].get(body) != simdjson::SUCCESS) {
    r.error = "missing payload";
    return r;
  }

  if (kind == Request::Kind::stop) {
    // everest-core sends "payload":"<id>"; the YAML says {"transaction_id":"<id>"}: accept both.
    std::string_view id;
    if (body.get_string().get(id) == simdjson::SUCCESS) {
      r.request.stop.transaction_id = std::string(id);
      r.ok = true;
      return r;
    }
    simdjson::dom::object o;
    if (body.get_object().get(o) != simdjson::SUCCESS) {
      r.error = "payload must be a transaction id string or an object";
      return r;
    }
    if (o["transaction_id"].get_string().get(id) != simdjson::SUCCESS) {
      r.error = "payload.transaction_id missing or not a string";
      return r;
    }
    r.request.stop.transaction_id = std::string(id);
    r.ok = true;
    return r;
  }

  simdjson::dom::object o;
  if (body.get_object().get(o) != simdjson::SUCCESS) {
    r.error = "payload is not an object";
    return r;
  }
  StartTransactionRequest& s = r.request.start;
  auto str = [&](const char* key, std::string& out, bool required) -> bool {
    simdjson::dom::element e;
    if (o[key].get(e) != simdjson::SUCCESS) {
      if (required) r.error = std::string("payload.") + key + " is missing";
      return !required;
    }
    std::string_view v;
    if (e.get_string().get(v) != simdjson::SUCCESS) {
      r.error = std::string("payload.") + key + " is not a string";
      return false;
    }
    out.assign(v);
    return true;
  };
  if (!str("evse_id", s.evse_id, true) || !str("transaction_id", s.transaction_id, true) ||
      !str("identification_status", s.identification_status, true) ||
      !str("identification_type", s.identification_type, true) ||
      !str("identification_level", s.identification_level, false) ||
      !str("identification_data", s.identification_data, false) || !str("tariff_text", s.tariff_text, false))
    return r;
  if (!one_of(kIdStatus, s.identification_status)) {
    r.error = "payload.identification_status: unknown value";
    return r;
  }
  if (!one_of(kIdType, s.identification_type)) {
    r.error = "payload.identification_type: unknown value";
    return r;
  }
  if (!s.identification_level.empty() && !one_of(kIdLevel, s.identification_level)) {
    r.error = "payload.identification_level: unknown value";
    return r;
  }
  if (s.tariff_text.size() > 250) {
    r.error = "payload.tariff_text longer than 250 characters";
    return r;
  }
  simdjson::dom::element flags;
  if (o["identification_flags"].get(flags) != simdjson::SUCCESS) {
    r.error = "payload.identification_flags is missing";
    return r;
  }
  simdjson::dom::array arr;
  if (flags.get_array().get(arr) != simdjson::SUCCESS) {
    r.error = "payload.identification_flags is not an array";
    return r;
  }
  for (simdjson::dom::element f : arr) {
    std::string_view v;
    if (f.get_string().get(v) != simdjson::SUCCESS || !one_of(kIdFlags, v)) {
      r.error = "payload.identification_flags: unknown value";
      return r;
    }
    if (s.identification_flags.size() == 4) {
      r.error = "payload.identification_flags has more than 4 items";
      return r;
    }
    s.identification_flags.emplace_back(v);
  }
  r.ok = true;
  return r;
}

// ---- replies ---------------------------------------------------------------

namespace {

void write_smv(JsonWriter& w, const SignedMeterValue& v) {
  w.begin_object();
  w.field("signed_meter_data", v.signed_meter_data);
  w.field("signing_method", v.signing_method);
  w.field("encoding_method", v.encoding_method);
  if (!v.public_key.empty()) {
    w.field("public_key", v.public_key);
  }
  if (v.timestamp_utc_ns != 0) {
    w.key("timestamp");
    w.timestamp_ms(v.timestamp_utc_ns);
  }
  w.end_object();
}

}  // namespace

std::string write_reply(const StartTransactionReply& r) {
  return legal::write_json(1024 + r.error.size() * 6, [&](JsonWriter& w) {
    w.begin_object();
    w.field("status", to_string(r.status));
    if (!r.error.empty()) {
      w.field("error", r.error);
    }
    if (r.min_stop_utc_ns) {
      w.key("transaction_min_stop_time");
      w.timestamp_ms(*r.min_stop_utc_ns);
    }
    if (r.max_stop_utc_ns) {
      w.key("transaction_max_stop_time");
      w.timestamp_ms(*r.max_stop_utc_ns);
    }
    if (r.signed_meter_value) {
      w.key("signed_meter_value");
      write_smv(w, *r.signed_meter_value);
    }
    w.end_object();
  });
}

std::string write_reply(const StopTransactionReply& r) {
  return legal::write_json(4096 + r.error.size() * 6, [&](JsonWriter& w) {
    w.begin_object();
    w.field("status", to_string(r.status));
    if (!r.error.empty()) {
      w.field("error", r.error);
    }
    if (r.signed_meter_value) {
      w.key("signed_meter_value");
      write_smv(w, *r.signed_meter_value);
    }
    if (r.start_signed_meter_value) {
      w.key("start_signed_meter_value");
      write_smv(w, *r.start_signed_meter_value);
    }
    if (std::isfinite(r.energy_in_wh)) w.field_fixed("energy_in_Wh", r.energy_in_wh, 6);
    if (std::isfinite(r.energy_out_wh)) w.field_fixed("energy_out_Wh", r.energy_out_wh, 6);
    if (std::isfinite(r.efficiency)) w.field_fixed("efficiency", r.efficiency, 6);
    w.end_object();
  });
}

// ---- powermeter_values -----------------------------------------------------

namespace {

// {"total":..,"L1":..,...} of a per-phase quantity, plus an optional extra
// member (the neutral current); nothing when a value is not finite (EVerest
// drops a whole message for one bad field).
constexpr std::optional<double> kNoTotal{};

template <typename Get>
void per_phase(JsonWriter& w, std::string_view name, const pipeline::WindowRecord& r, Get get, int dec,
               std::optional<double> total, std::string_view extra_key = {}, double extra = 0) {
  static constexpr std::string_view kL[3] = {"L1", "L2", "L3"};
  for (unsigned k = 0; k < r.phases; ++k)
    if (!std::isfinite(get(r.ph[k]))) return;
  if ((!extra_key.empty() && !std::isfinite(extra)) || (total && !std::isfinite(*total))) return;
  w.key(name);
  w.begin_object();
  if (total) w.field_fixed("total", *total, dec);
  for (unsigned k = 0; k < r.phases; ++k) w.field_fixed(kL[k], get(r.ph[k]), dec);
  if (!extra_key.empty()) w.field_fixed(extra_key, extra, dec);
  w.end_object();
}

// An energy register object: exact decimal micro-watt-hours.
void energy(JsonWriter& w, std::string_view name, const legal::CompensatedRegister& total,
            const std::array<legal::CompensatedRegister, 3>& phase, unsigned phases) {
  static constexpr std::string_view kL[3] = {"L1", "L2", "L3"};
  w.key(name);
  w.begin_object();
  w.key("total");
  w.scaled(total.uwh, 6);
  for (unsigned k = 0; k < phases; ++k) {
    w.key(kL[k]);
    w.scaled(phase[k].uwh, 6);
  }
  w.end_object();
}

// The powermeter_values fields of a window, inside an object the caller opened.
void write_values_fields(const pipeline::WindowRecord& r, std::string_view meter_id, JsonWriter& w) {
  using PV = pipeline::PhaseValues;
  w.key("timestamp");
  w.timestamp_ms(r.end_utc_ns);
  if (!meter_id.empty()) w.field("meter_id", meter_id);
  const unsigned per_phase_energy = r.dc ? 0 : r.phases;
  energy(w, "energy_Wh_import", r.registers.import_total, r.registers.import_phase, per_phase_energy);
  energy(w, "energy_Wh_export", r.registers.export_total, r.registers.export_phase, per_phase_energy);
  if (r.dc) {
    w.single("power_W", "total", r.ph[0].p_w, 3);
    w.single("voltage_V", "DC", r.ph[0].u_mean_v, 3);
    w.single("current_A", "DC", r.ph[0].i_mean_a, 3);
    return;
  }
  per_phase(w, "power_W", r, [](const PV& v) { return v.p_w; }, 3, r.p_total_w);
  per_phase(w, "voltage_V", r, [](const PV& v) { return v.urms_v; }, 3, kNoTotal);
  per_phase(w, "current_A", r, [](const PV& v) { return v.irms_a; }, 3, kNoTotal, r.neutral ? "N" : "", r.in_rms_a);
  if (r.frequency_valid) w.single("frequency_Hz", "L1", r.frequency_hz, 4);
  per_phase(w, "VAR", r, [](const PV& v) { return v.q1_var; }, 3, r.q1_total_var);
  if (r.phases == 3 && r.phase_seq_valid) w.field_bool("phase_seq_error", r.phase_seq_error);
}

}  // namespace

std::string_view write_powermeter_values(const pipeline::WindowRecord& r, std::string_view meter_id, JsonWriter& w,
                                         bool stamp) {
  w.reset();
  w.begin_object();
  write_values_fields(r, meter_id, w);
  if (stamp) {
    // Optional (--stamp-messages): when the processing thread closed the window, for latency benchmarks.
    w.field_int("wattpipe_closed_ns", r.closed_steady_ns);
  }
  w.end_object();
  return w.view();
}

std::string_view write_window_record(const pipeline::WindowRecord& r, std::string_view meter_id, JsonWriter& w,
                                     const acquire::LossCounts* losses) {
  using PV = pipeline::PhaseValues;
  w.reset();
  w.begin_object();
  w.field_uint("seq", r.seq);
  w.key("start");
  w.timestamp_ms(r.start_utc_ns);
  w.field_int("start_ns", r.start_utc_ns);
  w.field_int("end_ns", r.end_utc_ns);
  w.field_fixed("samples", r.samples, 3);
  w.field_uint("frames_dropped", r.frames_dropped);
  w.field_bool("whole_cycles", r.whole_cycles);
  w.field_bool("nominal_timing", r.nominal_timing);
  w.field_bool("clock_synced", r.clock_synced);
  w.field_bool("partial", r.partial);
  if (r.energy_refused) w.field_bool("energy_refused", true);
  if (r.register_saturated) w.field_bool("register_saturated", true);
  if (losses != nullptr) {
    w.key("losses");
    w.begin_object();
    for (std::size_t k = 0; k < acquire::LossCounts::kCount; ++k) w.field_uint(acquire::LossCounts::kNames[k], losses->v[k]);
    w.end_object();
  }
  write_values_fields(r, meter_id, w);
  double n_total = 0;
  for (unsigned k = 0; k < r.phases; ++k) n_total += r.ph[k].n_va;
  if (r.dc) {
    // DC: like power_W, under "total" only (U and I are under "DC"), never a phase key.
    w.single("S_VA", "total", r.s_total_va, 3);
    w.single("N_VA", "total", n_total, 3);
    w.single("PF", "total", r.ph[0].pf, 5);
    w.single("energy_Wh_window", "total", r.energy_total_wh, 9);
  } else {
    per_phase(w, "S_VA", r, [](const PV& v) { return v.s_va; }, 3, r.s_total_va);
    per_phase(w, "N_VA", r, [](const PV& v) { return v.n_va; }, 3, n_total);
    per_phase(w, "PF", r, [](const PV& v) { return v.pf; }, 5, kNoTotal);
    per_phase(w, "energy_Wh_window", r, [](const PV& v) { return v.energy_wh; }, 9, r.energy_total_wh);
  }
  if (r.neutral && std::isfinite(r.un_rms_v)) w.field_fixed("UN_V", r.un_rms_v, 3);
  write_two_point_fields(r, w);
  write_analysis_fields(r, w);
  w.end_object();
  return w.view();
}

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/config.hpp"

#include "wattpipe/acquire/point_source.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "wattpipe/legal/legal.hpp"

namespace wattpipe::publish {

const char* version() noexcept { return WATTPIPE_VERSION; }

std::string version_line(std::string_view tool) {
  return fmt::format("{} {} ({})", tool, version(), legal::software_id_text());
}

std::optional<SourceSpec> split_source(std::string_view source) {
  if (source == "sim") return SourceSpec{SourceKind::sim, {}};
  static constexpr std::pair<std::string_view, SourceKind> kPrefixes[] = {{"zmq-pull:", SourceKind::zmq_pull},
                                                                          {"zmq:", SourceKind::zmq_sub},
                                                                          {"replay:", SourceKind::replay},
                                                                          {"comtrade:", SourceKind::comtrade}};
  for (const auto& [prefix, kind] : kPrefixes)
    if (source.starts_with(prefix) && source.size() > prefix.size())
      return SourceSpec{kind, std::string(source.substr(prefix.size()))};
  return std::nullopt;
}

namespace {

struct ConfigError {
  std::string message;
};

double num(const YAML::Node& n, const std::string& key) {
  try {
    const double v = n.as<double>();
    if (!std::isfinite(v)) throw ConfigError{key + ": not a finite number"};
    return v;
  } catch (const YAML::Exception&) {
    throw ConfigError{key + ": expected a number"};
  }
}

bool boolean(const YAML::Node& n, const std::string& key) {
  try {
    return n.as<bool>();
  } catch (const YAML::Exception&) {
    throw ConfigError{key + ": expected true or false"};
  }
}

// A key must be a plain scalar: YAML also allows lists and maps as keys.
std::string key_name(const YAML::Node& key, const std::string& where) {
  if (!key.IsScalar()) throw ConfigError{where + ": a key must be a plain name, not a list or a mapping"};
  return key.Scalar();
}

void check_keys(const YAML::Node& map, const std::string& where, std::initializer_list<const char*> known) {
  if (!map.IsMap()) throw ConfigError{where + ": expected a mapping"};
  for (const auto& kv : map) {
    const std::string k = key_name(kv.first, where);
    bool ok = false;
    for (const char* n : known) ok |= k == n;
    if (!ok) throw ConfigError{where + "." + k + ": unknown key"};
  }
}

// The config file's keys are the flags' hyphenated names at every level
// (`dc-u-ripple`, `tau-ms`). The old spellings with underscores are taken
// too: the key is renamed, and `old` names it for a warning.
YAML::Node hyphenate(const YAML::Node& n, const std::string& where, std::vector<std::string>& old) {
  if (n.IsSequence()) {
    YAML::Node out(YAML::NodeType::Sequence);
    for (std::size_t i = 0; i < n.size(); ++i) out.push_back(hyphenate(n[i], where + "[" + std::to_string(i) + "]", old));
    return out;
  }
  if (!n.IsMap()) return n;
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& kv : n) {
    std::string k = key_name(kv.first, where.empty() ? "the file" : where);
    if (k.find('_') != std::string::npos) {
      const std::string was = k;
      std::replace(k.begin(), k.end(), '_', '-');
      old.push_back((where.empty() ? "" : where + ".") + was + ": the old spelling of " + k);
    }
    if (const YAML::Node& seen = out; seen[k]) throw ConfigError{(where.empty() ? "" : where + ".") + k + ": given twice"};
    out[k] = hyphenate(kv.second, where.empty() ? k : where + "." + k, old);
  }
  return out;
}

// A YAML list of mappings with the given keys; fill(item, "key[i]") makes one element.
template <typename Fill>
auto yaml_list(const YAML::Node& n, const std::string& key, std::initializer_list<const char*> keys, Fill fill) {
  if (!n.IsSequence()) {
    std::string shape;
    for (const char* k : keys) shape += (shape.empty() ? "" : ", ") + std::string(k);
    throw ConfigError{key + ": expected a list of {" + shape + "}"};
  }
  std::vector<decltype(fill(n, key))> out;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const std::string k = key + "[" + std::to_string(i) + "]";
    check_keys(n[i], k, keys);
    out.push_back(fill(n[i], k));
  }
  return out;
}

std::vector<acquire::Harmonic> harmonics(const YAML::Node& n, const std::string& key) {
  return yaml_list(n, key, {"order", "percent", "phase-deg"}, [](const YAML::Node& m, const std::string& k) {
    acquire::Harmonic h;
    h.order = static_cast<int>(num(m["order"], k + ".order"));
    if (h.order < 2 || h.order > 63) throw ConfigError{k + ".order: must be 2..63"};
    if (m["percent"]) h.percent = num(m["percent"], k + ".percent");
    if (m["phase-deg"]) h.phase_deg = num(m["phase-deg"], k + ".phase-deg");
    return h;
  });
}

std::vector<acquire::Tone> tones(const YAML::Node& n, const std::string& key) {
  return yaml_list(n, key, {"f-hz", "amplitude", "phase-deg"}, [](const YAML::Node& m, const std::string& k) {
    acquire::Tone t;
    if (m["f-hz"]) t.f_hz = num(m["f-hz"], k + ".f-hz");
    if (m["amplitude"]) t.amplitude = num(m["amplitude"], k + ".amplitude");
    if (m["phase-deg"]) t.phase_deg = num(m["phase-deg"], k + ".phase-deg");
    if (!(t.f_hz > 0 && t.f_hz < 1e9)) throw ConfigError{k + ".f-hz: must be in (0, 1e9)"};
    return t;
  });
}

void apply_sim_yaml(const YAML::Node& n, acquire::SimConfig& s) {
  check_keys(n, "sim", {"frequency-hz", "freq-end-hz", "freq-ramp-s", "phases", "counter-clockwise", "u-harmonics",
                        "i-harmonics", "u-offset-v", "i-offset-a", "u-noise-v", "i-noise-a", "un-rms-v",
                        "dropout-start-s", "dropout-s", "seed", "dc-voltage-v", "dc-current-a", "dc-u-ripple",
                        "dc-i-ripple", "dc-i-response"});
  auto set = [&](const char* k, double& v) {
    if (n[k]) v = num(n[k], std::string("sim.") + k);
  };
  set("frequency-hz", s.frequency_hz);
  set("freq-end-hz", s.freq_end_hz);
  set("freq-ramp-s", s.freq_ramp_s);
  set("u-offset-v", s.u_offset_v);
  set("i-offset-a", s.i_offset_a);
  set("u-noise-v", s.u_noise_v);
  set("i-noise-a", s.i_noise_a);
  set("un-rms-v", s.un_rms_v);
  set("dropout-start-s", s.dropout_start_s);
  set("dropout-s", s.dropout_s);
  set("dc-voltage-v", s.dc_voltage_v);
  set("dc-current-a", s.dc_current_a);
  if (s.frequency_hz <= 0 || s.frequency_hz > 1000) throw ConfigError{"sim.frequency-hz: must be in (0, 1000]"};
  if (n["seed"]) s.seed = static_cast<std::uint64_t>(num(n["seed"], "sim.seed"));
  if (n["counter-clockwise"]) s.counter_clockwise = boolean(n["counter-clockwise"], "sim.counter-clockwise");
  if (n["u-harmonics"]) s.u_harmonics = harmonics(n["u-harmonics"], "sim.u-harmonics");
  if (n["i-harmonics"]) s.i_harmonics = harmonics(n["i-harmonics"], "sim.i-harmonics");
  if (n["dc-u-ripple"]) s.dc_u_ripple = tones(n["dc-u-ripple"], "sim.dc-u-ripple");
  if (n["dc-i-ripple"]) s.dc_i_ripple = tones(n["dc-i-ripple"], "sim.dc-i-ripple");
  if (const YAML::Node r = n["dc-i-response"]) {
    check_keys(r, "sim.dc-i-response", {"order", "tau-ms", "damping"});
    if (r["order"]) s.dc_i_response.order = static_cast<int>(num(r["order"], "sim.dc-i-response.order"));
    if (r["tau-ms"]) s.dc_i_response.tau_ms = num(r["tau-ms"], "sim.dc-i-response.tau-ms");
    if (r["damping"]) s.dc_i_response.damping = num(r["damping"], "sim.dc-i-response.damping");
    if (s.dc_i_response.order < 0 || s.dc_i_response.order > 2) throw ConfigError{"sim.dc-i-response.order: 0, 1 or 2"};
    if (!(s.dc_i_response.tau_ms >= 0.01 && s.dc_i_response.tau_ms <= 1e5))
      throw ConfigError{"sim.dc-i-response.tau-ms: must be in [0.01, 1e5]"};
    if (!(s.dc_i_response.damping > 0 && s.dc_i_response.damping <= 10))
      throw ConfigError{"sim.dc-i-response.damping: must be in (0, 10]"};
  }
  if (const YAML::Node p = n["phases"]) {
    // One mapping for all phases, or a list of up to three.
    auto one = [&](const YAML::Node& m, const std::string& k, acquire::SimPhase& ph) {
      check_keys(m, k, {"urms-v", "irms-a", "phi-deg"});
      if (m["urms-v"]) ph.urms_v = num(m["urms-v"], k + ".urms-v");
      if (m["irms-a"]) ph.irms_a = num(m["irms-a"], k + ".irms-a");
      if (m["phi-deg"]) ph.phi_deg = num(m["phi-deg"], k + ".phi-deg");
    };
    if (p.IsMap()) {
      for (auto& ph : s.phases) one(p, "sim.phases", ph);
    } else if (p.IsSequence() && p.size() <= 3) {
      for (std::size_t i = 0; i < p.size(); ++i) one(p[i], "sim.phases[" + std::to_string(i) + "]", s.phases[i]);
    } else {
      throw ConfigError{"sim.phases: expected a mapping or a list of up to 3"};
    }
  }
}

void apply_calibration_yaml(const YAML::Node& n, pipeline::ProcessorConfig& pc, std::optional<pipeline::ChannelCal>& dc_u,
                            std::optional<pipeline::ChannelCal>& dc_i, const Config& cfg) {
  static constexpr const char* kRoles[8] = {"U1", "U2", "U3", "UN", "I1", "I2", "I3", "IN"};
  if (!n.IsMap()) throw ConfigError{"calibration: expected a mapping of channels (U1..U3, UN, I1..I3, IN)"};
  for (const auto& kv : n) {
    const std::string ch = key_name(kv.first, "calibration");
    // U and I: the DC channels, kept apart (on AC3N_DC they are the car side's, U1 and I1 the grid's).
    int role = ch == "U" ? 0 : ch == "I" ? 4 : -1;
    for (int r = 0; r < 8; ++r)
      if (ch == kRoles[r]) role = r;
    if (role < 0) throw ConfigError{"calibration." + ch + ": unknown channel (U1..U3, UN, I1..I3, IN; U, I for DC)"};
    const std::string k = "calibration." + ch;
    check_keys(kv.second, k, {"gain", "offset", "delay-us"});
    std::optional<pipeline::ChannelCal>* dc = ch == "U" ? &dc_u : ch == "I" ? &dc_i : nullptr;
    if (dc != nullptr) dc->emplace();
    pipeline::ChannelCal& c = dc != nullptr ? **dc : pc.cal[static_cast<std::size_t>(role)];
    if (kv.second["gain"]) {
      c.gain = num(kv.second["gain"], k + ".gain");
      if (!(std::fabs(c.gain) >= 1 / cfg.cal_gain_max && std::fabs(c.gain) <= cfg.cal_gain_max))
        throw ConfigError{fmt::format("{}.gain: {} is outside +-[1/{}, {}] (--cal-gain-max)", k, c.gain, cfg.cal_gain_max,
                                      cfg.cal_gain_max)};
    }
    if (kv.second["offset"]) {
      c.offset = num(kv.second["offset"], k + ".offset");
      const double fs = role == 3 || role < 3 ? cfg.full_scale_v : cfg.full_scale_a;
      if (std::fabs(c.offset) > fs)
        throw ConfigError{fmt::format("{}.offset: {} is beyond full scale {}", k, c.offset, fs)};
    }
    if (kv.second["delay-us"]) {
      c.delay_us = num(kv.second["delay-us"], k + ".delay-us");
      if (c.delay_us < 0) throw ConfigError{k + ".delay-us: must be >= 0"};
    }
  }
}

void build_app(CLI::App& app, Config& c, std::string& config_file) {
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", version_line("wattpipe"));
  app.add_flag("--software-id", c.software_id, "print the legal part's name, version and SHA-256, and the files it covers, then exit (docs/legal.md)");
  app.add_option("--config", config_file, "YAML file; keys are the flag names without '--'");
  app.add_option("--module-id", c.module_id, "EVerest module id: topics are everest_api/1/powermeter/{module-id}/...")->capture_default_str();
  app.add_option("--meter-serial", c.meter_serial, "meter serial: powermeter_values.meter_id and OCMF MS")->capture_default_str();
  app.add_option("--broker", c.broker, "MQTT broker HOST:PORT")->capture_default_str();
  app.add_option("--mqtt-username", c.mqtt_username, "MQTT user name");
  app.add_option("--mqtt-password-file", c.mqtt_password_file, "file holding the MQTT password");
  app.add_option("--mqtt-cafile", c.mqtt_cafile, "CA certificate (PEM): enables TLS");
  app.add_option("--mqtt-certfile", c.mqtt_certfile, "client certificate (PEM) for TLS");
  app.add_option("--mqtt-keyfile", c.mqtt_keyfile, "client key (PEM) for TLS");
  app.add_option("--mqtt-client-id", c.mqtt_client_id, "MQTT client id (default wattpipe-<module-id>-<pid>)");
  app.add_option("--mqtt-prefix", c.mqtt_prefix, "prefix in front of every topic (brokers shared by chargers)");
  app.add_option("--mqtt-keepalive-s", c.mqtt_keepalive_s, "MQTT keepalive")->check(CLI::Range(5, 3600))->capture_default_str();
  app.add_option("--mqtt-qos", c.mqtt_qos, "QoS of powermeter_values")->check(CLI::Range(0, 2))->capture_default_str();
  app.add_option("--source", c.source, "sim | zmq:ENDPOINT | zmq-pull:ENDPOINT | replay:FILE | comtrade:FILE.cfg|FILE.cff")->capture_default_str();
  app.add_option("--channel-map", c.channel_map, "comtrade: which analog channels feed U1..U3,UN,I1..I3,IN (or U,I for DC): U1=NAME_OR_INDEX,...; default: by unit");
  app.add_option("--point", c.point, "a stream of two measuring points (AC3N_DC: a charger's input and output): measure only 'grid' (AC3N) or 'car' (DC)");
  app.add_option("--points", c.points_arg, "a stream of two measuring points: measure these, each its own EVerest module (grid,car; the simulator's: all of its own)");
  app.add_option("--grid-module-id", c.grid_module_id, "the grid side's EVerest module id when both points are measured (default {module-id}_grid)");
  app.add_option("--efficiency-bin-kw", c.efficiency_bin_kw, "two points (--point car): the efficiency map's bins of output power")->check(CLI::Range(0.001, 1e6))->capture_default_str();
  app.add_option("--sim-profile", c.sim_profile, "simulator profile: ac3, ac1, dc, dc-session")->capture_default_str();
  app.add_option("--sample-rate", c.sample_rate, "simulator samples/s per channel")->check(CLI::Range(100.0, 1e8))->capture_default_str();
  app.add_flag("--max-rate", c.max_rate, "simulator/replay as fast as the pipeline takes them (benchmarks)");
  app.add_option("--sim-session-s", c.sim_session_s, "length of the dc-session profile")->check(CLI::Range(1.0, 1e6))->capture_default_str();
  app.add_flag("--replay-loop", c.replay_loop, "replay: start again at the end of the file");
  app.add_option("--window-cycles", c.processor.window_cycles, "AC window in whole cycles")->check(CLI::Range(1, 3000))->capture_default_str();
  app.add_option("--window-ms", c.processor.window_ms, "DC window length")->check(CLI::Range(0.05, 600000.0))->capture_default_str();
  app.add_option("--nominal-hz", c.processor.nominal_hz, "nominal grid frequency (fallback timing)")->check(CLI::Range(10.0, 1000.0))->capture_default_str();
  app.add_option("--min-voltage", c.processor.min_voltage_v, "U1 RMS below which there is no zero crossing to lock on")->check(CLI::Range(0.001, 1e6))->capture_default_str();
  app.add_option("--analysis", c.analysis, "per-window analysis on the processing thread (ripple, harmonics, THD, unbalance, steps): on or off")->check(CLI::IsMember({"on", "off"}))->capture_default_str();
  app.add_option("--ripple-bands-hz", c.ripple_bands_hz, "DC ripple bands, LO-HI Hz, comma separated (at most 8)")->capture_default_str();
  app.add_option("--step-threshold-a", c.processor.analysis.step_threshold_a, "a current level change larger than this is a step")->check(CLI::Range(1e-6, 1e6))->capture_default_str();
  app.add_option("--step-band-percent", c.processor.analysis.step_band_percent, "settling band around a level, % of the step")->check(CLI::Range(0.01, 50.0))->capture_default_str();
  app.add_option("--step-hold-ms", c.processor.analysis.step_hold_ms, "a new level must hold this long to end a step")->check(CLI::Range(0.1, 10000.0))->capture_default_str();
  app.add_option("--step-max-s", c.processor.analysis.step_max_s, "a move that has not settled after this long is a drift, not a step")->check(CLI::Range(0.01, 60.0))->capture_default_str();
  app.add_option("--full-scale-v", c.full_scale_v, "voltage full scale: a sample beyond it refuses its block")->check(CLI::Range(1e-3, 1e7))->capture_default_str();
  app.add_option("--full-scale-a", c.full_scale_a, "current full scale: a sample beyond it refuses its block")->check(CLI::Range(1e-3, 1e6))->capture_default_str();
  app.add_option("--cal-gain-max", c.cal_gain_max, "calibration gains must lie in [1/this, this] (CT ratios)")->check(CLI::Range(1.0, 1e7))->capture_default_str();
  app.add_option("--source-timeout-ms", c.source_timeout_ms, "no valid block this long: the source is stalled, values and communication_check stop")->check(CLI::Range(10, 3600000))->capture_default_str();
  app.add_option("--clock-tolerance-ms", c.clock_tolerance_ms, "block t0 further than this from the wall clock or the previous block is replaced by the receive time")->check(CLI::Range(1, 86400000))->capture_default_str();
  app.add_option("--publish-interval-ms", c.publish_interval_ms, "powermeter_values throttle")->check(CLI::Range(1, 3600000))->capture_default_str();
  app.add_option("--communication-check-interval-ms", c.communication_check_interval_ms, "m2e/communication_check period; 0: off")->check(CLI::Range(0, 3600000))->capture_default_str();
  app.add_option("--heartbeat-timeout-ms", c.heartbeat_timeout_ms, "EVerest is gone after this long without e2m/heartbeat")->check(CLI::Range(1, 3600000))->capture_default_str();
  app.add_option("--public-key-interval-ms", c.public_key_interval_ms, "m2e/public_key_ocmf period")->check(CLI::Range(100, 3600000))->capture_default_str();
  app.add_option("--state-dir", c.state_dir, "energy registers, transaction journal, OCMF key; 'none' disables")->capture_default_str();
  app.add_flag("--state-recover", c.state_recover, "start even when the state is damaged, from the best surviving value (logged, journalled)");
  app.add_option("--ocmf-key", c.ocmf_key, "OCMF signing key (PEM, EC P-256); default: generated in the state dir");
  app.add_option("--meter-vendor", c.meter_vendor, "OCMF MV")->capture_default_str();
  app.add_option("--meter-model", c.meter_model, "OCMF MM")->capture_default_str();
  app.add_option("--meter-firmware", c.meter_firmware, "no longer used: OCMF MF carries the legal part's software id");
  app.add_flag("--ocmf-export-readings", c.ocmf_export_readings, "OCMF: add export register readings (OBIS 2.8.0)");
  app.add_option("--transaction-min-s", c.transaction_min_s, "start reply: transaction_min_stop_time = start + this")->check(CLI::Range(0.0, 1e7));
  app.add_option("--transaction-max-s", c.transaction_max_s, "start reply: transaction_max_stop_time = start + this")->check(CLI::Range(0.0, 1e7));
  app.add_option("--log", c.log, "every window as JSON Lines");
  app.add_option("--log-max-mb", c.log_max_mb, "rotate --log/--log-raw files at this size; 0: never")->check(CLI::Range(0.0, 1e6));
  app.add_option("--log-keep", c.log_keep, "keep at most this many rotated files per log, removing the oldest; 0: all")->check(CLI::Range(0, 1000000));
  app.add_option("--log-max-total-mb", c.log_max_total_mb, "rotated files of a log take at most this much, the oldest removed first; 0: no limit")->check(CLI::Range(0.0, 1e9));
  app.add_option("--log-raw", c.log_raw, "every raw block as WPRB v1 (replayable)");
  app.add_option("--log-queue", c.log_queue, "windows the log thread may fall behind by (3.8 KiB of memory each)")->check(CLI::Range(2, 1 << 22))->capture_default_str();
  app.add_option("--zmq-pub", c.zmq_pub, "ZeroMQ PUB endpoint for window records");
  app.add_flag("--zmq-raw", c.zmq_raw, "also publish raw blocks on --zmq-pub");
  app.add_option("--store", c.store, "every window, step and transaction into PostgreSQL: a libpq connection string, postgresql://USER@HOST:PORT/DB (docs/store.md)");
  app.add_option("--store-spool-dir", c.store_spool_dir, "what the database has not taken yet waits here (default: {state-dir}/store-spool)");
  app.add_option("--store-spool-max-mb", c.store_spool_max_mb, "the spool takes at most this much, dropping spectra, then windows outside transactions, oldest first; 0: no limit")->check(CLI::Range(0.0, 1e9))->capture_default_str();
  app.add_option("--store-batch-ms", c.store_batch_ms, "rows go to the database in one COPY this often")->check(CLI::Range(1, 60000))->capture_default_str();
  app.add_option("--store-queue", c.store_queue, "windows the store's thread may fall behind by (3.8 KiB of memory each)")->check(CLI::Range(2, 1 << 22))->capture_default_str();
  app.add_option("--http", c.http, "serve the live page at HOST:PORT (docs/web.md); port 0: a free one; off by default");
  app.add_option("--http-auth-file", c.http_auth_file, "the live page asks for a user in this htdigest file (realm wattpipe)");
  app.add_option("--http-cert", c.http_cert, "the live page over TLS: certificate chain (PEM), with --http-key");
  app.add_option("--http-key", c.http_key, "the live page over TLS: private key (PEM), with --http-cert");
  app.add_option("--scope-ms", c.scope_ms, "time shown by the live page's scope")->check(CLI::Range(0.1, 10000.0))->capture_default_str();
  app.add_flag("--stamp-messages", c.stamp_messages,
               "add wattpipe_closed_ns (steady clock of the window close) to powermeter_values, for latency benchmarks");
  app.add_option("--duration", c.duration, "stop cleanly after this many seconds")->check(CLI::Range(0.0, 1e9));
  app.add_option("--stats-json", c.stats_json, "write final counters as one JSON object to this file at exit");
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error")->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}))->capture_default_str();
  app.add_option("--ring-blocks", c.ring_blocks, "block ring capacity")->check(CLI::Range(8, 1 << 16))->capture_default_str();
  app.add_option("--acq-cpu", c.acq_rt.cpu, "pin the acquisition thread to this CPU");
  app.add_option("--proc-cpu", c.proc_rt.cpu, "pin the processing thread to this CPU");
  app.add_option("--rt-priority", c.acq_rt.fifo_priority, "SCHED_FIFO priority for acquisition and processing")->check(CLI::Range(0, 99));
  app.add_flag("--mlock", c.acq_rt.mlock, "mlockall() the process");
}

// A flag takes no value on the command line (true or false in the YAML file).
bool is_flag(const CLI::Option& o) { return o.get_items_expected_max() == 0; }

std::vector<std::string> yaml_to_args(const YAML::Node& root, const CLI::App& app, std::optional<YAML::Node>& sim,
                                      std::optional<YAML::Node>& cal) {
  std::vector<std::string> args;
  if (!root.IsMap()) throw ConfigError{"the file must hold a mapping of keys to values"};
  for (const auto& kv : root) {
    const std::string key = key_name(kv.first, "the file");
    if (key == "sim") {
      sim = kv.second;
      continue;
    }
    if (key == "calibration") {
      cal = kv.second;
      continue;
    }
    if (key == "config") throw ConfigError{"config: a config file cannot name another"};
    const CLI::Option* opt = app.get_option_no_throw("--" + key);
    if (opt == nullptr || key == "help" || key == "version" || key == "print-config") throw ConfigError{key + ": unknown key"};
    if (!kv.second.IsScalar()) throw ConfigError{key + ": expected a single value"};
    const std::string v = kv.second.as<std::string>();
    if (is_flag(*opt)) {
      bool b;
      if (!YAML::convert<bool>::decode(kv.second, b)) throw ConfigError{key + ": expected true or false"};
      args.push_back("--" + key + "=" + (b ? "true" : "false"));
    } else {
      args.push_back("--" + key);
      args.push_back(v);
    }
  }
  return args;
}

// "0-10,10-5000": [lo, hi) pairs in Hz, lo < hi.
std::vector<std::pair<double, double>> parse_bands(const std::string& text) {
  std::vector<std::pair<double, double>> out;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    const std::size_t dash = item.find('-');
    double lo = 0, hi = 0;
    auto num = [&](std::string_view v, double& x) {
      const auto r = std::from_chars(v.data(), v.data() + v.size(), x);
      return r.ec == std::errc{} && r.ptr == v.data() + v.size() && std::isfinite(x);
    };
    if (dash == std::string::npos || !num(std::string_view(item).substr(0, dash), lo) ||
        !num(std::string_view(item).substr(dash + 1), hi) || lo < 0 || hi <= lo)
      throw ConfigError{"--ripple-bands-hz: expected LO-HI with 0 <= LO < HI, got '" + item + "'"};
    out.emplace_back(lo, hi);
    at = comma + 1;
  }
  if (out.size() > pipeline::kMaxRippleBands)
    throw ConfigError{fmt::format("--ripple-bands-hz: at most {} bands", pipeline::kMaxRippleBands)};
  return out;
}

void validate(Config& c) {
  const auto colon = c.broker.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      std::from_chars(c.broker.data() + colon + 1, c.broker.data() + c.broker.size(), port).ec != std::errc{} ||
      port < 1 || port > 65535 || std::to_string(port) != c.broker.substr(colon + 1))
    throw ConfigError{"--broker: expected HOST:PORT, got '" + c.broker + "'"};
  c.broker_host = c.broker.substr(0, colon);
  if (c.broker_host.size() > 2 && c.broker_host.front() == '[' && c.broker_host.back() == ']')
    c.broker_host = c.broker_host.substr(1, c.broker_host.size() - 2);
  c.broker_port = port;
  const auto source = split_source(c.source);
  if (!source)
    throw ConfigError{"--source: expected sim, zmq:ENDPOINT, zmq-pull:ENDPOINT, replay:FILE or comtrade:FILE, got '" + c.source + "'"};
  if (!c.point.empty() && !c.points_arg.empty()) throw ConfigError{"--point and --points: give one of them"};
  c.points.clear();
  if (!c.point.empty()) c.points.push_back(c.point);
  for (std::size_t at = 0; !c.points_arg.empty() && at <= c.points_arg.size();) {
    const std::size_t comma = std::min(c.points_arg.find(',', at), c.points_arg.size());
    c.points.push_back(c.points_arg.substr(at, comma - at));
    at = comma + 1;
  }
  for (std::size_t k = 0; k < c.points.size(); ++k) {
    const std::string& n = c.points[k];
    if (!acquire::known_point(n))
      throw ConfigError{fmt::format("--point{}: '{}' is not a measuring point (grid or car)", c.point.empty() ? "s" : "", n)};
    if (std::find(c.points.begin(), c.points.begin() + std::ptrdiff_t(k), n) != c.points.begin() + std::ptrdiff_t(k))
      throw ConfigError{"--points: '" + n + "' twice"};
  }
  if (!c.channel_map.empty() && source->kind != SourceKind::comtrade)
    throw ConfigError{"--channel-map: only for --source comtrade:FILE"};
  if (c.module_id.empty() || c.module_id.find_first_of("+#/") != std::string::npos)
    throw ConfigError{"--module-id: must be non-empty without '+', '#' or '/'"};
  if (c.grid_module_id.find_first_of("+#/") != std::string::npos)
    throw ConfigError{"--grid-module-id: must be without '+', '#' or '/'"};
  if (!c.grid_module_id.empty() && c.grid_module_id == c.module_id)
    throw ConfigError{"--grid-module-id: the same as --module-id; each point is its own module"};
  if (c.mqtt_prefix.find_first_of("+#") != std::string::npos) throw ConfigError{"--mqtt-prefix: must not hold '+' or '#'"};
  if (c.state_dir.empty()) throw ConfigError{"--state-dir: empty (use 'none' to disable persistence)"};
  if (!c.store.empty() && c.store_spool_dir.empty() && c.state_dir == "none")
    throw ConfigError{"--store: with --state-dir none, name a --store-spool-dir"};
  if ((!c.mqtt_certfile.empty() || !c.mqtt_keyfile.empty()) && c.mqtt_cafile.empty())
    throw ConfigError{"--mqtt-certfile/--mqtt-keyfile: need --mqtt-cafile (TLS)"};
  if (c.mqtt_certfile.empty() != c.mqtt_keyfile.empty())
    throw ConfigError{"--mqtt-certfile and --mqtt-keyfile go together"};
  if (c.transaction_max_s > 0 && c.transaction_min_s > c.transaction_max_s)
    throw ConfigError{"--transaction-min-s: larger than --transaction-max-s"};
  if (!c.meter_firmware.empty())
    std::cerr << "wattpipe: warning: --meter-firmware is no longer used: OCMF MF carries the legal part's software id ("
              << legal::software_id_firmware() << ")\n";
  c.processor.full_scale_v = c.full_scale_v;
  c.processor.full_scale_a = c.full_scale_a;
  c.processor.analysis.enabled = c.analysis == "on";
  c.processor.efficiency_bin_w = c.efficiency_bin_kw * 1e3;
  c.processor.analysis.ripple_bands_hz = parse_bands(c.ripple_bands_hz);
  c.limits.full_scale_v = c.full_scale_v;
  c.limits.full_scale_a = c.full_scale_a;
  c.limits.source_timeout_ns = std::int64_t{c.source_timeout_ms} * 1'000'000;
  c.limits.clock_tolerance_ns = std::int64_t{c.clock_tolerance_ms} * 1'000'000;
}

// The simulator's signal must be one a meter can have: within full scale.
void check_sim_plausible(const Config& c) {
  if (c.source != "sim") return;
  const acquire::SimConfig& s = c.sim;
  auto peak_ok = [](double rms, double offset, double noise, double harmonics_pct, double fs) {
    const double peak = std::fabs(offset) + std::sqrt(2.0) * std::fabs(rms) * (1 + harmonics_pct / 100) + 6 * std::fabs(noise);
    return std::isfinite(peak) && peak <= fs;
  };
  double hu = 0, hi = 0;
  for (const auto& h : s.u_harmonics) hu += std::fabs(h.percent);
  for (const auto& h : s.i_harmonics) hi += std::fabs(h.percent);
  const acquire::LayoutInfo li = acquire::layout_info(s.layout);
  if (li.dc) {
    double vmax = std::fabs(s.dc_voltage_v), imax = std::fabs(s.dc_current_a);
    for (const auto& [t, v] : s.dc_voltage_ramp.points) vmax = std::max(vmax, std::fabs(v));
    for (const auto& [t, v] : s.dc_current_ramp.points) imax = std::max(imax, std::fabs(v));
    // Ripple adds its peaks; a second-order response overshoots by less than the whole swing.
    for (const auto& x : s.dc_u_ripple) vmax += std::fabs(x.amplitude);
    if (s.dc_i_response.order == 2) imax *= 2;
    for (const auto& x : s.dc_i_ripple) imax += std::fabs(x.amplitude);
    if (!peak_ok(0, vmax + std::fabs(s.u_offset_v), s.u_noise_v, 0, c.full_scale_v))
      throw ConfigError{fmt::format("sim: DC voltage beyond full scale {} V (--full-scale-v)", c.full_scale_v)};
    if (!peak_ok(0, imax + std::fabs(s.i_offset_a), s.i_noise_a, 0, c.full_scale_a))
      throw ConfigError{fmt::format("sim: DC current beyond full scale {} A (--full-scale-a)", c.full_scale_a)};
    return;
  }
  for (std::uint32_t k = 0; k < li.phases; ++k) {
    if (!peak_ok(s.phases[k].urms_v, s.u_offset_v, s.u_noise_v, hu, c.full_scale_v))
      throw ConfigError{fmt::format("sim.phases[{}].urms-v: peak beyond full scale {} V (--full-scale-v)", k, c.full_scale_v)};
    if (!peak_ok(s.phases[k].irms_a, s.i_offset_a, s.i_noise_a, hi, c.full_scale_a))
      throw ConfigError{fmt::format("sim.phases[{}].irms-a: peak beyond full scale {} A (--full-scale-a)", k, c.full_scale_a)};
  }
  if (!peak_ok(s.un_rms_v, 0, 0, 0, c.full_scale_v)) throw ConfigError{"sim.un-rms-v: beyond full scale"};
}

// "--config FILE" or "--config=FILE": found before the flags are parsed,
// since the file's values go in first and the flags override them.
std::string config_arg(int argc, const char* const* argv) {
  std::string file;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--config" && i + 1 < argc) file = argv[i + 1];
    if (a.starts_with("--config=")) file = a.substr(9);
  }
  return file;
}

// Runs f; what it throws comes out as one ConfigError that names the config
// file, if there is one (once). A YAML construct the checks did not foresee
// is still a clear error.
template <typename F>
void in_config_file(const std::string& file, F&& f) {
  if (file.empty()) return f();
  try {
    f();
  } catch (const ConfigError& e) {
    throw ConfigError{"config " + file + ": " + e.message};
  } catch (const CLI::ParseError& e) {
    throw ConfigError{"config " + file + ": " + e.what()};
  } catch (const YAML::Exception& e) {
    throw ConfigError{"config " + file + ": " + e.what()};
  }
}

// The file's keys as flags, parsed into the app before the command line;
// its `sim:` and `calibration:` sections are kept for later.
void apply_config_file(const std::string& file, CLI::App& app, const char* argv0, std::optional<YAML::Node>& sim_yaml,
                       std::optional<YAML::Node>& cal_yaml) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::BadFile&) {
    throw ConfigError{"--config: cannot read '" + file + "'"};
  } catch (const YAML::Exception& e) {
    throw ConfigError{"--config " + file + ": " + e.what()};
  }
  if (root.IsNull()) return;
  in_config_file(file, [&] {
    std::vector<std::string> old;
    root = hyphenate(root, "", old);
    for (const auto& o : old) std::cerr << "wattpipe: warning: config " << file << ": " << o << "\n";
    const std::vector<std::string> args = yaml_to_args(root, app, sim_yaml, cal_yaml);
    std::vector<const char*> av{argv0};
    for (const auto& a : args) av.push_back(a.c_str());
    app.parse(static_cast<int>(av.size()), av.data());
  });
  app.clear();
}

}  // namespace

ParseOutcome parse_config(int argc, const char* const* argv, Config& c, std::string& error) {
  CLI::App app{"wattpipe: a software powermeter for EV charging, serving EVerest's powermeter API over MQTT"};
  std::string config_file;
  build_app(app, c, config_file);
  bool print_config = false;
  app.add_flag("--print-config", print_config,
               "print a YAML config with every key commented out at its default (what /etc/wattpipe/wattpipe.yaml ships), and exit");
  config_file = config_arg(argc, argv);
  std::optional<YAML::Node> sim_yaml, cal_yaml;
  try {
    if (!config_file.empty()) apply_config_file(config_file, app, argv[0], sim_yaml, cal_yaml);
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      std::cout << app.help();
      return ParseOutcome::exit_ok;
    } catch (const CLI::CallForVersion&) {
      std::cout << version_line("wattpipe") << "\n";
      return ParseOutcome::exit_ok;
    } catch (const CLI::ParseError& e) {
      throw ConfigError{e.what()};
    }
    if (c.software_id) {
      // The running binary names the legal part it carries and each file's
      // hash: `sha256sum -c` on the lines below checks a source tree, and
      // `sha256sum` of them gives the id (docs/legal.md).
      std::cout << legal::software_id_text() << "\n" << legal::software_manifest();
      return ParseOutcome::exit_ok;
    }
    if (print_config) {
      std::cout << "# wattpipe configuration (--config FILE). Every key is a flag of `wattpipe --help`\n"
                   "# without its leading \"--\"; a flag given on the command line wins over the file.\n"
                   "# Each key below is commented out at its default: uncomment to change it.\n"
                   "# The simulator's signals (sim:) and the calibration (calibration:) are\n"
                   "# sections of their own: README, \"Configuration\".\n";
      for (CLI::Option* o : app.get_options()) {
        if (o->get_lnames().empty()) continue;
        const std::string key = o->get_lnames().front();
        if (key == "help" || key == "version" || key == "software-id" || key == "config" || key == "print-config")
          continue;
        o->capture_default_str();
        std::string def = o->get_default_str();
        if (def.empty()) def = is_flag(*o) ? "false" : "\"\"";
        std::cout << "\n# " << o->get_description() << "\n#" << key << ": " << def << "\n";
      }
      return ParseOutcome::exit_ok;
    }
    validate(c);
    if (const char* s = std::getenv("WATTPIPE_TEST_STALL_AFTER_FRAMES"))
      c.test_stall_after_frames = std::strtoull(s, nullptr, 10);
    if (c.source == "sim") {
      auto profile = acquire::sim_profile(c.sim_profile, c.sample_rate, c.sim_session_s);
      if (!profile)
        throw ConfigError{"--sim-profile: unknown profile '" + c.sim_profile + "' (" +
                          std::string(acquire::sim_profile_names()) + ")"};
      c.sim = *profile;
      // The simulator's points are known now: all of them unless some are named.
      const acquire::Points pts = acquire::points_of(c.sim.layout);
      if (pts.count > 1 && c.points.empty())
        for (std::uint32_t k = 0; k < pts.count; ++k) c.points.emplace_back(pts.part[k].name);
      if (pts.count == 1 && !c.points.empty())
        throw ConfigError{"--point" + std::string(c.point.empty() ? "s " : " ") + c.points[0] + ": --sim-profile " +
                          c.sim_profile + " has one measuring point"};
    }
    // The file's sections (no flags set them), then the simulator's signal
    // against full scale (both may set either).
    in_config_file(config_file, [&] {
      if (sim_yaml) apply_sim_yaml(*sim_yaml, c.sim);
      if (cal_yaml) apply_calibration_yaml(*cal_yaml, c.processor, c.cal_dc_u, c.cal_dc_i, c);
      check_sim_plausible(c);
    });
  } catch (const ConfigError& e) {
    error = e.message;
    return ParseOutcome::bad;
  } catch (const std::exception& e) {
    error = e.what();
    return ParseOutcome::bad;
  }
  return ParseOutcome::run;
}

std::string billing_point(const Config& c) {
  if (c.points.empty()) return {};
  return std::find(c.points.begin(), c.points.end(), "car") != c.points.end() ? "car" : c.points[0];
}

namespace {

// "run.jsonl" -> "run.grid.jsonl"; "run" -> "run.grid".
std::string with_point(const std::string& path, const std::string& name) {
  if (path.empty()) return path;
  const std::size_t slash = path.rfind('/'), dot = path.rfind('.');
  const bool ext = dot != std::string::npos && dot > 0 && (slash == std::string::npos || dot > slash + 1);
  return ext ? path.substr(0, dot) + "." + name + path.substr(dot) : path + "." + name;
}

}  // namespace

Config point_config(const Config& c, const std::string& name) {
  Config p = c;
  p.point = name;
  if (!c.store.empty() && p.store_spool_dir.empty()) p.store_spool_dir = c.state_dir + "/store-spool";
  // The DC channels' calibration is the car side's (or a DC stream's), never the grid's.
  auto cal = c.processor.cal;
  if (name == "car") cal = {};
  if (name != "grid") {
    if (c.cal_dc_u) cal[0] = *c.cal_dc_u;
    if (c.cal_dc_i) cal[4] = *c.cal_dc_i;
  }
  p.processor.cal = cal;
  if (name.empty() || name == billing_point(c)) return p;
  p.module_id = name == "grid" && !c.grid_module_id.empty() ? c.grid_module_id : c.module_id + "_" + name;
  if (c.state_dir != "none") p.state_dir = c.state_dir + "/" + name;
  if (!c.store.empty()) p.store_spool_dir = (c.store_spool_dir.empty() ? p.state_dir : c.store_spool_dir) +
                                            (c.store_spool_dir.empty() ? "/store-spool" : "/" + name);
  p.log = with_point(c.log, name);
  p.log_raw.clear();  // the billing point's raw log records the whole stream
  p.meter_serial = c.meter_serial + "-" + name;
  if (!c.mqtt_client_id.empty()) p.mqtt_client_id = c.mqtt_client_id + "-" + name;
  p.zmq_pub.clear();
  p.http.clear();
  p.stats_json.clear();
  return p;
}

}  // namespace wattpipe::publish

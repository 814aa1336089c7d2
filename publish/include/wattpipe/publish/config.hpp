// SPDX-License-Identifier: Apache-2.0
// The daemon's configuration: command-line flags (CLI11) and a YAML file
// (--config) with the same key names; flags override the file.
//
// Threading: parse on the main thread before any other starts.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wattpipe/acquire/acquisition.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/pipeline/processor.hpp"

namespace wattpipe::publish {

struct Config {
  // Identity and broker
  std::string module_id = "wattpipe";
  std::string meter_serial = "WATTPIPE-0001";  // powermeter_values.meter_id and OCMF MS
  std::string broker = "127.0.0.1:1883";
  std::string broker_host = "127.0.0.1";
  int broker_port = 1883;
  std::string mqtt_username, mqtt_password_file, mqtt_cafile, mqtt_certfile, mqtt_keyfile;
  std::string mqtt_client_id, mqtt_prefix;
  int mqtt_keepalive_s = 30;
  int mqtt_qos = 0;

  // Source
  std::string source = "sim";
  std::string channel_map;  // comtrade: U1=NAME_OR_INDEX,...
  // A stream of several measuring points (AC3N_DC): the ones this daemon
  // measures, each its own EVerest module (point_config). --point names one,
  // --points several; the simulator's are all of its own by default.
  std::string point, points_arg;
  std::vector<std::string> points;  // resolved: empty for a stream of one point
  std::string grid_module_id;       // the grid side's module (default {module-id}_grid)
  double efficiency_bin_kw = 10;  // the car side's efficiency map
  std::string sim_profile = "ac3";
  double sample_rate = 20000;
  bool max_rate = false;
  // The service watchdog's tests only: the processing thread stops after this
  // many frames (environment WATTPIPE_TEST_STALL_AFTER_FRAMES; 0: never).
  std::uint64_t test_stall_after_frames = 0;
  double sim_session_s = 120;
  bool replay_loop = false;
  acquire::SimConfig sim;  // resolved from the profile plus the YAML `sim:` section

  // Metrology
  pipeline::ProcessorConfig processor;
  // Calibration of the DC channels U and I, apart from U1 and I1: on a
  // stream of two points they are the car side's, the others the grid's.
  std::optional<pipeline::ChannelCal> cal_dc_u, cal_dc_i;
  // Analysis (processor.analysis is resolved from these)
  std::string analysis = "off";
  std::string ripple_bands_hz = "0-10,10-5000,5000-150000";

  // Plausibility: what the meter refuses at the door (see acquire::InputLimits)
  acquire::InputLimits limits;
  double full_scale_v = 1e6, full_scale_a = 1e5;
  double cal_gain_max = 1e4;  // |gain| in [1/max, max]: room for a CT or divider ratio
  int source_timeout_ms = 1000;
  int clock_tolerance_ms = 2000;

  // EVerest API
  int publish_interval_ms = 1000;
  int communication_check_interval_ms = 1000;
  int heartbeat_timeout_ms = 2000;
  int public_key_interval_ms = 10000;

  // State and OCMF
  std::string state_dir = "./wattpipe-state";  // "none": no persistence (benchmarks)
  bool state_recover = false;  // start from the best surviving value when the state is damaged
  std::string ocmf_key;
  std::string meter_vendor = "wattpipe", meter_model = "wattpipe-sw", meter_firmware;  // (firmware: unused, warned)
  bool software_id = false;  // --software-id: print it and exit
  bool ocmf_export_readings = false;
  double transaction_min_s = 0, transaction_max_s = 0;  // > 0: reported in start replies

  // Logging
  std::string log, log_raw, zmq_pub;
  bool zmq_raw = false;
  double log_max_mb = 0;  // 0: no rotation
  unsigned log_keep = 0;          // rotated files kept per log (0: all)
  double log_max_total_mb = 0;    // rotated files per log at most (0: no limit)
  int log_queue = 2048;   // windows the log thread may fall behind by (3.8 KiB each with their analysis)

  // The database store (docs/store.md)
  std::string store;             // libpq connection string; empty: off
  std::string store_spool_dir;   // default: {state-dir}/store-spool
  double store_spool_max_mb = 1024;
  int store_batch_ms = 200;
  int store_queue = 4096;        // windows the store may fall behind by

  // The live page (docs/web.md)
  std::string http, http_auth_file, http_cert, http_key;  // http: HOST:PORT, empty: off
  double scope_ms = 40;

  bool stamp_messages = false;  // hidden: wattpipe_closed_ns in powermeter_values

  // Run
  double duration = 0;
  std::string stats_json;
  std::string log_level = "info";
  int ring_blocks = 256;
  acquire::RealTimeConfig acq_rt, proc_rt;
};

enum class ParseOutcome { run, exit_ok, bad };

// The configuration of one measuring point of `c` (a name of c.points, or ""
// for a stream of one point): the billing point (the car side, or the only
// one) keeps the module id, state directory, logs, serial and page of `c`;
// another point gets its own: module {module-id}_{name} (the grid side:
// --grid-module-id), state {state-dir}/{name}, logs with .{name} before the
// extension, serial {serial}-{name}, no page or ZeroMQ output of its own.
// Each point's calibration is its own channels' (the car side: U and I).
Config point_config(const Config& c, const std::string& name);
// The point of c.points that bills (the car side), or the first.
[[nodiscard]] std::string billing_point(const Config& c);

// Parses argv (and the YAML file it names). `bad`: the message in `error`
// names the key; `exit_ok`: --help or --version was printed.
ParseOutcome parse_config(int argc, const char* const* argv, Config& cfg, std::string& error);

// --source: what kind, and what follows its prefix ("zmq:" ENDPOINT ...).
enum class SourceKind { sim, zmq_sub, zmq_pull, replay, comtrade };
struct SourceSpec {
  SourceKind kind = SourceKind::sim;
  std::string arg;
};
// nullopt when `source` names no source (or names one without its argument).
std::optional<SourceSpec> split_source(std::string_view source);

// Version string of this build.
const char* version() noexcept;
// "<tool> <version> (wattpipe-legal <v> sha256:<id>)": every tool's --version.
std::string version_line(std::string_view tool);

}  // namespace wattpipe::publish

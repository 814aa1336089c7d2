// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/daemon.hpp"

#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/acquire/comtrade.hpp"
#include "wattpipe/acquire/wprb_source.hpp"
#include "wattpipe/pipeline/processing.hpp"
#include "wattpipe/pipeline/state_store.hpp"
#include "wattpipe/pipeline/transaction_journal.hpp"
#include "wattpipe/publish/ocmf_transactions.hpp"
#include "wattpipe/publish/publisher.hpp"
#include "wattpipe/publish/service_notify.hpp"
#include "wattpipe/publish/web_server.hpp"
#include "wattpipe/publish/window_logger.hpp"

namespace wattpipe::publish {

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("wattpipe");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

namespace {

// Simulator blocks in real time: half the shorter of a window and the
// publish interval, between 1 ms and 50 ms. 1 kHz publishing keeps 1 ms
// blocks; at the defaults (200 ms windows, 1 s publishing) 50 ms blocks cut
// the wake-ups of every thread fifty-fold and delay nothing that is shown.
std::uint32_t sim_block_frames(const Config& c) {
  const bool dc = acquire::layout_info(c.sim.layout).dc;
  const double window_ms = dc ? c.processor.window_ms : 1000.0 * c.processor.window_cycles / c.processor.nominal_hz;
  const double block_ms = std::clamp(std::min(window_ms, double(c.publish_interval_ms)) / 2, 1.0, 50.0);
  return std::uint32_t(std::clamp<double>(std::round(c.sim.sample_rate_hz * block_ms / 1000), 1, acquire::kBlockFrames));
}

std::unique_ptr<acquire::Source> make_source(const Config& c) {
  if (c.source == "sim")
    return std::make_unique<acquire::SimSource>(c.sim, c.max_rate, c.max_rate ? 0 : sim_block_frames(c));
  if (c.source.rfind("zmq-pull:", 0) == 0)
    return std::make_unique<acquire::ZmqSource>(c.source.substr(9), acquire::ZmqMode::pull);
  if (c.source.rfind("zmq:", 0) == 0) return std::make_unique<acquire::ZmqSource>(c.source.substr(4), acquire::ZmqMode::sub);
  if (c.source.rfind("comtrade:", 0) == 0)
    return std::make_unique<acquire::comtrade::ComtradeSource>(c.source.substr(9), c.channel_map, c.max_rate);
  return std::make_unique<acquire::ReplaySource>(c.source.substr(7), c.max_rate, c.replay_loop);
}

std::string read_secret(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("--mqtt-password-file: cannot read '" + path + "'");
  std::string s;
  std::getline(f, s);
  return s;
}

struct OwnedFd {
  explicit OwnedFd(int f) : fd(f) {}
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int fd;
};

// Key/value pairs written as one flat JSON object, in order.
class StatsWriter {
 public:
  void add(std::string_view k, double v) {
    if (!std::isfinite(v)) v = 0;
    put(k, fmt::format("{}", v));
  }
  void add(std::string_view k, std::uint64_t v) { put(k, std::to_string(v)); }
  void add(std::string_view k, std::int64_t v) { put(k, std::to_string(v)); }
  void add(std::string_view k, bool v) { put(k, v ? "true" : "false"); }
  void add(std::string_view k, const std::string& v) {
    std::string e = "\"";
    for (char ch : v) {
      if (ch == '"' || ch == '\\') e += '\\';
      if (static_cast<unsigned char>(ch) < 0x20) {
        e += fmt::format("\\u{:04x}", ch);
        continue;
      }
      e += ch;
    }
    put(k, e + "\"");
  }
  std::string str() const { return "{" + body_ + "}\n"; }

 private:
  void put(std::string_view k, const std::string& v) {
    if (!body_.empty()) body_ += ",";
    body_ += fmt::format("\"{}\":{}", k, v);
  }
  std::string body_;
};

}  // namespace

Daemon::Daemon(Config cfg) : cfg_(std::move(cfg)) {}

// Damage anywhere in the state refuses the start (exit 1, naming the files
// and the best value found) unless --state-recover: then the best surviving
// value is used, the event journalled and logged at error level, and OCMF
// pagination skips far past anything that could have been handed out.
bool Daemon::check_state(pipeline::RegisterStore& store, const pipeline::RegisterStore::Recovered& rec,
                         pipeline::TransactionJournal& journal) {
  std::vector<std::string> damage = rec.damage;
  for (const auto& d : journal.damage()) damage.push_back(d);
  if (damage.empty()) return true;
  std::string list;
  for (const auto& d : damage) list += (list.empty() ? "" : "; ") + d;
  const std::string best =
      fmt::format("the best surviving value is record {}: import {:.6f} Wh, export {:.6f} Wh", rec.serial,
                  rec.registers.import_total.wh(), rec.registers.export_total.wh());
  if (!cfg_.state_recover) {
    spdlog::error("STATE DAMAGED in '{}': {}; {}. Refusing to start: keep a copy of the directory, then start with "
                  "--state-recover to continue from that value",
                  cfg_.state_dir, list, best);
    return false;
  }
  std::string err;
  // Margin: the registers' copy of the reservation may lag the journal by a block or two.
  const std::uint64_t floor = std::max(journal.highest_pagination_seen() + 1, rec.pg_reserved) +
                              64 * pipeline::TransactionJournal::kPaginationBlock;
  const std::string event = pipeline::write_json(512 + list.size() * 2, [&](pipeline::JsonWriter& w) {
    w.begin_object();
    w.field("op", "recover");
    w.field("damage", list);
    w.field_uint("serial", rec.serial);
    w.field_int("import_uwh", rec.registers.import_total.uwh);
    w.field_int("export_uwh", rec.registers.export_total.uwh);
    w.field_uint("pg_from", floor);
    w.field_int("utc", acquire::utc_now_ns());
    w.end_object();
  });
  if (!store.make_ready(err) || !journal.skip_to(floor, err) || !journal.note(event, err)) {
    spdlog::error("--state-recover: cannot record the recovery: {}", err);
    return false;
  }
  spdlog::error("STATE DAMAGED in '{}': {}; RECOVERING (--state-recover): {}; OCMF pagination continues at T{}",
                cfg_.state_dir, list, best, floor);
  return true;
}
Daemon::~Daemon() = default;

int Daemon::run(bool handle_signals) {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);  // reopen the log files
  if (handle_signals) pthread_sigmask(SIG_BLOCK, &sigs, nullptr);  // every thread started below inherits it
  // The blocked signals are read from a signalfd, next to the main waker.
  const OwnedFd sig(handle_signals ? ::signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK) : -1);
  const int sig_fd = sig.fd;

  std::unique_ptr<acquire::Source> source;
  MqttOptions mo;
  try {
    source = make_source(cfg_);
    mo.host = cfg_.broker_host;
    mo.port = cfg_.broker_port;
    mo.client_id = cfg_.mqtt_client_id.empty() ? fmt::format("wattpipe-{}-{}", cfg_.module_id, ::getpid()) : cfg_.mqtt_client_id;
    mo.keepalive_s = cfg_.mqtt_keepalive_s;
    mo.username = cfg_.mqtt_username;
    if (!cfg_.mqtt_password_file.empty()) mo.password = read_secret(cfg_.mqtt_password_file);
    mo.cafile = cfg_.mqtt_cafile;
    mo.certfile = cfg_.mqtt_certfile;
    mo.keyfile = cfg_.mqtt_keyfile;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 2;
  }
  std::unique_ptr<MqttTransport> mqtt;
  try {
    mqtt = make_mosquitto_transport(mo);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 2;
  }

  // State: registers (restored before anything runs), transactions, OCMF key.
  const bool persist = cfg_.state_dir != "none";
  pipeline::StateDirLock lock;
  pipeline::RegisterStore store;
  pipeline::RegisterStore::Recovered recovered;
  pipeline::TransactionJournal journal;
  std::optional<pipeline::ocmf::Signer> signer;
  {
    std::string err;
    bool held = false;
    if (persist && !lock.lock(cfg_.state_dir, err, held)) {
      spdlog::error("--state-dir: {}", err);
      return held ? 2 : 1;
    }
    if (persist && !store.open(cfg_.state_dir, recovered, err)) {
      spdlog::error("--state-dir: {}", err);
      return 1;
    }
    pipeline::JournalExpect expect;
    expect.pagination_floor = recovered.pg_reserved;
    expect.entries = recovered.journal_entries;
    expect.must_exist = persist && !recovered.fresh;
    expect.write = recovered.damage.empty();
    if (!journal.open(persist ? cfg_.state_dir : std::string(), err, expect)) {
      spdlog::error("--state-dir: {}", err);
      return 1;
    }
    if (persist && !check_state(store, recovered, journal)) return 1;
    bool created = false;
    if (!cfg_.ocmf_key.empty()) {
      signer = pipeline::ocmf::Signer::load(cfg_.ocmf_key, err);
    } else if (persist) {
      signer = pipeline::ocmf::Signer::load_or_create(cfg_.state_dir + "/ocmf-key.pem", err, created);
    } else {
      signer = pipeline::ocmf::Signer::generate(err);
      spdlog::warn("no state dir: the OCMF key, registers and transactions last only as long as this run");
    }
    if (!signer) {
      spdlog::error("{}{}", cfg_.ocmf_key.empty() ? "" : "--ocmf-key: ", err);
      return cfg_.ocmf_key.empty() ? 1 : 2;
    }
    if (created) spdlog::info("OCMF: generated a new signing key in {}/ocmf-key.pem", cfg_.state_dir);
    if (persist)
      spdlog::info("state: registers restored from record {} (import {:.6f} Wh, export {:.6f} Wh){}; {} open "
                   "transaction(s)",
                   recovered.serial, recovered.registers.import_total.wh(), recovered.registers.export_total.wh(),
                   recovered.corrupt ? fmt::format("; {} corrupt record(s) skipped", recovered.corrupt) : "",
                   journal.open_transactions().size());
  }

  acquire::BlockRing ring(static_cast<std::size_t>(cfg_.ring_blocks));
  pipeline::TripleBuffer<pipeline::WindowRecord> latest;
  pipeline::TripleBuffer<pipeline::StateSnapshot> state;
  pipeline::Waker mqtt_waker, state_waker, proc_waker, saved_waker, space_waker;
  acquire::RealTimeConfig proc_rt = cfg_.proc_rt;
  proc_rt.fifo_priority = cfg_.acq_rt.fifo_priority;

  acquire::Acquisition acq(*source, ring, cfg_.acq_rt, cfg_.limits, &proc_waker, &main_waker_, &space_waker);
  pipeline::ProcessingOutputs outs;
  outs.latest = &latest;
  outs.waker = &mqtt_waker;
  outs.input_waker = &proc_waker;
  // Analysis: step events to MQTT, and the demand the MQTT thread receives.
  acquire::SpscRing<pipeline::StepEvent> step_events(256);
  pipeline::DemandInput demand;
  if (cfg_.processor.analysis.enabled) {
    outs.events = &step_events;
    outs.demand = &demand;
  }
  if (persist) {
    outs.state = &state;
    outs.state_waker = &state_waker;
  }
  // High-frequency logging: the log thread's bounded queues.
  const bool log_windows = !cfg_.log.empty() || !cfg_.zmq_pub.empty();
  const bool log_raw = !cfg_.log_raw.empty() || (cfg_.zmq_raw && !cfg_.zmq_pub.empty());
  std::unique_ptr<acquire::SpscRing<pipeline::WindowRecord>> window_queue;
  std::unique_ptr<acquire::SpscRing<acquire::SampleBlock>> raw_queue;
  if (log_windows) window_queue = std::make_unique<acquire::SpscRing<pipeline::WindowRecord>>(std::size_t(cfg_.log_queue));
  if (log_raw) raw_queue = std::make_unique<acquire::SpscRing<acquire::SampleBlock>>(128);
  outs.window_log = window_queue.get();
  outs.raw_log = raw_queue.get();
  std::unique_ptr<WindowLogger> logger;
  if (log_windows || log_raw) {
    LoggerConfig lc;
    lc.jsonl_path = cfg_.log;
    lc.raw_path = cfg_.log_raw;
    lc.zmq_endpoint = cfg_.zmq_pub;
    lc.zmq_raw = cfg_.zmq_raw;
    lc.max_mb = cfg_.log_max_mb;
    lc.meter_id = cfg_.meter_serial;
    lc.losses = [&acq] { return acq.losses(); };
    try {
      logger = std::make_unique<WindowLogger>(lc, window_queue.get(), raw_queue.get());
      outs.log_waker = &logger->waker();
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 2;
    }
  }

  // The live page: its own hand-offs from the processing thread (newest
  // window, scope captures, step events), read by the web thread only.
  const std::int64_t web_interval_ns = std::clamp<std::int64_t>(cfg_.publish_interval_ms, 50, 1000) * 1'000'000;
  pipeline::TripleBuffer<pipeline::WindowRecord> view_latest;
  std::unique_ptr<pipeline::TripleBuffer<pipeline::ScopeSnapshot>> scope_buf;
  acquire::SpscRing<pipeline::StepEvent> view_steps(64);
  if (!cfg_.http.empty()) {
    scope_buf = std::make_unique<pipeline::TripleBuffer<pipeline::ScopeSnapshot>>();
    outs.view = &view_latest;
    outs.view_interval_ns = web_interval_ns;
    outs.scope = scope_buf.get();
    outs.scope_cfg.span_s = cfg_.scope_ms / 1000;
    outs.scope_cfg.interval_ns = web_interval_ns;
    outs.view_events = &view_steps;
  }

  pipeline::Processing proc(cfg_.processor, ring, acq, outs, proc_rt);
  proc.restore(recovered.registers);
  pipeline::StateWriter writer(store, state, state_waker, &saved_waker, &journal.pagination_reserved(),
                               &journal.entries_written());

  OcmfOptions oo;
  oo.meter.gateway_version = version();
  oo.meter.vendor = cfg_.meter_vendor;
  oo.meter.model = cfg_.meter_model;
  oo.meter.serial = cfg_.meter_serial;
  oo.meter.firmware = cfg_.meter_firmware;
  oo.meter.export_readings = cfg_.ocmf_export_readings;
  oo.min_stop_s = cfg_.transaction_min_s;
  oo.max_stop_s = cfg_.transaction_max_s;
  OcmfTransactions transactions(std::move(*signer), journal, oo);

  PublisherConfig pc;
  pc.topics = Topics::make(cfg_.module_id, cfg_.mqtt_prefix);
  pc.broker_label = cfg_.broker;
  pc.meter_id = cfg_.meter_serial;
  pc.publish_interval_ms = cfg_.publish_interval_ms;
  pc.communication_check_interval_ms = cfg_.communication_check_interval_ms;
  pc.heartbeat_timeout_ms = cfg_.heartbeat_timeout_ms;
  pc.public_key_interval_ms = cfg_.public_key_interval_ms;
  pc.values_qos = cfg_.mqtt_qos;
  pc.stamp_messages = cfg_.stamp_messages;
  Publisher publisher(pc, *mqtt, latest, mqtt_waker, &proc, &transactions,
                      persist ? &writer.persisted_windows() : nullptr, persist ? &saved_waker : nullptr);
  publisher.set_source(&acq);
  if (cfg_.processor.analysis.enabled) publisher.set_analysis(&step_events, &demand);
  proc.set_window_wake_from(&publisher.window_wake_from());

  std::unique_ptr<WebServer> web;
  if (!cfg_.http.empty()) {
    WebConfig wc;
    wc.listen = cfg_.http;
    wc.auth_file = cfg_.http_auth_file;
    wc.cert_file = cfg_.http_cert;
    wc.key_file = cfg_.http_key;
    wc.interval_ns = web_interval_ns;
    wc.meter_id = cfg_.meter_serial;
    wc.module_id = cfg_.module_id;
    wc.version = version();
    WebSources ws;
    ws.window = &view_latest;
    ws.scope = scope_buf.get();
    ws.steps = &view_steps;
    const auto& mc = publisher.counters();
    ws.health = [&acq, &ring, &proc, &mc] {
      const auto& ac = acq.counters();
      const auto& pc = proc.counters();
      const acquire::LossCounts losses = acq.losses();
      return pipeline::write_json(2048, [&](pipeline::JsonWriter& w) {
        w.begin_object();
        w.field("source_health", acquire::to_string(acq.health()));
        w.field_uint("frames_acquired", ac.frames_acquired.load(std::memory_order_relaxed));
        w.field_uint("frames_processed", pc.frames_processed.load(std::memory_order_relaxed));
        w.key("frames_lost");
        w.begin_object();
        for (std::size_t k = 0; k < acquire::LossCounts::kCount; ++k) w.field_uint(acquire::LossCounts::kNames[k], losses.v[k]);
        w.end_object();
        w.field_uint("ring_fill_blocks", ring.size_approx());
        w.field_uint("ring_high_water_blocks", ac.ring_high_water.load(std::memory_order_relaxed));
        w.field_uint("ring_capacity_blocks", ring.capacity());
        w.field_uint("windows_closed", pc.windows_closed.load(std::memory_order_relaxed));
        w.field_uint("windows_with_lost_frames", pc.windows_with_lost_frames.load(std::memory_order_relaxed));
        w.field_fixed("publish_latency_ms", double(mc.last_latency_ns.load(std::memory_order_relaxed)) / 1e6, 3);
        w.field_bool("broker_connected", mc.connected.load(std::memory_order_relaxed));
        w.field_uint("mqtt_connection_losses", mc.connection_losses.load(std::memory_order_relaxed));
        w.field_uint("values_published", mc.values_published.load(std::memory_order_relaxed));
        w.field_bool("everest_alive", mc.everest_alive.load(std::memory_order_relaxed));
        w.field_uint("everest_heartbeats", mc.heartbeats.load(std::memory_order_relaxed));
        w.field_uint("everest_last_heartbeat_id", mc.last_heartbeat_id.load(std::memory_order_relaxed));
        w.field_uint("steps", pc.steps.load(std::memory_order_relaxed));
        w.end_object();
      });
    };
    transactions.enable_view();
    ws.transactions = [&transactions] {
      const auto v = transactions.view_json();
      return v ? *v : std::string("[]");
    };
    try {
      web = std::make_unique<WebServer>(std::move(wc), std::move(ws));
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 2;
    }
  }

  spdlog::info("wattpipe {}: source {}, module {}, broker {}", version(), cfg_.source, cfg_.module_id, cfg_.broker);
  const std::int64_t t0 = acquire::steady_now_ns();
  if (persist) writer.start();
  if (logger) logger->start();
  publisher.start();
  if (web) {
    try {
      web->start();
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      publisher.stop();
      publisher.join();
      if (persist) writer.stop(), writer.join();
      if (logger) logger->stop(0), logger->join();
      return 2;
    }
  }
  proc.start();
  acq.start();

  const std::int64_t end_ns = cfg_.duration > 0 ? t0 + static_cast<std::int64_t>(cfg_.duration * 1e9) : INT64_MAX;
  std::string why = "stop requested";
  // The service manager (docs/deploy.md): READY once the broker connection
  // was tried (the registers are restored by now); then WATCHDOG while the
  // processing thread keeps up with its ring and the MQTT thread loops.
  ServiceNotifier notifier;
  bool ready = false;
  const std::int64_t wd_ns = notifier.watchdog_interval_ns();
  std::int64_t next_wd = t0;
  std::uint64_t wd_frames = 0, wd_loops = 0;
  std::int64_t loops_moved_ns = t0;
  bool wd_starving = false;
  auto feed_watchdog = [&](std::int64_t now) {
    const std::uint64_t frames = proc.counters().frames_processed.load(std::memory_order_relaxed);
    const std::uint64_t loops = publisher.counters().loops.load(std::memory_order_relaxed);
    if (loops != wd_loops) wd_loops = loops, loops_moved_ns = now;
    // Processing: it moved, or it has nothing to do. MQTT: it wakes at least once a second.
    const bool proc_ok = frames != wd_frames || ring.size_approx() == 0 || acq.finished();
    const bool mqtt_ok = now - loops_moved_ns < std::max<std::int64_t>(2'000'000'000, 2 * wd_ns);
    wd_frames = frames;
    if (proc_ok && mqtt_ok) {
      notifier.watchdog();
      wd_starving = false;
    } else if (!wd_starving) {
      wd_starving = true;
      spdlog::error("watchdog: the {} thread makes no progress; not feeding the service watchdog",
                    proc_ok ? "MQTT" : "processing");
    }
  };
  // A replay shows its progress and the time left, on a terminal only.
  const auto* replay = dynamic_cast<const acquire::ReplaySource*>(source.get());
  const bool show_progress = replay != nullptr && replay->file_size() > 0 && ::isatty(STDERR_FILENO) == 1;
  std::int64_t next_progress = t0;
  for (;;) {
    if (show_progress && acquire::steady_now_ns() >= next_progress) {
      const double done = double(replay->bytes_read()) / double(replay->file_size());
      const double secs = double(acquire::steady_now_ns() - t0) / 1e9;
      std::fprintf(stderr, "\rreplay: %5.1f %%, %.0f s left   ", 100 * done, done > 0 ? secs * (1 - done) / done : 0.0);
      next_progress = acquire::steady_now_ns() + 250'000'000;
    }
    if (stop_.load(std::memory_order_relaxed)) break;
    if (!ready && publisher.counters().connect_attempts.load(std::memory_order_relaxed) > 0) {
      notifier.ready(fmt::format("measuring: source {}, broker {}", cfg_.source, cfg_.broker));
      ready = true;
    }
    if (ready && wd_ns > 0 && acquire::steady_now_ns() >= next_wd) {  // READY=1 comes first
      feed_watchdog(acquire::steady_now_ns());
      next_wd = acquire::steady_now_ns() + wd_ns;
    }
    if (acquire::steady_now_ns() >= end_ns) {
      why = "duration reached";
      break;
    }
    if (acq.finished()) {
      why = acq.source_ended() ? "source ended" : "acquisition ended";
      break;
    }
    // Sleep until a signal, the end of the source, request_stop(), the
    // duration, or the next progress line: no polling.
    const std::int64_t now = acquire::steady_now_ns();
    std::int64_t wait_ns = std::min(end_ns - now, show_progress ? next_progress - now : INT64_MAX);
    if (ready && wd_ns > 0) wait_ns = std::min(wait_ns, next_wd - now);
    if (!ready) wait_ns = std::min<std::int64_t>(wait_ns, 10'000'000);  // until the first connection attempt
    pollfd fds[2] = {{main_waker_.fd(), POLLIN, 0}, {sig_fd, POLLIN, 0}};
    ::poll(fds, sig_fd >= 0 ? 2 : 1, int(std::clamp<std::int64_t>(wait_ns / 1'000'000 + 1, 0, 3'600'000)));
    main_waker_.drain();
    if (signalfd_siginfo si{}; sig_fd >= 0 && ::read(sig_fd, &si, sizeof si) == ssize_t(sizeof si)) {
      if (si.ssi_signo == SIGHUP) {
        if (logger) logger->reopen();
        spdlog::info("SIGHUP: {}", logger ? "reopening the log files" : "no log files to reopen");
        continue;
      }
      why = si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
      break;
    }
  }
  if (show_progress) std::fprintf(stderr, "\r%40s\r", "");
  spdlog::info("stopping: {}", why);
  notifier.stopping();
  // Order: stop the source, drain the ring, close the last window, then let
  // the MQTT thread publish it and say goodbye.
  acq.stop();
  acq.join();
  proc.join();
  // Run time for rates: up to the last frame processed (the goodbyes after it are not measuring).
  const double elapsed = double(acquire::steady_now_ns() - t0) / 1e9;
  writer.stop();  // the final registers are saved before the last publish
  writer.join();
  publisher.stop();
  publisher.join();
  if (web) web->stop();
  if (logger) {
    logger->stop(proc.counters().windows_closed.load());  // drains both queues, reports a final overflow
    logger->join();
  }

  const auto& ac = acq.counters();
  const auto& sc = source->counters();
  const auto& pcn = proc.counters();
  const auto& mc = publisher.counters();
  const auto& reg = proc.final_registers();
  const LatencySummary lat = publisher.latency();
  StatsWriter s;
  s.add("frames_acquired", ac.frames_acquired.load());
  s.add("frames_processed", pcn.frames_processed.load());
  s.add("blocks_acquired", ac.blocks_acquired.load());
  s.add("blocks_dropped", ac.blocks_dropped.load());
  // Losses and input faults under their shared names (also the live log lines and JSONL).
  const acquire::LossCounts losses = acq.losses();
  for (std::size_t k = 0; k < acquire::LossCounts::kCount; ++k) s.add(acquire::LossCounts::kNames[k], losses.v[k]);
  s.add("frames_rejected", ac.frames_rejected.load());
  s.add("stream_restarts", sc.stream_restarts.load());
  s.add("source_health", std::string(acquire::to_string(acq.health())));
  s.add("register_energy_refused", proc.register_faults().energy_refused);
  s.add("register_saturated", proc.register_faults().saturated);
  s.add("values_withheld_source", mc.values_withheld_source.load());
  s.add("replies_refused_topic", mc.replies_refused_topic.load());
  s.add("ring_high_water", ac.ring_high_water.load());
  s.add("full_ring_sleeps", ac.full_ring_sleeps.load());
  s.add("ring_capacity", std::uint64_t(ring.capacity()));
  s.add("windows_closed", pcn.windows_closed.load());
  s.add("windows_with_lost_frames", pcn.windows_with_lost_frames.load());
  s.add("messages_published", mc.messages_published.load());
  s.add("values_published", mc.values_published.load());
  s.add("values_held_for_state", mc.values_held_for_state.load());
  s.add("publish_failures", mc.publish_failures.load());
  s.add("mqtt_connects", mc.connects.load());
  s.add("mqtt_wakeups", mc.loops.load());
  s.add("mqtt_connection_losses", mc.connection_losses.load());
  s.add("communication_checks", mc.communication_checks.load());
  s.add("public_keys_published", mc.public_keys.load());
  s.add("heartbeats", mc.heartbeats.load());
  s.add("heartbeats_malformed", mc.heartbeats_malformed.load());
  s.add("last_heartbeat_id", mc.last_heartbeat_id.load());
  s.add("everest_alive", mc.everest_alive.load());
  s.add("everest_lost", mc.everest_lost.load());
  s.add("requests", mc.requests.load());
  s.add("requests_malformed", mc.requests_malformed.load());
  s.add("replies", mc.replies.load());
  s.add("readings", pcn.readings.load());
  s.add("windows_log_overflow", pcn.windows_log_overflow.load());
  s.add("steps", pcn.steps.load());
  s.add("events_overflow", pcn.events_overflow.load());
  s.add("analysis_published", mc.analysis_published.load());
  s.add("events_published", mc.events_published.load());
  s.add("demands", mc.demands.load());
  s.add("demands_malformed", mc.demands_malformed.load());
  s.add("raw_log_overflow_blocks", pcn.raw_log_overflow.load());
  s.add("raw_log_overflow_frames", pcn.raw_log_overflow_frames.load());
  if (logger) {
    const auto& lg = logger->counters();
    s.add("log_windows_written", lg.windows_written.load());
    s.add("log_windows_lost", lg.windows_lost.load());
    s.add("log_raw_blocks_written", lg.raw_blocks_written.load());
    s.add("log_raw_frames_written", lg.raw_frames_written.load());
    s.add("log_zmq_messages", lg.zmq_messages.load());
    s.add("log_write_errors", lg.write_errors.load());
    s.add("log_rotations", lg.rotations.load());
    s.add("log_reopens", lg.reopens.load());
  }
  if (web) {
    const auto& wc = web->counters();
    s.add("web_updates", wc.updates.load());
    s.add("web_messages_sent", wc.messages_sent.load());
    s.add("web_updates_dropped", wc.updates_dropped.load());
    s.add("web_clients_refused", wc.clients_refused.load());
    s.add("web_requests", wc.requests.load());
  }
  s.add("publish_latency_count", lat.count);
  s.add("publish_latency_p50_us", lat.p50_us);
  s.add("publish_latency_p99_us", lat.p99_us);
  s.add("publish_latency_p999_us", lat.p999_us);
  s.add("publish_latency_max_us", lat.max_us);
  s.add("elapsed_s", elapsed);
  s.add("state_records", writer.counters().records.load());
  s.add("state_write_errors", writer.counters().write_errors.load());
  s.add("state_corrupt_records_skipped", recovered.corrupt);
  s.add("transactions_open", std::uint64_t(transactions.open_count()));
  s.add("ocmf_public_key", transactions.public_key_hex());
  s.add("energy_Wh_import_total_at_start", recovered.registers.import_total.wh());
  s.add("energy_Wh_export_total_at_start", recovered.registers.export_total.wh());
  s.add("energy_Wh_import_total", reg.import_total.wh());
  s.add("energy_Wh_export_total", reg.export_total.wh());
  for (int k = 0; k < 3; ++k) {
    s.add(fmt::format("energy_Wh_import_L{}", k + 1), reg.import_phase[k].wh());
    s.add(fmt::format("energy_Wh_export_L{}", k + 1), reg.export_phase[k].wh());
  }
  s.add("source_end_reason", source->end_reason());
  s.add("stop_reason", why);
  stats_ = s.str();
  if (!cfg_.stats_json.empty()) {
    std::ofstream f(cfg_.stats_json, std::ios::trunc);
    f << stats_;
    if (!f) {
      spdlog::error("--stats-json: cannot write '{}'", cfg_.stats_json);
      return 1;
    }
  }
  std::string loss_text;
  for (std::size_t k = 0; k < acquire::LossCounts::kCount; ++k)
    if (losses.v[k] != 0) loss_text += fmt::format("{}{} {}", loss_text.empty() ? "" : ", ", acquire::LossCounts::kNames[k], losses.v[k]);
  spdlog::info("stopped after {:.3f} s: {} frames acquired, {} processed; losses: {}; {} values published; "
               "import {:.6f} Wh, export {:.6f} Wh",
               elapsed, ac.frames_acquired.load(), pcn.frames_processed.load(), loss_text.empty() ? "none" : loss_text,
               mc.values_published.load(), reg.import_total.wh(), reg.export_total.wh());
  return 0;
}

}  // namespace wattpipe::publish

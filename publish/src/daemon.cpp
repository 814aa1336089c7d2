// SPDX-License-Identifier: Apache-2.0
// The daemon's assembly, top to bottom as the data flows: the stream, split
// into its measuring points; per point acquisition -> ring -> processing ->
// legal part -> publishers; then the main loop, the shutdown in the same
// order, and the final counters.
#include "wattpipe/publish/daemon.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "daemon_run.hpp"
#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/comtrade.hpp"
#include "wattpipe/acquire/point_source.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/acquire/wprb_source.hpp"
#include "wattpipe/publish/service_notify.hpp"

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
  // The shortest window of the points measured (the simulator's own layout, or those --points picks of it).
  const acquire::Points pts = acquire::points_of(c.sim.layout);
  double window_ms = 1e9;
  for (std::uint32_t k = 0; k < pts.count; ++k) {
    if (pts.count > 1 && !c.points.empty() && std::find(c.points.begin(), c.points.end(), pts.part[k].name) == c.points.end())
      continue;
    const bool dc = acquire::layout_info(pts.part[k].layout).dc;
    window_ms = std::min(window_ms, dc ? c.processor.window_ms : 1000.0 * c.processor.window_cycles / c.processor.nominal_hz);
  }
  const double block_ms = std::clamp(std::min(window_ms, double(c.publish_interval_ms)) / 2, 1.0, 50.0);
  return std::uint32_t(std::clamp<double>(std::round(c.sim.sample_rate_hz * block_ms / 1000), 1, acquire::kBlockFrames));
}

std::unique_ptr<acquire::Source> make_stream(const Config& c) {
  const SourceSpec spec = split_source(c.source).value();  // checked by parse_config
  const std::string& arg = spec.arg;
  switch (spec.kind) {
    case SourceKind::sim:
      return std::make_unique<acquire::SimSource>(c.sim, c.max_rate, c.max_rate ? 0 : sim_block_frames(c));
    case SourceKind::zmq_pull: return std::make_unique<acquire::ZmqSource>(arg, acquire::ZmqMode::pull);
    case SourceKind::zmq_sub: return std::make_unique<acquire::ZmqSource>(arg, acquire::ZmqMode::sub);
    case SourceKind::comtrade:
      return std::make_unique<acquire::comtrade::ComtradeSource>(arg, c.channel_map, c.max_rate);
    case SourceKind::replay: break;
  }
  return std::make_unique<acquire::ReplaySource>(arg, c.max_rate, c.replay_loop);
}

std::string read_secret(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("--mqtt-password-file: cannot read '" + path + "'");
  std::string s;
  std::getline(f, s);
  return s;
}

MqttOptions mqtt_options(const Config& c) {
  MqttOptions mo;
  mo.host = c.broker_host;
  mo.port = c.broker_port;
  mo.client_id = c.mqtt_client_id.empty() ? fmt::format("wattpipe-{}-{}", c.module_id, ::getpid()) : c.mqtt_client_id;
  mo.keepalive_s = c.mqtt_keepalive_s;
  mo.username = c.mqtt_username;
  if (!c.mqtt_password_file.empty()) mo.password = read_secret(c.mqtt_password_file);
  mo.cafile = c.mqtt_cafile;
  mo.certfile = c.mqtt_certfile;
  mo.keyfile = c.mqtt_keyfile;
  return mo;
}

legal::MeterOptions meter_options(const Config& c) {
  legal::MeterOptions o;
  o.state_dir = c.state_dir;
  o.recover = c.state_recover;
  o.ocmf_key = c.ocmf_key;
  o.meter.gateway_version = version();
  o.meter.vendor = c.meter_vendor;
  o.meter.model = c.meter_model;
  o.meter.serial = c.meter_serial;
  o.meter.export_readings = c.ocmf_export_readings;
  o.min_stop_s = c.transaction_min_s;
  o.max_stop_s = c.transaction_max_s;
  return o;
}

StoreConfig store_config(const Config& c) {
  StoreConfig sc;
  sc.url = c.store;
  sc.module_id = c.module_id;
  sc.meter_id = c.meter_serial;
  sc.spool_dir = c.store_spool_dir;
  sc.spool_max_mb = c.store_spool_max_mb;
  sc.batch_ms = c.store_batch_ms;
  return sc;
}

std::int64_t web_interval_ns(const Config& c) {
  return std::clamp<std::int64_t>(c.publish_interval_ms, 50, 1000) * 1'000'000;
}

// The grid side's calibration (by role, AC3N order) for the input power the
// car side's efficiency takes: the same samples as the grid side's own.
acquire::InputCal input_cal(const std::array<pipeline::ChannelCal, acquire::kMaxChannels>& cal) {
  acquire::InputCal in;
  for (std::size_t k = 0; k < 3; ++k) {
    in.u_gain[k] = float(cal[k].gain), in.u_offset[k] = float(cal[k].offset), in.u_delay_us[k] = cal[k].delay_us;
    in.i_gain[k] = float(cal[4 + k].gain), in.i_offset[k] = float(cal[4 + k].offset);
    in.i_delay_us[k] = cal[4 + k].delay_us;
  }
  return in;
}

// Runs `build`; a configuration the user must fix (what it throws) is logged and false.
template <typename F>
bool built(F&& build) {
  try {
    build();
    return true;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return false;
  }
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

}  // namespace

Daemon::Daemon(Config cfg) : cfg_(std::move(cfg)) {}
Daemon::~Daemon() = default;

// The stream, split into the measuring points measured (--points), and a run
// per point in stream order: the first point's acquisition thread reads it.
int Daemon::build(Runs& runs) {
  if (!built([&] { runs.fanout = std::make_unique<acquire::PointFanout>(make_stream(cfg_), cfg_.points); })) return 2;
  if (std::find(cfg_.points.begin(), cfg_.points.end(), "car") != cfg_.points.end())
    runs.fanout->calibrate_input(input_cal(point_config(cfg_, "grid").processor.cal));
  const std::vector<std::string> names = cfg_.points.empty() ? std::vector<std::string>{""} : cfg_.points;
  for (std::size_t k = 0; k < names.size(); ++k) {
    auto r = std::make_unique<Run>();
    r->cfg = point_config(cfg_, names[k]);
    r->source = runs.fanout->source(k);
    if (names[k] == billing_point(cfg_)) runs.billing = k;
    runs.points.push_back(std::move(r));
  }
  for (const auto& r : runs.points)
    if (const int rc = build(*r, runs); rc != 0) return rc;
  return 0;
}

int Daemon::build(Run& r, Runs& runs) {
  const Config& c = r.cfg;
  // 1. The point's source -> acquisition thread -> block ring.
  r.ring = std::make_unique<acquire::BlockRing>(static_cast<std::size_t>(c.ring_blocks));
  r.acq = std::make_unique<acquire::Acquisition>(*r.source, *r.ring, c.acq_rt, c.limits, &r.proc_waker, &main_waker_,
                                                 &r.space_waker);

  // 2. The legal part: state directory, registers, journal, key (docs/legal.md).
  legal::OpenError oe;
  r.meter = legal::Meter::open(meter_options(c), oe);
  if (!r.meter) {
    spdlog::error("{}", oe.message);
    return oe.usage ? 2 : 1;
  }

  // 3. Processing thread, with one hand-off per sink.
  pipeline::ProcessingOutputs outs;
  outs.latest = &r.latest;
  outs.waker = &r.mqtt_waker;
  outs.input_waker = &r.proc_waker;
  outs.state = r.meter->snapshots();
  outs.state_waker = r.meter->snapshot_waker();
  if (c.processor.analysis.enabled) {
    outs.events = &r.step_events;
    outs.demand = &r.demand;
  }
  const bool log_windows = !c.log.empty() || !c.zmq_pub.empty();
  const bool log_raw = !c.log_raw.empty() || (c.zmq_raw && !c.zmq_pub.empty());
  if (log_windows) r.window_queue = std::make_unique<acquire::SpscRing<pipeline::WindowRecord>>(std::size_t(c.log_queue));
  if (log_raw) r.raw_queue = std::make_unique<acquire::SpscRing<acquire::SampleBlock>>(128);
  outs.window_log = r.window_queue.get();
  // A stream of several points is recorded whole, once, as it is read (the
  // billing point's raw log; the others have none): it replays as the stream.
  const bool tapped = log_raw && !cfg_.points.empty();
  outs.raw_log = tapped ? nullptr : r.raw_queue.get();
  if (!cfg_.http.empty()) {  // the page: the billing point's, with every point's newest window
    outs.view = &r.view_latest;
    outs.view_interval_ns = web_interval_ns(c);
  }
  if (!c.http.empty()) {
    r.scope = std::make_unique<pipeline::TripleBuffer<pipeline::ScopeSnapshot>>();
    outs.scope = r.scope.get();
    outs.scope_cfg.span_s = c.scope_ms / 1000;
    outs.scope_cfg.interval_ns = web_interval_ns(c);
    outs.view_events = &r.view_steps;
    outs.view_map = &r.view_map;
  }
  // The log thread comes before the processing thread: its waker is the logger's own.
  if (log_windows || log_raw) {
    LoggerConfig lc;
    lc.jsonl_path = c.log;
    lc.raw_path = c.log_raw;
    lc.zmq_endpoint = c.zmq_pub;
    lc.zmq_raw = c.zmq_raw;
    lc.max_mb = c.log_max_mb;
    lc.keep = c.log_keep;
    lc.max_total_mb = c.log_max_total_mb;
    lc.meter_id = c.meter_serial;
    lc.losses = [acq = r.acq.get()] { return acq->losses(); };
    if (!built([&] { r.logger = std::make_unique<WindowLogger>(lc, r.window_queue.get(), r.raw_queue.get()); }))
      return 2;
    outs.log_waker = &r.logger->waker();
    if (tapped) runs.fanout->tap(r.raw_queue.get(), &r.logger->waker()), r.tap = runs.fanout.get();
  }
  // The database store, before the processing thread too (docs/store.md).
  if (!c.store.empty()) {
    r.store_queue = std::make_unique<acquire::SpscRing<pipeline::WindowRecord>>(std::size_t(c.store_queue));
    if (!built([&] { r.store = std::make_unique<Store>(store_config(c), r.store_queue.get()); })) return 2;
    outs.store = r.store_queue.get();
    outs.store_waker = &r.store->waker();
  }
  acquire::RealTimeConfig proc_rt = c.proc_rt;
  proc_rt.fifo_priority = c.acq_rt.fifo_priority;
  r.proc = std::make_unique<pipeline::Processing>(c.processor, *r.ring, *r.acq, outs, proc_rt);
  r.proc->stall_after(c.test_stall_after_frames);
  r.proc->restore(r.meter->restored_registers());

  // 4. The publishers: MQTT (values, transactions), the live page.
  if (!built([&] { r.mqtt = make_mosquitto_transport(mqtt_options(c)); })) return 2;
  r.transactions = std::make_unique<MeterTransactions>(*r.meter);
  if (r.store) r.transactions->set_store(r.store.get());
  PublisherConfig pc;
  pc.topics = Topics::make(c.module_id, c.mqtt_prefix);
  pc.broker_label = c.broker;
  pc.meter_id = c.meter_serial;
  pc.publish_interval_ms = c.publish_interval_ms;
  pc.communication_check_interval_ms = c.communication_check_interval_ms;
  pc.heartbeat_timeout_ms = c.heartbeat_timeout_ms;
  pc.public_key_interval_ms = c.public_key_interval_ms;
  pc.values_qos = c.mqtt_qos;
  pc.stamp_messages = c.stamp_messages;
  r.publisher = std::make_unique<Publisher>(pc, *r.mqtt, r.latest, r.mqtt_waker, r.proc.get(), r.transactions.get(),
                                            r.meter->persisted_windows(), r.meter->persisted_waker());
  r.publisher->set_source(r.acq.get());
  r.publisher->set_state_health(r.meter->state_healthy());
  if (c.processor.analysis.enabled) r.publisher->set_analysis(&r.step_events, &r.demand);
  r.proc->set_window_wake_from(&r.publisher->window_wake_from());
  if (!c.http.empty()) {
    WebConfig wc;
    wc.listen = c.http;
    wc.auth_file = c.http_auth_file;
    wc.cert_file = c.http_cert;
    wc.key_file = c.http_key;
    wc.interval_ns = web_interval_ns(c);
    wc.meter_id = c.meter_serial;
    wc.module_id = c.module_id;
    wc.version = version();
    wc.point = c.point;
    WebSources ws;
    ws.window = &r.view_latest;
    ws.scope = r.scope.get();
    ws.steps = &r.view_steps;
    ws.efficiency_map = &r.view_map;
    for (const auto& p : runs.points)
      if (p.get() != &r) ws.points.push_back({p->cfg.point, p->cfg.module_id, p->cfg.meter_serial, &p->view_latest});
    ws.health = [&r] { return health_json(r); };
    r.transactions->enable_view();
    ws.transactions = [t = r.transactions.get()] {
      const auto v = t->view_json();
      return v ? *v : std::string("[]");
    };
    if (!built([&] { r.web = std::make_unique<WebServer>(std::move(wc), std::move(ws)); })) return 2;
  }
  return 0;
}

int Daemon::run(bool handle_signals) {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);  // reopen the log files
  if (handle_signals) pthread_sigmask(SIG_BLOCK, &sigs, nullptr);  // every thread started below inherits it
  // The blocked signals are read from a signalfd, next to the main waker.
  const OwnedFd sig(handle_signals ? ::signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK) : -1);

  Runs runs;
  if (const int rc = build(runs); rc != 0) return rc;
  std::string modules;
  for (const auto& r : runs.points)
    modules += fmt::format("{}{}{}", modules.empty() ? "" : ", ", r->cfg.point.empty() ? "" : r->cfg.point + " ",
                           r->cfg.module_id);
  spdlog::info("wattpipe {} ({}): source {}, module{} {}, broker {}", version(), legal::software_id_text(),
               cfg_.source, runs.points.size() > 1 ? "s" : "", modules, cfg_.broker);
  // Start from the far end, so every consumer waits before its producer runs.
  const std::int64_t t0 = acquire::steady_now_ns();
  for (const auto& r : runs.points) {
    r->t0_ns = t0;
    r->meter->start_writer();
    if (r->logger) r->logger->start();
    if (r->store) r->store->start();
    r->publisher->start();
  }
  // A page that cannot listen is a configuration to fix: stop before measuring.
  Run& bill = runs.bill();
  const bool web_ok = !bill.web || built([&] { bill.web->start(); });
  if (web_ok)
    for (const auto& r : runs.points) r->proc->start();
  if (web_ok)  // the sources last: the first point's reads the stream for all
    for (const auto& r : runs.points) r->acq->start();
  const std::string why = web_ok ? main_loop(runs, sig.fd) : "the web server did not start";
  shutdown(runs);  // the one shutdown, also for threads never started
  return web_ok ? write_stats(runs, why) : 2;
}

std::string Daemon::main_loop(Runs& runs, int sig_fd) {
  const std::int64_t t0 = runs.points[0]->t0_ns;
  const std::int64_t end_ns = cfg_.duration > 0 ? t0 + static_cast<std::int64_t>(cfg_.duration * 1e9) : INT64_MAX;
  // The service manager (docs/deploy.md): READY once the broker connection
  // was tried (the registers are restored by now); then WATCHDOG while the
  // processing thread keeps up with its ring and the MQTT thread loops.
  ServiceNotifier notifier;
  bool ready = false;
  const std::int64_t wd_ns = notifier.watchdog_interval_ns();
  std::int64_t next_wd = t0;
  struct Progress {
    std::uint64_t frames = 0, loops = 0;
    std::int64_t loops_moved_ns = 0;
  };
  std::vector<Progress> wd(runs.points.size(), Progress{0, 0, t0});
  bool wd_starving = false;
  auto feed_watchdog = [&](std::int64_t now) {
    bool proc_ok = true, mqtt_ok = true;
    for (std::size_t k = 0; k < runs.points.size(); ++k) {
      const Run& r = *runs.points[k];
      const std::uint64_t frames = r.proc->counters().frames_processed.load(std::memory_order_relaxed);
      const std::uint64_t loops = r.publisher->counters().mqtt_wakeups.load(std::memory_order_relaxed);
      if (loops != wd[k].loops) wd[k].loops = loops, wd[k].loops_moved_ns = now;
      // Processing: it moved, or it has nothing to do. MQTT: it wakes at least once a second.
      proc_ok = proc_ok && (frames != wd[k].frames || r.ring->size_approx() == 0 || r.acq->finished());
      mqtt_ok = mqtt_ok && now - wd[k].loops_moved_ns < std::max<std::int64_t>(2'000'000'000, 2 * wd_ns);
      wd[k].frames = frames;
    }
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
  const auto* replay = dynamic_cast<const acquire::ReplaySource*>(&runs.fanout->stream());
  const bool show_progress = replay != nullptr && replay->file_size() > 0 && ::isatty(STDERR_FILENO) == 1;
  std::int64_t next_progress = t0;
  std::string why = "stop requested";
  for (;;) {
    if (show_progress && acquire::steady_now_ns() >= next_progress) {
      const double done = double(replay->bytes_read()) / double(replay->file_size());
      const double secs = double(acquire::steady_now_ns() - t0) / 1e9;
      std::fprintf(stderr, "\rreplay: %5.1f %%, %.0f s left   ", 100 * done, done > 0 ? secs * (1 - done) / done : 0.0);
      next_progress = acquire::steady_now_ns() + 250'000'000;
    }
    if (stop_.load(std::memory_order_relaxed)) break;
    if (!ready && std::all_of(runs.points.begin(), runs.points.end(), [](const auto& r) {
          return r->publisher->counters().connect_attempts.load(std::memory_order_relaxed) > 0;
        })) {
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
    // The end: every point's source ended (the others drain what the first
    // handed them), or one point's acquisition ended by itself.
    const Run* ended = nullptr;
    bool all_ended = true;
    for (const auto& r : runs.points) {
      all_ended = all_ended && r->acq->finished();
      if (r->acq->finished() && !r->acq->source_ended()) ended = r.get();
    }
    if (all_ended || ended != nullptr) {
      const Run& r = ended != nullptr ? *ended : *runs.points[0];
      why = r.acq->source_ended() ? "source ended" : "acquisition ended";
      if (const std::string reason = r.source->end_reason(); !reason.empty()) why += ": " + reason;
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
        bool logs = false;
        for (const auto& r : runs.points)
          if (r->logger) r->logger->reopen(), logs = true;
        spdlog::info("SIGHUP: {}", logs ? "reopening the log files" : "no log files to reopen");
        continue;
      }
      why = si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
      break;
    }
  }
  if (show_progress) std::fprintf(stderr, "\r%40s\r", "");
  spdlog::info("stopping: {}", why);
  notifier.stopping();
  return why;
}

// Order, every point alike: stop the sources, drain the rings, close the
// last windows, save the registers, then let the MQTT threads publish them
// (no communication_check false: EVerest would end its check for good).
void Daemon::shutdown(Runs& runs) {
  // The point that reads the stream stops first; the others then take what
  // it handed them and end by themselves, so all points end on one frame.
  runs.fanout->stop();  // ends its wait for room in a point's queue
  runs.points[0]->acq->stop();
  runs.points[0]->acq->join();
  runs.fanout->end_stream();
  for (const auto& r : runs.points) {
    r->acq->join();
    r->proc->join();
    // Run time for rates: up to the last frame processed (the goodbyes after it are not measuring).
    r->elapsed_s = double(acquire::steady_now_ns() - r->t0_ns) / 1e9;
    r->meter->stop_writer();  // the final registers are saved before the last publish
    r->publisher->stop();
  }
  for (const auto& r : runs.points) {
    r->publisher->join();
    if (r->web) r->web->stop();
    if (r->logger) {
      r->logger->stop(r->proc->counters().windows_closed.load());  // drains both queues, reports a final overflow
      r->logger->join();
    }
    if (r->store) {  // after the MQTT thread: its last transactions are in
      r->store->stop();
      r->store->join();
    }
  }
}

int Daemon::write_stats(Runs& runs, const std::string& why) {
  stats_ = publish::stats_json(runs, why);
  if (!cfg_.stats_json.empty()) {
    std::ofstream f(cfg_.stats_json, std::ios::trunc);
    f << stats_;
    if (!f) {
      spdlog::error("--stats-json: cannot write '{}'", cfg_.stats_json);
      return 1;
    }
  }
  for (const auto& r : runs.points) {
    const acquire::LossCounts losses = r->acq->losses();
    std::string loss_text;
    for (std::size_t k = 0; k < acquire::LossCounts::kCount; ++k)
      if (losses.v[k] != 0)
        loss_text += fmt::format("{}{} {}", loss_text.empty() ? "" : ", ", acquire::LossCounts::kNames[k], losses.v[k]);
    const auto& reg = r->proc->final_registers();
    spdlog::info("{}stopped after {:.3f} s: {} frames acquired, {} processed; losses: {}; {} values published; "
                 "import {:.6f} Wh, export {:.6f} Wh",
                 runs.points.size() > 1 ? r->cfg.module_id + ": " : "", r->elapsed_s,
                 r->acq->counters().frames_acquired.load(), r->proc->counters().frames_processed.load(),
                 loss_text.empty() ? "none" : loss_text, r->publisher->counters().values_published.load(),
                 reg.import_total.wh(), reg.export_total.wh());
  }
  return 0;
}

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
// wattpipe-bench: the whole daemon path, measured, as one JSON object.
//   - sustained frames/s at --max-rate with zero drops (AC3N, DC), in-process,
//     publishing to a real broker, without and with --analysis on (and their ratio);
//   - the highest real-time --sample-rate held with zero drops (probes of --probe-s),
//     without and with --analysis on;
//   - window close -> MQTT publish latency (the daemon's own stamps) and
//     window close -> receipt by a subscriber, at --publish-interval-ms 1,
//     and the messages/s the subscriber receives, against the binary;
//   - peak RSS of the daemon process;
//   - heap allocations of the acquisition and processing threads after warm-up;
//   - CPU time per second of metering (total from schedstat, ns resolution;
//     user and system split from clock ticks) and context switches
//     per second of the daemon binary at 1 kS/s DC, 20 kS/s and 1 MS/s AC3N
//     and at --max-rate, with the default state directory.
// It starts a private mosquitto unless --broker is given.
#include <arpa/inet.h>
#include <civetweb.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <mutex>
#include <sstream>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include <fmt/format.h>
#include <simdjson.h>

#include "bench_store.hpp"
#include "block_sender.hpp"
#include "progress.hpp"
#include "wattpipe/acquire/alloc_counter.hpp"
#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/publish/config.hpp"
#include "wattpipe/publish/daemon.hpp"

extern char** environ;

namespace {

using wattpipe::acquire::steady_now_ns;

struct Options {
  std::string broker;
  double seconds = 10;
  double probe_s = 30;
  double warmup_s = 1;
  std::string bin_dir;
  bool skip_rate_probe = false;
};

// ---- helpers -------------------------------------------------------------------

int free_port() {
  // Let the kernel pick, through a throw-away listener.
  for (int port = 20000 + (::getpid() % 20000);; ++port) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(s);
    if (ok) return port;
  }
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int e = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (e != 0) {  // every part needs its program: waitpid(-1) would wait on the broker for ever
    std::fprintf(stderr, "wattpipe-bench: cannot run %s: %s\n", args[0].c_str(), std::strerror(e));
    std::exit(1);
  }
  return pid;
}

bool wait_port(int port, double timeout_s) {
  const std::int64_t end = steady_now_ns() + std::int64_t(timeout_s * 1e9);
  while (steady_now_ns() < end) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(s);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

struct Stats {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  bool load(const std::string& json) { return parser.parse(json).get(doc) == simdjson::SUCCESS; }
  // A top-level key, or a JSON pointer ("/points/grid/frames_dropped").
  double num(const char* key) {
    const auto v = key[0] == '/' ? doc.at_pointer(key) : doc[key];
    double d;
    if (v.get_double().get(d) == simdjson::SUCCESS) return d;
    std::uint64_t u;
    if (v.get_uint64().get(u) == simdjson::SUCCESS) return double(u);
    return 0;
  }
};

// An in-process daemon from command-line style arguments.
// `during` runs on the calling thread while the daemon runs (optional).
std::string run_in_process(const std::vector<std::string>& args, double warmup_s, std::uint64_t* hot_allocs,
                           const std::function<void()>& during = {}) {
  std::vector<const char*> argv{"wattpipe"};
  for (const auto& a : args) argv.push_back(a.c_str());
  wattpipe::publish::Config cfg;
  std::string error;
  if (wattpipe::publish::parse_config(int(argv.size()), argv.data(), cfg, error) != wattpipe::publish::ParseOutcome::run)
    throw std::runtime_error("bad daemon arguments: " + error);
  const double duration = cfg.duration;
  wattpipe::publish::Daemon d(cfg);
  std::thread t([&] { d.run(false); });
  if (during) during();
  if (hot_allocs != nullptr) {
    std::this_thread::sleep_for(std::chrono::duration<double>(warmup_s));
    auto hot = [] { return wattpipe::alloc_counter::of_threads("wp-acquire") + wattpipe::alloc_counter::of_threads("wp-process"); };
    const std::uint64_t a0 = hot();
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.5, duration - warmup_s - 0.5)));
    *hot_allocs = hot() - a0;
  }
  t.join();
  return d.stats_json();
}

// Subscriber: receipt latency from wattpipe_closed_ns and message counts.
struct Receiver {
  mosquitto* m = nullptr;
  std::mutex mu;
  std::vector<double> latency_us;
  std::uint64_t messages = 0;
  std::int64_t first_ns = 0, last_ns = 0;

  Receiver(int port, const std::string& topic) {
    mosquitto_lib_init();
    m = mosquitto_new(nullptr, true, this);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_message_callback_set(m, [](mosquitto*, void* self, const mosquitto_message* msg) {
      const std::int64_t now = steady_now_ns();
      auto* r = static_cast<Receiver*>(self);
      const std::string_view p(static_cast<const char*>(msg->payload), std::size_t(msg->payloadlen));
      const auto at = p.find("\"wattpipe_closed_ns\":");
      std::lock_guard lock(r->mu);
      if (r->messages++ == 0) r->first_ns = now;
      r->last_ns = now;
      if (at != std::string_view::npos) {
        const std::int64_t closed = std::strtoll(p.data() + at + 21, nullptr, 10);
        if (closed > 0) r->latency_us.push_back(double(now - closed) / 1000.0);
      }
    });
    mosquitto_connect(m, "127.0.0.1", port, 30);
    mosquitto_subscribe(m, nullptr, topic.c_str(), 0);
    mosquitto_loop_start(m);
  }
  ~Receiver() {
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, true);
    mosquitto_destroy(m);
  }
};

// The simulator alone, as the daemon's --max-rate source runs it (one thread,
// whole blocks, nothing consuming): the daemon's own ceiling.
double simulator_alone_frames_per_s(const char* profile, double seconds) {
  wattpipe::acquire::SimSource src(*wattpipe::acquire::sim_profile(profile, 20000), true);
  auto b = std::make_unique<wattpipe::acquire::SampleBlock>();
  std::uint64_t frames = 0;
  const std::int64_t t0 = wattpipe::acquire::steady_now_ns(), end = t0 + std::int64_t(seconds * 1e9);
  std::int64_t now = t0;
  while (now < end) {
    for (int k = 0; k < 64; ++k)
      if (src.read(*b, std::chrono::nanoseconds(0)) == wattpipe::acquire::ReadStatus::ok) frames += b->frames;
    now = wattpipe::acquire::steady_now_ns();
  }
  return double(frames) / (double(now - t0) / 1e9);
}

// CPU time and context switches of a running process, all threads.
struct ProcCpu {
  double user_s = 0, sys_s = 0;  // clock ticks (10 ms): the split only
  double run_s = 0;              // schedstat, ns resolution: the total
  std::uint64_t switches = 0;
};
ProcCpu proc_cpu(pid_t pid) {
  ProcCpu c;
  const double tick = double(::sysconf(_SC_CLK_TCK));
  std::ifstream st(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
  // Fields after the command name in parentheses: utime and stime are the 14th and 15th.
  std::istringstream in(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int k = 3; k <= 15 && in >> field; ++k) {
    if (k == 14) c.user_s = double(std::stoull(field)) / tick;
    if (k == 15) c.sys_s = double(std::stoull(field)) / tick;
  }
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    std::ifstream ss(task.path() / "schedstat");
    std::uint64_t run_ns = 0;
    if (ss >> run_ns) c.run_s += double(run_ns) / 1e9;
    std::ifstream ts(task.path() / "status");
    std::string line;
    while (std::getline(ts, line))
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0 || line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        c.switches += std::stoull(line.substr(line.find(':') + 1));
  }
  return c;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, std::size_t(q * double(v.size() - 1) + 0.5))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wattpipe-bench: throughput, latency, rate, memory and allocations of the whole daemon path"};
  Options o;
  std::string output;
  app.add_option("--broker", o.broker, "use this broker HOST:PORT (default: a private mosquitto)");
  app.add_option("--duration,--seconds", o.seconds, "length of each throughput and latency run (--seconds: the old name)")
      ->capture_default_str();
  app.add_option("--probe-s", o.probe_s, "length of each real-time sample-rate probe")->capture_default_str();
  app.add_flag("--skip-rate-probe", o.skip_rate_probe, "do not search the highest real-time sample rate");
  std::vector<std::string> only;
  app.add_option("--only", only, "run only these parts: max-rate, web, zmq, latency, cpu, rate-probe, store")
      ->check(CLI::IsMember({"max-rate", "web", "zmq", "latency", "cpu", "rate-probe", "store"}))
      ->delimiter(',');
  std::uint64_t store_rows = 200000;
  app.add_option("--store-rows", store_rows, "rows of the store part")->capture_default_str();
  app.add_option("-o,--output", output, "also write the JSON object to this file");
  wattpipe::tools::add_version(app, "wattpipe-bench");
  if (const int rc = wattpipe::tools::parse(app, argc, argv); rc >= 0) return rc;
  signal(SIGPIPE, SIG_IGN);
  wattpipe::publish::setup_logging("error");
  o.bin_dir = std::filesystem::canonical("/proc/self/exe").parent_path().string();
  const std::string tmp = std::filesystem::temp_directory_path() / fmt::format("wattpipe-bench-{}", ::getpid());
  std::filesystem::create_directories(tmp);

  pid_t broker_pid = -1;
  std::string broker = o.broker;
  if (broker.empty()) {
    const int port = free_port();
    const std::string conf = tmp + "/mosquitto.conf";
    std::ofstream(conf) << fmt::format("listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n{}", port,
                                       ::geteuid() == 0 ? "user root\n" : "");
    for (const char* m : {"/usr/sbin/mosquitto", "/usr/bin/mosquitto"})
      if (std::filesystem::exists(m)) broker_pid = spawn({m, "-c", conf}, tmp + "/mosquitto.log");
    if (broker_pid < 0 || !wait_port(port, 10)) {
      std::fprintf(stderr, "wattpipe-bench: cannot start mosquitto\n");
      return 1;
    }
    broker = fmt::format("127.0.0.1:{}", port);
  }
  const int broker_port = std::stoi(broker.substr(broker.rfind(':') + 1));
  wattpipe::tools::Progress progress("wattpipe-bench");
  std::string json = "{";
  auto add = [&](const std::string& k, const std::string& v) { json += (json.size() > 1 ? "," : "") + fmt::format("\"{}\":{}", k, v); };
  add("machine", fmt::format("\"{} cores, {}\"", std::thread::hardware_concurrency(), [] {
        std::ifstream f("/proc/cpuinfo");
        std::string line;
        while (std::getline(f, line))
          if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
        return std::string("?");
      }()));

  // 1. Sustained frames/s at max rate, zero drops, publishing to the broker; hot-path allocations.
  auto want = [&](const char* part) { return only.empty() || std::find(only.begin(), only.end(), part) != only.end(); };
  if (!want("rate-probe")) o.skip_rate_probe = true;
  int step = 0;
  const int steps = (want("max-rate") ? 8 : 0) + (want("web") ? 1 : 0) + (want("zmq") ? 1 : 0) +
                    (want("latency") ? 1 : 0) + (want("cpu") ? 4 : 0) + (o.skip_rate_probe ? 0 : 16);
  // Without and with the analysis (--analysis on), side by side: the ratio is its cost.
  for (const char* profile : {"ac3", "dc"}) {
    if (!want("max-rate")) break;
    double off_rate = 0;
    for (const char* analysis : {"off", "on"}) {
      progress.update(++step, steps);
      std::uint64_t allocs = 0;
      Stats s;
      s.load(run_in_process({"--sim-profile", profile, "--max-rate", "--duration", fmt::format("{}", o.seconds),
                             "--broker", broker, "--state-dir", "none", "--module-id", "bench", "--analysis", analysis},
                            o.warmup_s, &allocs));
      const std::string key = std::string("max_rate_") + (std::string(profile) == "ac3" ? "ac3n" : "dc") +
                              (std::string(analysis) == "on" ? "_analysis" : "");
      const double rate = s.num("frames_processed") / s.num("elapsed_s");
      add(key + "_frames_per_s", fmt::format("{:.0f}", rate));
      add(key + "_frames_dropped", fmt::format("{:.0f}", s.num("frames_dropped")));
      add(key + "_hot_path_allocations_after_warmup", std::to_string(allocs));
      if (std::string(analysis) == "off") off_rate = rate;
      else add(key + "_ratio", fmt::format("{:.3f}", off_rate > 0 ? rate / off_rate : 0.0));
    }
    // Right after the daemon's run: the simulator alone, and the daemon's share of it.
    const double alone = simulator_alone_frames_per_s(profile, std::min(o.seconds, 5.0));
    const std::string key = std::string("simulator_alone_") + (std::string(profile) == "ac3" ? "ac3n" : "dc");
    add(key + "_frames_per_s", fmt::format("{:.0f}", alone));
    add(std::string("max_rate_") + (std::string(profile) == "ac3" ? "ac3n" : "dc") + "_of_simulator_alone",
        fmt::format("{:.3f}", alone > 0 ? off_rate / alone : 0.0));
  }
  // Ten-channel frames (AC3N_DC, a charger's two points on one clock) against AC3N, side by side: the
  // same recorded signal replayed in a loop at max rate (the simulator's charger profile, a whole
  // charging session, costs more to make than to measure), each point as its daemon measures it.
  if (want("max-rate")) {
    auto record = [&](const char* profile, const std::string& path) {
      const pid_t pid = spawn({o.bin_dir + "/wattpipe-daq", "--sim-profile", profile, "--write", path, "--max-rate",
                               "--frames", "1000000", "--quiet"},
                              tmp + "/daq.log");
      int status = 0;
      waitpid(pid, &status, 0);
      return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    };
    const std::string f10 = tmp + "/ac3n_dc.wprb", f8 = tmp + "/ac3n.wprb";
    if (record("charger", f10) && record("ac3", f8)) {
      // Frames dropped anywhere: by the source, and (several points) on the way to each point.
      auto replay = [&](const std::string& path, std::vector<std::string> points) {
        progress.update(++step, steps);
        std::vector<std::string> args{"--source", "replay:" + path, "--replay-loop", "--max-rate", "--duration",
                                      fmt::format("{}", o.seconds), "--broker", broker, "--state-dir", "none",
                                      "--module-id", "bench"};
        args.insert(args.end(), points.begin(), points.end());
        Stats s;
        s.load(run_in_process(args, o.warmup_s, nullptr));
        const double dropped = s.num("frames_dropped") + s.num("/points/grid/frames_dropped") +
                               s.num("/points/car/point_queue_blocks_dropped") +
                               s.num("/points/grid/point_queue_blocks_dropped");
        return std::pair{s.num("frames_processed") / s.num("elapsed_s"), dropped};
      };
      const auto [ac3n, ac3n_dropped] = replay(f8, {});
      add("replay_ac3n_frames_per_s", fmt::format("{:.0f}", ac3n));
      // Each point alone (--point), and both in one daemon (--points grid,car: a bench's configuration,
      // the car side's efficiency against the grid side per window included).
      for (const char* point : {"car", "grid", "both"}) {
        const bool both = std::string(point) == "both";
        const auto [rate, dropped] = replay(f10, both ? std::vector<std::string>{"--points", "grid,car"}
                                                      : std::vector<std::string>{"--point", point});
        const std::string key = std::string("replay_ac3n_dc_") + point;
        add(key + "_frames_per_s", fmt::format("{:.0f}", rate));
        add(key + "_frames_dropped", fmt::format("{:.0f}", dropped));
        add(key + "_channel_samples_of_ac3n", fmt::format("{:.3f}", ac3n > 0 ? 10 * rate / (8 * ac3n) : 0.0));
      }
    }
  }

  // 1b. The live page's cost: AC3N at max rate with --http and 10 WebSocket
  // clients (civetweb's client, in this process) at 10 updates/s, against
  // the same run without the page; alternated five times (this machine's
  // noise between runs is 10-15 %), the median of the five ratios.
  if (want("web")) {
    progress.update(++step, steps);
    constexpr int kClients = 10, kRounds = 5;
    double frames[2] = {0, 0}, seconds[2] = {0, 0};
    std::vector<double> ratios;
    double updates = 0, dropped = 0;
    std::atomic<std::uint64_t> counts[2] = {0, 0};  // text, binary messages received
    double connected_s = 0;
    for (int round = 0; round < kRounds; ++round) {
      double rate[2] = {0, 0};
      for (int web = 0; web < 2; ++web) {
        std::vector<std::string> args{"--sim-profile", "ac3", "--max-rate", "--duration", fmt::format("{}", o.seconds),
                                      "--broker", broker, "--state-dir", "none", "--module-id", "bench",
                                      "--publish-interval-ms", "100"};
        const int port = free_port();
        if (web) args.insert(args.end(), {"--http", fmt::format("127.0.0.1:{}", port)});
        std::vector<mg_connection*> clients;
        std::int64_t t_conn = 0;
        auto connect = [&] {
          if (!web || !wait_port(port, 10)) return;
          mg_init_library(0);
          for (int c = 0; c < kClients; ++c) {
            char err[256] = {};
            mg_connection* conn = mg_connect_websocket_client(
                "127.0.0.1", port, 0, err, sizeof err, "/ws", nullptr,
                [](mg_connection*, int bits, char*, std::size_t, void* u) {
                  auto* n = static_cast<std::atomic<std::uint64_t>*>(u);
                  if ((bits & 0x0f) == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) return 0;  // as a browser does
                  n[(bits & 0x0f) == MG_WEBSOCKET_OPCODE_BINARY ? 1 : 0].fetch_add(1, std::memory_order_relaxed);
                  return 1;
                },
                nullptr, counts);
            if (conn != nullptr) clients.push_back(conn);
          }
          t_conn = steady_now_ns();
        };
        Stats s;
        const std::int64_t t_start = steady_now_ns();
        s.load(run_in_process(args, o.warmup_s, nullptr, connect));
        // Connected while the daemon ran: its run time less the time to connect.
        if (web) connected_s += s.num("elapsed_s") - double(t_conn - t_start) / 1e9;
        for (auto* c : clients) mg_close_connection(c);
        frames[web] += s.num("frames_processed");
        seconds[web] += s.num("elapsed_s");
        rate[web] = s.num("frames_processed") / s.num("elapsed_s");
        updates += s.num("web_updates");
        dropped += s.num("web_updates_dropped");
      }
      ratios.push_back(rate[0] > 0 ? rate[1] / rate[0] : 0.0);
    }
    add("max_rate_ac3n_web_off_frames_per_s", fmt::format("{:.0f}", frames[0] / seconds[0]));
    add("max_rate_ac3n_web_10_clients_frames_per_s", fmt::format("{:.0f}", frames[1] / seconds[1]));
    add("max_rate_ac3n_web_10_clients_ratio", fmt::format("{:.3f}", percentile(ratios, 0.5)));
    add("web_updates_built_per_s", fmt::format("{:.1f}", seconds[1] > 0 ? updates / seconds[1] : 0.0));
    add("web_updates_dropped", fmt::format("{:.0f}", dropped));
    add("web_updates_per_client_per_s",
        fmt::format("{:.1f}", connected_s > 0 ? double(counts[0].load()) / kClients / connected_s : 0.0));
    add("web_scopes_per_client_per_s",
        fmt::format("{:.1f}", connected_s > 0 ? double(counts[1].load()) / kClients / connected_s : 0.0));
  }

  // 1c. ZeroMQ input: the same pre-encoded AC3N blocks (1024 frames, float32)
  // pushed over TCP loopback to a bare PULL socket and to the daemon's
  // --source zmq-pull (analysis off and on), alternated three times; the
  // median of the ratios to the bare receiver.
  if (want("zmq")) {
    progress.update(++step, steps);
    std::vector<double> bare, off, on;
    for (int round = 0; round < 3; ++round) {
      for (int k = 0; k < 3; ++k) {
        const std::string ep = fmt::format("tcp://127.0.0.1:{}", free_port());
        wattpipe::bench::BlockSender sender(ep);
        std::thread tx([&] { sender.run(); });
        double rate = 0;
        if (k == 0) {
          rate = wattpipe::bench::bare_pull_frames_per_s(ep, o.seconds);
        } else {
          Stats s;
          s.load(run_in_process({"--source", "zmq-pull:" + ep, "--duration", fmt::format("{}", o.seconds), "--broker",
                                 broker, "--state-dir", "none", "--module-id", "bench", "--analysis",
                                 k == 1 ? "off" : "on"},
                                o.warmup_s, nullptr));
          rate = s.num("frames_processed") / s.num("elapsed_s");
          if (s.num("frames_dropped") + s.num("frames_lost_gap") > 0) add("zmq_pull_frames_lost", "true");
        }
        sender.stop();
        tx.join();
        (k == 0 ? bare : k == 1 ? off : on).push_back(rate);
      }
    }
    std::vector<double> r_off, r_on;
    for (int k = 0; k < 3; ++k) r_off.push_back(off[k] / bare[k]), r_on.push_back(on[k] / bare[k]);
    add("zmq_bare_push_pull_frames_per_s", fmt::format("{:.0f}", percentile(bare, 0.5)));
    add("zmq_pull_daemon_frames_per_s", fmt::format("{:.0f}", percentile(off, 0.5)));
    add("zmq_pull_daemon_ratio", fmt::format("{:.3f}", percentile(r_off, 0.5)));
    add("zmq_pull_daemon_analysis_frames_per_s", fmt::format("{:.0f}", percentile(on, 0.5)));
    add("zmq_pull_daemon_analysis_ratio", fmt::format("{:.3f}", percentile(r_on, 0.5)));
  }

  // 2. Latency and message rate at --publish-interval-ms 1 (1 ms DC windows), against the binary.
  if (want("latency")) {
    progress.update(++step, steps);
    Receiver rx(broker_port, "everest_api/1/powermeter/bench/m2e/powermeter_values");
    const std::string stats_path = tmp + "/latency.json";
    const pid_t pid = spawn({o.bin_dir + "/wattpipe", "--broker", broker, "--module-id", "bench", "--sim-profile", "dc",
                             "--window-ms", "1", "--publish-interval-ms", "1", "--stamp-messages", "--duration",
                             fmt::format("{}", o.seconds), "--state-dir", tmp + "/state", "--stats-json", stats_path},
                            tmp + "/wattpipe.log");
    int status = 0;
    rusage ru{};
    wait4(pid, &status, 0, &ru);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    std::ifstream f(stats_path);
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    Stats s;
    s.load(text);
    std::lock_guard lock(rx.mu);
    const double span_s = double(rx.last_ns - rx.first_ns) / 1e9;
    add("publish_latency_us", fmt::format("{{\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{:.1f},\"count\":{:.0f}}}",
                                          s.num("publish_latency_p50_us"), s.num("publish_latency_p99_us"),
                                          s.num("publish_latency_p999_us"), s.num("publish_latency_max_us"),
                                          s.num("publish_latency_count")));
    add("receipt_latency_us", fmt::format("{{\"p50\":{:.1f},\"p99\":{:.1f},\"p999\":{:.1f},\"max\":{:.1f},\"count\":{}}}",
                                          percentile(rx.latency_us, 0.5), percentile(rx.latency_us, 0.99),
                                          percentile(rx.latency_us, 0.999), percentile(rx.latency_us, 1.0),
                                          rx.latency_us.size()));
    add("mqtt_messages_per_s_at_1ms", fmt::format("{:.0f}", span_s > 0 ? double(rx.messages - 1) / span_s : 0.0));
    add("mqtt_windows_per_s_at_1ms", fmt::format("{:.0f}", s.num("windows_closed") / s.num("elapsed_s")));
    add("daemon_peak_rss_mib", fmt::format("{:.1f}", double(ru.ru_maxrss) / 1024.0));
  }

  // 3. CPU per second of metering: the binary as a user runs it, measured by wait4().
  if (want("cpu")) {
    struct Case {
      const char* key;
      std::vector<std::string> args;
    };
    const std::vector<Case> cases = {
        {"dc_1ks", {"--sim-profile", "dc", "--sample-rate", "1000"}},
        {"ac3n_20ks", {"--sim-profile", "ac3", "--sample-rate", "20000"}},
        {"ac3n_1ms", {"--sim-profile", "ac3", "--sample-rate", "1000000"}},
        {"ac3n_max_rate", {"--sim-profile", "ac3", "--max-rate"}},
    };
    std::string obj = "{";
    for (const Case& c : cases) {
      progress.update(++step, steps);
      const std::string stats_path = tmp + "/cpu-" + c.key + ".json";
      std::vector<std::string> args{o.bin_dir + "/wattpipe", "--broker", broker, "--module-id", "bench", "--duration",
                                    fmt::format("{}", o.seconds), "--state-dir", tmp + "/state-" + c.key,
                                    "--stats-json", stats_path};
      args.insert(args.end(), c.args.begin(), c.args.end());
      const pid_t pid = spawn(args, tmp + "/wattpipe-cpu.log");
      // Steady state: from after the warm-up to shortly before the end, read
      // from /proc (start-up, key loading and shutdown are not metering).
      std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup_s));
      const ProcCpu a = proc_cpu(pid);
      const std::int64_t ta = steady_now_ns();
      std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.5, o.seconds - o.warmup_s - 0.5)));
      const ProcCpu b = proc_cpu(pid);
      const double span = double(steady_now_ns() - ta) / 1e9;
      int status = 0;
      waitpid(pid, &status, 0);
      std::ifstream f(stats_path);
      const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      Stats s;
      s.load(text);
      const double user = (b.user_s - a.user_s) / span, sys = (b.sys_s - a.sys_s) / span;
      const double run = (b.run_s - a.run_s) / span;
      obj += fmt::format("{}\"{}\":{{\"cpu_pct_of_a_core\":{:.3f},\"user_s_per_s\":{:.5f},\"sys_s_per_s\":{:.5f},"
                         "\"context_switches_per_s\":{:.0f},\"frames_per_s\":{:.0f},\"frames_dropped\":{:.0f}}}",
                         obj.size() > 1 ? "," : "", c.key, 100 * run, user, sys,
                         double(b.switches - a.switches) / span,
                         s.num("frames_processed") / std::max(1e-9, s.num("elapsed_s")), s.num("frames_dropped"));
    }
    add("cpu", obj + "}");
  }

  // 4. The highest real-time sample rate held with zero drops, without and
  // with the analysis: in real time, the measure of what the analysis costs
  // that does not depend on how fast the simulator can run (--max-rate does).
  if (!o.skip_rate_probe) {
    double held[2] = {0, 0};
    for (int an = 0; an < 2; ++an) {
      auto holds = [&](double rate) {
        progress.update(++step, steps);
        Stats s;
        s.load(run_in_process({"--sim-profile", "ac3", "--sample-rate", fmt::format("{}", rate), "--duration",
                               fmt::format("{}", o.probe_s), "--broker", broker, "--state-dir", "none", "--module-id",
                               "bench", "--analysis", an == 1 ? "on" : "off"},
                              0, nullptr));
        const double want = rate * s.num("elapsed_s");
        return s.num("frames_dropped") == 0 && s.num("frames_lost_gap") == 0 && s.num("frames_processed") > 0.98 * want;
      };
      double lo = 0, hi = 0;
      for (double r = 1e6; r <= 512e6; r *= 2) {
        if (holds(r)) {
          lo = r;
        } else {
          hi = r;
          break;
        }
      }
      for (int k = 0; k < 3 && hi > 0 && lo > 0; ++k) {
        const double mid = (lo + hi) / 2;
        (holds(mid) ? lo : hi) = mid;
      }
      held[an] = lo;
    }
    add("realtime_max_sample_rate_hz", fmt::format("{:.0f}", held[0]));
    add("realtime_max_sample_rate_analysis_hz", fmt::format("{:.0f}", held[1]));
    add("realtime_max_sample_rate_analysis_ratio", fmt::format("{:.3f}", held[0] > 0 ? held[1] / held[0] : 0.0));
    add("realtime_probe_s", fmt::format("{}", o.probe_s));
  }
  // 5. The database store against psql's COPY of the same rows (a private PostgreSQL).
  if (want("store")) {
    try {
      add("store", wattpipe::tools::bench_store(tmp, free_port(), store_rows));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "wattpipe-bench: store: %s\n", e.what());
      add("store", "null");
    }
  }
  json += "}";
  if (broker_pid > 0) {
    ::kill(broker_pid, SIGTERM);
    ::waitpid(broker_pid, nullptr, 0);
  }
  std::filesystem::remove_all(tmp);
  std::printf("%s\n", json.c_str());
  if (!output.empty()) std::ofstream(output) << json << "\n";
  return 0;
}

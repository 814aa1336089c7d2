// SPDX-License-Identifier: Apache-2.0
// The whole meter in one object: source -> acquisition thread -> block ring ->
// processing thread -> the legal part (registers, state, transactions) ->
// the publishers (MQTT thread, log thread, web thread), once per measuring
// point of the stream (--points: a charger's grid input and DC output, each
// its own EVerest module). tools/wattpipe.cpp is a thin main() around it;
// benchmarks and tests can run it in-process.
//
// Threading: run() on one thread (it blocks until the end); request_stop()
// from any thread, including a signal-waiting thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "wattpipe/acquire/waker.hpp"
#include "wattpipe/publish/config.hpp"

namespace wattpipe::publish {

class Daemon {
 public:
  explicit Daemon(Config cfg);
  ~Daemon();

  // Runs until --duration, the end of a finite source, or request_stop().
  // With handle_signals, SIGINT/SIGTERM also stop it (they must be blocked in
  // every thread: run() blocks them before it starts any). Returns the exit
  // code: 0 clean, 1 runtime failure, 2 bad configuration.
  int run(bool handle_signals = true);
  void request_stop() noexcept {
    stop_.store(true, std::memory_order_relaxed);
    main_waker_.wake();
  }

  // After run(): the final counters as one JSON object (what --stats-json writes).
  [[nodiscard]] const std::string& stats_json() const noexcept { return stats_; }

  struct Run;   // the parts of one point's run, built in data-flow order (opaque: publish/src/daemon_run.hpp)
  struct Runs;  // the stream and every point's run

 private:
  int build(Runs& runs);
  int build(Run& r, Runs& runs);
  std::string main_loop(Runs& runs, int signal_fd);
  void shutdown(Runs& runs);
  int write_stats(Runs& runs, const std::string& why);

  Config cfg_;
  std::atomic<bool> stop_{false};
  acquire::Waker main_waker_;  // the run() loop sleeps on it: stop, end of the source
  std::string stats_;
};

// Configures logging (spdlog to stderr) at the given level name.
void setup_logging(const std::string& level);

}  // namespace wattpipe::publish

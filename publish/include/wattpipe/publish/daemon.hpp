// SPDX-License-Identifier: Apache-2.0
// The whole meter in one object: source -> acquisition thread -> block ring ->
// processing thread -> MQTT thread (and, when configured, the state writer
// and the log thread). tools/wattpipe.cpp is a thin main() around it;
// benchmarks and tests can run it in-process.
//
// Threading: run() on one thread (it blocks until the end); request_stop()
// from any thread, including a signal-waiting thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "wattpipe/acquire/waker.hpp"
#include "wattpipe/pipeline/state_store.hpp"
#include "wattpipe/pipeline/transaction_journal.hpp"
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

 private:
  bool check_state(pipeline::RegisterStore& store, const pipeline::RegisterStore::Recovered& rec,
                   pipeline::TransactionJournal& journal);

  Config cfg_;
  std::atomic<bool> stop_{false};
  acquire::Waker main_waker_;  // the run() loop sleeps on it: stop, end of the source
  std::string stats_;
};

// Configures logging (spdlog to stderr) at the given level name.
void setup_logging(const std::string& level);

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
// The database store (--store, docs/store.md): every window, step and
// transaction into PostgreSQL, through libpq's COPY, without ever holding up
// the pipeline. Two threads of its own:
// - the gather thread drains the window queue the processing thread fills
//   (an SpscRing, lock-free) and the transactions the MQTT thread hands
//   over (a lock-free queue), and seals them into batches every batch_ms;
// - the writer thread sends the batches in order, each in one database
//   transaction. While the database is away, batches go to a spool on disk
//   (bounded), and the writer reconnects with back-off and catches up,
//   oldest first. A key on (module_id, t_start) and a second, de-duplicating
//   path for a batch the server already has make a retry never double a row.
//
// Threading: construct, start(), stop(), join() from the owner (main)
// thread; add_transaction() from any thread; counters(), last_error() and
// target() from any thread.
//
// Memory ordering: the hand-offs are an SpscRing and a moodycamel queue (see
// there); counters are relaxed statistics; the two store threads share one
// mutex for the batches between them, which no pipeline thread touches.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "wattpipe/acquire/spsc_ring.hpp"
#include "wattpipe/acquire/waker.hpp"
#include "wattpipe/pipeline/window.hpp"

namespace wattpipe::publish {

// The configuration the user must fix: a URL libpq cannot read, a server
// that refuses the login (wrong password, no such role or database), or a
// schema newer than this build writes.
struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct StoreConfig {
  std::string url;  // libpq's connection string: postgresql://USER@HOST:PORT/DB?sslmode=...
  std::string module_id, meter_id;
  std::string spool_dir;
  double spool_max_mb = 1024;   // spool on disk at most (0: no limit)
  double memory_mb = 32;        // batches waiting in memory at most, then the spool takes them
  int batch_ms = 200;           // a batch is sealed this often (or at max_batch_rows)
  std::uint32_t max_batch_rows = 20000;
  double drain_s = 10;          // at stop: time given to send what is left (the rest stays spooled)
};

// A transaction for wattpipe_transactions: at its start (no end yet), and at its end.
struct StoreTransaction {
  std::string id, evse_id;
  std::int64_t begin_utc_ns = 0;
  std::string begin_record;
  std::optional<std::int64_t> end_utc_ns;
  std::string end_record;
  // Two points, at the end: energy into and out of the charger, and their ratio (NaN: none).
  double e_in_wh = std::numeric_limits<double>::quiet_NaN(), e_out_wh = e_in_wh, efficiency = e_in_wh;
};

// Relaxed statistics, written by the store's threads, read by any.
struct StoreCounters {
  std::atomic<std::uint64_t> windows_written{0}, steps_written{0}, spectra_written{0}, transactions_written{0};
  std::atomic<std::uint64_t> batches_written{0};
  std::atomic<std::uint64_t> batches_deduplicated{0};  // sent again after a lost reply: rows the server had skipped
  std::atomic<std::uint64_t> batches_spooled{0};       // went to disk (database away or behind)
  std::atomic<std::uint64_t> spool_bytes{0}, spool_batches{0};
  std::atomic<std::uint64_t> spectra_dropped{0}, windows_dropped{0}, steps_dropped{0};  // the spool's limit
  std::atomic<std::uint64_t> rows_lost{0};             // could be neither sent nor spooled (a full disk)
  std::atomic<std::uint64_t> windows_missed{0};        // the queue from the processing thread overflowed
  std::atomic<std::uint64_t> batches_rejected{0};      // refused by the database for their content
  std::atomic<std::uint64_t> connects{0}, connect_failures{0}, errors{0};
  std::atomic<bool> connected{false};
  std::atomic<bool> spool_over_limit{false};           // over its limit with transaction windows only
  std::atomic<std::int64_t> lag_ns{0};                 // age of the oldest row not yet in the database
  std::atomic<std::int64_t> lag_max_ns{0};
};

class Store {
 public:
  // Connects once to say at start-up what is wrong: throws StoreError for a
  // bad URL or a refused login, or std::runtime_error when the spool
  // directory cannot be made. A server that cannot be reached is not an
  // error: the store spools and keeps trying.
  Store(StoreConfig cfg, acquire::SpscRing<pipeline::WindowRecord>* windows);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // The processing thread notifies it after each window it hands over.
  [[nodiscard]] acquire::Waker& waker() noexcept;
  // Any thread (the MQTT thread); lock-free.
  void add_transaction(StoreTransaction t);
  void start();
  // Owner thread, after the processing thread has ended: the rest of the
  // queue is sealed, and sent within drain_s, or left in the spool for the
  // next run.
  void stop();
  void join();

  [[nodiscard]] const StoreCounters& counters() const noexcept;
  // The database as "user@host:port/db" (never the password).
  [[nodiscard]] const std::string& target() const noexcept;
  // The last problem, for the page ("" when none since the last success).
  [[nodiscard]] std::string last_error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/store.hpp"

#include <poll.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <concurrentqueue/concurrentqueue.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "store_rows.hpp"
#include "store_spool.hpp"
#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/log_limit.hpp"
#include "wattpipe/legal/legal.hpp"
#include "wattpipe/publish/pg.hpp"

namespace wattpipe::publish {

using store::Batch;
using store::Part;
using store::Table;

namespace {

constexpr std::int64_t kBackoffMinNs = 250'000'000, kBackoffMaxNs = 5'000'000'000;

// How a batch that failed is handled.
enum class Outcome { sent, duplicate, rejected, lost_connection };

// SQLSTATE classes of a batch the server will never take as it is: its data
// (22), a constraint other than the key (23), or a table someone changed (42).
bool content_error(const std::string& s) {
  return s.size() == 5 && s != "23505" && (s.starts_with("22") || s.starts_with("23") || s.starts_with("42"));
}

void append_transaction_row(std::string& out, std::string_view module_id, const StoreTransaction& t) {
  store::append_text(out, module_id);
  out += '\t';
  store::append_text(out, t.id);
  out += '\t';
  store::append_text(out, t.evse_id);
  out += '\t';
  store::append_timestamp(out, t.begin_utc_ns);
  out += '\t';
  if (t.end_utc_ns) store::append_timestamp(out, *t.end_utc_ns);
  else out += "\\N";
  out += '\t';
  store::append_text(out, t.begin_record);
  out += '\t';
  if (t.end_utc_ns) store::append_text(out, t.end_record);
  else out += "\\N";
  for (const double v : {t.e_in_wh, t.e_out_wh, t.efficiency}) {
    out += '\t';
    if (std::isfinite(v)) fmt::format_to(std::back_inserter(out), "{}", v);
    else out += "\\N";
  }
  out += '\n';
}

constexpr std::string_view kTxColumns =
    "module_id, transaction_id, evse_id, t_begin, t_end, begin_ocmf, end_ocmf, e_in_wh, e_out_wh, efficiency";

}  // namespace

struct Store::Impl {
  StoreConfig cfg;
  acquire::SpscRing<pipeline::WindowRecord>* windows;
  std::string target;
  store::Spool spool;
  acquire::Waker waker;
  moodycamel::ConcurrentQueue<StoreTransaction> tx_queue{64};
  StoreCounters counters;
  std::atomic<bool> stopping{false};
  std::unique_ptr<pg::Connection> first;  // the start-up connection, handed to the writer

  // Between the two threads (never a pipeline thread).
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Batch>> memory;  // sealed, in order, all older than anything spooled after them
  std::size_t memory_bytes = 0;
  bool gather_done = false;
  bool writer_up = false;  // the writer has a connection that works
  std::string last_error;

  std::thread gather_thread, writer_thread;

  Impl(StoreConfig c, acquire::SpscRing<pipeline::WindowRecord>* w)
      : cfg(std::move(c)),
        windows(w),
        target(pg::describe(cfg.url)),
        spool(cfg.spool_dir, std::uint64_t(cfg.spool_max_mb * 1e6)) {}

  void note_error(const std::string& e) {
    const std::lock_guard lock(mutex);
    last_error = e;
  }

  // ---- the gather thread ------------------------------------------------

  void gather() {
    Batch cur;
    std::uint64_t next_seq = spool.next_seq();
    std::uint64_t expect_seq = ~std::uint64_t{0};
    std::int64_t opened_ns = 0;
    acquire::LogLimit missed_log, drop_log, lost_log;
    pipeline::WindowRecord w;
    auto seal = [&] {
      if (cur.empty()) return;
      cur.seq = next_seq++;
      hand_over(std::move(cur), drop_log, lost_log);
      cur = Batch{};
    };
    for (;;) {
      const bool stop = stopping.load(std::memory_order_acquire);
      StoreTransaction t;
      while (tx_queue.try_dequeue(t)) {
        if (cur.empty()) opened_ns = acquire::steady_now_ns(), cur.handed_steady_ns = opened_ns;
        append_transaction_row(cur.text[store::transactions], cfg.module_id, t);
        ++cur.rows[store::transactions];
        const store::Span s{t.begin_utc_ns, t.end_utc_ns.value_or(INT64_MAX)};
        cur.spans.push_back(s);
        spool.note(s);
      }
      std::uint32_t taken = 0;
      while (taken < 1024 && windows->try_pop(w)) {
        ++taken;
        if (expect_seq != ~std::uint64_t{0} && w.seq > expect_seq) {
          counters.windows_missed.fetch_add(w.seq - expect_seq, std::memory_order_relaxed);
          if (std::uint64_t n = 0; missed_log.allow(n))
            spdlog::error("store: {} windows not stored before window {}: the store queue was full (--store-queue)",
                          w.seq - expect_seq, w.seq);
        }
        expect_seq = w.seq + 1;
        if (cur.empty()) opened_ns = acquire::steady_now_ns(), cur.handed_steady_ns = opened_ns;
        store::append_window_row(cur.text[store::windows], cfg.module_id, cfg.meter_id, w);
        ++cur.rows[store::windows];
        if (store::append_spectra_row(cur.text[store::spectra], cfg.module_id, w)) ++cur.rows[store::spectra];
        cur.rows[store::steps] += store::append_step_rows(cur.text[store::steps], cfg.module_id, w);
        if (cur.t_first_ns == 0) cur.t_first_ns = w.start_utc_ns;
        cur.t_last_ns = w.start_utc_ns;
        if (cur.rows[store::windows] >= cfg.max_batch_rows) seal();
      }
      const std::int64_t now = acquire::steady_now_ns();
      const std::int64_t batch_ns = std::int64_t(cfg.batch_ms) * 1'000'000;
      if (!cur.empty() && (stop || now - opened_ns >= batch_ns)) seal();
      if (taken == 1024) continue;  // more waiting
      if (stop && (windows->size_approx() == 0) && tx_queue.size_approx() == 0) break;
      // Sleep until a window arrives, the batch is due, or stop().
      waker.arm();
      if (!(windows->size_approx() == 0) || tx_queue.size_approx() != 0 || stopping.load(std::memory_order_acquire)) {
        waker.disarm();
        continue;
      }
      const std::int64_t wait_ns = cur.empty() ? 1'000'000'000 : std::max<std::int64_t>(0, opened_ns + batch_ns - now);
      pollfd p{waker.fd(), POLLIN, 0};
      ::poll(&p, 1, int(wait_ns / 1'000'000) + 1);
      waker.drain();
    }
    seal();
    {
      const std::lock_guard lock(mutex);
      gather_done = true;
    }
    cv.notify_all();
  }

  // A sealed batch to the writer: in memory while the writer keeps up and
  // nothing waits on disk, else to the spool (after the older ones).
  void hand_over(Batch&& b, acquire::LogLimit& drop_log, acquire::LogLimit& lost_log) {
    std::unique_lock lock(mutex);
    // Memory full but the writer sending: wait for it while the queue from
    // the processing thread has room (a quarter of it left), rather than
    // write to disk what the writer would read back at once.
    const std::size_t limit = std::size_t(cfg.memory_mb * 1e6);
    while (writer_up && spool.empty() && !memory.empty() && memory_bytes + b.bytes() > limit &&
           windows->size_approx() < windows->capacity() / 4 * 3)
      cv.wait_for(lock, std::chrono::milliseconds(10));
    if (writer_up && spool.empty() && (memory.empty() || memory_bytes + b.bytes() <= limit)) {
      memory_bytes += b.bytes();
      memory.push_back(std::make_shared<Batch>(std::move(b)));
      lock.unlock();
      cv.notify_all();
      return;
    }
    to_spool(b, drop_log, lost_log);
    lock.unlock();
    cv.notify_all();
  }

  // Under the mutex: the batch onto disk, or counted as lost.
  void to_spool(const Batch& b, acquire::LogLimit& drop_log, acquire::LogLimit& lost_log) {
    std::string error;
    store::DropReport d;
    if (spool.append(b, error, d)) {
      counters.batches_spooled.fetch_add(1, std::memory_order_relaxed);
    } else {
      const std::uint64_t rows = b.rows[0] + b.rows[1] + b.rows[2] + b.rows[3];
      counters.rows_lost.fetch_add(rows, std::memory_order_relaxed);
      counters.errors.fetch_add(1, std::memory_order_relaxed);
      last_error = "spool: " + error;
      if (std::uint64_t n = 0; lost_log.allow(n))
        spdlog::error("store: {} rows lost: the database is away and the spool cannot take them: {}{}", rows, error,
                      n ? fmt::format(" ({} more batches since)", n) : "");
    }
    if (d.spectra_rows + d.window_rows + d.step_rows > 0) {
      counters.spectra_dropped.fetch_add(d.spectra_rows, std::memory_order_relaxed);
      counters.windows_dropped.fetch_add(d.window_rows, std::memory_order_relaxed);
      counters.steps_dropped.fetch_add(d.step_rows, std::memory_order_relaxed);
      if (std::uint64_t n = 0; drop_log.allow(n))
        spdlog::warn("store: the spool reached {} MB: dropped the oldest {} spectra, {} windows and {} steps "
                     "(windows {} to {}); transactions and their windows are kept",
                     cfg.spool_max_mb, d.spectra_rows, d.window_rows, d.step_rows, iso(d.t_first_ns),
                     iso(d.t_last_ns));
    }
    counters.spool_over_limit.store(spool.over_limit(), std::memory_order_relaxed);
    update_spool_counters();
  }

  static std::string iso(std::int64_t ns) {
    std::string s;
    store::append_timestamp(s, ns);
    return s;
  }

  void update_spool_counters() {
    counters.spool_bytes.store(spool.bytes(), std::memory_order_relaxed);
    counters.spool_batches.store(spool.batches(), std::memory_order_relaxed);
  }

  // ---- the writer thread ------------------------------------------------

  // Lag: how long the oldest row not yet in the database has waited (0: none waits).
  void update_lag(std::int64_t now) {
    std::int64_t oldest = spool.oldest_handed_ns();
    {
      const std::lock_guard lock(mutex);
      if (oldest == 0 && !memory.empty()) oldest = memory.front()->handed_steady_ns;
    }
    const std::int64_t lag = oldest > 0 ? now - oldest : 0;
    counters.lag_ns.store(lag, std::memory_order_relaxed);
    if (lag > counters.lag_max_ns.load(std::memory_order_relaxed)) counters.lag_max_ns.store(lag, std::memory_order_relaxed);
  }

  // Tables, the schema version, and this session's staging tables.
  bool prepare(pg::Connection& c, std::string& error, bool& fatal) {
    // The tables only where one is missing: CREATE needs a right on the schema that writing does not.
    std::string version, missing;
    const bool ok =
        c.exec("BEGIN") && c.exec("SELECT pg_advisory_xact_lock(727746169)") &&
        c.query_value("SELECT count(*) FROM unnest(ARRAY['wattpipe_schema', 'wattpipe_windows', 'wattpipe_steps', "
                      "'wattpipe_spectra', 'wattpipe_transactions']) t WHERE to_regclass(t) IS NULL",
                      missing) &&
        (missing == "0" || c.exec(store::schema_sql())) &&
        c.query_value("SELECT max(version) FROM wattpipe_schema", version);
    if (!ok) {
      error = c.failure().message;
      fatal = content_error(c.failure().sqlstate);
      c.exec("ROLLBACK");
      return false;
    }
    if (!version.empty() && std::stoi(version) > store::kSchemaVersion) {
      c.exec("ROLLBACK");
      error = fmt::format("the database's wattpipe schema is version {}; this wattpipe writes version {}", version,
                          store::kSchemaVersion);
      fatal = true;
      return false;
    }
    if (version.empty() &&
        !c.exec(fmt::format("INSERT INTO wattpipe_schema (version, software) VALUES ({}, '{} {}')",
                            store::kSchemaVersion, "wattpipe", legal::software_id_text()))) {
      error = c.failure().message;
      return false;
    }
    if (!c.exec("COMMIT")) {
      error = c.failure().message;
      return false;
    }
    std::string temps = "CREATE TEMP TABLE IF NOT EXISTS wattpipe_transactions_in (LIKE wattpipe_transactions) ON COMMIT DELETE ROWS;";
    for (Table t : {Table::windows, Table::steps, Table::spectra})
      temps += fmt::format("CREATE TEMP TABLE IF NOT EXISTS {0}_in (LIKE {0}) ON COMMIT DELETE ROWS;", store::table_name(t));
    if (!c.exec(temps)) {
      error = c.failure().message;
      return false;
    }
    return true;
  }

  // One batch in one database transaction; `dedup`: through the staging
  // tables, skipping rows the server already has.
  Outcome send(pg::Connection& c, const Batch& b, bool dedup, std::string& error) {
    auto failed = [&]() {
      error = c.failure().message;
      const std::string state = c.failure().sqlstate;
      if (!c.connected()) return Outcome::lost_connection;
      c.exec("ROLLBACK");
      if (state == "23505") return Outcome::duplicate;
      return content_error(state) ? Outcome::rejected : Outcome::lost_connection;
    };
    if (!c.exec("BEGIN")) return failed();
    for (Table t : {Table::windows, Table::steps, Table::spectra}) {
      const unsigned p = t == Table::windows ? store::windows : t == Table::steps ? store::steps : store::spectra;
      if (b.rows[p] == 0) continue;
      const std::string into = dedup ? fmt::format("{}_in", store::table_name(t)) : std::string();
      if (!c.copy_in(store::copy_sql(t, into), b.text[p])) return failed();
      if (dedup && !c.exec(store::insert_new_sql(t, into))) return failed();
    }
    if (b.rows[store::transactions] > 0) {
      // A start and its stop in one batch: the stop's row wins.
      const std::string upsert = fmt::format(
          "INSERT INTO wattpipe_transactions ({0}) SELECT DISTINCT ON (module_id, transaction_id, t_begin) {0} "
          "FROM wattpipe_transactions_in ORDER BY module_id, transaction_id, t_begin, t_end DESC NULLS LAST "
          "ON CONFLICT (module_id, transaction_id, t_begin) DO UPDATE SET "
          "t_end = COALESCE(EXCLUDED.t_end, wattpipe_transactions.t_end), "
          "end_ocmf = COALESCE(EXCLUDED.end_ocmf, wattpipe_transactions.end_ocmf), "
          "e_in_wh = COALESCE(EXCLUDED.e_in_wh, wattpipe_transactions.e_in_wh), "
          "e_out_wh = COALESCE(EXCLUDED.e_out_wh, wattpipe_transactions.e_out_wh), "
          "efficiency = COALESCE(EXCLUDED.efficiency, wattpipe_transactions.efficiency)",
          kTxColumns);
      if (!c.copy_in(fmt::format("COPY wattpipe_transactions_in ({}) FROM STDIN", kTxColumns),
                     b.text[store::transactions]) ||
          !c.exec(upsert))
        return failed();
    }
    if (!c.exec("COMMIT")) return failed();
    return Outcome::sent;
  }

  // Under the mutex: the batches in memory go to the spool, in order (the
  // writer lost its connection, or the store stops).
  void spill_memory(acquire::LogLimit& drop_log, acquire::LogLimit& lost_log) {
    for (const auto& b : memory) to_spool(*b, drop_log, lost_log);
    memory.clear();
    memory_bytes = 0;
  }

  void write() {
    std::unique_ptr<pg::Connection> conn = std::move(first);
    std::int64_t backoff = kBackoffMinNs, next_try = 0, drain_until = INT64_MAX;
    bool was_up = false;
    acquire::LogLimit err_log(5'000'000'000), drop_log, lost_log;
    auto set_up = [&](bool up) {
      const std::lock_guard lock(mutex);
      writer_up = up;
      if (!up) spill_memory(drop_log, lost_log);
      counters.connected.store(up, std::memory_order_relaxed);
    };
    auto lost = [&](const std::string& why) {
      conn.reset();
      set_up(false);
      counters.errors.fetch_add(1, std::memory_order_relaxed);
      note_error(why);
      if (was_up) spdlog::warn("store: lost the database {}: {}; spooling and reconnecting", target, why);
      was_up = false;
      next_try = acquire::steady_now_ns() + backoff;
    };
    if (conn) {  // the start-up connection, prepared already
      set_up(true), was_up = true;
      counters.connects.fetch_add(1, std::memory_order_relaxed);
    }
    for (;;) {
      const std::int64_t now = acquire::steady_now_ns();
      bool done = false;
      {
        std::unique_lock lock(mutex);
        if (gather_done && drain_until == INT64_MAX) {
          drain_until = now + std::int64_t(cfg.drain_s * 1e9);
          next_try = now;  // not connected: one last try at once
        }
        done = gather_done && memory.empty() && spool.empty();
      }
      update_lag(now);
      if (done || now >= drain_until) break;
      if (!conn) {
        if (now < next_try) {
          std::unique_lock lock(mutex);
          cv.wait_for(lock, std::chrono::nanoseconds(std::min(next_try - now, std::int64_t(100'000'000))));
          continue;
        }
        auto c = std::make_unique<pg::Connection>(cfg.url, "wattpipe " + cfg.module_id);
        std::string error = c->failure().message;
        bool fatal = false;
        if (c->connected() && prepare(*c, error, fatal)) {
          conn = std::move(c);
          counters.connects.fetch_add(1, std::memory_order_relaxed);
          backoff = kBackoffMinNs;
          spdlog::info("store: connected to the database {}{}", target,
                       spool.empty() ? "" : fmt::format("; sending the {} batches spooled", spool.batches()));
          note_error("");
          set_up(true), was_up = true;
        } else {
          counters.connect_failures.fetch_add(1, std::memory_order_relaxed);
          note_error(error);
          if (std::uint64_t n = 0; err_log.allow(n))
            spdlog::warn("store: cannot reach the database {}: {}; spooling, next try in {:.1f} s", target, error,
                         double(backoff) / 1e9);
          next_try = acquire::steady_now_ns() + backoff;
          backoff = std::min(backoff * 2, kBackoffMaxNs);
          if (drain_until != INT64_MAX) break;  // stopping, and still no database: the spool keeps the rest
        }
        continue;
      }
      // The oldest batch: memory first (it is older than the spool's, see hand_over).
      std::shared_ptr<Batch> b;
      bool from_spool = false;
      {
        std::unique_lock lock(mutex);
        if (!memory.empty()) b = memory.front();
      }
      if (!b && !spool.empty()) {
        auto sb = std::make_shared<Batch>();
        std::string error;
        if (spool.oldest(*sb, error)) b = std::move(sb), from_spool = true;
        if (!error.empty()) spdlog::error("store: {}", error), note_error(error);
        update_spool_counters();
      }
      if (!b) {
        std::unique_lock lock(mutex);
        if (memory.empty() && spool.empty() && !gather_done) cv.wait_for(lock, std::chrono::milliseconds(200));
        continue;
      }
      std::string error;
      Outcome o = send(*conn, *b, false, error);
      if (o == Outcome::duplicate) {
        o = send(*conn, *b, true, error);  // the server has some of it: a reply we never got
        if (o == Outcome::sent) counters.batches_deduplicated.fetch_add(1, std::memory_order_relaxed);
      }
      if (o == Outcome::lost_connection) {
        lost(error);
        continue;
      }
      if (o == Outcome::rejected) {
        counters.batches_rejected.fetch_add(1, std::memory_order_relaxed);
        counters.errors.fetch_add(1, std::memory_order_relaxed);
        note_error(error);
        spdlog::error("store: the database refused batch {} ({} windows): {}; kept in '{}/rejected'", b->seq,
                      b->rows[store::windows], error, spool.dir());
        std::unique_lock lock(mutex);
        if (!from_spool) {  // onto disk first, to keep it
          memory_bytes -= b->bytes();
          memory.pop_front();
          to_spool(*b, drop_log, lost_log);
        }
        spool.reject(b->seq, error);
        continue;
      }
      counters.windows_written.fetch_add(b->rows[store::windows], std::memory_order_relaxed);
      counters.steps_written.fetch_add(b->rows[store::steps], std::memory_order_relaxed);
      counters.spectra_written.fetch_add(b->rows[store::spectra], std::memory_order_relaxed);
      counters.transactions_written.fetch_add(b->rows[store::transactions], std::memory_order_relaxed);
      counters.batches_written.fetch_add(1, std::memory_order_relaxed);
      {
        std::unique_lock lock(mutex);
        if (from_spool) spool.remove(b->seq);
        else memory_bytes -= b->bytes(), memory.pop_front();
      }
      cv.notify_all();  // room for the gather thread
      update_spool_counters();
      const std::int64_t t = acquire::steady_now_ns();
      if (b->handed_steady_ns > 0 && t - b->handed_steady_ns > counters.lag_max_ns.load(std::memory_order_relaxed))
        counters.lag_max_ns.store(t - b->handed_steady_ns, std::memory_order_relaxed);
    }
    // What is left stays on disk for the next run.
    std::unique_lock lock(mutex);
    spill_memory(drop_log, lost_log);
    update_spool_counters();
    if (!spool.empty())
      spdlog::warn("store: {} batches ({:.1f} MB) not yet in the database are kept in '{}' for the next run",
                   spool.batches(), double(spool.bytes()) / 1e6, spool.dir());
    writer_up = false;
    counters.connected.store(false, std::memory_order_relaxed);
  }
};

Store::Store(StoreConfig cfg, acquire::SpscRing<pipeline::WindowRecord>* windows) {
  if (const std::string e = pg::check_url(cfg.url); !e.empty())
    throw StoreError(fmt::format("--store: '{}' is not a PostgreSQL connection string: {}", cfg.url, e));
  impl_ = std::make_unique<Impl>(std::move(cfg), windows);
  auto c = std::make_unique<pg::Connection>(impl_->cfg.url, "wattpipe " + impl_->cfg.module_id);
  if (c->refused())
    throw StoreError(fmt::format("--store: the database {} refused the connection: {}", impl_->target,
                                 c->failure().message));
  if (!c->connected()) {
    spdlog::warn("store: cannot reach the database {} now: {}; spooling to '{}' until it answers", impl_->target,
                 c->failure().message, impl_->cfg.spool_dir);
    impl_->note_error(c->failure().message);
    return;
  }
  std::string error;
  bool fatal = false;
  if (!impl_->prepare(*c, error, fatal) && fatal)
    throw StoreError(fmt::format("--store: the database {}: {}", impl_->target, error));
  impl_->first = std::move(c);
  spdlog::info("store: windows, steps and transactions of module {} into the database {}", impl_->cfg.module_id,
               impl_->target);
}

Store::~Store() {
  if (impl_ && impl_->gather_thread.joinable()) {
    stop();
    join();
  }
}

acquire::Waker& Store::waker() noexcept { return impl_->waker; }

void Store::add_transaction(StoreTransaction t) {
  impl_->tx_queue.enqueue(std::move(t));
  impl_->waker.notify();
}

void Store::start() {
  impl_->gather_thread = std::thread([this] { impl_->gather(); });
  impl_->writer_thread = std::thread([this] { impl_->write(); });
}

void Store::stop() {
  impl_->stopping.store(true, std::memory_order_release);
  impl_->waker.wake();
}

void Store::join() {
  if (impl_->gather_thread.joinable()) impl_->gather_thread.join();
  impl_->cv.notify_all();
  if (impl_->writer_thread.joinable()) impl_->writer_thread.join();
}

const StoreCounters& Store::counters() const noexcept { return impl_->counters; }
const std::string& Store::target() const noexcept { return impl_->target; }
std::string Store::last_error() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->last_error;
}

}  // namespace wattpipe::publish

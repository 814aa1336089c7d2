// SPDX-License-Identifier: Apache-2.0
// wattpipe-bench --only store: the database store's rows/s into a private
// PostgreSQL, against psql's own COPY of the very same rows (the limit),
// alternated in one run.
#include "bench_store.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/publish/store.hpp"

namespace wattpipe::tools {

namespace {

using acquire::steady_now_ns;

// A PostgreSQL of its own: initdb in `dir`, a free port, trust on its socket.
// As root, the server runs as the postgres user (it refuses root).
class ScratchPostgres {
 public:
  ScratchPostgres(std::string dir, int port) : dir_(std::move(dir)), port_(port) {
    std::filesystem::create_directories(dir_);
    as_ = ::geteuid() == 0 ? "runuser -u postgres -- " : "";
    if (!as_.empty() && std::system(fmt::format("chown postgres: '{}'", dir_).c_str()) != 0)
      throw std::runtime_error("cannot give the scratch directory to the postgres user");
    const std::string bin = pg_bin();
    sh(fmt::format("{}{}/initdb -D '{}/data' -U wattpipe --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >'{}/initdb.log' 2>&1",
                   as_, bin, dir_, dir_), "initdb");
    sh(fmt::format("{}{}/pg_ctl -D '{}/data' -l '{}/postgres.log' -w -o \"-p {} -k '{}' -c listen_addresses=127.0.0.1 "
                   "-c fsync=off\" start >/dev/null",
                   as_, bin, dir_, dir_, port_, dir_),
       "pg_ctl start");
    started_ = true;
    psql("CREATE DATABASE bench", "postgres");
  }
  ~ScratchPostgres() {
    if (started_)
      (void)std::system(fmt::format("{}{}/pg_ctl -D '{}/data' -m fast -w stop >/dev/null 2>&1", as_, pg_bin(), dir_).c_str());
  }
  [[nodiscard]] std::string url() const { return fmt::format("postgresql://wattpipe@127.0.0.1:{}/bench", port_); }
  // One psql command over the socket; throws when it fails.
  void psql(const std::string& command, const std::string& db = "bench") const {
    sh(fmt::format("psql -q -h '{}' -p {} -U wattpipe -d {} -v ON_ERROR_STOP=1 -c \"{}\" >/dev/null", dir_, port_, db,
                   command),
       "psql " + command);
  }

 private:
  static std::string pg_bin() {
    for (int v = 30; v >= 11; --v)
      if (std::filesystem::exists(fmt::format("/usr/lib/postgresql/{}/bin/initdb", v)))
        return fmt::format("/usr/lib/postgresql/{}/bin", v);
    throw std::runtime_error("no PostgreSQL server: install postgresql");
  }
  static void sh(const std::string& cmd, const std::string& what) {
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error(what + " failed");
  }
  std::string dir_, as_;
  int port_;
  bool started_ = false;
};

// A 1 kHz window of a three-phase meter, the k-th.
pipeline::WindowRecord window(std::uint64_t k, std::int64_t t0_ns) {
  pipeline::WindowRecord r;
  r.seq = k;
  r.start_utc_ns = t0_ns + std::int64_t(k) * 1'000'000;
  r.end_utc_ns = r.start_utc_ns + 1'000'000;
  r.samples = 20;
  r.phases = 3;
  r.neutral = true;
  r.whole_cycles = r.frequency_valid = r.phase_seq_valid = r.clock_synced = true;
  r.frequency_hz = 50 + 0.01 * std::sin(double(k));
  for (int p = 0; p < 3; ++p) {
    auto& v = r.ph[p];
    v.urms_v = 230 + std::sin(double(k + p));
    v.irms_a = 16 + 0.1 * std::cos(double(k));
    v.p_w = v.urms_v * v.irms_a * 0.95;
    v.s_va = v.urms_v * v.irms_a;
    v.q1_var = std::sqrt(v.s_va * v.s_va - v.p_w * v.p_w);
    v.pf = 0.95;
    v.energy_wh = v.p_w / 3.6e6;
  }
  r.p_total_w = r.ph[0].p_w + r.ph[1].p_w + r.ph[2].p_w;
  r.s_total_va = r.ph[0].s_va + r.ph[1].s_va + r.ph[2].s_va;
  r.energy_total_wh = r.p_total_w / 3.6e6;
  r.registers.import_total.uwh = std::int64_t(k) * 3000;
  return r;
}

// The store's rows/s: `rows` windows handed over as fast as it takes them,
// until the last is committed (stop() waits for the writer).
double store_rows_per_s(const std::string& url, const std::string& spool, std::uint64_t rows, std::int64_t t0_ns,
                        std::uint64_t& spooled) {
  acquire::SpscRing<pipeline::WindowRecord> ring(8192);
  publish::StoreConfig sc;
  sc.url = url;
  sc.module_id = "bench";
  sc.meter_id = "BENCH-1";
  sc.spool_dir = spool;
  sc.drain_s = 600;
  publish::Store store(sc, &ring);
  store.start();
  const std::int64_t a = steady_now_ns();
  for (std::uint64_t k = 0; k < rows; ++k) {
    const pipeline::WindowRecord w = window(k, t0_ns);
    // As the processing thread, which never waits: the ring is kept at most half full.
    while (ring.size_approx() >= ring.capacity() / 2) std::this_thread::yield();
    if (!ring.try_push(w)) throw std::runtime_error("the ring is full");
    store.waker().notify();
  }
  store.stop();
  store.join();
  const double s = double(steady_now_ns() - a) / 1e9;
  spooled += store.counters().batches_spooled.load();
  if (store.counters().windows_written.load() != rows)
    throw std::runtime_error(fmt::format("the store wrote {} of {} rows", store.counters().windows_written.load(), rows));
  return double(rows) / s;
}

}  // namespace

std::string bench_store(const std::string& tmp, int port, std::uint64_t rows) {
  ScratchPostgres pg(tmp + "/pg", port);
  const std::string file = tmp + "/pg/windows.copy";
  const std::int64_t t0 = 1'764'800'000'000'000'000;
  double store[2] = {0, 0}, limit[2] = {0, 0};
  std::uint64_t spooled = 0;  // batches that went through the disk: none, when the store keeps up
  for (int round = 0; round < 2; ++round) {
    pg.psql("DROP TABLE IF EXISTS wattpipe_windows");  // the store makes it again
    store[round] = store_rows_per_s(pg.url(), tmp + "/spool", rows, t0, spooled);
    // The same rows, written by the server to a file, and loaded by psql's \copy into the emptied table.
    if (round == 0) pg.psql(fmt::format("\\copy wattpipe_windows TO '{}'", file));
    pg.psql("TRUNCATE wattpipe_windows");
    const std::int64_t a = steady_now_ns();
    pg.psql(fmt::format("\\copy wattpipe_windows FROM '{}'", file));
    limit[round] = double(rows) / (double(steady_now_ns() - a) / 1e9);
  }
  const double s = std::max(store[0], store[1]), l = std::max(limit[0], limit[1]);
  return fmt::format("{{\"rows\":{},\"store_rows_per_s\":[{:.0f},{:.0f}],\"psql_copy_rows_per_s\":[{:.0f},{:.0f}],"
                     "\"store_of_psql_copy\":{:.3f},\"batches_spooled\":{}}}",
                     rows, store[0], store[1], limit[0], limit[1], l > 0 ? s / l : 0.0, spooled);
}

}  // namespace wattpipe::tools

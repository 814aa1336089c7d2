// SPDX-License-Identifier: Apache-2.0
#include "state_store.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/log_limit.hpp"

namespace wattpipe::legal {
namespace {

constexpr char kMagic[4] = {'W', 'P', 'S', 'T'};
constexpr std::uint16_t kVersion = 2;
constexpr std::int64_t kSyncIntervalNs = 1'000'000'000;
constexpr std::int64_t kSnapshotIntervalNs = 60'000'000'000;

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

template <typename T>
void put(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}
template <typename T>
T get(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

bool fsync_dir(const std::string& dir) {
  const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) return false;
  const bool ok = ::fsync(d) == 0;
  ::close(d);
  return ok;
}

}  // namespace

// Record layout (little-endian): magic[4] version u16 kind u16 serial u64
// utc_ns i64, then 10 registers as (uwh i64, frac f64): import L1..L3,
// export L1..L3, import total, export total; version 2 adds pg_reserved u64
// at 184, flags u32 at 192 (bit 0: a snapshot exists) and journal_entries
// u64 at 200; zero padding;
// CRC-32 of bytes [0, 252) at 252. Version 1 records (no pagination) are read.
void RegisterStore::encode(const Record& rec, unsigned char out[kRecordBytes]) {
  std::memset(out, 0, kRecordBytes);
  std::memcpy(out, kMagic, 4);
  put<std::uint16_t>(out + 4, kVersion);
  put<std::uint16_t>(out + 6, 1);
  put<std::uint64_t>(out + 8, rec.serial);
  put<std::int64_t>(out + 16, rec.utc_ns);
  unsigned char* p = out + 24;
  auto reg = [&](const CompensatedRegister& c) {
    put<std::int64_t>(p, c.uwh);
    put<double>(p + 8, c.frac_uwh);
    p += 16;
  };
  const Registers& r = rec.registers;
  for (const auto& c : r.import_phase) reg(c);
  for (const auto& c : r.export_phase) reg(c);
  reg(r.import_total);
  reg(r.export_total);
  put<std::uint64_t>(out + 184, rec.pg_reserved);
  put<std::uint32_t>(out + 192, rec.snapshot_exists ? 1u : 0u);
  put<std::uint64_t>(out + 200, rec.journal_entries);
  put<std::uint32_t>(out + 252, static_cast<std::uint32_t>(crc32(0, out, 252)));
}

bool RegisterStore::decode(const unsigned char in[kRecordBytes], Record& out) {
  const auto version = get<std::uint16_t>(in + 4);
  if (std::memcmp(in, kMagic, 4) != 0 || (version != 1 && version != kVersion) || get<std::uint16_t>(in + 6) != 1)
    return false;
  if (get<std::uint32_t>(in + 252) != static_cast<std::uint32_t>(crc32(0, in, 252))) return false;
  out.version = version;
  out.serial = get<std::uint64_t>(in + 8);
  out.utc_ns = get<std::int64_t>(in + 16);
  const unsigned char* p = in + 24;
  auto reg = [&](CompensatedRegister& c) {
    c.uwh = get<std::int64_t>(p);
    c.frac_uwh = get<double>(p + 8);
    p += 16;
  };
  Registers& r = out.registers;
  for (auto& c : r.import_phase) reg(c);
  for (auto& c : r.export_phase) reg(c);
  reg(r.import_total);
  reg(r.export_total);
  out.pg_reserved = version >= 2 ? get<std::uint64_t>(in + 184) : 0;
  out.snapshot_exists = version >= 2 && (get<std::uint32_t>(in + 192) & 1u) != 0;
  out.journal_entries = version >= 2 ? get<std::uint64_t>(in + 200) : 0;
  return r.sane() && out.serial != 0;
}

void RegisterStore::encode(std::uint64_t serial, const Registers& r, std::int64_t utc_ns,
                           unsigned char out[kRecordBytes]) {
  Record rec;
  rec.serial = serial;
  rec.registers = r;
  rec.utc_ns = utc_ns;
  encode(rec, out);
}

bool RegisterStore::decode(const unsigned char in[kRecordBytes], std::uint64_t& serial, Registers& r,
                           std::int64_t& utc_ns) {
  Record rec;
  if (!decode(in, rec)) return false;
  serial = rec.serial, r = rec.registers, utc_ns = rec.utc_ns;
  return true;
}

RegisterStore::~RegisterStore() {
  for (int fd : fd_)
    if (fd >= 0) ::close(fd);
}

bool RegisterStore::open(const std::string& dir, Recovered& out, std::string& error) {
  dir_ = dir;
  out = Recovered{};
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    error = "state dir '" + dir + "' cannot be created: " + (ec ? ec.message() : std::string("not a directory"));
    return false;
  }
  // A probe proves the directory takes new files (read-only, full disks fail here).
  const std::string probe = dir + "/.write-probe";
  const int pf = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (pf < 0 || ::write(pf, "ok", 2) != 2 || ::fsync(pf) != 0) {
    error = errno_text("state dir is not writable:", dir);
    if (pf >= 0) ::close(pf);
    return false;
  }
  ::close(pf);
  ::unlink(probe.c_str());

  const std::string ring_name[2] = {"registers.wal", "registers.wal.b"};
  const std::string snap = dir + "/registers.snap";
  constexpr off_t kRingBytes = off_t(kSlots * kRecordBytes);
  bool existed[2] = {false, false};
  std::uint64_t valid[2] = {0, 0}, newest[2] = {0, 0}, bad_in[2] = {0, 0};
  bool v2_seen = false, snap_claimed = false;
  Record best;
  auto consider = [&](const Record& r) {
    v2_seen |= r.version >= 2;
    out.pg_reserved = std::max(out.pg_reserved, r.pg_reserved);
    out.journal_entries = std::max(out.journal_entries, r.journal_entries);
    if (r.serial > best.serial) best = r;
  };
  auto damage = [&](std::string what) { out.damage.push_back(std::move(what)); };

  for (int k = 0; k < 2; ++k) {
    const std::string path = dir + "/" + ring_name[k];
    struct stat st{};
    existed[k] = ::stat(path.c_str(), &st) == 0;
    // Opened, not created: a damaged state is left as found until make_ready().
    fd_[k] = existed[k] ? ::open(path.c_str(), O_RDWR | O_CLOEXEC) : -1;
    if (existed[k] && fd_[k] < 0) {
      error = errno_text("cannot open", path);
      return false;
    }
    if (existed[k] && st.st_size < kRingBytes)
      damage(fmt::format("{}: {} bytes, made as {}", ring_name[k], st.st_size, kRingBytes));
    std::vector<unsigned char> buf(kSlots * kRecordBytes);
    const ssize_t got = fd_[k] >= 0 ? ::pread(fd_[k], buf.data(), buf.size(), 0) : 0;
    std::uint64_t bad = 0;
    for (std::size_t s = 0; got > 0 && (s + 1) * kRecordBytes <= std::size_t(got); ++s) {
      const unsigned char* rec = buf.data() + s * kRecordBytes;
      Record r;
      if (decode(rec, r)) {
        ++valid[k];
        newest[k] = std::max(newest[k], r.serial);
        snap_claimed |= r.snapshot_exists;
        consider(r);
        continue;
      }
      bool blank = true;
      for (std::size_t i = 0; i < kRecordBytes && blank; ++i) blank = rec[i] == 0;
      if (!blank) ++bad;
    }
    bad_in[k] = bad;
    if (bad > 0) damage(fmt::format("{}: {} record(s) fail their checks", ring_name[k], bad));
    out.corrupt += bad;
  }
  bool snap_exists = false;
  if (const int sf = ::open(snap.c_str(), O_RDONLY | O_CLOEXEC); sf >= 0) {
    snap_exists = true;
    unsigned char rec[kRecordBytes];
    Record r;
    if (::read(sf, rec, kRecordBytes) == ssize_t(kRecordBytes) && decode(rec, r)) {
      consider(r);
    } else {
      ++out.corrupt;
      damage("registers.snap: fails its check");
    }
    ::close(sf);
  }
  out.fresh = !existed[0] && !existed[1] && !snap_exists;
  struct stat jst{};
  if (out.fresh && ::stat((dir + "/transactions.journal").c_str(), &jst) == 0) {
    // The journal is made with the registers: registers gone while it stayed is damage.
    out.fresh = false;
    damage("registers.wal, registers.wal.b, registers.snap: missing (transactions.journal exists)");
  }
  const bool all_gone = !existed[0] && !existed[1] && !snap_exists;  // said once above
  if (!out.fresh && !all_gone) {
    // Version 1 kept one ring: its absent twin is an upgrade, not damage.
    const bool upgrade = existed[0] && !existed[1] && !v2_seen;
    for (int k = 0; k < 2; ++k)
      if (!existed[k] && !upgrade) damage(ring_name[k] + ": missing");
    if (snap_claimed && !snap_exists) damage("registers.snap: missing, but the rings say it was written");
    // A ring far behind its twin lost records (replaced by an old copy).
    if (existed[0] && existed[1] && valid[0] > 0 && valid[1] > 0 && bad_in[0] == 0 && bad_in[1] == 0) {
      const std::uint64_t lo = std::min(newest[0], newest[1]), hi = std::max(newest[0], newest[1]);
      if (hi - lo > 1) damage(fmt::format("registers.wal{}: {} records behind its twin", newest[0] < newest[1] ? "" : ".b", hi - lo));
    }
  }
  out.serial = best.serial;
  out.registers = best.registers;
  out.utc_ns = best.utc_ns;
  last_ = best;
  last_.pg_reserved = out.pg_reserved;
  last_.journal_entries = out.journal_entries;
  snapshot_exists_ = snap_exists && best.serial > 0;
  damaged_ = !out.damage.empty();
  return damaged_ ? true : make_ready(error);
}

bool RegisterStore::make_ready(std::string& error) {
  constexpr off_t kRingBytes = off_t(kSlots * kRecordBytes);
  for (int k = 0; k < 2; ++k) {
    const std::string path = dir_ + (k == 0 ? "/registers.wal" : "/registers.wal.b");
    if (fd_[k] < 0) fd_[k] = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_[k] < 0) {
      error = errno_text("cannot create", path);
      return false;
    }
    if (const int e = ::posix_fallocate(fd_[k], 0, kRingBytes); e != 0) {
      error = "cannot reserve space for '" + path + "': " + std::strerror(e);
      return false;
    }
    if (!damaged_) continue;
    // Recovering: what failed its checks is cleared, so the repaired state is
    // whole and the next start is quiet.
    std::vector<unsigned char> buf(kSlots * kRecordBytes);
    if (::pread(fd_[k], buf.data(), buf.size(), 0) != ssize_t(buf.size())) {
      error = errno_text("cannot read", path);
      return false;
    }
    static const unsigned char kZero[kRecordBytes] = {};
    for (std::size_t s = 0; s < kSlots; ++s) {
      unsigned char* rec = buf.data() + s * kRecordBytes;
      Record r;
      if (decode(rec, r) || std::memcmp(rec, kZero, kRecordBytes) == 0) continue;
      if (::pwrite(fd_[k], kZero, kRecordBytes, off_t(s * kRecordBytes)) != ssize_t(kRecordBytes)) {
        error = errno_text("cannot clear a damaged record in", path);
        return false;
      }
    }
    if (::fdatasync(fd_[k]) != 0) {
      error = errno_text("cannot sync", path);
      return false;
    }
  }
  if (damaged_) {
    // The snapshot again matches the best record (it may have been the damaged file).
    if (last_.serial > 0 && !write_snapshot(error)) return false;
    if (last_.serial == 0) ::unlink((dir_ + "/registers.snap").c_str());
    damaged_ = false;
  }
  return true;
}

bool RegisterStore::write(const Registers& r, std::int64_t utc_ns, std::string& error, std::uint64_t pg_reserved,
                          std::uint64_t journal_entries) {
  unsigned char rec[kRecordBytes];
  Record next;
  next.serial = last_.serial + 1;
  next.registers = r;
  next.utc_ns = utc_ns;
  next.pg_reserved = std::max(pg_reserved, last_.pg_reserved);
  next.journal_entries = std::max(journal_entries, last_.journal_entries);
  next.snapshot_exists = snapshot_exists_;
  encode(next, rec);
  const off_t at = off_t((next.serial % kSlots) * kRecordBytes);
  for (int k = 0; k < 2; ++k) {
    if (::pwrite(fd_[k], rec, kRecordBytes, at) != ssize_t(kRecordBytes)) {
      error = errno_text("cannot write", dir_ + (k == 0 ? "/registers.wal" : "/registers.wal.b"));
      return false;
    }
  }
  last_ = next;
  return true;
}

bool RegisterStore::sync(std::string& error) {
  for (int k = 0; k < 2; ++k) {
    if (::fdatasync(fd_[k]) != 0) {
      error = errno_text("cannot sync", dir_ + (k == 0 ? "/registers.wal" : "/registers.wal.b"));
      return false;
    }
  }
  return true;
}

bool RegisterStore::write_snapshot(std::string& error) {
  unsigned char rec[kRecordBytes];
  Record r = last_;
  r.snapshot_exists = true;
  encode(r, rec);
  const std::string tmp = dir_ + "/registers.snap.tmp", snap = dir_ + "/registers.snap";
  const int f = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (f < 0 || ::write(f, rec, kRecordBytes) != ssize_t(kRecordBytes) || ::fsync(f) != 0) {
    error = errno_text("cannot write", tmp);
    if (f >= 0) ::close(f);
    ::unlink(tmp.c_str());  // never leave a torn temporary behind
    return false;
  }
  ::close(f);
  if (::rename(tmp.c_str(), snap.c_str()) != 0 || !fsync_dir(dir_)) {
    error = errno_text("cannot replace", snap);
    ::unlink(tmp.c_str());
    return false;
  }
  snapshot_exists_ = true;
  return true;
}

// ---- StateDirLock --------------------------------------------------------------

StateDirLock::~StateDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

bool StateDirLock::lock(const std::string& dir, std::string& error, bool& held_by_other) {
  held_by_other = false;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    error = errno_text("state dir cannot be used: cannot open", path);
    return false;
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    const std::string pid = n > 0 ? std::string(buf, std::size_t(n)) : std::string("?");
    error = "state dir '" + dir + "' is in use by another wattpipe (pid " + pid.substr(0, pid.find('\n')) + ")";
    held_by_other = true;
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    // The lock holds without the pid; only the message of a second daemon is poorer.
  }
  return true;
}

// ---- StateWriter ---------------------------------------------------------------

StateWriter::StateWriter(RegisterStore& store, acquire::TripleBuffer<StateSnapshot>& in, acquire::Waker& in_waker, acquire::Waker* published,
                         const std::atomic<std::uint64_t>* pagination,
                         const std::atomic<std::uint64_t>* journal_entries)
    : store_(store),
      in_(in),
      in_waker_(in_waker),
      published_(published),
      pagination_(pagination),
      journal_entries_(journal_entries) {}

StateWriter::~StateWriter() {
  stop();
  join();
}

void StateWriter::start() { thread_ = std::thread([this] { run(); }); }

void StateWriter::stop() {
  stop_.store(true, std::memory_order_relaxed);
  in_waker_.wake();
}

void StateWriter::join() {
  if (thread_.joinable()) thread_.join();
}

bool StateWriter::write_latest() {
  if (!in_.read(snap_)) return false;
  std::string error;
  const std::uint64_t pg = pagination_ != nullptr ? pagination_->load(std::memory_order_relaxed) : 0;
  const std::uint64_t entries = journal_entries_ != nullptr ? journal_entries_->load(std::memory_order_relaxed) : 0;
  if (!store_.write(snap_.registers, snap_.utc_ns, error, pg, entries)) {
    set_health(false, sync_ok_);
    counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
    thread_local acquire::LogLimit limit(5'000'000'000);
    if (std::uint64_t sup = 0; limit.allow(sup))
      spdlog::error("STATE NOT SAVED: {} ({} more failures); measuring goes on, values are held back until "
                    "the registers can be saved",
                    error, sup);
    return false;
  }
  counters_.records.fetch_add(1, std::memory_order_relaxed);
  dirty_ = true;
  set_health(true, sync_ok_);
  // Release: pairs with the MQTT thread's acquire load before publishing.
  persisted_windows_.store(snap_.windows_closed, std::memory_order_release);
  if (published_ != nullptr) published_->notify();
  return true;
}

// Healthy while the last record write and the last sync both worked (a
// record in the page cache after a failed sync may never reach the disk).
void StateWriter::set_health(bool write_ok, bool sync_ok) {
  if (!write_ok || !sync_ok) last_errno_.store(errno, std::memory_order_relaxed);
  const bool was = write_ok_ && sync_ok_;
  write_ok_ = write_ok;
  sync_ok_ = sync_ok;
  const bool now = write_ok && sync_ok;
  if (now && !was) spdlog::warn("state: registers saved and synced again");
  healthy_.store(now, std::memory_order_relaxed);
}

void StateWriter::snapshot() {
  std::string error;
  if (store_.write_snapshot(error)) {
    counters_.snapshots.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
  spdlog::error("register snapshot not written: {} (the rings still hold the registers)", error);
}

void StateWriter::run() {
  pthread_setname_np(pthread_self(), "wp-state");
  std::int64_t next_sync = acquire::steady_now_ns() + kSyncIntervalNs;
  std::int64_t next_snapshot = acquire::steady_now_ns() + kSnapshotIntervalNs;
  std::string error;
  while (!stop_.load(std::memory_order_relaxed)) {
    in_waker_.arm();
    if (!in_.fresh() && !stop_.load(std::memory_order_relaxed)) {
      // Sleep until registers arrive, stop(), or the next sync or snapshot is due.
      const std::int64_t now = acquire::steady_now_ns();
      const std::int64_t due = std::min(dirty_ ? next_sync : INT64_MAX, next_snapshot);
      pollfd p{in_waker_.fd(), POLLIN, 0};
      ::poll(&p, 1, int(std::clamp<std::int64_t>((due - now) / 1'000'000 + 1, 0, 60'000)));
    }
    in_waker_.drain();
    write_latest();
    const std::int64_t now = acquire::steady_now_ns();
    if (dirty_ && now >= next_sync) {
      if (store_.sync(error)) {
        counters_.syncs.fetch_add(1, std::memory_order_relaxed);
        dirty_ = false;
        set_health(write_ok_, true);
      } else {
        set_health(write_ok_, false);
        counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
        thread_local acquire::LogLimit limit(5'000'000'000);
        if (std::uint64_t sup = 0; limit.allow(sup))
          spdlog::error("STATE NOT SYNCED: {} ({} more failures)", error, sup);
      }
      next_sync = now + kSyncIntervalNs;
    }
    if (now >= next_snapshot) {
      snapshot();
      next_snapshot = now + kSnapshotIntervalNs;
    }
  }
  // Shutdown: the final registers, synced, and a fresh snapshot.
  write_latest();
  if (store_.sync(error)) {
    counters_.syncs.fetch_add(1, std::memory_order_relaxed);
  } else {
    counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("STATE NOT SYNCED at shutdown: {}", error);
  }
  snapshot();
}

}  // namespace wattpipe::legal

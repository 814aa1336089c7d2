#include "wattpipe/pipeline/state_store.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/log_limit.hpp"

namespace wattpipe::pipeline {
namespace {

constexpr char kMagic[4] = {'W', 'P', 'S', 'T'};
constexpr std::uint16_t kVersion = 1;
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
// export L1..L3, import total, export total; zero padding; CRC-32 of bytes
// [0, 252) at 252.
void RegisterStore::encode(std::uint64_t serial, const Registers& r, std::int64_t utc_ns,
                           unsigned char out[kRecordBytes]) {
  std::memset(out, 0, kRecordBytes);
  std::memcpy(out, kMagic, 4);
  put<std::uint16_t>(out + 4, kVersion);
  put<std::uint16_t>(out + 6, 1);
  put<std::uint64_t>(out + 8, serial);
  put<std::int64_t>(out + 16, utc_ns);
  unsigned char* p = out + 24;
  auto reg = [&](const CompensatedRegister& c) {
    put<std::int64_t>(p, c.uwh);
    put<double>(p + 8, c.frac_uwh);
    p += 16;
  };
  for (const auto& c : r.import_phase) reg(c);
  for (const auto& c : r.export_phase) reg(c);
  reg(r.import_total);
  reg(r.export_total);
  put<std::uint32_t>(out + 252, static_cast<std::uint32_t>(crc32(0, out, 252)));
}

bool RegisterStore::decode(const unsigned char in[kRecordBytes], std::uint64_t& serial, Registers& r,
                           std::int64_t& utc_ns) {
  if (std::memcmp(in, kMagic, 4) != 0 || get<std::uint16_t>(in + 4) != kVersion || get<std::uint16_t>(in + 6) != 1)
    return false;
  if (get<std::uint32_t>(in + 252) != static_cast<std::uint32_t>(crc32(0, in, 252))) return false;
  serial = get<std::uint64_t>(in + 8);
  utc_ns = get<std::int64_t>(in + 16);
  const unsigned char* p = in + 24;
  auto reg = [&](CompensatedRegister& c) {
    c.uwh = get<std::int64_t>(p);
    c.frac_uwh = get<double>(p + 8);
    p += 16;
    return c.uwh >= 0 && c.frac_uwh >= 0 && c.frac_uwh < 1;
  };
  bool ok = true;
  for (auto& c : r.import_phase) ok &= reg(c);
  for (auto& c : r.export_phase) ok &= reg(c);
  ok &= reg(r.import_total);
  ok &= reg(r.export_total);
  return ok && serial != 0;
}

RegisterStore::~RegisterStore() {
  if (fd_ >= 0) ::close(fd_);
}

bool RegisterStore::open(const std::string& dir, Recovered& out, std::string& error) {
  dir_ = dir;
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

  const std::string wal = dir + "/registers.wal";
  fd_ = ::open(wal.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    error = errno_text("cannot open", wal);
    return false;
  }
  if (const int e = ::posix_fallocate(fd_, 0, off_t(kSlots * kRecordBytes)); e != 0) {
    error = "cannot reserve space for '" + wal + "': " + std::strerror(e);
    return false;
  }
  // Recover: the highest serial among valid records of the ring and the snapshot.
  auto consider = [&](const unsigned char* rec) {
    std::uint64_t serial;
    Registers r;
    std::int64_t utc;
    if (!decode(rec, serial, r, utc)) {
      bool blank = true;
      for (std::size_t k = 0; k < kRecordBytes && blank; ++k) blank = rec[k] == 0;
      if (!blank) ++out.corrupt;
      return;
    }
    if (serial > out.serial) out.serial = serial, out.registers = r, out.utc_ns = utc;
  };
  std::vector<unsigned char> buf(kSlots * kRecordBytes);
  const ssize_t got = ::pread(fd_, buf.data(), buf.size(), 0);
  for (std::size_t s = 0; got > 0 && (s + 1) * kRecordBytes <= std::size_t(got); ++s) consider(buf.data() + s * kRecordBytes);
  const std::string snap = dir + "/registers.snap";
  if (const int sf = ::open(snap.c_str(), O_RDONLY | O_CLOEXEC); sf >= 0) {
    unsigned char rec[kRecordBytes];
    if (::read(sf, rec, kRecordBytes) == ssize_t(kRecordBytes)) consider(rec);
    ::close(sf);
  }
  serial_ = out.serial;
  last_ = out.registers;
  last_utc_ = out.utc_ns;
  return true;
}

bool RegisterStore::write(const Registers& r, std::int64_t utc_ns, std::string& error) {
  unsigned char rec[kRecordBytes];
  const std::uint64_t serial = serial_ + 1;
  encode(serial, r, utc_ns, rec);
  const off_t at = off_t((serial % kSlots) * kRecordBytes);
  if (::pwrite(fd_, rec, kRecordBytes, at) != ssize_t(kRecordBytes)) {
    error = errno_text("cannot write", dir_ + "/registers.wal");
    return false;
  }
  serial_ = serial;
  last_ = r;
  last_utc_ = utc_ns;
  return true;
}

bool RegisterStore::sync(std::string& error) {
  if (::fdatasync(fd_) != 0) {
    error = errno_text("cannot sync", dir_ + "/registers.wal");
    return false;
  }
  return true;
}

bool RegisterStore::write_snapshot(std::string& error) {
  unsigned char rec[kRecordBytes];
  encode(serial_, last_, last_utc_, rec);
  const std::string tmp = dir_ + "/registers.snap.tmp", snap = dir_ + "/registers.snap";
  const int f = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (f < 0 || ::write(f, rec, kRecordBytes) != ssize_t(kRecordBytes) || ::fsync(f) != 0) {
    error = errno_text("cannot write", tmp);
    if (f >= 0) ::close(f);
    return false;
  }
  ::close(f);
  if (::rename(tmp.c_str(), snap.c_str()) != 0 || !fsync_dir(dir_)) {
    error = errno_text("cannot replace", snap);
    return false;
  }
  return true;
}

// ---- StateWriter ---------------------------------------------------------------

StateWriter::StateWriter(RegisterStore& store, TripleBuffer<StateSnapshot>& in, Waker& in_waker, Waker* published)
    : store_(store), in_(in), in_waker_(in_waker), published_(published) {}

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
  if (!store_.write(snap_.registers, snap_.utc_ns, error)) {
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
  // Release: pairs with the MQTT thread's acquire load before publishing.
  persisted_windows_.store(snap_.windows_closed, std::memory_order_release);
  if (published_ != nullptr) published_->notify();
  return true;
}

void StateWriter::run() {
  pthread_setname_np(pthread_self(), "wp-state");
  std::int64_t next_sync = acquire::steady_now_ns() + kSyncIntervalNs;
  std::int64_t next_snapshot = acquire::steady_now_ns() + kSnapshotIntervalNs;
  std::string error;
  while (!stop_.load(std::memory_order_relaxed)) {
    in_waker_.arm();
    if (!in_.fresh()) {
      pollfd p{in_waker_.fd(), POLLIN, 0};
      ::poll(&p, 1, 10);
    }
    in_waker_.drain();
    write_latest();
    const std::int64_t now = acquire::steady_now_ns();
    if (dirty_ && now >= next_sync) {
      if (store_.sync(error)) {
        counters_.syncs.fetch_add(1, std::memory_order_relaxed);
        dirty_ = false;
      }
      next_sync = now + kSyncIntervalNs;
    }
    if (now >= next_snapshot) {
      if (store_.write_snapshot(error)) counters_.snapshots.fetch_add(1, std::memory_order_relaxed);
      next_snapshot = now + kSnapshotIntervalNs;
    }
  }
  // Shutdown: the final registers, synced, and a fresh snapshot.
  write_latest();
  if (store_.sync(error)) counters_.syncs.fetch_add(1, std::memory_order_relaxed);
  if (store_.write_snapshot(error)) counters_.snapshots.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace wattpipe::pipeline

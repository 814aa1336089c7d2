// SPDX-License-Identifier: Apache-2.0
// Persistence of the energy registers (private to the legal part, docs/legal.md), so a restart continues where the
// meter stopped and a register EVerest has seen never goes back.
//
// Files in the state directory:
//   registers.wal    preallocated ring of 4096 checksummed 256-byte records,
//   registers.wal.b  each holding every register and the OCMF pagination
//                    reservation; every record goes to both rings at the slot
//                    of its serial. A full disk after start-up cannot stop it.
//   registers.snap   the same record, rewritten every minute through a
//                    synced temporary file and an atomic rename.
//   lock             flock()ed by the running daemon; holds its pid.
// Recovery takes the valid record with the highest serial of the three
// files, so one damaged file never costs a published value. Any damage
// found (a record or snapshot failing its check, a ring shorter than it was
// made, a file missing that the others say exists) is reported in
// Recovered::damage: the daemon refuses to start on it unless told to
// recover (--state-recover).
//
// Threading: RegisterStore::open() on the main thread before start-up; after
// that only the StateWriter thread touches the store. StateWriter::start/
// stop/join from the owner; persisted_windows() and counters from any thread.
//
// Memory ordering: persisted_windows_ is stored with release after the
// record is in the page cache; the MQTT thread loads it with acquire before
// it publishes a window's registers.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "wattpipe/legal/legal.hpp"

namespace wattpipe::legal {

class RegisterStore {
 public:
  static constexpr std::size_t kRecordBytes = 256;
  static constexpr std::size_t kSlots = 4096;

  struct Recovered {
    Registers registers;
    std::uint64_t serial = 0;    // 0: nothing found (a new meter)
    std::int64_t utc_ns = 0;
    std::uint64_t corrupt = 0;   // records that failed their checks
    std::uint64_t pg_reserved = 0;       // highest OCMF pagination reservation in any valid record
    std::uint64_t journal_entries = 0;   // highest journal entry number in any valid record
    std::vector<std::string> damage;     // what is wrong, one finding each; empty when intact
    bool fresh = false;                  // no state file existed: a new meter
  };

  RegisterStore() = default;
  ~RegisterStore();
  RegisterStore(const RegisterStore&) = delete;
  RegisterStore& operator=(const RegisterStore&) = delete;

  // Creates the directory and files as needed, recovers the last good
  // registers and, when nothing is damaged, preallocates the rings. With
  // damage nothing is changed (the evidence stays) until make_ready(). False
  // with a clear `error` when the directory cannot be written (read-only,
  // full, not a directory).
  bool open(const std::string& dir, Recovered& out, std::string& error);
  // After damage, once the caller decided to go on: rings made whole.
  bool make_ready(std::string& error);

  // Writes one record to both rings (page cache; no fsync). `pg_reserved`,
  // `journal_entries`: the journal's pagination reservation and entry count,
  // kept here as their backup. False with `error` on failure.
  bool write(const Registers& r, std::int64_t utc_ns, std::string& error, std::uint64_t pg_reserved = 0,
             std::uint64_t journal_entries = 0);
  // fdatasync of the ring.
  bool sync(std::string& error);
  // Rewrites registers.snap atomically (temporary file, fsync, rename, fsync dir).
  bool write_snapshot(std::string& error);

  [[nodiscard]] std::uint64_t serial() const noexcept { return last_.serial; }

  // Encodes/decodes a record (exposed for tests of the format).
  struct Record {
    std::uint64_t serial = 0;
    Registers registers;
    std::int64_t utc_ns = 0;
    std::uint64_t pg_reserved = 0;
    std::uint64_t journal_entries = 0;
    bool snapshot_exists = false;  // a snapshot had been written when this record was
    std::uint16_t version = 2;
  };
  static void encode(const Record& r, unsigned char out[kRecordBytes]);
  static bool decode(const unsigned char in[kRecordBytes], Record& out);
  // Shorthands of the above (tests of the format).
  static void encode(std::uint64_t serial, const Registers& r, std::int64_t utc_ns, unsigned char out[kRecordBytes]);
  static bool decode(const unsigned char in[kRecordBytes], std::uint64_t& serial, Registers& r, std::int64_t& utc_ns);

 private:
  std::string dir_;
  int fd_[2] = {-1, -1};
  Record last_{};  // the last record written or recovered
  bool snapshot_exists_ = false;
  bool damaged_ = false;  // open() found damage; make_ready() repairs
};

// An exclusive lock on the state directory: two daemons on one register
// would each lose the other's energy.
class StateDirLock {
 public:
  StateDirLock() = default;
  ~StateDirLock();
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;
  // Main thread. False with `error`: `held_by_other` when another process
  // holds it (the error names its pid), else the directory is unusable.
  bool lock(const std::string& dir, std::string& error, bool& held_by_other);

 private:
  int fd_ = -1;
};

using StateWriterCounters = MeterCounters;

// The thread that takes register snapshots from the processing thread and
// writes them: the processing thread never waits on the disk.
class StateWriter {
 public:
  // `pagination`, `journal_entries` (optional): the journal's pagination
  // reservation and entry count, written into every record as their backup.
  StateWriter(RegisterStore& store, acquire::TripleBuffer<StateSnapshot>& in, acquire::Waker& in_waker, acquire::Waker* published,
              const std::atomic<std::uint64_t>* pagination = nullptr,
              const std::atomic<std::uint64_t>* journal_entries = nullptr);
  ~StateWriter();
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  // Owner thread.
  void start();
  // Owner thread: writes the newest snapshot, syncs, and ends the thread.
  void stop();
  void join();

  // Any thread: windows whose registers are in the page cache or on disk.
  [[nodiscard]] const std::atomic<std::uint64_t>& persisted_windows() const noexcept { return persisted_windows_; }
  [[nodiscard]] const StateWriterCounters& counters() const noexcept { return counters_; }
  // Any thread: false from a failed record write or sync until the next one
  // that works; the errno of the last failure.
  [[nodiscard]] const std::atomic<bool>& healthy() const noexcept { return healthy_; }
  [[nodiscard]] int last_errno() const noexcept { return last_errno_.load(std::memory_order_relaxed); }

 private:
  void run();
  bool write_latest();
  void snapshot();
  void set_health(bool write_ok, bool sync_ok);

  RegisterStore& store_;
  acquire::TripleBuffer<StateSnapshot>& in_;
  acquire::Waker& in_waker_;
  acquire::Waker* published_;
  const std::atomic<std::uint64_t>* pagination_;
  const std::atomic<std::uint64_t>* journal_entries_;
  std::atomic<std::uint64_t> persisted_windows_{0};
  StateWriterCounters counters_;
  std::atomic<bool> healthy_{true};
  std::atomic<int> last_errno_{0};
  bool write_ok_ = true, sync_ok_ = true;  // (writer thread)
  std::atomic<bool> stop_{false};
  std::thread thread_;
  StateSnapshot snap_;
  bool dirty_ = false;  // written since the last sync
};

}  // namespace wattpipe::legal

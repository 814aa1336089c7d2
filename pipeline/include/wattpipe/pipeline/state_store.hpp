// Persistence of the energy registers, so a restart continues where the
// meter stopped and a register EVerest has seen never goes back.
//
// Files in the state directory:
//   registers.wal   preallocated ring of 4096 checksummed 256-byte records,
//                   each holding every register; written at the slot of its
//                   serial. A full disk after start-up cannot stop it.
//   registers.snap  the same record, rewritten every minute through a
//                   synced temporary file and an atomic rename.
// Recovery takes the valid record with the highest serial; torn or corrupt
// records fail their CRC and are skipped, so the previous good state is used.
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

#include "wattpipe/pipeline/energy_register.hpp"
#include "wattpipe/pipeline/processing.hpp"
#include "wattpipe/pipeline/triple_buffer.hpp"
#include "wattpipe/pipeline/waker.hpp"

namespace wattpipe::pipeline {

class RegisterStore {
 public:
  static constexpr std::size_t kRecordBytes = 256;
  static constexpr std::size_t kSlots = 4096;

  struct Recovered {
    Registers registers;
    std::uint64_t serial = 0;    // 0: nothing found (a new meter)
    std::int64_t utc_ns = 0;
    std::uint64_t corrupt = 0;   // records that failed their checks
  };

  RegisterStore() = default;
  ~RegisterStore();
  RegisterStore(const RegisterStore&) = delete;
  RegisterStore& operator=(const RegisterStore&) = delete;

  // Creates the directory and files as needed, preallocates the ring and
  // recovers the last good registers. False with a clear `error` when the
  // directory cannot be written (read-only, full, not a directory).
  bool open(const std::string& dir, Recovered& out, std::string& error);

  // Writes one record (page cache; no fsync). False with `error` on failure.
  bool write(const Registers& r, std::int64_t utc_ns, std::string& error);
  // fdatasync of the ring.
  bool sync(std::string& error);
  // Rewrites registers.snap atomically (temporary file, fsync, rename, fsync dir).
  bool write_snapshot(std::string& error);

  [[nodiscard]] std::uint64_t serial() const noexcept { return serial_; }

  // Encodes/decodes a record (exposed for tests of the format).
  static void encode(std::uint64_t serial, const Registers& r, std::int64_t utc_ns, unsigned char out[kRecordBytes]);
  static bool decode(const unsigned char in[kRecordBytes], std::uint64_t& serial, Registers& r, std::int64_t& utc_ns);

 private:
  std::string dir_;
  int fd_ = -1;
  std::uint64_t serial_ = 0;  // of the last record written or recovered
  Registers last_{};
  std::int64_t last_utc_ = 0;
};

struct StateWriterCounters {
  std::atomic<std::uint64_t> records{0};
  std::atomic<std::uint64_t> write_errors{0};
  std::atomic<std::uint64_t> syncs{0};
  std::atomic<std::uint64_t> snapshots{0};
};

// The thread that takes register snapshots from the processing thread and
// writes them: the processing thread never waits on the disk.
class StateWriter {
 public:
  StateWriter(RegisterStore& store, TripleBuffer<StateSnapshot>& in, Waker& in_waker, Waker* published);
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

 private:
  void run();
  bool write_latest();

  RegisterStore& store_;
  TripleBuffer<StateSnapshot>& in_;
  Waker& in_waker_;
  Waker* published_;
  std::atomic<std::uint64_t> persisted_windows_{0};
  StateWriterCounters counters_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  StateSnapshot snap_;
  bool dirty_ = false;  // written since the last sync
};

}  // namespace wattpipe::pipeline

// SPDX-License-Identifier: Apache-2.0
// The log thread of the high-frequency logging mode: every window record to
// a JSON Lines file, every raw block to a WPRB file, and both to a ZeroMQ PUB
// socket for remote loggers. Nothing is dropped silently: windows carry
// sequence numbers, and when the bounded queue from the processing thread
// overflowed, the gap is written into the log itself as an overflow record.
//
// Threading: start()/stop()/join() from the owner; the thread it starts is
// the only consumer of both queues and owns the files and the socket.
// counters() from any thread.
//
// Memory ordering: the queues are SpscRing (see there); counters are relaxed
// statistics; stop() is a relaxed flag, the owner joins before reading results.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "wattpipe/acquire/acquisition.hpp"
#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/acquire/spsc_ring.hpp"
#include "wattpipe/acquire/waker.hpp"
#include "wattpipe/pipeline/window.hpp"

namespace wattpipe::publish {

class RotatingFile;
struct Pending;

struct LoggerConfig {
  std::string jsonl_path;    // --log
  std::string raw_path;      // --log-raw
  std::string zmq_endpoint;  // --zmq-pub
  bool zmq_raw = false;      // raw blocks on the PUB socket too
  double max_mb = 0;         // rotate files at this size (0: never)
  unsigned keep = 0;         // --log-keep: rotated files kept per log (0: all)
  double max_total_mb = 0;   // --log-max-total-mb: rotated files per log at most this much (0: no limit)
  std::string meter_id;
  // Losses so far (any thread may call it): written into each record while
  // any is non-zero, under the names the exit line and --stats-json use.
  std::function<acquire::LossCounts()> losses;
};

// Relaxed statistics, written by the log thread, read by any.
struct LoggerCounters {
  std::atomic<std::uint64_t> windows_written{0};      // in the file (flushed)
  std::atomic<std::uint64_t> windows_lost{0};         // seen as sequence gaps (queue overflow)
  std::atomic<std::uint64_t> windows_not_written{0};  // the file failed (full disk, EIO): counted, gap marked
  std::atomic<std::uint64_t> raw_blocks_written{0};
  std::atomic<std::uint64_t> raw_frames_written{0};
  std::atomic<std::uint64_t> raw_blocks_not_written{0};
  std::atomic<std::uint64_t> raw_frames_not_written{0};
  std::atomic<std::uint64_t> zmq_messages{0};
  std::atomic<std::uint64_t> write_errors{0};         // failed writes and flushes
  std::atomic<std::uint64_t> resumes{0};              // a failed file written again
  std::atomic<std::uint64_t> rotations{0};
  std::atomic<std::uint64_t> files_removed{0};        // by --log-keep / --log-max-total-mb
  std::atomic<std::uint64_t> reopens{0};              // SIGHUP reopens done
  std::atomic<bool> writing{true};                    // false while a log file is failed
};

class WindowLogger {
 public:
  // Either queue may be null. Throws std::runtime_error when a file cannot be
  // opened or the endpoint cannot be bound (a configuration error).
  WindowLogger(LoggerConfig cfg, acquire::SpscRing<pipeline::WindowRecord>* windows,
               acquire::SpscRing<acquire::SampleBlock>* raw);
  ~WindowLogger();
  WindowLogger(const WindowLogger&) = delete;
  WindowLogger& operator=(const WindowLogger&) = delete;

  // The producer (processing thread) notifies it after each push; the log
  // thread sleeps on it while both queues are empty.
  [[nodiscard]] acquire::Waker& waker() noexcept { return waker_; }
  void start();
  // Owner thread: drains both queues, flushes, closes, ends the thread.
  // `windows_total` (windows the processing thread closed) lets the log
  // report an overflow at its very end too.
  void stop(std::uint64_t windows_total = ~std::uint64_t{0});
  void join();
  // Any thread (the daemon's, on SIGHUP): the log thread closes and reopens
  // the files by their paths before its next write (logrotate moved them).
  void reopen() {
    reopen_.store(true, std::memory_order_relaxed);
    waker_.notify();
  }
  [[nodiscard]] const LoggerCounters& counters() const noexcept { return counters_; }

 private:
  struct Impl;
  void run();
  bool drain();
  void report_overflow(std::uint64_t seq);
  bool write_item(class RotatingFile& f, struct Pending& p, const char* what, const std::string& path, const void* data,
                  std::size_t n, bool counted, std::uint64_t seq, std::uint64_t frames);
  bool write_line(std::string_view line, bool counted, std::uint64_t seq);
  void flush_file(RotatingFile* f, Pending& p, const char* what, bool jsonl);
  void file_failed(RotatingFile& f, Pending& p, const char* what, std::uint64_t lost_items, std::uint64_t lost_frames,
                   std::uint64_t first_seq);
  void file_resumed(RotatingFile& f, Pending& p, const char* what, const std::string& path);

  LoggerConfig cfg_;
  acquire::SpscRing<pipeline::WindowRecord>* windows_;
  acquire::SpscRing<acquire::SampleBlock>* raw_;
  std::unique_ptr<Impl> impl_;
  LoggerCounters counters_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> reopen_{false};
  std::atomic<std::uint64_t> windows_total_{~std::uint64_t{0}};
  acquire::Waker waker_;
  std::thread thread_;
};

}  // namespace wattpipe::publish

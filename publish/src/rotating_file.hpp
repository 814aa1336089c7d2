// SPDX-License-Identifier: Apache-2.0
// A log file written through stdio with a large buffer, rotated by size,
// kept within a retention limit, and resumed by itself after a full disk.
//
// - Rotation: path -> path.1, path.2, ... (the live file keeps its name; a
//   rotated name already taken is skipped, never overwritten).
// - Existing data is never truncated: a line-oriented file is appended to; a
//   block file (`append` false) that already holds data is first moved aside
//   to the next free name, so a torn block of an earlier run cannot hide
//   this run's blocks.
// - Retention: after each rotation the oldest rotated files go until at most
//   `keep` remain and they take at most `max_total_bytes` (0: no limit).
// - Failure (ENOSPC, EIO, a read-only remount): the file is closed and
//   nothing is written; at most once a second the path is opened afresh, by
//   the rules above, and writing goes on from there. What could not be
//   written is the caller's to count; on_resume() tells it when to mark the
//   gap.
//
// Threading: one thread (the log thread).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace wattpipe::publish {

struct RotationPolicy {
  double max_mb = 0;                  // rotate at this size (0: never)
  unsigned keep = 0;                  // rotated files kept (0: all)
  std::uint64_t max_total_bytes = 0;  // rotated files' total size (0: no limit)
};

class RotatingFile {
 public:
  // `header` (optional): written first into every file this opens, so each
  // file of a rotated log says what wrote it. Throws std::runtime_error when
  // the path cannot be opened at start.
  RotatingFile(std::string path, RotationPolicy policy, const char* what, bool append, std::string header = {});
  ~RotatingFile();
  RotatingFile(const RotatingFile&) = delete;
  RotatingFile& operator=(const RotatingFile&) = delete;

  // SIGHUP (logrotate moved the file away): close it and open the path
  // afresh, by the same rules as at start. Throws like the constructor.
  void reopen();
  // True when the file is open; a failed one is opened again here when its
  // retry is due (then on_resume() is true once).
  bool ready(std::int64_t now_ns);
  // False when not written: the file failed now (errno says why) or is
  // failed and not yet open again. `now_ns`: steady clock, for the retry.
  bool write(const void* p, std::size_t n, std::int64_t now_ns);
  // False when the buffered data could not be written (the file fails).
  bool flush();

  [[nodiscard]] bool failed() const noexcept { return f_ == nullptr; }
  [[nodiscard]] const std::string& error() const noexcept { return error_; }  // why it failed
  [[nodiscard]] std::uint64_t rotations() const noexcept { return rotations_; }
  [[nodiscard]] std::uint64_t resumes() const noexcept { return resumes_; }
  [[nodiscard]] std::uint64_t removed() const noexcept { return removed_; }  // rotated files removed by retention
  // True once after the file opened again following a failure.
  bool on_resume() noexcept {
    const bool r = resumed_;
    resumed_ = false;
    return r;
  }

 private:
  void open_path();
  void write_header();
  std::string next_free_name();
  void open_or_throw(const char* mode);
  void rotate();
  void fail();
  void apply_retention();

  std::string path_;
  RotationPolicy policy_;
  std::uint64_t max_bytes_;
  const char* what_;
  bool append_;
  std::string header_;
  std::FILE* f_ = nullptr;
  std::uint64_t written_ = 0;
  unsigned index_ = 0;
  std::string error_;
  std::int64_t retry_at_ns_ = 0;
  bool resumed_ = false;
  std::uint64_t rotations_ = 0, resumes_ = 0, removed_ = 0;
};

}  // namespace wattpipe::publish

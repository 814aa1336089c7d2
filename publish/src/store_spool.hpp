// SPDX-License-Identifier: Apache-2.0
// The database store's batches and their spool on disk: what could not be
// written to the database yet, kept in order, bounded, and read back when
// the database is there again (docs/store.md).
//
// A batch is rows in COPY text for each table. On disk, batch N is up to
// four files N.w (windows), N.s (steps), N.x (spectra) and N.t
// (transactions), each a header line and the rows, written to a temporary
// name and renamed, so a file either is whole or is not there.
//
// Over the size limit, the spool drops, oldest first: spectra (the raw
// detail), then windows and steps outside any transaction. Transactions,
// and the windows during one, are kept beyond the limit (a transaction ends
// within its maximum duration).
//
// Threading: every member may be called from any thread; one mutex guards
// the index and the files (the store's own two threads share it; no
// pipeline thread ever calls in).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace wattpipe::publish::store {

enum Part : unsigned { windows = 0, steps = 1, spectra = 2, transactions = 3 };
inline constexpr unsigned kParts = 4;

// A transaction's time span, for the drop policy (end: INT64_MAX while open).
struct Span {
  std::int64_t begin_ns = 0, end_ns = 0;
};

struct Batch {
  std::uint64_t seq = 0;
  std::array<std::string, kParts> text;  // COPY text rows
  std::array<std::uint32_t, kParts> rows{};
  std::int64_t t_first_ns = 0, t_last_ns = 0;  // window start times covered (0, 0: none)
  std::vector<Span> spans;                     // transactions this batch carries
  std::int64_t handed_steady_ns = 0;           // when its first row reached the store (lag)
  [[nodiscard]] bool empty() const {
    return rows[0] + rows[1] + rows[2] + rows[3] == 0;
  }
  [[nodiscard]] std::size_t bytes() const {
    return text[0].size() + text[1].size() + text[2].size() + text[3].size();
  }
};

struct DropReport {
  std::uint64_t spectra_rows = 0, window_rows = 0, step_rows = 0;
  std::int64_t t_first_ns = 0, t_last_ns = 0;  // window times of what was dropped
};

class Spool {
 public:
  // Opens (creates) the directory and indexes the batches an earlier run
  // left; a damaged file is renamed *.bad and said. Throws std::runtime_error
  // when the directory cannot be made.
  Spool(std::string dir, std::uint64_t limit_bytes);

  // Writes a batch; false with `error` set when the disk refused (nothing of
  // it is left). Then applies the size limit (what it drops goes to `dropped`).
  bool append(const Batch& b, std::string& error, DropReport& dropped);
  // The oldest batch, read back; false when the spool is empty. A file that
  // cannot be read is renamed *.bad, said in `error`, and skipped.
  bool oldest(Batch& out, std::string& error);
  void remove(std::uint64_t seq);
  // A transaction seen (begin, or its end with the same begin): the windows
  // in its span are kept over the limit, wherever its records are.
  void note(Span s);
  // A batch the database refused for its content: moved to rejected/ with the reason.
  void reject(std::uint64_t seq, const std::string& reason);

  [[nodiscard]] bool empty() const;
  [[nodiscard]] std::uint64_t bytes() const;
  [[nodiscard]] std::size_t batches() const;
  [[nodiscard]] std::uint64_t next_seq() const;  // above every batch on disk
  [[nodiscard]] bool over_limit() const;         // over the limit with kept data only
  // Steady time the oldest batch reached the store (an earlier run's: when
  // this one found it); 0 when empty.
  [[nodiscard]] std::int64_t oldest_handed_ns() const;
  [[nodiscard]] const std::string& dir() const noexcept { return dir_; }

 private:
  struct Entry {
    std::array<std::uint64_t, kParts> bytes{};
    std::array<std::uint32_t, kParts> rows{};
    std::int64_t t_first_ns = 0, t_last_ns = 0;
    std::int64_t handed_ns = 0;
  };
  std::string path(std::uint64_t seq, unsigned part) const;
  void index_existing();
  void enforce(DropReport& dropped);
  bool is_kept(const Entry& e) const;
  void drop_part(std::map<std::uint64_t, Entry>::iterator it, unsigned part);

  std::string dir_;
  std::uint64_t limit_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, Entry> index_;
  std::vector<Span> spans_;  // of every transaction in the spool
  std::uint64_t bytes_ = 0, next_seq_ = 1;
  bool over_limit_ = false;
};

}  // namespace wattpipe::publish::store

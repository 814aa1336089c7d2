// SPDX-License-Identifier: Apache-2.0
// The transaction journal: open transactions and the OCMF pagination
// counter, persisted so that both survive restarts and crashes.
//
// transactions.journal holds one entry per line, "<length hex8> <crc32 hex8>
// <json>", appended and fsynced before a reply goes out. An entry whose
// length or CRC does not match is skipped and the next line read, so no
// damaged entry hides a later one; a failed append is cut off again
// (ftruncate) and logged at error level. The journal is compacted at start-up
// and every kCompactEvery appends to the open transactions, the pagination
// reservation and the last kHistory closed transactions: its size is bounded.
//
// Every entry carries its number "n", rising for the life of the journal.
// Pagination numbers are reserved in blocks, persisted before use, so a
// number is never reused (after a crash some may be skipped). The
// reservation and the entry count are also published (pagination_reserved(),
// entries_written()) for the register store, which keeps a copy of both in
// every record: a journal cut short, replaced or deleted is seen, and its
// pagination cannot start again at T1.
//
// Threading: one thread (the MQTT thread) after open(); pagination_reserved()
// may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ocmf.hpp"

namespace wattpipe::legal {

struct JournalTransaction {
  std::string id;
  ocmf::Identification ident;
  ocmf::ReadingPoint begin;
  std::string begin_record;  // the signed OCMF start record
  bool restored = false;     // opened before the current run (crossed a restart)
  std::uint64_t begin_outages = 0;  // source outages of this run at the begin (not persisted)
};

// What the register store's copy says the journal must at least hold.
struct JournalExpect {
  std::uint64_t pagination_floor = 0;  // reservation recorded by the registers
  std::uint64_t entries = 0;           // entries the registers saw written
  bool must_exist = false;             // the registers exist, so the journal did
  bool write = true;                   // false: the state is damaged elsewhere; read only
};

class TransactionJournal {
 public:
  static constexpr std::uint64_t kPaginationBlock = 64;
  static constexpr std::size_t kCompactEvery = 256;
  static constexpr std::size_t kHistory = 64;

  TransactionJournal() = default;
  ~TransactionJournal();
  TransactionJournal(const TransactionJournal&) = delete;
  TransactionJournal& operator=(const TransactionJournal&) = delete;

  // dir empty: in memory only (no persistence). Replays the journal and
  // checks it against `expect`; what is damaged is listed in damage() and
  // nothing is written then (the evidence stays; the caller refuses, or
  // recovers through skip_to()). Intact, it is compacted. No pagination
  // number below expect.pagination_floor is handed out. False with `error`
  // when the journal cannot be written.
  bool open(const std::string& dir, std::string& error, JournalExpect expect = {});

  // The next pagination number, persisted. nullopt with `error` on failure.
  std::optional<std::uint64_t> take_pagination(std::string& error);
  bool add(const JournalTransaction& t, std::string& error);
  // `pg`: the pagination number of the end record (kept in the history).
  bool remove(const std::string& id, std::string& error, std::uint64_t pg = 0);
  // No pagination number below `floor` is handed out from now on (persisted).
  bool skip_to(std::uint64_t floor, std::string& error);
  // Records an event (such as a recovery from damaged state), one JSON object.
  bool note(const std::string& json, std::string& error);

  [[nodiscard]] const std::map<std::string, JournalTransaction>& open_transactions() const noexcept { return open_; }
  [[nodiscard]] std::uint64_t skipped_lines() const noexcept { return skipped_; }
  // What open() found damaged (a torn last line after a crash is not damage).
  [[nodiscard]] const std::vector<std::string>& damage() const noexcept { return damage_; }
  [[nodiscard]] bool existed() const noexcept { return existed_; }
  // Highest pagination number reserved (or seen in any record) at open().
  [[nodiscard]] std::uint64_t highest_pagination_seen() const noexcept { return highest_seen_; }
  // Any thread: the reservation persisted so far.
  [[nodiscard]] const std::atomic<std::uint64_t>& pagination_reserved() const noexcept { return reserved_pub_; }
  // Any thread: the number of the last entry persisted.
  [[nodiscard]] const std::atomic<std::uint64_t>& entries_written() const noexcept { return entries_pub_; }

 private:
  bool append(const std::string& json, std::string& error);
  // `json` with its entry number `n` put first.
  static std::string numbered(std::uint64_t n, const std::string& json);
  bool compact(std::string& error);

  std::string path_;
  int fd_ = -1;
  std::map<std::string, JournalTransaction> open_;
  std::deque<std::string> history_;  // the last kHistory close entries (JSON)
  std::uint64_t next_pg_ = 1, reserved_ = 1, highest_seen_ = 0;
  std::uint64_t skipped_ = 0;
  std::vector<std::string> damage_;
  bool existed_ = false;
  bool need_newline_ = false;  // a cut-off append could not be removed: start the next on a new line
  std::size_t appends_since_compact_ = 0;
  std::uint64_t last_n_ = 0;  // number of the last entry written or read
  std::atomic<std::uint64_t> reserved_pub_{0};
  std::atomic<std::uint64_t> entries_pub_{0};
};

}  // namespace wattpipe::legal

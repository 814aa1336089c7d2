// The transaction journal: open transactions and the OCMF pagination
// counter, persisted so that both survive restarts and crashes.
//
// transactions.journal holds one record per line, "<crc32 hex> <json>",
// appended and fsynced before a reply goes out. A line whose CRC fails
// (torn write, corruption) is skipped. At start-up the journal is replayed
// and compacted (temporary file, fsync, rename). Pagination numbers are
// reserved in blocks, persisted before use, so a number is never reused
// (after a crash some may be skipped).
//
// Threading: one thread (the MQTT thread) after open().
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "wattpipe/pipeline/ocmf.hpp"

namespace wattpipe::pipeline {

struct JournalTransaction {
  std::string id;
  ocmf::Identification ident;
  ocmf::ReadingPoint begin;
  std::string begin_record;  // the signed OCMF start record
  bool restored = false;     // opened before the current run (crossed a restart)
};

class TransactionJournal {
 public:
  // dir empty: in memory only (no persistence). False with `error` when the
  // journal cannot be written.
  bool open(const std::string& dir, std::string& error);

  // The next pagination number, persisted. nullopt with `error` on failure.
  std::optional<std::uint64_t> take_pagination(std::string& error);
  bool add(const JournalTransaction& t, std::string& error);
  bool remove(const std::string& id, std::string& error);

  [[nodiscard]] const std::map<std::string, JournalTransaction>& open_transactions() const noexcept { return open_; }
  [[nodiscard]] std::uint64_t skipped_lines() const noexcept { return skipped_; }

 private:
  bool append(const std::string& json, std::string& error);
  bool compact(std::string& error);

  std::string path_;
  int fd_ = -1;
  std::map<std::string, JournalTransaction> open_;
  std::uint64_t next_pg_ = 1, reserved_ = 1;
  std::uint64_t skipped_ = 0;

 public:
  TransactionJournal() = default;
  ~TransactionJournal();
  TransactionJournal(const TransactionJournal&) = delete;
  TransactionJournal& operator=(const TransactionJournal&) = delete;
};

}  // namespace wattpipe::pipeline

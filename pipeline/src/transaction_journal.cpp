#include "wattpipe/pipeline/transaction_journal.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <simdjson.h>

#include "wattpipe/pipeline/json_writer.hpp"

namespace wattpipe::pipeline {
namespace {

constexpr std::uint64_t kPaginationBlock = 64;

std::string open_json(const JournalTransaction& t) {
  return write_json(1024 + t.begin_record.size() * 2 + t.ident.data.size() * 6, [&](JsonWriter& w) {
    w.begin_object();
    w.field("op", "open");
    w.field("id", t.id);
    w.field("evse", t.ident.evse_id);
    w.field_bool("is", t.ident.assigned);
    w.field("il", t.ident.level);
    w.key("if");
    w.raw('[');
    for (std::size_t k = 0; k < t.ident.flags.size(); ++k) {
      if (k > 0) w.raw(',');
      w.string(t.ident.flags[k]);
    }
    w.raw(']');
    w.field("it", t.ident.type);
    w.field("idd", t.ident.data);
    w.field("tt", t.ident.tariff_text);
    w.field_int("imp", t.begin.import_uwh);
    w.field_int("exp", t.begin.export_uwh);
    w.field_int("utc", t.begin.utc_ns);
    w.field_bool("sync", t.begin.clock_synced);
    w.field("rec", t.begin_record);
    w.end_object();
  });
}

std::string line_for(const std::string& json) {
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08lx ", crc32(0, reinterpret_cast<const Bytef*>(json.data()), uInt(json.size())));
  return crc + json + "\n";
}

bool write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += std::size_t(n);
  }
  return true;
}

}  // namespace

TransactionJournal::~TransactionJournal() {
  if (fd_ >= 0) ::close(fd_);
}

bool TransactionJournal::open(const std::string& dir, std::string& error) {
  if (dir.empty()) return true;  // in memory only
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  path_ = dir + "/transactions.journal";
  // Replay.
  std::ifstream in(path_);
  std::string line;
  simdjson::dom::parser parser;
  while (std::getline(in, line)) {
    unsigned long crc = 0;
    if (line.size() < 10 || line[8] != ' ' || std::sscanf(line.c_str(), "%8lx", &crc) != 1) {
      ++skipped_;
      continue;
    }
    const std::string json = line.substr(9);
    if (crc32(0, reinterpret_cast<const Bytef*>(json.data()), uInt(json.size())) != crc) {
      ++skipped_;  // torn or corrupt: never trusted
      continue;
    }
    simdjson::dom::element doc;
    std::string_view op;
    if (parser.parse(json).get(doc) != simdjson::SUCCESS || doc["op"].get_string().get(op) != simdjson::SUCCESS) {
      ++skipped_;
      continue;
    }
    auto str = [&](const char* k) {
      std::string_view v;
      return doc[k].get_string().get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
    };
    if (op == "pg") {
      std::uint64_t next = 0;
      if (doc["next"].get_uint64().get(next) == simdjson::SUCCESS) reserved_ = std::max(reserved_, next);
    } else if (op == "open") {
      JournalTransaction t;
      t.id = str("id");
      t.ident.evse_id = str("evse");
      bool b = false;
      if (doc["is"].get_bool().get(b) == simdjson::SUCCESS) t.ident.assigned = b;
      t.ident.level = str("il");
      simdjson::dom::array flags;
      if (doc["if"].get_array().get(flags) == simdjson::SUCCESS)
        for (auto f : flags) {
          std::string_view v;
          if (f.get_string().get(v) == simdjson::SUCCESS) t.ident.flags.emplace_back(v);
        }
      t.ident.type = str("it");
      t.ident.data = str("idd");
      t.ident.tariff_text = str("tt");
      std::int64_t v = 0;
      if (doc["imp"].get_int64().get(v) == simdjson::SUCCESS) t.begin.import_uwh = v;
      if (doc["exp"].get_int64().get(v) == simdjson::SUCCESS) t.begin.export_uwh = v;
      if (doc["utc"].get_int64().get(v) == simdjson::SUCCESS) t.begin.utc_ns = v;
      if (doc["sync"].get_bool().get(b) == simdjson::SUCCESS) t.begin.clock_synced = b;
      t.begin.tx = 'B';
      t.begin_record = str("rec");
      t.restored = true;
      if (!t.id.empty()) open_[t.id] = std::move(t);
    } else if (op == "close") {
      open_.erase(str("id"));
    }
  }
  // Never reuse a number that may have been handed out before the restart.
  next_pg_ = reserved_;
  return compact(error);
}

bool TransactionJournal::compact(std::string& error) {
  const std::string tmp = path_ + ".tmp";
  const int f = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  reserved_ = next_pg_ + kPaginationBlock;
  std::string body = line_for("{\"op\":\"pg\",\"next\":" + std::to_string(reserved_) + "}");
  for (const auto& [id, t] : open_) body += line_for(open_json(t));
  if (f < 0 || !write_all(f, body) || ::fsync(f) != 0) {
    error = "cannot write transaction journal '" + tmp + "': " + std::strerror(errno);
    if (f >= 0) ::close(f);
    return false;
  }
  ::close(f);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    error = "cannot replace '" + path_ + "': " + std::strerror(errno);
    return false;
  }
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) {
    error = "cannot open '" + path_ + "': " + std::strerror(errno);
    return false;
  }
  return true;
}

bool TransactionJournal::append(const std::string& json, std::string& error) {
  if (fd_ < 0) return true;  // in memory only
  if (!write_all(fd_, line_for(json)) || ::fdatasync(fd_) != 0) {
    error = "cannot write transaction journal '" + path_ + "': " + std::strerror(errno);
    return false;
  }
  return true;
}

std::optional<std::uint64_t> TransactionJournal::take_pagination(std::string& error) {
  if (next_pg_ >= reserved_) {
    if (!append("{\"op\":\"pg\",\"next\":" + std::to_string(next_pg_ + kPaginationBlock) + "}", error))
      return std::nullopt;
    reserved_ = next_pg_ + kPaginationBlock;
  }
  return next_pg_++;
}

bool TransactionJournal::add(const JournalTransaction& t, std::string& error) {
  if (!append(open_json(t), error)) return false;
  open_[t.id] = t;
  return true;
}

bool TransactionJournal::remove(const std::string& id, std::string& error) {
  const std::string json = write_json(64 + id.size() * 6, [&](JsonWriter& w) {
    w.begin_object();
    w.field("op", "close");
    w.field("id", id);
    w.end_object();
  });
  if (!append(json, error)) return false;
  open_.erase(id);
  return true;
}

}  // namespace wattpipe::pipeline

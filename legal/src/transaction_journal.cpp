// SPDX-License-Identifier: Apache-2.0
#include "transaction_journal.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <sstream>

#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include "wattpipe/legal/json_writer.hpp"

namespace wattpipe::legal {
namespace {

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
  char head[24];
  std::snprintf(head, sizeof head, "%08zx %08lx ", json.size(),
                crc32(0, reinterpret_cast<const Bytef*>(json.data()), uInt(json.size())));
  return head + json + "\n";
}

bool hex8(std::string_view s, unsigned long& out) {
  // Exactly as written: 8 lowercase digits (from_chars also takes 'A'-'F', so
  // a flipped case bit in the header would pass unseen).
  for (const char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return s.size() == 8 && r.ec == std::errc{} && r.ptr == s.data() + s.size();
}

// The JSON of a journal line when its length and checksum hold (version 1
// lines, "<crc> <json>", are read too); nullopt otherwise.
std::optional<std::string_view> entry_json(std::string_view line) {
  unsigned long len = 0, crc = 0;
  std::string_view json;
  if (line.size() >= 18 && line[8] == ' ' && line[17] == ' ' && hex8(line.substr(0, 8), len) &&
      hex8(line.substr(9, 8), crc)) {
    json = line.substr(18);
    if (json.size() != len) return std::nullopt;
  } else if (line.size() >= 10 && line[8] == ' ' && hex8(line.substr(0, 8), crc)) {
    json = line.substr(9);
  } else {
    return std::nullopt;
  }
  if (crc32(0, reinterpret_cast<const Bytef*>(json.data()), uInt(json.size())) != crc) return std::nullopt;
  return json;
}

// An entry's JSON without its number (compaction numbers entries anew).
std::string unnumbered(std::string_view json) {
  std::string s(json);
  if (s.rfind("{\"n\":", 0) == 0) {
    const std::size_t comma = s.find(',');
    s.erase(1, comma == std::string::npos ? s.size() - 2 : comma);
  }
  return s;
}

// The pagination number in a signed OCMF record ("PG":"T<n>"), 0 if none.
std::uint64_t record_pagination(std::string_view rec) {
  const std::size_t at = rec.find("\"PG\":\"T");
  if (at == std::string_view::npos) return 0;
  std::uint64_t n = 0;
  for (std::size_t i = at + 7; i < rec.size() && rec[i] >= '0' && rec[i] <= '9' && n < (1ull << 60); ++i)
    n = n * 10 + std::uint64_t(rec[i] - '0');
  return n;
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

std::string TransactionJournal::numbered(std::uint64_t n, const std::string& json) {
  return "{\"n\":" + std::to_string(n) + (json.size() > 2 ? "," : "") + json.substr(1);
}

bool TransactionJournal::open(const std::string& dir, std::string& error, JournalExpect expect) {
  if (dir.empty()) {  // in memory only
    next_pg_ = reserved_ = std::max<std::uint64_t>(1, expect.pagination_floor);
    return true;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  path_ = dir + "/transactions.journal";
  std::string text;
  {
    std::ifstream in(path_, std::ios::binary);
    existed_ = bool(in);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  simdjson::dom::parser parser;
  std::uint64_t bad = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    const bool last = nl == std::string::npos;
    const std::string_view line(text.data() + pos, (last ? text.size() : nl) - pos);
    pos = last ? text.size() : nl + 1;
    if (line.empty()) continue;
    const auto json = entry_json(line);
    simdjson::dom::element doc;
    std::string_view op;
    if (!json || parser.parse(json->data(), json->size()).get(doc) != simdjson::SUCCESS ||
        doc["op"].get_string().get(op) != simdjson::SUCCESS) {
      ++skipped_;
      // A torn last line is what a crash during an append leaves: its reply never went out.
      if (last) {
        spdlog::warn("journal {}: torn last entry ({} bytes) dropped", path_, line.size());
      } else {
        ++bad;
      }
      continue;
    }
    auto str = [&](const char* k) {
      std::string_view v;
      return doc[k].get_string().get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
    };
    if (std::uint64_t n = 0; doc["n"].get_uint64().get(n) == simdjson::SUCCESS) last_n_ = std::max(last_n_, n);
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
      highest_seen_ = std::max(highest_seen_, record_pagination(t.begin_record));
      if (!t.id.empty()) open_[t.id] = std::move(t);
    } else if (op == "close") {
      open_.erase(str("id"));
      std::uint64_t pg = 0;
      if (doc["pg"].get_uint64().get(pg) == simdjson::SUCCESS) highest_seen_ = std::max(highest_seen_, pg);
      history_.emplace_back(unnumbered(*json));
      if (history_.size() > kHistory) history_.pop_front();
    }
  }
  if (bad > 0) damage_.push_back(fmt::format("transactions.journal: {} entr{} fail their checks", bad, bad == 1 ? "y" : "ies"));
  if (!existed_ && expect.must_exist) damage_.push_back("transactions.journal: missing");
  if (existed_ && last_n_ < expect.entries)
    damage_.push_back(fmt::format("transactions.journal: ends at entry {}, the registers saw entry {} written",
                                  last_n_, expect.entries));
  if (existed_ && reserved_ < expect.pagination_floor)
    damage_.push_back(fmt::format("transactions.journal: pagination reserved to {} only, the registers record {}",
                                  reserved_, expect.pagination_floor));
  highest_seen_ = std::max(highest_seen_, reserved_ - 1);
  // Never reuse a number that may have been handed out before the restart.
  next_pg_ = std::max(reserved_, expect.pagination_floor);
  entries_pub_.store(last_n_, std::memory_order_relaxed);
  reserved_pub_.store(std::max(reserved_, expect.pagination_floor), std::memory_order_relaxed);
  if (!damage_.empty() || !expect.write) return true;  // nothing written: the caller decides
  return compact(error);
}

bool TransactionJournal::compact(std::string& error) {
  const std::string tmp = path_ + ".tmp";
  const int f = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const std::uint64_t reserve = next_pg_ + kPaginationBlock;
  std::uint64_t n = last_n_;
  std::string body = line_for(numbered(++n, "{\"op\":\"pg\",\"next\":" + std::to_string(reserve) + "}"));
  for (const auto& h : history_) body += line_for(numbered(++n, h));
  for (const auto& [id, t] : open_) body += line_for(numbered(++n, open_json(t)));
  if (f < 0 || !write_all(f, body) || ::fsync(f) != 0) {
    error = "cannot write transaction journal '" + tmp + "': " + std::strerror(errno);
    if (f >= 0) ::close(f);
    ::unlink(tmp.c_str());
    spdlog::error("{}", error);
    return false;
  }
  ::close(f);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    error = "cannot replace '" + path_ + "': " + std::strerror(errno);
    ::unlink(tmp.c_str());
    spdlog::error("{}", error);
    return false;
  }
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
  reserved_ = reserve;
  last_n_ = n;
  reserved_pub_.store(reserved_, std::memory_order_relaxed);
  entries_pub_.store(last_n_, std::memory_order_relaxed);
  need_newline_ = false;
  appends_since_compact_ = 0;
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) {
    error = "cannot open '" + path_ + "': " + std::strerror(errno);
    spdlog::error("{}", error);
    return false;
  }
  return true;
}

bool TransactionJournal::append(const std::string& json, std::string& error) {
  if (path_.empty()) return true;  // in memory only
  if (fd_ < 0) {
    // The last compaction could not reopen the journal: try again.
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd_ < 0) {
      error = "cannot open transaction journal '" + path_ + "': " + std::strerror(errno);
      spdlog::error("{}", error);
      return false;
    }
  }
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  std::string line;
  if (need_newline_) line = "\n";
  line += line_for(numbered(last_n_ + 1, json));
  if (!write_all(fd_, line) || ::fdatasync(fd_) != 0) {
    error = "cannot write transaction journal '" + path_ + "': " + std::strerror(errno);
    // Cut the torn entry off; if even that fails, the next entry starts on a
    // new line so the torn one cannot swallow it.
    if (before < 0 || ::ftruncate(fd_, before) != 0) need_newline_ = true;
    spdlog::error("{}; the entry was not recorded", error);
    return false;
  }
  need_newline_ = false;
  entries_pub_.store(++last_n_, std::memory_order_relaxed);
  if (++appends_since_compact_ >= kCompactEvery) {
    std::string e;
    if (!compact(e)) spdlog::error("journal compaction failed: {} (appending goes on)", e);
  }
  return true;
}

std::optional<std::uint64_t> TransactionJournal::take_pagination(std::string& error) {
  if (next_pg_ >= reserved_) {
    const std::uint64_t reserve = next_pg_ + kPaginationBlock;
    if (!append("{\"op\":\"pg\",\"next\":" + std::to_string(reserve) + "}", error)) return std::nullopt;
    reserved_ = reserve;
    reserved_pub_.store(reserved_, std::memory_order_relaxed);
  }
  return next_pg_++;
}

bool TransactionJournal::add(const JournalTransaction& t, std::string& error) {
  if (!append(open_json(t), error)) return false;
  open_[t.id] = t;
  return true;
}

bool TransactionJournal::remove(const std::string& id, std::string& error, std::uint64_t pg) {
  const std::string json = write_json(96 + id.size() * 6, [&](JsonWriter& w) {
    w.begin_object();
    w.field("op", "close");
    w.field("id", id);
    w.field_uint("pg", pg);
    w.end_object();
  });
  if (!append(json, error)) return false;
  open_.erase(id);
  history_.push_back(json);
  if (history_.size() > kHistory) history_.pop_front();
  return true;
}

bool TransactionJournal::skip_to(std::uint64_t floor, std::string& error) {
  next_pg_ = std::max(next_pg_, floor);
  if (path_.empty()) {
    reserved_ = next_pg_;
    return true;
  }
  return compact(error);
}

bool TransactionJournal::note(const std::string& json, std::string& error) { return append(json, error); }

}  // namespace wattpipe::legal

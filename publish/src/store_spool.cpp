// SPDX-License-Identifier: Apache-2.0
#include "store_spool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "wattpipe/acquire/clock.hpp"

namespace wattpipe::publish::store {

namespace fs = std::filesystem;

namespace {

constexpr char kExt[kParts] = {'w', 's', 'x', 't'};
constexpr std::string_view kMagic = "#wattpipe-spool 1";

// "#wattpipe-spool 1 rows=N t_first=NS t_last=NS spans=B:E,B:E\n"
std::string header(const Batch& b, unsigned part) {
  std::string h = fmt::format("{} rows={} t_first={} t_last={}", kMagic, b.rows[part], b.t_first_ns, b.t_last_ns);
  if (part == transactions && !b.spans.empty()) {
    h += " spans=";
    for (std::size_t k = 0; k < b.spans.size(); ++k)
      h += fmt::format("{}{}:{}", k ? "," : "", b.spans[k].begin_ns, b.spans[k].end_ns);
  }
  return h + '\n';
}

bool parse_i64(std::string_view s, std::int64_t& v) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// The header's fields; false when it is not one.
bool parse_header(std::string_view line, std::uint32_t& rows, std::int64_t& t_first, std::int64_t& t_last,
                  std::vector<Span>& spans) {
  if (line.substr(0, kMagic.size()) != kMagic) return false;
  std::istringstream in{std::string(line.substr(kMagic.size()))};
  std::string tok;
  bool have_rows = false;
  while (in >> tok) {
    const auto eq = tok.find('=');
    if (eq == std::string::npos) return false;
    const std::string_view k(tok.data(), eq), v(tok.data() + eq + 1, tok.size() - eq - 1);
    std::int64_t n = 0;
    if (k == "rows" && parse_i64(v, n) && n >= 0) rows = std::uint32_t(n), have_rows = true;
    else if (k == "t_first" && parse_i64(v, n)) t_first = n;
    else if (k == "t_last" && parse_i64(v, n)) t_last = n;
    else if (k == "spans") {
      std::string_view rest = v;
      while (!rest.empty()) {
        const auto comma = std::min(rest.find(','), rest.size());
        const std::string_view one = rest.substr(0, comma);
        const auto colon = one.find(':');
        Span s;
        if (colon == std::string_view::npos || !parse_i64(one.substr(0, colon), s.begin_ns) ||
            !parse_i64(one.substr(colon + 1), s.end_ns))
          return false;
        spans.push_back(s);
        rest.remove_prefix(std::min(comma + 1, rest.size()));
      }
    }
  }
  return have_rows;
}

bool write_file(const std::string& path, const std::string& head, const std::string& body, std::string& error) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = fmt::format("cannot create '{}': {}", tmp, std::strerror(errno));
    return false;
  }
  bool ok = true;
  for (const std::string* s : {&head, &body}) {
    const char* p = s->data();
    std::size_t left = s->size();
    while (ok && left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = fmt::format("cannot write '{}': {}", tmp, std::strerror(n < 0 ? errno : ENOSPC));
        ok = false;
      } else {
        p += n, left -= std::size_t(n);
      }
    }
  }
  if (::close(fd) != 0 && ok) {
    error = fmt::format("cannot write '{}': {}", tmp, std::strerror(errno));
    ok = false;
  }
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = fmt::format("cannot rename '{}': {}", tmp, std::strerror(errno));
    ok = false;
  }
  if (!ok) ::unlink(tmp.c_str());
  return ok;
}

}  // namespace

Spool::Spool(std::string dir, std::uint64_t limit_bytes) : dir_(std::move(dir)), limit_(limit_bytes) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) throw std::runtime_error(fmt::format("--store-spool-dir: cannot make '{}': {}", dir_, ec.message()));
  index_existing();
}

std::string Spool::path(std::uint64_t seq, unsigned part) const { return fmt::format("{}/{:020}.{}", dir_, seq, kExt[part]); }

void Spool::index_existing() {
  for (const auto& de : fs::directory_iterator(dir_)) {
    const std::string name = de.path().filename().string();
    if (!de.is_regular_file()) continue;
    if (name.ends_with(".tmp")) {  // a write cut short: it never held a batch
      fs::remove(de.path());
      continue;
    }
    if (name.size() != 22 || name[20] != '.') continue;
    const auto ext = std::string_view(kExt, kParts).find(name[21]);
    std::int64_t seq = 0;
    if (ext == std::string_view::npos || !parse_i64(std::string_view(name).substr(0, 20), seq) || seq <= 0) continue;
    const auto part = unsigned(ext);
    std::ifstream in(de.path(), std::ios::binary);
    std::string line;
    Entry e;
    std::vector<Span> spans;
    std::uint32_t rows = 0;
    const auto size = de.file_size();
    if (!std::getline(in, line) || !parse_header(line, rows, e.t_first_ns, e.t_last_ns, spans)) {
      spdlog::warn("store: '{}' is not a spool file; renamed *.bad, not sent", de.path().string());
      fs::rename(de.path(), de.path().string() + ".bad");
      continue;
    }
    Entry& slot = index_[std::uint64_t(seq)];
    slot.handed_ns = acquire::steady_now_ns();
    slot.bytes[part] = size;
    slot.rows[part] = rows;
    if (part != transactions) slot.t_first_ns = e.t_first_ns, slot.t_last_ns = e.t_last_ns;
    bytes_ += size;
    spans_.insert(spans_.end(), spans.begin(), spans.end());
    next_seq_ = std::max(next_seq_, std::uint64_t(seq) + 1);
  }
  if (!index_.empty())
    spdlog::info("store: {} batches ({:.1f} MB) spooled by an earlier run in '{}' are sent first", index_.size(),
                 double(bytes_) / 1e6, dir_);
}

bool Spool::append(const Batch& b, std::string& error, DropReport& dropped) {
  const std::lock_guard lock(mutex_);
  Entry e;
  e.t_first_ns = b.t_first_ns, e.t_last_ns = b.t_last_ns;
  e.handed_ns = b.handed_steady_ns > 0 ? b.handed_steady_ns : acquire::steady_now_ns();
  for (unsigned p = 0; p < kParts; ++p) {
    if (b.rows[p] == 0) continue;
    const std::string head = header(b, p);
    if (!write_file(path(b.seq, p), head, b.text[p], error)) {
      for (unsigned q = 0; q < p; ++q) ::unlink(path(b.seq, q).c_str());
      return false;
    }
    e.bytes[p] = head.size() + b.text[p].size();
    e.rows[p] = b.rows[p];
    bytes_ += e.bytes[p];
  }
  index_[b.seq] = e;
  next_seq_ = std::max(next_seq_, b.seq + 1);
  enforce(dropped);
  return true;
}

bool Spool::oldest(Batch& out, std::string& error) {
  const std::lock_guard lock(mutex_);
  while (!index_.empty()) {
    auto it = index_.begin();
    out = Batch{};
    out.seq = it->first;
    out.t_first_ns = it->second.t_first_ns, out.t_last_ns = it->second.t_last_ns;
    out.handed_steady_ns = it->second.handed_ns;
    bool ok = true;
    for (unsigned p = 0; p < kParts && ok; ++p) {
      if (it->second.bytes[p] == 0) continue;
      std::ifstream in(path(out.seq, p), std::ios::binary);
      std::string head;
      std::uint32_t rows = 0;
      std::int64_t t0 = 0, t1 = 0;
      ok = in && std::getline(in, head) && parse_header(head, rows, t0, t1, out.spans);
      if (ok) {
        out.text[p].assign(std::istreambuf_iterator<char>(in), {});
        out.rows[p] = rows;
        ok = !in.bad() && (out.text[p].empty() || out.text[p].back() == '\n');
      }
      if (!ok) {
        error = fmt::format("'{}' cannot be read back; renamed *.bad, not sent", path(out.seq, p));
        std::error_code ec;
        fs::rename(path(out.seq, p), path(out.seq, p) + ".bad", ec);
        bytes_ -= it->second.bytes[p];
        it->second.bytes[p] = 0, it->second.rows[p] = 0;
      }
    }
    if (ok) return true;
    // Send what is left of it (the other parts are whole).
    out = Batch{};
    if (std::all_of(it->second.bytes.begin(), it->second.bytes.end(), [](auto n) { return n == 0; })) index_.erase(it);
  }
  return false;
}

void Spool::remove(std::uint64_t seq) {
  const std::lock_guard lock(mutex_);
  const auto it = index_.find(seq);
  if (it == index_.end()) return;
  for (unsigned p = 0; p < kParts; ++p)
    if (it->second.bytes[p] != 0) drop_part(it, p);
  index_.erase(it);
  // Spans that end before every spooled window no longer protect anything.
  if (index_.empty()) over_limit_ = false;
}

void Spool::reject(std::uint64_t seq, const std::string& reason) {
  const std::lock_guard lock(mutex_);
  const auto it = index_.find(seq);
  if (it == index_.end()) return;
  const std::string dir = dir_ + "/rejected";
  std::error_code ec;
  fs::create_directories(dir, ec);
  for (unsigned p = 0; p < kParts; ++p) {
    if (it->second.bytes[p] == 0) continue;
    fs::rename(path(seq, p), fmt::format("{}/{:020}.{}", dir, seq, kExt[p]), ec);
    bytes_ -= it->second.bytes[p];
  }
  std::ofstream(fmt::format("{}/{:020}.reason", dir, seq)) << reason << '\n';
  index_.erase(it);
}

void Spool::note(Span s) {
  const std::lock_guard lock(mutex_);
  for (Span& k : spans_)
    if (k.begin_ns == s.begin_ns) {
      k.end_ns = s.end_ns;
      return;
    }
  spans_.push_back(s);
  // Forget spans that ended before the oldest window spooled (at most a few hundred are ever open).
  if (spans_.size() > 256) {
    const std::int64_t oldest = index_.empty() ? INT64_MAX : index_.begin()->second.t_first_ns;
    std::erase_if(spans_, [&](const Span& k) { return k.end_ns < oldest; });
  }
}

bool Spool::is_kept(const Entry& e) const {
  return std::any_of(spans_.begin(), spans_.end(),
                     [&](const Span& s) { return s.begin_ns <= e.t_last_ns && s.end_ns >= e.t_first_ns; });
}

void Spool::drop_part(std::map<std::uint64_t, Entry>::iterator it, unsigned part) {
  ::unlink(path(it->first, part).c_str());
  bytes_ -= it->second.bytes[part];
  it->second.bytes[part] = 0;
  it->second.rows[part] = 0;
}

void Spool::enforce(DropReport& dropped) {
  if (limit_ == 0) return;
  auto note_times = [&](const Entry& e) {
    if (dropped.t_first_ns == 0 || e.t_first_ns < dropped.t_first_ns) dropped.t_first_ns = e.t_first_ns;
    dropped.t_last_ns = std::max(dropped.t_last_ns, e.t_last_ns);
  };
  // First the raw detail, oldest first.
  for (auto it = index_.begin(); bytes_ > limit_ && it != index_.end(); ++it) {
    if (it->second.bytes[spectra] == 0) continue;
    dropped.spectra_rows += it->second.rows[spectra];
    note_times(it->second);
    drop_part(it, spectra);
  }
  // Then windows and steps outside every transaction, oldest first.
  for (auto it = index_.begin(); bytes_ > limit_ && it != index_.end();) {
    if (it->second.bytes[windows] + it->second.bytes[steps] == 0 || is_kept(it->second)) {
      ++it;
      continue;
    }
    dropped.window_rows += it->second.rows[windows];
    dropped.step_rows += it->second.rows[steps];
    note_times(it->second);
    for (unsigned p : {windows, steps})
      if (it->second.bytes[p] != 0) drop_part(it, p);
    if (it->second.bytes[transactions] == 0) it = index_.erase(it);
    else ++it;
  }
  over_limit_ = bytes_ > limit_;
}

bool Spool::empty() const {
  const std::lock_guard lock(mutex_);
  return index_.empty();
}
std::uint64_t Spool::bytes() const {
  const std::lock_guard lock(mutex_);
  return bytes_;
}
std::size_t Spool::batches() const {
  const std::lock_guard lock(mutex_);
  return index_.size();
}
std::uint64_t Spool::next_seq() const {
  const std::lock_guard lock(mutex_);
  return next_seq_;
}
std::int64_t Spool::oldest_handed_ns() const {
  const std::lock_guard lock(mutex_);
  return index_.empty() ? 0 : index_.begin()->second.handed_ns;
}
bool Spool::over_limit() const {
  const std::lock_guard lock(mutex_);
  return over_limit_;
}

}  // namespace wattpipe::publish::store

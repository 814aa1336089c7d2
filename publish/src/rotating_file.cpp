// SPDX-License-Identifier: Apache-2.0
#include "rotating_file.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include <spdlog/spdlog.h>

namespace wattpipe::publish {

namespace {
constexpr std::int64_t kRetryNs = 1'000'000'000;  // a failed file tries to open again this often
}

RotatingFile::RotatingFile(std::string path, RotationPolicy policy, const char* what, bool append, std::string header)
    : path_(std::move(path)),
      policy_(policy),
      max_bytes_(policy.max_mb > 0 ? std::uint64_t(policy.max_mb * 1024 * 1024) : 0),
      what_(what),
      append_(append),
      header_(std::move(header)) {
  open_path();
}

RotatingFile::~RotatingFile() {
  if (f_ != nullptr) std::fclose(f_);
}

void RotatingFile::reopen() {
  if (f_ != nullptr) std::fclose(f_);
  f_ = nullptr;
  index_ = 0;
  retry_at_ns_ = 0;  // should it fail, writes try again by themselves
  open_path();
}

bool RotatingFile::ready(std::int64_t now_ns) {
  if (f_ != nullptr) return true;
  if (retry_at_ns_ == 0) retry_at_ns_ = now_ns + kRetryNs;  // the first write after a failure starts the wait
  if (now_ns < retry_at_ns_) return false;
  retry_at_ns_ = now_ns + kRetryNs;  // the next try, should this one fail
  try {
    index_ = 0;
    open_path();  // the rules of the start: append (lines) or a new file (blocks)
  } catch (const std::exception& e) {
    error_ = e.what();
    return false;
  }
  resumed_ = true;
  ++resumes_;
  return true;
}

bool RotatingFile::write(const void* p, std::size_t n, std::int64_t now_ns) {
  if (!ready(now_ns)) return false;
  if (max_bytes_ > 0 && written_ + n > max_bytes_ && written_ > 0) {
    // The old file's buffer first: if that fails, what it held is the caller's loss to count.
    if (std::fflush(f_) != 0) {
      fail();
      return false;
    }
    rotate();
  }
  if (f_ == nullptr) return false;
  if (std::fwrite(p, 1, n, f_) != n) {
    fail();
    return false;
  }
  written_ += n;
  return true;
}

bool RotatingFile::flush() {
  if (f_ == nullptr) return false;
  if (std::fflush(f_) == 0) return true;
  fail();
  return false;
}

// A write or flush failed: what is buffered is lost (counted by the caller),
// the file is closed, and the next write after kRetryNs opens it again.
void RotatingFile::fail() {
  error_ = std::strerror(errno);
  std::fclose(f_);  // (its own flush fails too: the buffer is dropped)
  f_ = nullptr;
  written_ = 0;
  retry_at_ns_ = 0;  // set by the next write, from its clock
}

void RotatingFile::open_path() {
  struct stat st{};
  if (::stat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    if (append_) {
      open_or_throw("ab");
      written_ = std::uint64_t(st.st_size);
      // A torn last line (an earlier run, or a full disk) must not swallow the next one.
      char last = '\n';
      if (std::FILE* r = std::fopen(path_.c_str(), "rb"); r != nullptr) {
        if (std::fseek(r, -1, SEEK_END) == 0 && std::fread(&last, 1, 1, r) != 1) last = '\n';
        std::fclose(r);
      }
      if (last != '\n') std::fputc('\n', f_);
      spdlog::info("{}: appending to '{}' ({} bytes already there)", what_, path_, st.st_size);
      write_header();
      return;
    }
    const std::string aside = next_free_name();
    if (std::rename(path_.c_str(), aside.c_str()) != 0)
      throw std::runtime_error(std::string(what_) + ": '" + path_ + "' holds data and cannot be moved aside: " +
                               std::strerror(errno));
    spdlog::info("{}: '{}' held data: moved to '{}'", what_, path_, aside);
  }
  open_or_throw("wb");
  write_header();
}

void RotatingFile::write_header() {
  if (f_ == nullptr || header_.empty()) return;
  if (std::fwrite(header_.data(), 1, header_.size(), f_) == header_.size()) written_ += header_.size();
}

std::string RotatingFile::next_free_name() {
  for (;;) {
    std::string name = path_ + "." + std::to_string(++index_);
    struct stat st{};
    if (::stat(name.c_str(), &st) != 0) return name;
  }
}

void RotatingFile::open_or_throw(const char* mode) {
  f_ = std::fopen(path_.c_str(), mode);
  if (f_ == nullptr) throw std::runtime_error(std::string(what_) + ": cannot open '" + path_ + "': " + std::strerror(errno));
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  written_ = 0;
}

void RotatingFile::rotate() {
  std::fclose(f_);  // (flushed by write() just before)
  f_ = nullptr;
  const std::string target = next_free_name();
  if (std::rename(path_.c_str(), target.c_str()) != 0)
    spdlog::error("{}: cannot rotate '{}': {}", what_, path_, std::strerror(errno));
  ++rotations_;
  apply_retention();
  f_ = std::fopen(path_.c_str(), "wb");
  if (f_ == nullptr) {
    error_ = std::strerror(errno);
    retry_at_ns_ = 0;
    return;
  }
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  written_ = 0;
  write_header();
}

// The rotated files of this path (path.N), oldest (lowest N) first, go
// while more than `keep` remain or they take more than max_total_bytes.
void RotatingFile::apply_retention() {
  if (policy_.keep == 0 && policy_.max_total_bytes == 0) return;
  namespace fs = std::filesystem;
  const fs::path live(path_);
  const fs::path dir = live.has_parent_path() ? live.parent_path() : fs::path(".");
  const std::string prefix = live.filename().string() + ".";
  struct Rotated {
    unsigned n;
    fs::path p;
    std::uint64_t bytes;
  };
  std::vector<Rotated> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string num = name.substr(prefix.size());
    if (num.find_first_not_of("0123456789") != std::string::npos || num.size() > 9) continue;
    std::error_code sec;
    const auto bytes = e.file_size(sec);
    files.push_back({unsigned(std::stoul(num)), e.path(), sec ? 0 : std::uint64_t(bytes)});
  }
  std::sort(files.begin(), files.end(), [](const Rotated& a, const Rotated& b) { return a.n < b.n; });
  std::uint64_t total = 0;
  for (const auto& f : files) total += f.bytes;
  for (std::size_t k = 0; k < files.size(); ++k) {
    const std::size_t left = files.size() - k;
    const bool too_many = policy_.keep > 0 && left > policy_.keep;
    const bool too_big = policy_.max_total_bytes > 0 && total > policy_.max_total_bytes;
    if (!too_many && !too_big) break;
    if (fs::remove(files[k].p, ec)) {
      ++removed_;
      total -= files[k].bytes;
      spdlog::info("{}: removed '{}' (retention: --log-keep {}, --log-max-total-mb {:.0f})", what_,
                   files[k].p.string(), policy_.keep, double(policy_.max_total_bytes) / (1024 * 1024));
    }
  }
}

}  // namespace wattpipe::publish

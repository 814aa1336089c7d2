// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/window_logger.hpp"

#include "wattpipe/publish/analysis_json.hpp"

#include <pthread.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/log_limit.hpp"
#include "wattpipe/acquire/wprb.hpp"
#include "wattpipe/publish/config.hpp"
#include "wattpipe/publish/everest_api.hpp"

#include <poll.h>
#include <sys/stat.h>

namespace wattpipe::publish {
namespace {

// A file written through stdio with a large buffer, rotated by size:
// path -> path.1, path.2, ... (the live file keeps its name; a rotated name
// already taken is skipped, never overwritten). Existing data is never
// truncated: a line-oriented file is appended to; a block file (`append`
// false) that already holds data is first moved aside to the next free name,
// so a torn block of an earlier run cannot hide this run's blocks.
// What opens every log file: which software measured what follows. JSONL:
// a line of its own (docs/export.md; readers skip records with a "type");
// WPRB: the same text in a note (docs/wprb.md).
std::string log_header(std::string_view format, const std::string& meter_id) {
  const legal::SoftwareId& id = legal::software_id();
  return legal::write_json(512, [&](legal::JsonWriter& w) {
           w.begin_object();
           w.field("type", "header");
           w.field("format", format);
           w.field("wattpipe_version", version());
           w.field("software_id", legal::software_id_text());
           w.field("legal_sha256", id.sha256);
           w.field("meter_id", meter_id);
           w.end_object();
         });
}
std::string jsonl_header(const std::string& meter_id) { return log_header("wattpipe windows", meter_id) + "\n"; }
std::string wprb_header(const std::string& meter_id) {
  std::vector<std::byte> note;
  acquire::wprb::encode_note(log_header("wattpipe raw samples", meter_id), note);
  return std::string(reinterpret_cast<const char*>(note.data()), note.size());
}

class RotatingFile {
 public:
  // `header` (optional): written first into every file this opens, so each
  // file of a rotated log says what wrote it.
  RotatingFile(std::string path, double max_mb, const char* what, bool append, std::string header = {})
      : path_(std::move(path)), max_bytes_(max_mb > 0 ? std::uint64_t(max_mb * 1024 * 1024) : 0), what_(what),
        append_(append), header_(std::move(header)) {
    open_path();
  }
  ~RotatingFile() {
    if (f_ != nullptr) std::fclose(f_);
  }
  // SIGHUP (logrotate moved the file away): close it and open the path
  // afresh, by the same rules as at start. Throws like the constructor.
  void reopen() {
    if (f_ != nullptr) std::fclose(f_);
    f_ = nullptr;
    index_ = 0;
    open_path();
  }
  // False on a write error (counted by the caller; the file stays open for the next try).
  bool write(const void* p, std::size_t n, std::atomic<std::uint64_t>& rotations) {
    if (max_bytes_ > 0 && written_ + n > max_bytes_ && written_ > 0) rotate(rotations);
    if (f_ == nullptr || std::fwrite(p, 1, n, f_) != n) return false;
    written_ += n;
    return true;
  }
  bool flush() { return f_ != nullptr && std::fflush(f_) == 0; }

 private:
  void open_path() {
    const bool append = append_;
    struct stat st{};
    if (::stat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      if (append) {
        open_or_throw("ab");
        written_ = std::uint64_t(st.st_size);
        // A torn last line of an earlier run must not swallow this run's first one.
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
  void write_header() {
    if (f_ == nullptr || header_.empty()) return;
    if (std::fwrite(header_.data(), 1, header_.size(), f_) == header_.size()) written_ += header_.size();
  }
  std::string next_free_name() {
    for (;;) {
      std::string name = path_ + "." + std::to_string(++index_);
      struct stat st{};
      if (::stat(name.c_str(), &st) != 0) return name;
    }
  }
  void open_or_throw(const char* mode) {
    f_ = std::fopen(path_.c_str(), mode);
    if (f_ == nullptr) throw std::runtime_error(std::string(what_) + ": cannot open '" + path_ + "': " + std::strerror(errno));
    std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
    written_ = 0;
  }
  void rotate(std::atomic<std::uint64_t>& rotations) {
    std::fclose(f_);
    f_ = nullptr;
    const std::string target = next_free_name();
    if (std::rename(path_.c_str(), target.c_str()) != 0)
      spdlog::error("{}: cannot rotate '{}': {}", what_, path_, std::strerror(errno));
    f_ = std::fopen(path_.c_str(), "wb");
    if (f_ != nullptr) std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
    written_ = 0;
    write_header();
    rotations.fetch_add(1, std::memory_order_relaxed);
  }

  std::string path_;
  std::uint64_t max_bytes_;
  const char* what_;
  bool append_;
  std::string header_;
  std::FILE* f_ = nullptr;
  std::uint64_t written_ = 0;
  unsigned index_ = 0;
};

}  // namespace

struct WindowLogger::Impl {
  std::unique_ptr<RotatingFile> jsonl, raw;
  zmq::context_t ctx{1};
  std::unique_ptr<zmq::socket_t> pub;
  std::array<char, 32768> buf{};  // a window with 600 harmonic values takes about 8 KB
  std::vector<std::byte> wprb;
  std::array<pipeline::WindowRecord, 64> batch;
  std::uint64_t next_seq = 0;  // windows are numbered from 0 in each run
  std::uint64_t raw_sequence = 0;
  acquire::LogLimit error_log{5'000'000'000};
};

WindowLogger::WindowLogger(LoggerConfig cfg, acquire::SpscRing<pipeline::WindowRecord>* windows,
                           acquire::SpscRing<acquire::SampleBlock>* raw)
    : cfg_(std::move(cfg)), windows_(windows), raw_(raw), impl_(std::make_unique<Impl>()) {
  if (!cfg_.jsonl_path.empty())
    impl_->jsonl = std::make_unique<RotatingFile>(cfg_.jsonl_path, cfg_.max_mb, "--log", true, jsonl_header(cfg_.meter_id));
  if (!cfg_.raw_path.empty())
    impl_->raw = std::make_unique<RotatingFile>(cfg_.raw_path, cfg_.max_mb, "--log-raw", false, wprb_header(cfg_.meter_id));
  if (!cfg_.zmq_endpoint.empty()) {
    impl_->pub = std::make_unique<zmq::socket_t>(impl_->ctx, zmq::socket_type::pub);
    impl_->pub->set(zmq::sockopt::sndhwm, 100000);
    impl_->pub->set(zmq::sockopt::linger, 1000);
    try {
      impl_->pub->bind(cfg_.zmq_endpoint);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error("--zmq-pub: cannot bind '" + cfg_.zmq_endpoint + "': " + e.what());
    }
  }
}

WindowLogger::~WindowLogger() {
  stop();
  join();
}

void WindowLogger::start() { thread_ = std::thread([this] { run(); }); }

void WindowLogger::stop(std::uint64_t windows_total) {
  windows_total_.store(windows_total, std::memory_order_relaxed);
  stop_.store(true, std::memory_order_relaxed);
  waker_.wake();
}

void WindowLogger::join() {
  if (thread_.joinable()) thread_.join();
}

// The queue overflowed (the disk or the network could not keep up): the
// windows from next_seq up to `seq` are lost, and the log says so itself.
void WindowLogger::report_overflow(std::uint64_t seq) {
  Impl& d = *impl_;
  const std::uint64_t lost = seq - d.next_seq;
  counters_.windows_lost.fetch_add(lost, std::memory_order_relaxed);
  const std::string marker = "{\"type\":\"overflow\",\"windows_lost\":" + std::to_string(lost) +
                             ",\"first_seq\":" + std::to_string(d.next_seq) + "}";
  if (d.jsonl && !d.jsonl->write((marker + "\n").data(), marker.size() + 1, counters_.rotations))
    counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
  if (d.pub) {
    d.pub->send(zmq::str_buffer("wattpipe.overflow"), zmq::send_flags::sndmore);
    d.pub->send(zmq::const_buffer(marker.data(), marker.size()), zmq::send_flags::dontwait);
  }
  d.next_seq = seq;
}

bool WindowLogger::drain() {
  Impl& d = *impl_;
  bool any = false;
  auto failed = [&](const char* what) {
    counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
    if (std::uint64_t sup = 0; d.error_log.allow(sup))
      spdlog::error("LOG NOT WRITTEN: {}: {} ({} more failures); measuring goes on", what, std::strerror(errno), sup);
  };
  auto zmq_send = [&](std::string_view topic, const void* p, std::size_t n) {
    if (!d.pub) return;
    d.pub->send(zmq::const_buffer(topic.data(), topic.size()), zmq::send_flags::sndmore);
    d.pub->send(zmq::const_buffer(p, n), zmq::send_flags::dontwait);
    counters_.zmq_messages.fetch_add(1, std::memory_order_relaxed);
  };
  // A JSON line written into d.buf: to ZeroMQ and the JSONL file; false when not written.
  auto emit_line = [&](std::string_view topic, const JsonWriter& w) {
    if (w.overflow()) return false;
    const std::string_view line = w.view();
    zmq_send(topic, line.data(), line.size());
    if (!d.jsonl) return true;
    d.buf[line.size()] = '\n';
    if (d.jsonl->write(d.buf.data(), line.size() + 1, counters_.rotations)) return true;
    failed("--log");
    return false;
  };
  if (windows_ != nullptr) {
    while (const std::size_t n = windows_->try_pop_n(d.batch)) {
      any = true;
      for (std::size_t k = 0; k < n; ++k) {
        const pipeline::WindowRecord& r = d.batch[k];
        if (r.seq != d.next_seq) report_overflow(r.seq);
        d.next_seq = r.seq + 1;
        JsonWriter w(d.buf);
        acquire::LossCounts losses;
        if (cfg_.losses) losses = cfg_.losses();
        write_window_record(r, cfg_.meter_id, w, losses.any() ? &losses : nullptr);
        if (emit_line("wattpipe.window", w)) counters_.windows_written.fetch_add(1, std::memory_order_relaxed);
        // Step events that completed with this window: lines of their own.
        for (unsigned s = 0; s < r.an.steps; ++s) {
          JsonWriter e(d.buf);
          write_step_event(r.an.step[s], cfg_.meter_id, e);
          emit_line("wattpipe.event", e);
        }
      }
    }
  }
  if (raw_ != nullptr) {
    while (const acquire::SampleBlock* b = raw_->front()) {
      any = true;
      d.wprb.clear();
      acquire::wprb::encode_block(*b, d.raw_sequence++, d.wprb);
      const std::uint32_t frames = b->frames;
      raw_->release();
      zmq_send("wattpipe.raw", d.wprb.data(), d.wprb.size());
      if (d.raw && !d.raw->write(d.wprb.data(), d.wprb.size(), counters_.rotations)) {
        failed("--log-raw");
        continue;
      }
      counters_.raw_blocks_written.fetch_add(1, std::memory_order_relaxed);
      counters_.raw_frames_written.fetch_add(frames, std::memory_order_relaxed);
    }
  }
  return any;
}

void WindowLogger::run() {
  pthread_setname_np(pthread_self(), "wp-log");
  std::int64_t next_flush = acquire::steady_now_ns() + 1'000'000'000;
  auto flush = [&] {
    if (impl_->jsonl && !impl_->jsonl->flush()) counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
    if (impl_->raw && !impl_->raw->flush()) counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
  };
  while (!stop_.load(std::memory_order_relaxed)) {
    if (reopen_.exchange(false, std::memory_order_relaxed)) {
      flush();
      for (RotatingFile* f : {impl_->jsonl.get(), impl_->raw.get()}) {
        if (f == nullptr) continue;
        try {
          f->reopen();
        } catch (const std::exception& e) {
          counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
          spdlog::error("{} (writes fail until the next SIGHUP)", e.what());
        }
      }
      counters_.reopens.fetch_add(1, std::memory_order_relaxed);
    }
    const bool any = drain();
    const std::int64_t now = acquire::steady_now_ns();
    if (now >= next_flush) {  // at least every second
      flush();
      next_flush = now + 1'000'000'000;
    }
    if (any) continue;
    // Sleep until a record arrives, stop(), or the next flush.
    waker_.arm();
    const bool empty = (windows_ == nullptr || windows_->size_approx() == 0) && (raw_ == nullptr || raw_->front() == nullptr);
    if (empty && !stop_.load(std::memory_order_relaxed)) {
      pollfd p{waker_.fd(), POLLIN, 0};
      ::poll(&p, 1, int((next_flush - now) / 1'000'000) + 1);
    }
    waker_.drain();
  }
  drain();
  // Windows lost after the last one written are reported too.
  const std::uint64_t total = windows_total_.load(std::memory_order_relaxed);
  if (windows_ != nullptr && total != ~std::uint64_t{0} && total > impl_->next_seq) report_overflow(total);
  flush();
}

}  // namespace wattpipe::publish

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
#include "rotating_file.hpp"
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

}  // namespace

// Windows (or raw blocks) in a file's stdio buffer, not yet flushed: a
// failed flush loses them, and the gap since the failure is marked.
struct Pending {
  std::uint64_t items = 0, frames = 0;
  std::uint64_t gap_items = 0, gap_first = 0;  // not written since the file failed (first seq)
  bool in_gap = false;
};

struct WindowLogger::Impl {
  std::unique_ptr<RotatingFile> jsonl, raw;
  Pending jsonl_pending, raw_pending;
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
  const RotationPolicy policy{cfg_.max_mb, cfg_.keep, std::uint64_t(cfg_.max_total_mb * 1024 * 1024)};
  if (!cfg_.jsonl_path.empty())
    impl_->jsonl = std::make_unique<RotatingFile>(cfg_.jsonl_path, policy, "--log", true, jsonl_header(cfg_.meter_id));
  if (!cfg_.raw_path.empty())
    impl_->raw = std::make_unique<RotatingFile>(cfg_.raw_path, policy, "--log-raw", false, wprb_header(cfg_.meter_id));
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
                             ",\"first_seq\":" + std::to_string(d.next_seq) + "}\n";
  if (d.jsonl) write_line(marker, false, 0);
  if (d.pub) {
    d.pub->send(zmq::str_buffer("wattpipe.overflow"), zmq::send_flags::sndmore);
    d.pub->send(zmq::const_buffer(marker.data(), marker.size() - 1), zmq::send_flags::dontwait);
  }
  d.next_seq = seq;
}

// A failed file's items are not written (counted once, at a bounded rate in
// the log); the first item written again is preceded by a gap record (JSONL)
// and a log line.
void WindowLogger::file_failed(RotatingFile& f, Pending& p, const char* what, std::uint64_t lost_items,
                               std::uint64_t lost_frames, std::uint64_t first_seq) {
  Impl& d = *impl_;
  const bool jsonl = &f == d.jsonl.get();
  (jsonl ? counters_.windows_not_written : counters_.raw_blocks_not_written).fetch_add(lost_items, std::memory_order_relaxed);
  if (!jsonl) counters_.raw_frames_not_written.fetch_add(lost_frames, std::memory_order_relaxed);
  if (!p.in_gap) {
    p.in_gap = true;
    p.gap_first = first_seq;
    counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
  }
  p.gap_items += lost_items;
  counters_.writing.store(false, std::memory_order_relaxed);
  if (std::uint64_t sup = 0; d.error_log.allow(sup))
    spdlog::error("LOG NOT WRITTEN: {}: {}; {} {} not written so far ({} more lines suppressed); measuring and "
                  "publishing go on, and writing resumes by itself when the file can be written again",
                  what, f.error(), p.gap_items, jsonl ? "windows" : "raw blocks", sup);
}

// Before the first item a failed file takes again: the gap, said.
void WindowLogger::file_resumed(RotatingFile& f, Pending& p, const char* what, const std::string& path) {
  Impl& d = *impl_;
  const bool jsonl = &f == d.jsonl.get();
  counters_.resumes.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("LOG RESUMED: {} writes to '{}' again after {} {} not written", what, path, p.gap_items,
               jsonl ? "windows" : "raw blocks");
  if (jsonl) {
    const std::string gap = "{\"type\":\"gap\",\"windows_not_written\":" + std::to_string(p.gap_items) +
                            ",\"first_seq\":" + std::to_string(p.gap_first) + ",\"reason\":" +
                            legal::write_json(f.error().size() * 6 + 8, [&](JsonWriter& w) { w.string(f.error()); }) +
                            "}\n";
    d.jsonl->write(gap.data(), gap.size(), acquire::steady_now_ns());
  }
  p.in_gap = false;
  p.gap_items = 0;
  if ((!d.jsonl || !d.jsonl->failed()) && (!d.raw || !d.raw->failed())) counters_.writing.store(true, std::memory_order_relaxed);
}

// One item (a JSON line, or a raw block) into its file; false when not written.
bool WindowLogger::write_item(RotatingFile& f, Pending& p, const char* what, const std::string& path, const void* data,
                              std::size_t n, bool counted, std::uint64_t seq, std::uint64_t frames) {
  const std::int64_t now = acquire::steady_now_ns();
  // Open again (when due): the gap is marked before the first item written again.
  if (f.ready(now) && f.on_resume()) file_resumed(f, p, what, path);
  const bool was_failed = f.failed();
  if (f.write(data, n, now)) {
    if (counted) {
      ++p.items;
      p.frames += frames;
    }
    return true;
  }
  // Now failed: what the buffer held is lost with this item; still failed: this item.
  const std::uint64_t items = (was_failed ? 0 : p.items) + (counted ? 1 : 0);
  const std::uint64_t lost_frames = (was_failed ? 0 : p.frames) + frames;
  if (!was_failed) p.items = p.frames = 0;
  file_failed(f, p, what, items, lost_frames, seq);
  return false;
}

bool WindowLogger::write_line(std::string_view line, bool counted, std::uint64_t seq) {
  Impl& d = *impl_;
  return write_item(*d.jsonl, d.jsonl_pending, "--log", cfg_.jsonl_path, line.data(), line.size(), counted, seq, 0);
}

// Flushes a file's buffer: its items count as written, or as not written.
void WindowLogger::flush_file(RotatingFile* f, Pending& p, const char* what, bool jsonl) {
  if (f == nullptr || f->failed()) return;
  if (f->flush()) {
    (jsonl ? counters_.windows_written : counters_.raw_blocks_written).fetch_add(p.items, std::memory_order_relaxed);
    if (!jsonl) counters_.raw_frames_written.fetch_add(p.frames, std::memory_order_relaxed);
  } else {
    file_failed(*f, p, what, p.items, p.frames, jsonl ? impl_->next_seq - p.items : 0);
  }
  p.items = p.frames = 0;
}

bool WindowLogger::drain() {
  Impl& d = *impl_;
  bool any = false;
  auto zmq_send = [&](std::string_view topic, const void* p, std::size_t n) {
    if (!d.pub) return;
    d.pub->send(zmq::const_buffer(topic.data(), topic.size()), zmq::send_flags::sndmore);
    d.pub->send(zmq::const_buffer(p, n), zmq::send_flags::dontwait);
    counters_.zmq_messages.fetch_add(1, std::memory_order_relaxed);
  };
  // A JSON line written into d.buf: to ZeroMQ and the JSONL file.
  auto emit_line = [&](std::string_view topic, const JsonWriter& w, bool window, std::uint64_t seq) {
    if (w.overflow()) return;
    const std::string_view line = w.view();
    zmq_send(topic, line.data(), line.size());
    if (!d.jsonl) return;
    d.buf[line.size()] = '\n';
    write_line(std::string_view(d.buf.data(), line.size() + 1), window, seq);
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
        emit_line("wattpipe.window", w, true, r.seq);
        // Step events that completed with this window: lines of their own.
        for (unsigned s = 0; s < r.an.steps; ++s) {
          JsonWriter e(d.buf);
          write_step_event(r.an.step[s], cfg_.meter_id, e);
          emit_line("wattpipe.event", e, false, r.seq);
        }
      }
    }
  }
  if (raw_ != nullptr) {
    while (const acquire::SampleBlock* b = raw_->front()) {
      any = true;
      d.wprb.clear();
      const std::uint64_t sequence = d.raw_sequence++;
      acquire::wprb::encode_block(*b, sequence, d.wprb);
      const std::uint32_t frames = b->frames;
      raw_->release();
      zmq_send("wattpipe.raw", d.wprb.data(), d.wprb.size());
      if (d.raw)
        write_item(*d.raw, d.raw_pending, "--log-raw", cfg_.raw_path, d.wprb.data(), d.wprb.size(), true, sequence, frames);
    }
  }
  return any;
}

void WindowLogger::run() {
  pthread_setname_np(pthread_self(), "wp-log");
  std::int64_t next_flush = acquire::steady_now_ns() + 1'000'000'000;
  Impl& d = *impl_;
  auto flush = [&] {
    flush_file(d.jsonl.get(), d.jsonl_pending, "--log", true);
    flush_file(d.raw.get(), d.raw_pending, "--log-raw", false);
    std::uint64_t rotations = 0, removed = 0;
    for (const RotatingFile* f : {d.jsonl.get(), d.raw.get()})
      if (f != nullptr) rotations += f->rotations(), removed += f->removed();
    counters_.rotations.store(rotations, std::memory_order_relaxed);
    counters_.files_removed.store(removed, std::memory_order_relaxed);
  };
  while (!stop_.load(std::memory_order_relaxed)) {
    if (reopen_.exchange(false, std::memory_order_relaxed)) {
      flush();
      for (RotatingFile* f : {d.jsonl.get(), d.raw.get()}) {
        if (f == nullptr) continue;
        try {
          f->reopen();
        } catch (const std::exception& e) {
          counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
          spdlog::error("{} (tried again with the next write, once a second)", e.what());
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

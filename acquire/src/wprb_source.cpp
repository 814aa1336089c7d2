// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/acquire/wprb_source.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <spdlog/spdlog.h>

#include "wattpipe/acquire/clock.hpp"

namespace wattpipe::acquire {

// ---- WprbSplitter ----------------------------------------------------------

std::uint64_t WprbSplitter::begin(const wprb::Header& h, std::span<const std::byte> payload,
                                  SourceCounters& counters) {
  std::uint64_t lost = 0;
  if (have_prev_) {
    if (h.sequence < expect_seq_) {
      counters.stream_restarts.fetch_add(1, std::memory_order_relaxed);  // DAQ restarted
    } else if (h.first_frame >= expect_frame_) {
      lost = h.first_frame - expect_frame_;
    } else if (h.sequence > expect_seq_) {
      lost = (h.sequence - expect_seq_) * h.frame_count;  // frame numbering inconsistent: trust sequence
    } else {
      counters.stream_restarts.fetch_add(1, std::memory_order_relaxed);
    }
  }
  counters.frames_lost_gap.fetch_add(lost, std::memory_order_relaxed);
  header_ = h;
  payload_ = payload;
  next_ = 0;
  have_prev_ = true;
  expect_seq_ = h.sequence + 1;
  expect_frame_ = h.first_frame + h.frame_count;
  return lost;
}

std::int64_t WprbSplitter::next_piece_end_ns() const noexcept {
  const std::uint32_t n = std::min<std::uint32_t>(header_.frame_count - next_, kBlockFrames);
  return header_.t0_ns + ns_offset_ + std::llround(double(next_ + n) * 1e9 / header_.sample_rate_hz);
}

bool WprbSplitter::next(SampleBlock& out, std::string& error, SourceCounters& counters) {
  const std::uint32_t n = std::min<std::uint32_t>(header_.frame_count - next_, kBlockFrames);
  const LayoutInfo li = layout_info(header_.layout);
  out.layout = header_.layout;
  out.channels = li.channels;
  out.frames = n;
  out.sequence = header_.sequence;
  out.first_frame = header_.first_frame + next_ + frame_offset_;
  out.t0_ns = header_.t0_ns + ns_offset_ + std::llround(double(next_) * 1e9 / header_.sample_rate_hz);
  out.sample_rate_hz = header_.sample_rate_hz;
  out.clock_synced = (header_.flags & 1u) != 0;
  out.lost_frames = 0;  // the acquisition thread fills it from the counters
  if (!wprb::decode_frames(header_, payload_, next_, n, out.data.data(), error)) {
    counters.frames_invalid.fetch_add(header_.frame_count - next_, std::memory_order_relaxed);
    next_ = header_.frame_count;  // discard the rest of this block
    return false;
  }
  next_ += n;
  return true;
}

// ---- ZmqSource -------------------------------------------------------------

ZmqSource::ZmqSource(const std::string& endpoint, ZmqMode mode)
    : mode_(mode), sock_(ctx_, mode == ZmqMode::sub ? zmq::socket_type::sub : zmq::socket_type::pull) {
  if (mode == ZmqMode::sub) {
    sock_.set(zmq::sockopt::subscribe, "");
    sock_.set(zmq::sockopt::rcvhwm, 100000);  // ZeroMQ drops silently past this; gaps are then counted
  } else {
    // Back-pressure: a few messages queued here, then the sender waits
    // (memory stays bounded instead of 100000 blocks deep).
    sock_.set(zmq::sockopt::rcvhwm, 64);
  }
  sock_.set(zmq::sockopt::linger, 0);
  sock_.connect(endpoint);
}

ReadStatus ZmqSource::read(SampleBlock& out, std::chrono::nanoseconds timeout) {
  const std::int64_t deadline = steady_now_ns() + timeout.count();
  std::string error;
  for (;;) {
    if (split_.pending()) {
      if (split_.next(out, error, counters_)) return ReadStatus::ok;
      counters_.blocks_invalid.fetch_add(1, std::memory_order_relaxed);
      if (std::uint64_t sup = 0; log_limit_.allow(sup))
        spdlog::warn("zmq source: invalid block skipped: {} ({} more suppressed)", error, sup);
      continue;
    }
    // Receive first, poll only when nothing is queued: at full rate a block
    // is nearly always waiting, and the poll would cost a system call each.
    if (!sock_.recv(msg_, zmq::recv_flags::dontwait)) {
      const std::int64_t left_ms = std::max<std::int64_t>(0, (deadline - steady_now_ns()) / 1'000'000);
      zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(left_ms));
      if ((item.revents & ZMQ_POLLIN) == 0 || !sock_.recv(msg_, zmq::recv_flags::dontwait)) return ReadStatus::timeout;
    }
    // A multipart message carries the block in its last part (earlier parts: topic).
    while (msg_.more())
      if (!sock_.recv(msg_, zmq::recv_flags::dontwait)) break;
    const std::span<const std::byte> bytes(static_cast<const std::byte*>(msg_.data()), msg_.size());
    if (wprb::is_note(bytes)) continue;  // a note carries no samples (docs/wprb.md)
    wprb::Header h;
    bool valid = wprb::parse_header(bytes, h, error);
    if (valid && bytes.size() != wprb::kHeaderBytes + wprb::payload_bytes(h)) {
      valid = false;
      error = "size " + std::to_string(bytes.size()) + " does not match header";
    }
    if (!valid) {
      counters_.blocks_invalid.fetch_add(1, std::memory_order_relaxed);
      if (std::uint64_t sup = 0; log_limit_.allow(sup))
        spdlog::warn("zmq source: invalid block skipped: {} ({} more suppressed)", error, sup);
      continue;
    }
    split_.begin(h, bytes.subspan(wprb::kHeaderBytes), counters_);
  }
}

// ---- ReplaySource ----------------------------------------------------------

ReplaySource::ReplaySource(const std::string& path, bool max_rate, bool loop)
    : path_(path), max_rate_(max_rate), loop_(loop) {
  file_ = std::fopen(path.c_str(), "rb");
  if (file_ == nullptr) throw std::runtime_error("replay: cannot open " + path + ": " + std::strerror(errno));
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  if (std::fseek(file_, 0, SEEK_END) == 0) {
    file_size_ = static_cast<std::uint64_t>(std::max(0L, std::ftell(file_)));
    std::fseek(file_, 0, SEEK_SET);
  }
}

ReplaySource::~ReplaySource() {
  if (file_ != nullptr) std::fclose(file_);
}

bool ReplaySource::load_next(std::string& error) {
  for (;;) {
    const std::uint64_t at = offset_.load(std::memory_order_relaxed);
    std::byte hdr[wprb::kHeaderBytes];
    const std::size_t got = std::fread(hdr, 1, sizeof hdr, file_);
    if (got == 0 && std::feof(file_)) {
      if (!loop_ || !any_block_) return false;  // clean end of file (or nothing to loop over)
      // Loop: continue numbering frames and time where the file ended.
      loop_frames_ += last_end_frame_ - first_frame_;
      loop_ns_ += last_end_ns_ - first_t0_ns_;
      split_.set_offset(loop_frames_, loop_ns_);
      split_.reset_stream();
      std::clearerr(file_);
      std::fseek(file_, 0, SEEK_SET);
      offset_.store(0, std::memory_order_relaxed);
      continue;
    }
    if (got < sizeof hdr) {
      error = "truncated block header at byte " + std::to_string(at);
      return false;
    }
    wprb::Header h;
    std::string why;
    if (wprb::is_note(std::span<const std::byte>(hdr, sizeof hdr))) {
      std::uint32_t len = 0;
      if (!wprb::parse_note_header(std::span<const std::byte>(hdr, sizeof hdr), len, why)) {
        error = "corrupt note at byte " + std::to_string(at) + ": " + why;
        return false;
      }
      std::string text(len, '\0');
      if (std::fread(text.data(), 1, len, file_) < len) {
        error = "truncated note at byte " + std::to_string(at);
        return false;
      }
      if (note_.empty()) note_ = std::move(text);
      offset_.store(at + sizeof hdr + len, std::memory_order_relaxed);
      continue;  // carries no samples
    }
    if (!wprb::parse_header(std::span<const std::byte>(hdr, sizeof hdr), h, why)) {
      error = "corrupt block at byte " + std::to_string(at) + ": " + why;
      return false;
    }
    const std::size_t need = wprb::payload_bytes(h);
    buf_.resize(need);
    const std::size_t n = std::fread(buf_.data(), 1, need, file_);
    if (n < need) {
      error = "truncated block at byte " + std::to_string(at) + " (" + std::to_string(n) + " of " +
              std::to_string(need) + " payload bytes)";
      return false;
    }
    offset_.store(at + sizeof hdr + need, std::memory_order_relaxed);
    if (!any_block_) {
      first_frame_ = h.first_frame;
      first_t0_ns_ = h.t0_ns;
      any_block_ = true;
    }
    last_end_frame_ = h.first_frame + h.frame_count;
    last_end_ns_ = h.t0_ns + std::llround(double(h.frame_count) * 1e9 / h.sample_rate_hz);
    split_.begin(h, buf_, counters_);
    return true;
  }
}

ReadStatus ReplaySource::read(SampleBlock& out, std::chrono::nanoseconds timeout) {
  std::string error;
  for (;;) {
    if (!split_.pending()) {
      if (ended_ || !load_next(error)) {
        if (!ended_ && !error.empty()) spdlog::error("replay {}: {}; replay ends after the good blocks", path_, error);
        if (!ended_) end_reason_ = error;
        ended_ = true;
        return ReadStatus::end;
      }
    }
    if (!max_rate_ && !pacer_.wait(split_.next_piece_end_ns() - first_t0_ns_, timeout.count()))
      return ReadStatus::timeout;
    if (split_.next(out, error, counters_)) return ReadStatus::ok;
    counters_.blocks_invalid.fetch_add(1, std::memory_order_relaxed);
    if (std::uint64_t sup = 0; log_limit_.allow(sup))
      spdlog::warn("replay {}: invalid block skipped: {} ({} more suppressed)", path_, error, sup);
  }
}

}  // namespace wattpipe::acquire

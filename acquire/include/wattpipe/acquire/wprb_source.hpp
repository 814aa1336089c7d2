// SPDX-License-Identifier: Apache-2.0
// Sources of WPRB v1 blocks: a ZeroMQ stream from an external DAQ, and a
// recorded file.
//
// Threading: owned and called by the acquisition thread only (see Source).
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/log_limit.hpp"
#include "wattpipe/acquire/source.hpp"
#include "wattpipe/acquire/wprb.hpp"

namespace wattpipe::acquire {

// Turns validated WPRB blocks into SampleBlocks of at most kBlockFrames,
// tracking sequence gaps. Shared by the ZeroMQ and file sources.
class WprbSplitter {
 public:
  // Starts a new WPRB block (already validated). Counts frames lost to a gap
  // in `counters`. Returns the frames lost just before this block.
  std::uint64_t begin(const wprb::Header& h, std::span<const std::byte> payload, SourceCounters& counters);
  // True while part of the current WPRB block is left.
  [[nodiscard]] bool pending() const noexcept { return next_ < header_.frame_count && payload_.data() != nullptr; }
  // Fills `out` with the next piece. False when a sample is not finite: the
  // rest of this WPRB block is then discarded and counted in frames_invalid.
  bool next(SampleBlock& out, std::string& error, SourceCounters& counters);
  void reset_stream() noexcept { have_prev_ = false; }
  // Shift applied to first_frame and t0 (continuous numbering for loops).
  void set_offset(std::uint64_t frames, std::int64_t ns) noexcept { frame_offset_ = frames, ns_offset_ = ns; }
  // UTC ns just after the last frame of the next piece (for pacing).
  [[nodiscard]] std::int64_t next_piece_end_ns() const noexcept;

 private:
  wprb::Header header_;
  std::span<const std::byte> payload_;
  std::uint32_t next_ = 0;
  bool have_prev_ = false;
  std::uint64_t expect_seq_ = 0, expect_frame_ = 0;
  std::uint64_t frame_offset_ = 0;
  std::int64_t ns_offset_ = 0;
};

enum class ZmqMode { sub, pull };

// Blocks from a ZeroMQ SUB (default) or PULL socket connected to an endpoint
// (framing: docs/wprb.md). Invalid blocks are counted and skipped; the socket
// reconnects by itself when the DAQ goes away and comes back.
//
// SUB never holds the sender back: a full block ring drops and counts. PULL
// is lossless: the acquisition thread reads the socket only when the ring has
// room, and a small receive high-water mark passes the wait back to the
// sender through ZeroMQ and TCP.
class ZmqSource final : public Source {
 public:
  ZmqSource(const std::string& endpoint, ZmqMode mode);
  ReadStatus read(SampleBlock& out, std::chrono::nanoseconds timeout) override;
  [[nodiscard]] bool real_time() const noexcept override { return mode_ == ZmqMode::sub; }
  // Both are live data: their t0 is checked against the wall clock.
  [[nodiscard]] bool wall_clock() const noexcept override { return true; }

 private:
  ZmqMode mode_;
  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
  zmq::message_t msg_;
  WprbSplitter split_;
  LogLimit log_limit_;
};

// Blocks from a WPRB file, paced by the blocks' timestamps or at max rate.
// Ends at end of file, or at the first truncated/corrupt block (with a reason).
class ReplaySource final : public Source {
 public:
  ReplaySource(const std::string& path, bool max_rate, bool loop);
  ~ReplaySource() override;
  ReadStatus read(SampleBlock& out, std::chrono::nanoseconds timeout) override;
  [[nodiscard]] bool real_time() const noexcept override { return !max_rate_; }
  [[nodiscard]] bool bursts() const noexcept override { return max_rate_; }
  // A recording keeps the time it was made: only its monotony is checked.
  [[nodiscard]] bool wall_clock() const noexcept override { return false; }
  [[nodiscard]] std::string end_reason() const override { return end_reason_; }
  // Bytes consumed and total file size, for progress display (any thread, approximate).
  [[nodiscard]] std::uint64_t bytes_read() const noexcept { return offset_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t file_size() const noexcept { return file_size_; }
  // The first note of the file (docs/wprb.md: what wrote it), "" when none.
  // Read thread only, or after the source ended.
  [[nodiscard]] const std::string& note() const noexcept { return note_; }

 private:
  bool load_next(std::string& error);

  std::string path_;
  std::FILE* file_ = nullptr;
  bool max_rate_, loop_;
  std::uint64_t file_size_ = 0;
  std::atomic<std::uint64_t> offset_{0};
  std::vector<std::byte> buf_;
  WprbSplitter split_;
  std::string end_reason_;
  std::string note_;
  bool ended_ = false;
  bool any_block_ = false;  // a block (not a note) was read: first_frame_ and first_t0_ns_ are set
  Pacer pacer_;
  std::int64_t first_t0_ns_ = 0;
  std::uint64_t loop_frames_ = 0, last_end_frame_ = 0, first_frame_ = 0;
  std::int64_t loop_ns_ = 0, last_end_ns_ = 0;
  LogLimit log_limit_;
};

}  // namespace wattpipe::acquire

// SPDX-License-Identifier: Apache-2.0
// A ZeroMQ PUSH sender of pre-encoded WPRB blocks, and a bare PULL receiver:
// the peer and the baseline of the ZeroMQ input benchmarks (bm_sources,
// wattpipe-bench). The sender only copies a block into a message and numbers
// it, so what is measured is the transport and the receiver.
//
// Threading: a BlockSender or BarePull is used by one thread; stop() and
// sent() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/wprb.hpp"

namespace wattpipe::bench {

class BlockSender {
 public:
  static constexpr std::uint32_t kFrames = 1024;  // per message, as a DAQ would send
  static constexpr int kDistinct = 100;           // 102400 frames at 1.024 MS/s: 5 whole cycles of 50 Hz
  static constexpr double kRate = 1.024e6;

  explicit BlockSender(const std::string& endpoint) : sock_(ctx_, zmq::socket_type::push) {
    sock_.set(zmq::sockopt::sndtimeo, 100);
    sock_.set(zmq::sockopt::linger, 0);
    sock_.bind(endpoint);
    acquire::SampleBlock b;
    b.layout = acquire::Layout::ac3n;
    b.channels = 8;
    b.frames = kFrames;
    b.sample_rate_hz = kRate;
    b.clock_synced = true;
    for (int k = 0; k < kDistinct; ++k) {
      for (std::uint32_t f = 0; f < kFrames; ++f) {
        const double t = double(k * kFrames + f) / kRate;
        for (int p = 0; p < 3; ++p) {
          const double w = 2 * M_PI * 50 * t - p * 2 * M_PI / 3;
          b.data[f * 8 + p] = float(325.27 * std::sin(w));
          b.data[f * 8 + 4 + p] = float(22.63 * std::sin(w - 0.3176));
        }
        b.data[f * 8 + 3] = b.data[f * 8 + 7] = 0;
      }
      std::vector<std::byte> msg;
      acquire::wprb::encode_block(b, 0, msg);
      blocks_.push_back(std::move(msg));
    }
  }

  // Sends until stop(): sequence, first_frame and t0 continue from block to block.
  void run() {
    const std::int64_t t0 = acquire::utc_now_ns();
    acquire::wprb::Header h;
    std::string err;
    acquire::wprb::parse_header(blocks_[0], h, err);
    std::uint64_t seq = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      const auto& src = blocks_[seq % kDistinct];
      zmq::message_t msg(src.size());
      std::memcpy(msg.data(), src.data(), src.size());
      h.sequence = seq;
      h.first_frame = seq * kFrames;
      h.t0_ns = t0 + std::llround(double(h.first_frame) * 1e9 / kRate);
      acquire::wprb::write_header(h, std::span<std::byte, acquire::wprb::kHeaderBytes>(
                                         static_cast<std::byte*>(msg.data()), acquire::wprb::kHeaderBytes));
      if (sock_.send(msg, zmq::send_flags::none)) sent_.store(++seq, std::memory_order_relaxed);
    }
  }
  void stop() noexcept { stop_.store(true, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t sent_frames() const noexcept { return sent_.load(std::memory_order_relaxed) * kFrames; }

 private:
  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
  std::vector<std::vector<std::byte>> blocks_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sent_{0};
};

// The baseline: a PULL socket that receives the messages and touches nothing.
// Returns frames/s over `seconds`, timed from the first message.
inline double bare_pull_frames_per_s(const std::string& endpoint, double seconds) {
  zmq::context_t ctx{1};
  zmq::socket_t sock(ctx, zmq::socket_type::pull);
  sock.set(zmq::sockopt::rcvtimeo, 2000);
  sock.set(zmq::sockopt::linger, 0);
  sock.connect(endpoint);
  zmq::message_t msg;
  if (!sock.recv(msg)) return 0;
  const std::int64_t start = acquire::steady_now_ns(), end = start + std::int64_t(seconds * 1e9);
  std::uint64_t frames = 0;
  std::int64_t now = start;
  while (now < end) {
    if (!sock.recv(msg)) break;
    frames += (msg.size() - acquire::wprb::kHeaderBytes) / 32;  // AC3N float32 frames
    now = acquire::steady_now_ns();
  }
  return double(frames) / (double(now - start) / 1e9);
}

}  // namespace wattpipe::bench

// SPDX-License-Identifier: Apache-2.0
// wattpipe-daq: an external DAQ for tests, benches and demos. Streams WPRB v1
// blocks over ZeroMQ (PUB or PUSH) from the simulator or a WPRB file, paced
// at the sample rate or as fast as possible, and/or writes them to a file.
#include <csignal>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include <fmt/format.h>
#include <zmq.hpp>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/acquire/wprb.hpp"
#include "wattpipe/acquire/wprb_source.hpp"

namespace acq = wattpipe::acquire;

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wattpipe-daq: stream WPRB v1 sample blocks over ZeroMQ and/or write them to a file"};
  std::string bind, connect, profile = "ac3", from, write, format = "float32";
  bool push = false, max_rate = false, wait_subscriber = false, quiet = false;
  double sample_rate = 20000, session_s = 120, duration = 0;
  std::uint64_t frames = 0, start_sequence = 0;
  std::uint32_t block_frames = 1024;
  std::vector<std::uint64_t> drop_blocks, corrupt_blocks, nan_blocks;
  float vpc = 0.01f, apc = 0.001f;
  app.add_option("--bind", bind, "ZeroMQ endpoint to bind (e.g. tcp://127.0.0.1:5555)");
  app.add_option("--connect", connect, "ZeroMQ endpoint to connect instead");
  app.add_flag("--push", push, "PUSH socket (no drops; waits for the receiver) instead of PUB");
  app.add_flag("--wait-subscriber", wait_subscriber, "PUB: wait for the first subscriber before sending");
  app.add_option("--sim-profile,--profile", profile, "simulator profile: ac3, ac1, dc, dc-session, charger (AC3N_DC: a charger's input and output; the daemon's --sim-profile; --profile is the old name)")->capture_default_str();
  app.add_option("--sample-rate", sample_rate, "samples/s per channel")->capture_default_str();
  app.add_option("--sim-session-s", session_s, "length of the dc-session profile")->capture_default_str();
  app.add_option("--from", from, "send the blocks of this WPRB file instead of the simulator");
  app.add_option("--write", write, "also (or only) write the blocks to this WPRB file");
  app.add_option("--format", format, "sample format on the wire: float32, int16, int32")
      ->check(CLI::IsMember({"float32", "int16", "int32"}))->capture_default_str();
  app.add_option("--volts-per-count", vpc, "int formats: volts per count")->capture_default_str();
  app.add_option("--amperes-per-count", apc, "int formats: amperes per count")->capture_default_str();
  app.add_option("--frames", frames, "frames to send (0: until --duration or Ctrl-C)");
  app.add_option("--duration", duration, "seconds to send");
  app.add_option("--block-frames", block_frames, "frames per block")->check(CLI::Range(1u, acq::wprb::kMaxFramesPerBlock))->capture_default_str();
  app.add_flag("--max-rate", max_rate, "as fast as possible instead of paced at the sample rate");
  app.add_option("--start-sequence", start_sequence, "sequence number of the first block");
  app.add_option("--drop-block", drop_blocks, "skip the block with this sequence number (a gap)");
  app.add_option("--corrupt-block", corrupt_blocks, "send this block with a broken magic");
  app.add_option("--nan-block", nan_blocks, "send this block with a NaN sample");
  app.add_flag("--quiet", quiet, "no summary line");
  wattpipe::tools::add_version(app, "wattpipe-daq");
  if (const int rc = wattpipe::tools::parse(app, argc, argv); rc >= 0) return rc;
  if (bind.empty() && connect.empty() && write.empty()) {
    std::fprintf(stderr, "wattpipe-daq: give --bind, --connect and/or --write\n");
    return 2;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  std::unique_ptr<acq::Source> src;
  if (!from.empty()) {
    try {
      src = std::make_unique<acq::ReplaySource>(from, true, false);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "wattpipe-daq: %s\n", e.what());
      return 2;
    }
  } else {
    auto cfg = acq::sim_profile(profile, sample_rate, session_s);
    if (!cfg) {
      std::fprintf(stderr, "wattpipe-daq: --profile: unknown profile '%s'\n", profile.c_str());
      return 2;
    }
    src = std::make_unique<acq::SimSource>(*cfg, true, std::min<std::uint32_t>(block_frames, acq::kBlockFrames));
  }
  const acq::wprb::SampleFormat fmt_code = format == "int16"   ? acq::wprb::SampleFormat::int16
                                           : format == "int32" ? acq::wprb::SampleFormat::int32
                                                               : acq::wprb::SampleFormat::float32;

  zmq::context_t ctx(1);
  std::unique_ptr<zmq::socket_t> sock;
  if (!bind.empty() || !connect.empty()) {
    const bool xpub = wait_subscriber && !push;
    sock = std::make_unique<zmq::socket_t>(ctx, push ? zmq::socket_type::push : xpub ? zmq::socket_type::xpub
                                                                                     : zmq::socket_type::pub);
    // PUSH waits for the receiver, so a short queue is enough; PUB never
    // waits, so it queues deep before dropping.
    sock->set(zmq::sockopt::sndhwm, push ? 256 : 100000);
    sock->set(zmq::sockopt::linger, 5000);
    try {
      if (!bind.empty()) sock->bind(bind);
      if (!connect.empty()) sock->connect(connect);
    } catch (const zmq::error_t& e) {
      std::fprintf(stderr, "wattpipe-daq: %s: %s\n", bind.empty() ? connect.c_str() : bind.c_str(), e.what());
      return 2;
    }
    if (xpub) {
      zmq::message_t sub;
      while (!g_stop) {
        zmq::pollitem_t item{sock->handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, std::chrono::milliseconds(100));
        if ((item.revents & ZMQ_POLLIN) && sock->recv(sub, zmq::recv_flags::dontwait) && sub.size() > 0 &&
            static_cast<const char*>(sub.data())[0] == 1)
          break;
      }
    }
  }
  std::ofstream out;
  if (!write.empty()) {
    out.open(write, std::ios::binary | std::ios::trunc);
    if (!out) {
      std::fprintf(stderr, "wattpipe-daq: --write: cannot open '%s'\n", write.c_str());
      return 2;
    }
  }

  const std::set<std::uint64_t> drop(drop_blocks.begin(), drop_blocks.end());
  const std::set<std::uint64_t> corrupt(corrupt_blocks.begin(), corrupt_blocks.end());
  const std::set<std::uint64_t> nan(nan_blocks.begin(), nan_blocks.end());
  auto block = std::make_unique<acq::SampleBlock>();
  std::vector<std::byte> buf;
  std::uint64_t seq = start_sequence, sent_frames = 0, sent_blocks = 0;
  const std::int64_t t0 = acq::steady_now_ns();
  double rate_hz = 0;
  for (;;) {
    if (g_stop) break;
    if (frames > 0 && sent_frames >= frames) break;
    if (duration > 0 && double(acq::steady_now_ns() - t0) / 1e9 >= duration) break;
    if (src->read(*block, std::chrono::seconds(1)) != acq::ReadStatus::ok) {
      if (!from.empty()) break;
      continue;
    }
    if (frames > 0) block->frames = static_cast<std::uint32_t>(std::min<std::uint64_t>(block->frames, frames - sent_frames));
    rate_hz = block->sample_rate_hz;
    if (!max_rate) {  // pace: a block leaves when its last frame is due
      const double due_s = double(sent_frames + block->frames) / block->sample_rate_hz;
      acq::sleep_until_steady_ns(t0 + static_cast<std::int64_t>(due_s * 1e9));
    }
    const std::uint64_t this_seq = seq++;
    sent_frames += block->frames;
    if (drop.count(this_seq) != 0) continue;
    buf.clear();
    if (nan.count(this_seq) != 0 && fmt_code == acq::wprb::SampleFormat::float32) block->data[0] = std::nanf("");
    if (fmt_code == acq::wprb::SampleFormat::float32) {
      acq::wprb::encode_block(*block, this_seq, buf);
    } else {
      acq::wprb::encode_block_int(*block, this_seq, fmt_code, vpc, apc, buf);
    }
    if (corrupt.count(this_seq) != 0) buf[0] = std::byte{'X'};
    if (sock) sock->send(zmq::const_buffer(buf.data(), buf.size()), zmq::send_flags::none);
    if (out) out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    ++sent_blocks;
  }
  if (out) out.flush();
  const double secs = double(acq::steady_now_ns() - t0) / 1e9;
  if (!quiet)
    std::fprintf(stderr, "%s\n",
                 fmt::format("wattpipe-daq: {} frames in {} blocks (sequence {}..{}) in {:.3f} s ({:.0f} frames/s, {} Hz)",
                             sent_frames, sent_blocks, start_sequence, seq == 0 ? 0 : seq - 1, secs,
                             secs > 0 ? double(sent_frames) / secs : 0.0, rate_hz)
                     .c_str());
  return out.good() || write.empty() ? 0 : 1;
}

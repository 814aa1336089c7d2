// SPDX-License-Identifier: Apache-2.0
// Sources: simulator frames/s on one core per profile; the ZeroMQ source
// reading WPRB blocks that wattpipe-daq sends from another process; and
// ZeroMQ PUSH->PULL of the same pre-encoded blocks into a bare socket and into
// ZmqSource (the difference is what the source adds: parse, check, copy).
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "block_sender.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/acquire/wprb_source.hpp"

extern char** environ;

namespace {
using namespace wattpipe::acquire;

void BM_Simulator_Generate(benchmark::State& state, const char* profile) {
  SimConfig cfg = *sim_profile(profile, 20000);
  cfg.start_utc_ns = 1;
  Simulator sim(cfg);
  auto b = std::make_unique<SampleBlock>();
  for (auto _ : state) {
    sim.generate(*b, kBlockFrames);
    benchmark::DoNotOptimize(b->data.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kBlockFrames));
}
BENCHMARK_CAPTURE(BM_Simulator_Generate, ac3, "ac3");
BENCHMARK_CAPTURE(BM_Simulator_Generate, ac1, "ac1");
BENCHMARK_CAPTURE(BM_Simulator_Generate, dc, "dc");
BENCHMARK_CAPTURE(BM_Simulator_Generate, dc_session, "dc-session");

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

void BM_ZmqSource_FromDaqProcess(benchmark::State& state) {
  constexpr std::uint64_t kFrames = 4'000'000;
  const std::string daq = std::string(WATTPIPE_BIN_DIR) + "/wattpipe-daq";
  wattpipe::bench::pin_to(1);
  for (auto _ : state) {
    const std::string ep = "tcp://127.0.0.1:" + std::to_string(free_port());
    std::vector<std::string> args{daq, "--bind", ep, "--push", "--max-rate", "--frames", std::to_string(kFrames),
                                  "--block-frames", "1024", "--profile", "ac3", "--quiet"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, daq.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
      state.SkipWithError("cannot start wattpipe-daq");
      break;
    }
    ZmqSource src(ep, ZmqMode::pull);
    auto b = std::make_unique<SampleBlock>();
    std::uint64_t frames = 0;
    while (frames < kFrames)
      if (src.read(*b, std::chrono::seconds(5)) == ReadStatus::ok) frames += b->frames;
    int status = 0;
    waitpid(pid, &status, 0);
    if (src.counters().frames_lost_gap.load() != 0) state.SkipWithError("frames lost");
  }
  wattpipe::bench::unpin();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kFrames));
}
BENCHMARK(BM_ZmqSource_FromDaqProcess)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(3);

// The same pre-encoded blocks from a sender thread over TCP loopback: bare
// PULL socket against ZmqSource in PULL mode. Items are frames.
void BM_ZmqPull(benchmark::State& state) {
  const bool source = state.range(0) != 0;
  const std::string ep = "tcp://127.0.0.1:" + std::to_string(free_port());
  wattpipe::bench::BlockSender sender(ep);
  std::thread tx([&] { sender.run(); });
  std::uint64_t frames = 0;
  if (source) {
    ZmqSource src(ep, ZmqMode::pull);
    auto b = std::make_unique<SampleBlock>();
    for (auto _ : state) {
      if (src.read(*b, std::chrono::seconds(5)) != ReadStatus::ok) {
        state.SkipWithError("no block");
        break;
      }
      frames += b->frames;
    }
  } else {
    zmq::context_t ctx{1};
    zmq::socket_t sock(ctx, zmq::socket_type::pull);
    sock.set(zmq::sockopt::rcvtimeo, 5000);
    sock.connect(ep);
    zmq::message_t msg;
    for (auto _ : state) {
      if (!sock.recv(msg)) {
        state.SkipWithError("no message");
        break;
      }
      benchmark::DoNotOptimize(msg.data());
      frames += wattpipe::bench::BlockSender::kFrames;
    }
  }
  sender.stop();
  tx.join();
  state.SetItemsProcessed(static_cast<std::int64_t>(frames));
}
BENCHMARK(BM_ZmqPull)->ArgName("zmq_source")->Arg(0)->Arg(1)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();

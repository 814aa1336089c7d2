// SPDX-License-Identifier: Apache-2.0
// Metrology throughput on one core: nanoseconds per frame for the whole
// per-window computation (calibration check, zero-crossing detection, DFT
// reference, accumulation, window close), against a plain sum of the same
// buffer in the same run (the memory-speed baseline). The *_analysis rows add
// the analysis stage (decimation, harmonics or ripple spectra, steps): their
// difference to the row without is the analysis cost per frame.
#include <benchmark/benchmark.h>

#include <cmath>
#include <complex>
#include <memory>
#include <vector>

#include "wattpipe/acquire/point_source.hpp"
#include "wattpipe/acquire/simulator.hpp"
#include "wattpipe/pipeline/efficiency.hpp"
#include "wattpipe/pipeline/lane_fft.hpp"
#include "wattpipe/pipeline/metrology.hpp"
#include "wattpipe/pipeline/processor.hpp"

namespace {
using namespace wattpipe;

// 25 blocks of 1024 frames at 20 kS/s = 64 whole cycles of 50 Hz, and 200
// blocks at 1.024 MS/s = 10 cycles (10.24 MS/s: one; 20.48 MS/s: half of
// one, and DC's ripple tones whole): looping over them is a continuous signal.
int blocks_for(double fs) { return fs > 100000 ? 200 : 25; }

std::vector<std::unique_ptr<acquire::SampleBlock>> make_blocks(const char* profile, double fs = 20000) {
  const int kBlocks = blocks_for(fs);
  acquire::SimConfig cfg = *acquire::sim_profile(profile, fs);
  cfg.start_utc_ns = 1;
  acquire::Simulator sim(cfg);
  std::vector<std::unique_ptr<acquire::SampleBlock>> blocks;
  for (int k = 0; k < kBlocks; ++k) {
    blocks.push_back(std::make_unique<acquire::SampleBlock>());
    sim.generate(*blocks.back(), acquire::kBlockFrames);
  }
  return blocks;
}

struct NullSink : pipeline::WindowSink {
  std::uint64_t windows = 0;
  void on_window(pipeline::WindowRecord& w) override {
    ++windows;
    benchmark::DoNotOptimize(w.p_total_w);
  }
};

void BM_Processor_Frame(benchmark::State& state, const char* profile, double fs, bool analysis) {
  auto blocks = make_blocks(profile, fs);
  const int kBlocks = blocks_for(fs);
  NullSink sink;
  pipeline::ProcessorConfig pc;
  pc.analysis.enabled = analysis;
  pipeline::Processor p(pc, sink, std::size_t(kBlocks));
  std::uint64_t next = 0;
  int k = 0, held = 0;
  for (auto _ : state) {
    acquire::SampleBlock& b = *blocks[k];
    b.first_frame = next;  // keep the stream continuous lap after lap
    b.t0_ns = static_cast<std::int64_t>(double(next) * 1e9 / fs);
    next += b.frames;
    p.push(&b);
    ++held;
    held -= static_cast<int>(p.advance());
    k = (k + 1) % int(blocks.size());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * acquire::kBlockFrames));
  state.counters["ns_per_frame"] = benchmark::Counter(double(state.iterations() * acquire::kBlockFrames),
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["windows"] = double(sink.windows);
  state.SetLabel(pipeline::kernel_isa());
}
BENCHMARK_CAPTURE(BM_Processor_Frame, ac3n_8ch, "ac3", 20000, false);
BENCHMARK_CAPTURE(BM_Processor_Frame, ac3n_8ch_analysis, "ac3", 20000, true);
BENCHMARK_CAPTURE(BM_Processor_Frame, ac1_2ch, "ac1", 20000, false);
BENCHMARK_CAPTURE(BM_Processor_Frame, dc_2ch, "dc", 20000, false);
BENCHMARK_CAPTURE(BM_Processor_Frame, dc_2ch_analysis, "dc", 20000, true);
BENCHMARK_CAPTURE(BM_Processor_Frame, ac3n_8ch_1MSps, "ac3", 1024000, false);
BENCHMARK_CAPTURE(BM_Processor_Frame, ac3n_8ch_1MSps_analysis, "ac3", 1024000, true);
BENCHMARK_CAPTURE(BM_Processor_Frame, dc_2ch_1MSps, "dc", 1024000, false);
BENCHMARK_CAPTURE(BM_Processor_Frame, dc_2ch_1MSps_analysis, "dc", 1024000, true);
// High rates: the decimator's cascade (three boxcars, then the FIR) sets the analysis cost.
BENCHMARK_CAPTURE(BM_Processor_Frame, ac3n_8ch_10MSps, "ac3", 10240000, false);
BENCHMARK_CAPTURE(BM_Processor_Frame, ac3n_8ch_10MSps_analysis, "ac3", 10240000, true);
BENCHMARK_CAPTURE(BM_Processor_Frame, dc_2ch_20MSps, "dc", 20480000, false);
BENCHMARK_CAPTURE(BM_Processor_Frame, dc_2ch_20MSps_analysis, "dc", 20480000, true);

// The car side of a charger (the charger profile's DC output, split off its
// AC3N_DC frames as the daemon splits them), without and with the per-window
// efficiency against the grid side: the difference is what the efficiency costs.
struct AgainstInputSink : NullSink {
  pipeline::AgainstInput* input = nullptr;
  void on_window(pipeline::WindowRecord& w) override {
    if (input != nullptr) input->on_window(w);
    NullSink::on_window(w);
  }
};

void BM_CarSide_Frame(benchmark::State& state, bool efficiency) {
  auto blocks = make_blocks("charger");
  for (auto& b : blocks) acquire::extract_point(*b, "car", *b);
  pipeline::AgainstInput input(10e3);
  AgainstInputSink sink;
  if (efficiency) sink.input = &input;
  pipeline::Processor p(pipeline::ProcessorConfig{}, sink, blocks.size());
  std::uint64_t next = 0;
  int k = 0;
  for (auto _ : state) {
    acquire::SampleBlock& b = *blocks[k];
    b.first_frame = next;
    b.t0_ns = static_cast<std::int64_t>(double(next) * 1e9 / 20000);
    next += b.frames;
    if (efficiency) input.feed(b);
    p.push(&b);
    (void)p.advance();
    k = (k + 1) % int(blocks.size());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * acquire::kBlockFrames));
  state.counters["ns_per_frame"] = benchmark::Counter(double(state.iterations() * acquire::kBlockFrames),
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["windows"] = double(sink.windows);
  state.counters["map_windows"] = efficiency && !input.map().bins().empty() ? double(input.map().bins()[0].windows) : 0;
}
void BM_ReferenceFeed_Frame(benchmark::State& state) {
  auto blocks = make_blocks("charger");
  for (auto& b : blocks) acquire::extract_point(*b, "car", *b);
  pipeline::ReferenceEnergy ref;
  std::uint64_t next = 0;
  int k = 0;
  for (auto _ : state) {
    acquire::SampleBlock& b = *blocks[k];
    b.first_frame = next;
    next += b.frames;
    ref.feed(b);
    k = (k + 1) % int(blocks.size());
  }
  benchmark::DoNotOptimize(ref.at(double(next - 1)));
  state.counters["ns_per_frame"] = benchmark::Counter(double(state.iterations() * acquire::kBlockFrames),
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ReferenceFeed_Frame);
BENCHMARK_CAPTURE(BM_CarSide_Frame, dc_car_side, false);
BENCHMARK_CAPTURE(BM_CarSide_Frame, dc_car_side_efficiency, true);

void BM_PlainSum_Frame(benchmark::State& state, const char* profile) {
  auto blocks = make_blocks(profile);
  int k = 0;
  for (auto _ : state) {
    const acquire::SampleBlock& b = *blocks[k];
    benchmark::DoNotOptimize(pipeline::plain_sum(b.data.data(), b.frames, b.channels));
    k = (k + 1) % int(blocks.size());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * acquire::kBlockFrames));
  state.counters["ns_per_frame"] = benchmark::Counter(double(state.iterations() * acquire::kBlockFrames),
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK_CAPTURE(BM_PlainSum_Frame, ac3n_8ch, "ac3");
BENCHMARK_CAPTURE(BM_PlainSum_Frame, dc_2ch, "dc");

// The accumulation kernel alone, for the record.
void BM_Accumulate_Frame(benchmark::State& state) {
  auto blocks = make_blocks("ac3");
  const double step = 2 * 3.141592653589793 * 50 / 20000;
  pipeline::Phasor z;
  const pipeline::Phasor r{std::cos(step), std::sin(step)};
  pipeline::Sums s;
  int k = 0;
  for (auto _ : state) {
    const acquire::SampleBlock& b = *blocks[k];
    pipeline::accumulate(b.layout, b.data.data(), b.frames, z, r, s);
    const double norm = 1.0 / std::hypot(z.c, z.s);
    z.c *= norm, z.s *= norm;
    k = (k + 1) % int(blocks.size());
  }
  benchmark::DoNotOptimize(s.w);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * acquire::kBlockFrames));
  state.counters["ns_per_frame"] = benchmark::Counter(double(state.iterations() * acquire::kBlockFrames),
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetLabel(pipeline::kernel_isa());
}
BENCHMARK(BM_Accumulate_Frame);

// The DFT's reference phasor table alone, per frame (a block at a time).
void BM_ReferenceTable_Frame(benchmark::State& state) {
  std::vector<float> rc(acquire::kBlockFrames + 16), rs(acquire::kBlockFrames + 16);
  double zc = 1, zs = 0;
  const double step = 2 * 3.141592653589793 * 50 / 20000;
  for (auto _ : state) {
    pipeline::reference_table(zc, zs, std::cos(step), std::sin(step), acquire::kBlockFrames, rc.data(), rs.data());
    const double norm = 1.0 / std::hypot(zc, zs);
    zc *= norm, zs *= norm;
    benchmark::DoNotOptimize(rc.data());
  }
  state.counters["ns_per_frame"] = benchmark::Counter(double(state.iterations() * acquire::kBlockFrames),
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.SetLabel(pipeline::kernel_isa());
}
BENCHMARK(BM_ReferenceTable_Frame);

}  // namespace

// The analysis transforms on their own: the AC one (four lanes of 1024
// points: three phases, U and I in one complex signal) and the DC one (2048
// points). The cost per window, in ns; per frame it is that over the window.
void BM_LaneFft(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const wattpipe::pipeline::analysis::LaneFft fft(n);
  std::vector<wattpipe::pipeline::analysis::v4f> re(n), im(n);
  for (std::size_t j = 0; j < n; ++j) re[j] = im[j] + float(j % 7);
  for (auto _ : state) {
    fft.forward(re.data(), im.data());
    benchmark::DoNotOptimize(re.data());
    for (std::size_t j = 0; j < n; ++j) re[j] *= 1e-3f, im[j] *= 1e-3f;  // keep the values finite
  }
  state.SetLabel(wattpipe::pipeline::kernel_isa());
}
BENCHMARK(BM_LaneFft)->Arg(1024);

void BM_QuadFft(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const wattpipe::pipeline::analysis::QuadFft fft(n);
  std::vector<wattpipe::pipeline::analysis::v4f> re(n / 4), im(n / 4), in(n / 4);
  std::vector<std::complex<float>> out(n);
  for (std::size_t j = 0; j < n / 4; ++j) in[j] = wattpipe::pipeline::analysis::v4f{1, 2, 3, 4} * float(j % 5);
  for (auto _ : state) {
    re = in, im = in;
    fft.forward(re.data(), im.data(), out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(wattpipe::pipeline::kernel_isa());
}
BENCHMARK(BM_QuadFft)->Arg(2048);

BENCHMARK_MAIN();

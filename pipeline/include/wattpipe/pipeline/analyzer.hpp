// SPDX-License-Identifier: Apache-2.0
// The analysis stage of the Processor (docs/analysis.md): per window, DC
// ripple (min, max, ripple RMS, bands, largest components) or AC harmonics
// (IEC 61000-4-7 subgroups to the 50th, THD, unbalance, crest factor), and
// current steps as events.
//
// The samples pass a decimation stage first (a polyphase FIR to about
// 25.6 kS/s for AC, to 1/0.36 of the highest ripple band edge for DC), so the
// per-window cost does not grow with the sample rate. AC windows are then
// resampled to 2^k points over their exact whole cycles (8-point Lagrange)
// and transformed; DC windows are transformed with a Hann window.
//
// Nothing here feeds the registers: a window's energy never depends on it.
//
// Threading: every method on one thread (the processing thread). The demand
// time is read with acquire from whatever thread stores it.
#pragma once

#include <array>
#include <atomic>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "wattpipe/acquire/sample_block.hpp"
#include "wattpipe/pipeline/step_detector.hpp"
#include "wattpipe/pipeline/window.hpp"

namespace wattpipe::pipeline {
namespace analysis {
class LaneFft;
class QuadFft;
}  // namespace analysis

struct AnalysisConfig {
  // Off unless asked for (--analysis on): it runs on the processing thread
  // and costs what bm_metrology's *_analysis rows show.
  bool enabled = false;
  // Ripple bands, Hz: [lo, hi). A band reaching above half the sample rate is
  // cut there; one wholly above it is left out.
  std::vector<std::pair<double, double>> ripple_bands_hz{{0, 10}, {10, 5000}, {5000, 150000}};
  double step_threshold_a = 5;
  double step_band_percent = 2;
  double step_hold_ms = 20;   // the new level must hold this long
  double step_max_s = 10;     // a move that has not settled by then is a drift, not a step
};

// When the requested current (a test bench's demand) last changed, stored by
// the MQTT thread; 0: never.
struct DemandInput {
  std::atomic<std::int64_t> utc_ns{0};
};

class Analyzer {
 public:
  Analyzer(const AnalysisConfig& cfg, unsigned window_cycles, double nominal_hz, double window_ms);
  ~Analyzer();
  Analyzer(const Analyzer&) = delete;
  Analyzer& operator=(const Analyzer&) = delete;

  [[nodiscard]] bool enabled() const noexcept { return cfg_.enabled; }
  // A new stream (start, gap, new layout or rate). Allocates only when a
  // buffer must grow.
  void begin(acquire::Layout l, double fs_hz, std::uint64_t first_frame);
  // Every calibrated block, in stream order, ahead of accumulation.
  void feed(const acquire::SampleBlock& b) noexcept;
  // Frames as they are accumulated into the open window (min and max).
  void accumulate(const float* frames, std::size_t n, unsigned channels) noexcept;
  // Fills r.an for the window [start_frame, end_frame) just closed, from the
  // record's basic values. `whole_cycles`: the window spans window_cycles cycles.
  void close(acquire::Layout l, double fs_hz, double start_frame, double end_frame, bool whole_cycles,
             WindowRecord& r) noexcept;
  // Frames the accumulation must stay behind the fed data so that close()
  // finds every sample it needs.
  [[nodiscard]] double lookahead_frames() const noexcept { return lookahead_; }
  // Demand changes for step delays (optional).
  void set_demand(const DemandInput* d) noexcept { demand_ = d; }
  // Steps found while the next window's list was full.
  [[nodiscard]] std::uint64_t steps_dropped() const noexcept { return steps_dropped_; }
  // Rate and decimation factor of the analysis stream.
  [[nodiscard]] double analysis_rate_hz() const noexcept { return fs_a_; }
  [[nodiscard]] unsigned decimation() const noexcept { return d_; }

 private:
  // n analysis frames: into the ring and the step detectors' level series.
  void store(const float* frames, std::size_t n) noexcept;
  void dc_levels(const float* frames, std::size_t n) noexcept;
  void ac_levels(const float* frames, std::size_t n) noexcept;
  void step_found(const StepResult& s, std::uint8_t phase) noexcept;
  [[nodiscard]] std::int64_t utc_at_s(double t_s) const noexcept;
  void harmonics(double start, double end, WindowRecord& r) noexcept;
  void ripple_spectrum(double start, double end, WindowRecord& r) noexcept;
  [[nodiscard]] bool covered(double m_lo, double m_hi) const noexcept;

  AnalysisConfig cfg_;
  unsigned cycles_;
  double nominal_hz_, window_ms_;

  // Stream (detection side)
  acquire::Layout layout_ = acquire::Layout::ac3n;
  acquire::LayoutInfo li_{};
  double fs_ = 0, fs_a_ = 0;
  unsigned d_ = 1;
  bool spectra_ = true;           // windows short enough for a spectrum
  std::uint64_t origin_ = 0;
  double fed_end_ = 0;            // stream position after the last fed frame
  double lookahead_ = 8;
  std::vector<float> fir_;
  std::vector<float __attribute__((vector_size(16)))> fir_pairs_;  // {h0, h0, h1, h1}, ...: two-channel frames in pairs
  // At high rates a first stage (three boxcars of d1_ frames, decimating by
  // d1_) feeds the FIR, which then decimates by d_ / d1_.
  unsigned d1_ = 1;
  std::vector<float> fir1_;
  std::vector<float> hist1_;      // first stage's input history, interleaved
  std::size_t hist1_frames_ = 0, next1_ = 0;
  std::vector<float> hist_;       // decimator input history, interleaved
  std::vector<float> dec_out_;    // one block's decimator output
  std::size_t hist_frames_ = 0;
  std::size_t next_in_ = 0;       // first input frame (in hist_) of the next output
  std::vector<float> ring_;       // analysis samples, interleaved
  std::uint64_t cap_ = 0, dec_n_ = 0;
  double dec_pos0_ = 0;           // stream position of analysis sample 0
  double t0_s_ = 0, dt_a_ = 0;    // its time in seconds, and the analysis period
  std::int64_t utc_ref_ns_ = 0;
  std::uint64_t frame_ref_ = 0;

  // Window min/max (accumulation side)
  std::array<float, acquire::kMaxChannels> mn_{}, mx_{};

  // Spectra
  std::unique_ptr<analysis::LaneFft> fft_ac_;
  std::unique_ptr<analysis::QuadFft> fft_dc_;
  std::size_t n_ac_ = 0, n_dc_ = 0;
  using v4f = float __attribute__((vector_size(16)));  // = analysis::v4f
  std::vector<v4f> lre_, lim_;            // transform input and output, lanes
  std::vector<std::complex<float>> zf_;   // a DC window's spectrum
  std::vector<std::complex<double>> bins_u_[3], bins_i_[3];
  std::vector<double> pow_u_, pow_i_;  // one-sided power spectra
  std::vector<float> dc_win_;          // a DC window's U, I frames, contiguous
  std::vector<float> hann_f_;           // Hann window of hann_m_ samples
  std::size_t hann_m_ = 0;
  double hann_sum_ = 0, hann_sq_ = 0;

  // Steps
  StepConfig step_cfg_;
  StepDetector dc_step_;
  std::array<StepDetector, 3> ac_step_;
  unsigned level_group_ = 1;      // DC: analysis samples averaged per level sample
  unsigned level_count_ = 0;
  double level_sum_ = 0;
  double half_len_ = 0;           // AC: analysis samples per half cycle
  double next_half_ = 0;          // analysis sample index where the next half cycle ends
  std::array<double, 3> sq_cur_{}, sq_prev_{};
  std::uint64_t n_cur_ = 0, n_prev_ = 0;
  const DemandInput* demand_ = nullptr;
  std::array<StepEvent, kMaxStepsPerWindow> pending_{};
  std::uint8_t n_pending_ = 0;
  std::uint64_t steps_dropped_ = 0;
};

}  // namespace wattpipe::pipeline

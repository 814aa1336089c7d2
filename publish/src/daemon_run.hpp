// SPDX-License-Identifier: Apache-2.0
// The parts of one daemon run, in the order the data flows through them
// (private to daemon.cpp and daemon_stats.cpp). Members are declared in
// that order, so they are built in it and torn down in reverse.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "wattpipe/acquire/acquisition.hpp"
#include "wattpipe/acquire/point_source.hpp"
#include "wattpipe/acquire/source.hpp"
#include "wattpipe/legal/legal.hpp"
#include "wattpipe/pipeline/processing.hpp"
#include "wattpipe/publish/daemon.hpp"
#include "wattpipe/publish/meter_transactions.hpp"
#include "wattpipe/publish/mqtt_transport.hpp"
#include "wattpipe/publish/publisher.hpp"
#include "wattpipe/publish/store.hpp"
#include "wattpipe/publish/web_server.hpp"
#include "wattpipe/publish/window_logger.hpp"

namespace wattpipe::publish {

struct Daemon::Run {
  Config cfg;  // this point's (point_config): its module, state, logs
  // 1. source -> acquisition thread -> block ring
  std::unique_ptr<acquire::Source> source;
  std::unique_ptr<acquire::BlockRing> ring;
  acquire::Waker proc_waker, space_waker;
  std::unique_ptr<acquire::Acquisition> acq;
  // 2. the legal part: registers restored before anything is processed
  std::unique_ptr<legal::Meter> meter;
  // 3. processing thread, and the hand-offs it fills (one per sink)
  pipeline::TripleBuffer<pipeline::WindowRecord> latest;  // MQTT
  pipeline::Waker mqtt_waker;
  acquire::SpscRing<pipeline::StepEvent> step_events{256};
  pipeline::DemandInput demand;
  std::unique_ptr<acquire::SpscRing<pipeline::WindowRecord>> window_queue;  // log thread
  std::unique_ptr<acquire::SpscRing<acquire::SampleBlock>> raw_queue;  // filled by the stream's tap instead, when set
  const acquire::PointFanout* tap = nullptr;
  std::unique_ptr<acquire::SpscRing<pipeline::WindowRecord>> store_queue;  // database store
  pipeline::TripleBuffer<pipeline::WindowRecord> view_latest;  // web thread
  std::unique_ptr<pipeline::TripleBuffer<pipeline::ScopeSnapshot>> scope;
  acquire::SpscRing<pipeline::StepEvent> view_steps{64};
  pipeline::TripleBuffer<pipeline::EfficiencyMapView> view_map;
  std::unique_ptr<pipeline::Processing> proc;
  // 4. the publishers
  std::unique_ptr<WindowLogger> logger;
  std::unique_ptr<Store> store;
  std::unique_ptr<MqttTransport> mqtt;
  std::unique_ptr<MeterTransactions> transactions;
  std::unique_ptr<Publisher> publisher;
  std::unique_ptr<WebServer> web;
  // the run's clock
  std::int64_t t0_ns = 0;
  double elapsed_s = 0;
};

// One stream, split into its measuring points; a run per point.
struct Daemon::Runs {
  std::unique_ptr<acquire::PointFanout> fanout;
  std::vector<std::unique_ptr<Run>> points;  // stream order: the first reads the stream
  std::size_t billing = 0;                   // the car side (or the only point): the page, the top-level counters
  [[nodiscard]] Run& bill() const { return *points[billing]; }
};

// The health panel of the live page and the final counters (daemon_stats.cpp).
std::string health_json(const Daemon::Run& r);
// The billing point's counters, and with several points each one's under "points".
std::string stats_json(const Daemon::Runs& runs, const std::string& why);

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
// What a run reports: the live page's health panel while it runs, and the
// final counters (--stats-json) at its end. Each counter has one name.
#include <fmt/format.h>

#include "daemon_run.hpp"
#include "wattpipe/legal/json_writer.hpp"
#include "wattpipe/publish/analysis_json.hpp"

namespace wattpipe::publish {

std::string health_json(const Daemon::Run& r) {
  const auto& ac = r.acq->counters();
  const auto& pc = r.proc->counters();
  const auto& mc = r.publisher->counters();
  const acquire::LossCounts losses = r.acq->losses();
  const legal::SoftwareId& id = legal::software_id();
  return legal::write_json(2048, [&](legal::JsonWriter& w) {
    w.begin_object();
    w.field("source_health", acquire::to_string(r.acq->health()));
    w.field_uint("frames_acquired", ac.frames_acquired.load(std::memory_order_relaxed));
    w.field_uint("frames_processed", pc.frames_processed.load(std::memory_order_relaxed));
    w.key("frames_lost");
    w.begin_object();
    for (std::size_t k = 0; k < acquire::LossCounts::kCount; ++k) w.field_uint(acquire::LossCounts::kNames[k], losses.v[k]);
    w.end_object();
    w.field_uint("ring_fill_blocks", r.ring->size_approx());
    w.field_uint("ring_high_water_blocks", ac.ring_high_water.load(std::memory_order_relaxed));
    w.field_uint("ring_capacity_blocks", r.ring->capacity());
    w.field_uint("windows_closed", pc.windows_closed.load(std::memory_order_relaxed));
    w.field_uint("windows_with_lost_frames", pc.windows_with_lost_frames.load(std::memory_order_relaxed));
    w.field_fixed("publish_latency_ms", double(mc.last_latency_ns.load(std::memory_order_relaxed)) / 1e6, 3);
    w.field_bool("broker_connected", mc.connected.load(std::memory_order_relaxed));
    w.field_uint("mqtt_connection_losses", mc.connection_losses.load(std::memory_order_relaxed));
    w.field_uint("values_published", mc.values_published.load(std::memory_order_relaxed));
    w.field_bool("everest_alive", mc.everest_alive.load(std::memory_order_relaxed));
    w.field_uint("everest_heartbeats", mc.heartbeats.load(std::memory_order_relaxed));
    w.field_uint("everest_last_heartbeat_id", mc.last_heartbeat_id.load(std::memory_order_relaxed));
    w.field_uint("steps", pc.steps.load(std::memory_order_relaxed));
    if (const auto* ok = r.meter->state_healthy()) w.field_bool("registers_saved", ok->load(std::memory_order_relaxed));
    if (r.logger) {  // a full disk shows here while it lasts
      const auto& lg = r.logger->counters();
      w.field_bool("logs_writing", lg.writing.load(std::memory_order_relaxed));
      w.field_uint("log_windows_not_written", lg.windows_not_written.load(std::memory_order_relaxed));
      w.field_uint("log_raw_blocks_not_written", lg.raw_blocks_not_written.load(std::memory_order_relaxed));
      w.field_uint("log_write_errors", lg.write_errors.load(std::memory_order_relaxed));
    }
    if (r.store) {  // the database store (docs/store.md)
      const auto& st = r.store->counters();
      w.field("store_database", r.store->target());
      w.field_bool("store_connected", st.connected.load(std::memory_order_relaxed));
      w.field_fixed("store_lag_s", double(st.lag_ns.load(std::memory_order_relaxed)) / 1e9, 3);
      w.field_uint("store_windows_written", st.windows_written.load(std::memory_order_relaxed));
      w.field_fixed("store_spool_mb", double(st.spool_bytes.load(std::memory_order_relaxed)) / 1e6, 3);
      w.field_uint("store_rows_dropped", st.spectra_dropped.load(std::memory_order_relaxed) +
                                              st.windows_dropped.load(std::memory_order_relaxed) +
                                              st.steps_dropped.load(std::memory_order_relaxed));
      w.field_uint("store_rows_lost", st.rows_lost.load(std::memory_order_relaxed) +
                                           st.windows_missed.load(std::memory_order_relaxed));
      w.field("store_last_error", r.store->last_error());
    }
    w.key("legal");  // which legally relevant software runs (docs/legal.md)
    w.begin_object();
    w.field("name", id.name);
    w.field("version", id.version);
    w.field("sha256", id.sha256);
    w.end_object();
    w.end_object();
  });
}

namespace {
// Key/value pairs as one flat JSON object, in order, through the JSON writer.
class StatsWriter {
 public:
  void add(std::string_view k, double v) { fields_.emplace_back(std::string(k), fmt::format("{}", std::isfinite(v) ? v : 0.0)); }
  void add(std::string_view k, std::uint64_t v) { fields_.emplace_back(std::string(k), std::to_string(v)); }
  void add(std::string_view k, bool v) { fields_.emplace_back(std::string(k), v ? "true" : "false"); }
  // A value already in JSON.
  void add_json(std::string_view k, std::string v) { fields_.emplace_back(std::string(k), std::move(v)); }
  void add(std::string_view k, const std::string& v) {
    fields_.emplace_back(std::string(k), legal::write_json(v.size() * 6 + 8, [&](legal::JsonWriter& w) { w.string(v); }));
  }
  [[nodiscard]] std::string json() const {
    std::size_t n = 64;
    for (const auto& [k, v] : fields_) n += k.size() + v.size() + 8;
    return legal::write_json(n, [&](legal::JsonWriter& w) {
      w.begin_object();
      for (const auto& [k, v] : fields_) w.key(k), w.raw(v);
      w.end_object();
    });
  }
  [[nodiscard]] std::string str() const { return json() + "\n"; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};
// One point's counters.
void point_stats(StatsWriter& s, const Daemon::Run& r) {
  const auto& ac = r.acq->counters();
  const auto& sc = r.source->counters();
  const auto& pcn = r.proc->counters();
  const auto& mc = r.publisher->counters();
  const auto& reg = r.proc->final_registers();
  const auto& restored = r.meter->restored_registers();
  const LatencySummary lat = r.publisher->latency();
  if (!r.cfg.point.empty()) s.add("point", r.cfg.point);
  s.add("module_id", r.cfg.module_id);
  s.add("frames_acquired", ac.frames_acquired.load());
  s.add("frames_processed", pcn.frames_processed.load());
  s.add("blocks_acquired", ac.blocks_acquired.load());
  s.add("blocks_dropped", ac.blocks_dropped.load());
  // Losses and input faults under their shared names (also the live log lines and JSONL).
  const acquire::LossCounts losses = r.acq->losses();
  for (std::size_t k = 0; k < acquire::LossCounts::kCount; ++k) s.add(acquire::LossCounts::kNames[k], losses.v[k]);
  s.add("frames_rejected", ac.frames_rejected.load());
  s.add("stream_restarts", sc.stream_restarts.load());
  s.add("source_health", std::string(acquire::to_string(r.acq->health())));
  s.add("register_energy_refused", r.proc->register_faults().energy_refused);
  s.add("register_saturated", r.proc->register_faults().saturated);
  s.add("values_withheld_source", mc.values_withheld_source.load());
  s.add("replies_refused_topic", mc.replies_refused_topic.load());
  s.add("ring_high_water_blocks", ac.ring_high_water.load());
  s.add("full_ring_sleeps", ac.full_ring_sleeps.load());
  s.add("ring_capacity_blocks", std::uint64_t(r.ring->capacity()));
  s.add("windows_closed", pcn.windows_closed.load());
  s.add("windows_with_lost_frames", pcn.windows_with_lost_frames.load());
  s.add("messages_published", mc.messages_published.load());
  s.add("values_published", mc.values_published.load());
  s.add("values_held_for_state", mc.values_held_for_state.load());
  s.add("publish_failures", mc.publish_failures.load());
  s.add("mqtt_connects", mc.connects.load());
  s.add("mqtt_wakeups", mc.mqtt_wakeups.load());
  s.add("mqtt_connection_losses", mc.connection_losses.load());
  s.add("communication_checks", mc.communication_checks.load());
  s.add("public_keys_published", mc.public_keys.load());
  s.add("everest_heartbeats", mc.heartbeats.load());
  s.add("everest_heartbeats_malformed", mc.heartbeats_malformed.load());
  s.add("everest_last_heartbeat_id", mc.last_heartbeat_id.load());
  s.add("everest_alive", mc.everest_alive.load());
  s.add("everest_lost", mc.everest_lost.load());
  s.add("requests", mc.requests.load());
  s.add("requests_malformed", mc.requests_malformed.load());
  s.add("replies", mc.replies.load());
  s.add("readings", pcn.readings.load());
  s.add("windows_log_overflow", pcn.windows_log_overflow.load());
  s.add("steps", pcn.steps.load());
  s.add("events_overflow", pcn.events_overflow.load());
  s.add("analysis_published", mc.analysis_published.load());
  s.add("events_published", mc.events_published.load());
  s.add("demands", mc.demands.load());
  s.add("demands_malformed", mc.demands_malformed.load());
  const acquire::PointFanout::Lost tapped = r.tap != nullptr ? r.tap->tap_lost() : acquire::PointFanout::Lost{};
  s.add("raw_log_overflow_blocks", pcn.raw_log_overflow.load() + tapped.blocks);
  s.add("raw_log_overflow_frames", pcn.raw_log_overflow_frames.load() + tapped.frames);
  if (r.logger) {
    const auto& lg = r.logger->counters();
    s.add("log_windows_written", lg.windows_written.load());
    s.add("log_windows_lost", lg.windows_lost.load());
    s.add("log_windows_not_written", lg.windows_not_written.load());
    s.add("log_raw_blocks_not_written", lg.raw_blocks_not_written.load());
    s.add("log_raw_frames_not_written", lg.raw_frames_not_written.load());
    s.add("log_resumes", lg.resumes.load());
    s.add("log_files_removed", lg.files_removed.load());
    s.add("log_writing", lg.writing.load());
    s.add("log_raw_blocks_written", lg.raw_blocks_written.load());
    s.add("log_raw_frames_written", lg.raw_frames_written.load());
    s.add("log_zmq_messages", lg.zmq_messages.load());
    s.add("log_write_errors", lg.write_errors.load());
    s.add("log_rotations", lg.rotations.load());
    s.add("log_reopens", lg.reopens.load());
  }
  if (r.store) {
    const auto& st = r.store->counters();
    s.add("store_windows_written", st.windows_written.load());
    s.add("store_steps_written", st.steps_written.load());
    s.add("store_spectra_written", st.spectra_written.load());
    s.add("store_transactions_written", st.transactions_written.load());
    s.add("store_batches_written", st.batches_written.load());
    s.add("store_batches_deduplicated", st.batches_deduplicated.load());
    s.add("store_batches_spooled", st.batches_spooled.load());
    s.add("store_batches_rejected", st.batches_rejected.load());
    s.add("store_spool_bytes", st.spool_bytes.load());
    s.add("store_spool_batches", st.spool_batches.load());
    s.add("store_spectra_dropped", st.spectra_dropped.load());
    s.add("store_windows_dropped", st.windows_dropped.load());
    s.add("store_steps_dropped", st.steps_dropped.load());
    s.add("store_rows_lost", st.rows_lost.load());
    s.add("store_windows_missed", st.windows_missed.load());
    s.add("store_windows_queue_overflow", pcn.windows_store_overflow.load());
    s.add("store_connects", st.connects.load());
    s.add("store_connect_failures", st.connect_failures.load());
    s.add("store_errors", st.errors.load());
    s.add("store_lag_max_s", double(st.lag_max_ns.load()) / 1e9);
  }
  if (r.web) {
    const auto& wc = r.web->counters();
    s.add("web_updates", wc.updates.load());
    s.add("web_messages_sent", wc.messages_sent.load());
    s.add("web_updates_dropped", wc.updates_dropped.load());
    s.add("web_clients_refused", wc.clients_refused.load());
    s.add("web_requests", wc.requests.load());
  }
  s.add("publish_latency_count", lat.count);
  s.add("publish_latency_p50_us", lat.p50_us);
  s.add("publish_latency_p99_us", lat.p99_us);
  s.add("publish_latency_p999_us", lat.p999_us);
  s.add("publish_latency_max_us", lat.max_us);
  s.add("elapsed_s", r.elapsed_s);
  s.add("state_records", r.meter->counters().records.load());
  s.add("state_write_errors", r.meter->counters().write_errors.load());
  s.add("state_corrupt_records_skipped", r.meter->corrupt_records_skipped());
  s.add("transactions_open", std::uint64_t(r.meter->open_transactions().size()));
  s.add("ocmf_public_key", r.meter->public_key_hex());
  s.add("energy_Wh_import_total_at_start", restored.import_total.wh());
  s.add("energy_Wh_export_total_at_start", restored.export_total.wh());
  s.add("energy_Wh_import_total", reg.import_total.wh());
  s.add("energy_Wh_export_total", reg.export_total.wh());
  for (int k = 0; k < 3; ++k) {
    s.add(fmt::format("energy_Wh_import_L{}", k + 1), reg.import_phase[k].wh());
    s.add(fmt::format("energy_Wh_export_L{}", k + 1), reg.export_phase[k].wh());
  }
  // Two points: efficiency by output power over the run, [{p_lo_W, p_hi_W, efficiency, E_in_Wh, E_out_Wh, windows}].
  const auto bins = r.proc->efficiency_map().bins();
  if (!bins.empty())
    s.add_json("efficiency_map", legal::write_json(128 * bins.size() + 8,
                                                   [&](legal::JsonWriter& w) { write_efficiency_bins(bins, w); }));
}

}  // namespace

std::string stats_json(const Daemon::Runs& runs, const std::string& why) {
  StatsWriter s;
  s.add("software_id", legal::software_id_text());
  point_stats(s, runs.bill());
  if (runs.points.size() > 1) {  // every point's own, by name: {"grid": {...}, "car": {...}}
    std::string pts = "{";
    for (std::size_t k = 0; k < runs.points.size(); ++k) {
      StatsWriter p;
      point_stats(p, *runs.points[k]);
      p.add("point_queue_blocks_dropped", runs.fanout->blocks_dropped(k));
      pts += fmt::format("{}\"{}\":{}", k ? "," : "", runs.points[k]->cfg.point, p.json());
    }
    s.add_json("points", pts + "}");
  }
  s.add("source_end_reason", runs.bill().source->end_reason());
  s.add("stop_reason", why);
  return s.str();
}

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
// The MQTT thread: EVerest's powermeter API over libmosquitto.
//  - m2e/powermeter_values: the newest window, throttled and conflated;
//  - m2e/public_key_ocmf at connect and periodically;
//  - m2e/communication_check: true every interval while the source is live,
//    nothing while it is stalled or gone, nor after a stop (EVerest then
//    raises its CommunicationFault until the checks come back); never false,
//    which would end EVerest's check for good;
//  - values only while the source is live: never a stale value;
//  - e2m/heartbeat: liveness of EVerest (logged once when lost, once back);
//  - e2m/start_transaction, e2m/stop_transaction: parsed (simdjson), a
//    reading taken by the processing thread at an exact sample position,
//    handed to the TransactionHandler, the bare reply sent to replyTo, which
//    must lie under the meter's own .../m2e/reply/ (no other topic can be
//    written through a request).
// Reconnects with backoff; measuring never depends on the broker.
//
// Threading: construct, start(), stop(), join() from the owning thread; the
// thread it starts owns the transport. counters() from any thread.
//
// Memory ordering: counters are relaxed statistics. The persisted-windows
// count is loaded with acquire (pairs with the state writer's release), and
// with seq_cst right after Waker::arm() so a wake-up cannot be missed.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "wattpipe/pipeline/processing.hpp"
#include "wattpipe/publish/everest_api.hpp"
#include "wattpipe/publish/latency.hpp"
#include "wattpipe/publish/mqtt_transport.hpp"

namespace wattpipe::publish {

// Turns readings into transaction replies (OCMF signing lives behind this).
// Called on the MQTT thread only.
class TransactionHandler {
 public:
  virtual ~TransactionHandler() = default;
  virtual StartTransactionReply start(const StartTransactionRequest& req, const legal::Reading& reading) = 0;
  virtual StopTransactionReply stop(const StopTransactionRequest& req, const legal::Reading& reading) = 0;
  // Two points: the charger input's energy at the reading that follows (Wh, NaN: none).
  virtual void input_energy(double /*wh*/) {}
  // The public key (DER SubjectPublicKeyInfo, hex) for m2e/public_key_ocmf; "" when none.
  [[nodiscard]] virtual std::string public_key_hex() const = 0;
};

struct PublisherConfig {
  Topics topics;
  std::string broker_label;  // host:port, for log lines
  std::string meter_id;
  int publish_interval_ms = 1000;
  int communication_check_interval_ms = 1000;  // 0: never send
  int heartbeat_timeout_ms = 2000;
  int public_key_interval_ms = 10000;
  int values_qos = 0;
  bool stamp_messages = false;  // add wattpipe_closed_ns (benchmarks)
  int reconnect_min_ms = 100, reconnect_max_ms = 5000;
};

struct PublisherCounters {
  std::atomic<std::uint64_t> messages_published{0};  // every PUBLISH handed to the broker
  std::atomic<std::uint64_t> values_published{0};
  std::atomic<std::uint64_t> publish_failures{0};
  std::atomic<std::uint64_t> connects{0};
  std::atomic<std::uint64_t> connection_losses{0};
  std::atomic<std::uint64_t> heartbeats{0};
  std::atomic<std::uint64_t> heartbeats_malformed{0};
  std::atomic<std::uint64_t> everest_lost{0};          // times EVerest's heartbeat stopped
  std::atomic<bool> everest_alive{false};
  std::atomic<std::uint64_t> last_heartbeat_id{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> requests_malformed{0};
  std::atomic<std::uint64_t> replies{0};
  std::atomic<std::uint64_t> communication_checks{0};
  std::atomic<std::uint64_t> public_keys{0};
  std::atomic<std::uint64_t> values_held_for_state{0};  // windows that waited for their registers to be saved
  std::atomic<std::uint64_t> values_withheld_source{0};  // windows not published: the source was not live
  std::atomic<std::uint64_t> replies_refused_topic{0};   // replyTo outside .../m2e/reply/: not answered
  std::atomic<std::uint64_t> analysis_published{0};      // wattpipe/{module}/analysis messages
  std::atomic<std::uint64_t> events_published{0};        // wattpipe/{module}/events messages
  std::atomic<std::uint64_t> demands{0};                 // demand messages taken
  std::atomic<std::uint64_t> demands_malformed{0};       // demand messages refused (not a finite number)
  std::atomic<bool> connected{false};                    // to the broker, now
  std::atomic<std::uint64_t> connect_attempts{0};
  std::atomic<std::uint64_t> mqtt_wakeups{0};            // MQTT thread iterations (it wakes at least once a second)
  std::atomic<std::int64_t> last_latency_ns{0};          // window close -> values handed to the broker, last one
};

struct LatencySummary {
  std::uint64_t count = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
};

class Publisher : private MqttTransport::Handler {
 public:
  // `persisted_windows` (optional): windows whose registers are on disk; a
  // window is published only once covered, so EVerest never sees a register
  // that a crash could take back.
  // `persisted_waker` (with persisted_windows): notified by the state writer
  // after each save; armed only while a window waits for its registers, so
  // saves that nothing waits for wake nobody.
  Publisher(PublisherConfig cfg, MqttTransport& mqtt, pipeline::TripleBuffer<pipeline::WindowRecord>& latest,
            pipeline::Waker& waker, pipeline::Processing* processing, TransactionHandler* tx,
            const std::atomic<std::uint64_t>* persisted_windows = nullptr, pipeline::Waker* persisted_waker = nullptr);
  ~Publisher() override;

  // Owner thread, before start(): whose health gates values and
  // communication_check (none: always live).
  void set_source(const acquire::Acquisition* acq) noexcept { acq_ = acq; }
  // Owner thread, before start(): whether the registers can be saved (the
  // legal part's state); while false no communication_check goes out, so
  // EVerest raises CommunicationFault (none: always).
  void set_state_health(const std::atomic<bool>* ok) noexcept { state_ok_ = ok; }
  // Owner thread, before start(): step events to send (the processing
  // thread fills the ring), and where a demand message is stored.
  void set_analysis(acquire::SpscRing<pipeline::StepEvent>* events, pipeline::DemandInput* demand) noexcept {
    events_ = events;
    demand_ = demand;
  }
  // Owner thread.
  void start();
  // Owner thread: publish the last values, flush, disconnect, and end the
  // thread.
  void stop();
  void join();

  [[nodiscard]] const PublisherCounters& counters() const noexcept { return counters_; }
  // Any thread: windows ending before this UTC time will be conflated by the
  // throttle; the processing thread need not wake the MQTT thread for them.
  [[nodiscard]] const std::atomic<std::int64_t>& window_wake_from() const noexcept { return wake_from_; }
  // Owner thread, after join().
  [[nodiscard]] LatencySummary latency() const;

 private:
  void run();
  void on_connected() override;
  void on_disconnected(int reason) override;
  void on_message(std::string_view topic, std::string_view payload) override;
  void try_connect(std::int64_t now);
  void publish_values(std::int64_t now, bool force = false);
  void handle_request(Request::Kind kind, std::string_view payload);
  void serve_replies();
  void send_events();
  void on_demand(std::string_view payload);
  void timers(std::int64_t now);
  bool send(const std::string& topic, std::string_view payload, int qos);
  bool reply(const std::optional<std::string>& topic, const std::string& body);
  [[nodiscard]] bool source_live() const noexcept;

  PublisherConfig cfg_;
  MqttTransport& mqtt_;
  pipeline::TripleBuffer<pipeline::WindowRecord>& latest_;
  pipeline::Waker& waker_;
  pipeline::Processing* processing_;
  const acquire::Acquisition* acq_ = nullptr;
  const std::atomic<bool>* state_ok_ = nullptr;
  TransactionHandler* tx_;
  const std::atomic<std::uint64_t>* persisted_;
  pipeline::Waker* persisted_waker_;
  PublisherCounters counters_;
  std::atomic<bool> stop_{false};
  std::thread thread_;

  // MQTT thread state
  RequestParser parser_;
  pipeline::WindowRecord window_;
  pipeline::WindowRecord shown_;      // last representative window: values for partial ones
  bool window_pending_ = false;       // read from latest_, to be published
  bool window_published_ = true;      // window_ went out
  std::uint64_t held_seq_ = ~std::uint64_t{0};  // last window counted as held
  double tokens_ = 2.0;               // wall-time token bucket of the throttle
  std::int64_t last_refill_ns_ = 0;
  double last_pub_end_ns_ = -1e300;   // stream time (window end) of the last publish
  std::atomic<std::int64_t> wake_from_{INT64_MIN};
  // Throttled by wall time (a replay faster than real time): the windows
  // do not wake this thread until a token is back at this time (0: not so).
  std::int64_t token_due_ns_ = 0;
  std::int64_t next_connect_ns_ = 0;
  int backoff_ms_ = 0;
  bool connecting_ = false;
  std::int64_t connect_deadline_ns_ = 0;
  std::int64_t next_check_ns_ = 0, next_key_ns_ = 0, next_misc_ns_ = 0;
  std::int64_t last_heartbeat_ns_ = 0, started_ns_ = 0;
  bool warned_no_heartbeat_ = false;
  bool was_state_ok_ = true;
  bool was_live_ = false;             // source health at the last timers() pass
  struct Pending {
    std::uint64_t id;
    Request request;
  };
  std::deque<Pending> pending_;
  std::uint64_t next_request_id_ = 1;
  LatencyHistogram latency_;
  std::array<char, 4096> buf_{};
  std::array<char, 32768> analysis_buf_{};  // harmonics: 600 values
  acquire::SpscRing<pipeline::StepEvent>* events_ = nullptr;
  pipeline::DemandInput* demand_ = nullptr;
  std::optional<double> last_demand_a_;  // MQTT thread
};

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/publisher.hpp"

#include "wattpipe/publish/analysis_json.hpp"

#include <poll.h>
#include <pthread.h>

#include <spdlog/spdlog.h>

#include "wattpipe/acquire/clock.hpp"
#include "wattpipe/acquire/log_limit.hpp"

namespace wattpipe::publish {
namespace {
using acquire::steady_now_ns;
constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kConnectTimeoutNs = 5000 * kMs;

acquire::LogLimit& malformed_log() {
  thread_local acquire::LogLimit limit;
  return limit;
}

// Counts a refused message and logs it, rate-limited; the format's last
// argument is the number of lines suppressed.
template <typename... A>
void refused(std::atomic<std::uint64_t>& counter, fmt::format_string<A..., std::uint64_t> f, const A&... a) {
  counter.fetch_add(1, std::memory_order_relaxed);
  if (std::uint64_t sup = 0; malformed_log().allow(sup)) spdlog::warn("{}", fmt::vformat(fmt::string_view(f), fmt::make_format_args(a..., sup)));
}
}  // namespace

Publisher::Publisher(PublisherConfig cfg, MqttTransport& mqtt, pipeline::TripleBuffer<pipeline::WindowRecord>& latest,
                     pipeline::Waker& waker, pipeline::Processing* processing, TransactionHandler* tx,
                     const std::atomic<std::uint64_t>* persisted_windows, pipeline::Waker* persisted_waker)
    : cfg_(std::move(cfg)),
      mqtt_(mqtt),
      latest_(latest),
      waker_(waker),
      processing_(processing),
      tx_(tx),
      persisted_(persisted_windows),
      persisted_waker_(persisted_waker) {}

Publisher::~Publisher() {
  stop();
  join();
}

void Publisher::start() { thread_ = std::thread([this] { run(); }); }

void Publisher::stop() {
  stop_.store(true, std::memory_order_relaxed);
  waker_.wake();
}

void Publisher::join() {
  if (thread_.joinable()) thread_.join();
}

LatencySummary Publisher::latency() const {
  return LatencySummary{latency_.count(), latency_.percentile_us(0.5), latency_.percentile_us(0.99),
                        latency_.percentile_us(0.999), double(latency_.max_ns()) / 1000.0};
}

bool Publisher::source_live() const noexcept {
  return acq_ == nullptr || acq_->health() == acquire::SourceHealth::live;
}

// Only under the meter's own reply prefix, as EVerest makes them: a request
// can never write onto a value topic, another meter's topics or e2m.
bool Publisher::reply(const std::optional<std::string>& topic, const std::string& body) {
  if (!topic) return false;
  const std::string prefix = cfg_.topics.base + "/m2e/reply/";
  if (topic->size() <= prefix.size() || topic->compare(0, prefix.size(), prefix) != 0) {
    refused(counters_.replies_refused_topic, "EVerest: replyTo '{}' is not under {}: not answered ({} more suppressed)",
            topic->substr(0, 200), prefix);
    return false;
  }
  if (!send(*topic, body, 0)) return false;
  counters_.replies.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool Publisher::send(const std::string& topic, std::string_view payload, int qos) {
  if (!mqtt_.connected()) return false;
  if (mqtt_.publish(topic, payload, qos, false)) {
    counters_.messages_published.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  counters_.publish_failures.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void Publisher::try_connect(std::int64_t now) {
  counters_.connect_attempts.fetch_add(1, std::memory_order_relaxed);
  std::string err;
  if (mqtt_.connect(err)) {
    connecting_ = true;
    connect_deadline_ns_ = now + kConnectTimeoutNs;
    return;
  }
  backoff_ms_ = backoff_ms_ == 0 ? cfg_.reconnect_min_ms : std::min(2 * backoff_ms_, cfg_.reconnect_max_ms);
  next_connect_ns_ = now + backoff_ms_ * kMs;
  spdlog::warn("MQTT: cannot connect to {}: {}; retrying in {} ms (measuring goes on)", cfg_.broker_label, err,
               backoff_ms_);
}

void Publisher::on_connected() {
  const std::int64_t now = steady_now_ns();
  connecting_ = false;
  backoff_ms_ = 0;
  counters_.connects.fetch_add(1, std::memory_order_relaxed);
  counters_.connected.store(true, std::memory_order_relaxed);
  spdlog::info("MQTT: connected to {} as {}", cfg_.broker_label, cfg_.topics.base);
  mqtt_.subscribe(cfg_.topics.heartbeat, 0);
  mqtt_.subscribe(cfg_.topics.start_transaction, 0);
  mqtt_.subscribe(cfg_.topics.stop_transaction, 0);
  if (demand_ != nullptr) mqtt_.subscribe(cfg_.topics.demand, 0);
  next_check_ns_ = now;  // right away: EVerest clears its CommunicationFault on the first one
  next_key_ns_ = now;
}

void Publisher::on_disconnected(int reason) {
  counters_.connection_losses.fetch_add(1, std::memory_order_relaxed);
  counters_.connected.store(false, std::memory_order_relaxed);
  backoff_ms_ = cfg_.reconnect_min_ms;
  next_connect_ns_ = steady_now_ns() + backoff_ms_ * kMs;
  connecting_ = false;
  if (!stop_.load(std::memory_order_relaxed))
    spdlog::warn("MQTT: connection to {} lost (reason {}); reconnecting (measuring goes on)", cfg_.broker_label, reason);
}

void Publisher::on_message(std::string_view topic, std::string_view payload) {
  if (topic == cfg_.topics.heartbeat) {
    const auto id = parser_.parse_heartbeat(payload);
    if (!id) {
      refused(counters_.heartbeats_malformed, "MQTT: malformed heartbeat ignored ({} more suppressed)");
      return;
    }
    counters_.heartbeats.fetch_add(1, std::memory_order_relaxed);
    counters_.last_heartbeat_id.store(*id, std::memory_order_relaxed);
    last_heartbeat_ns_ = steady_now_ns();
    if (!counters_.everest_alive.exchange(true, std::memory_order_relaxed))
      spdlog::info("EVerest: heartbeat received (id {}), EVerest is alive", *id);
  } else if (topic == cfg_.topics.start_transaction) {
    handle_request(Request::Kind::start, payload);
  } else if (topic == cfg_.topics.stop_transaction) {
    handle_request(Request::Kind::stop, payload);
  } else if (demand_ != nullptr && topic == cfg_.topics.demand) {
    on_demand(payload);
  }
}

void Publisher::on_demand(std::string_view payload) {
  // A bare number of amperes, or {"current_A": number}.
  std::optional<double> a = parser_.parse_demand(payload);
  if (!a) {
    refused(counters_.demands_malformed,
            "MQTT: malformed demand ignored (expected amperes or {{\"current_A\": amperes}}; {} more suppressed)");
    return;
  }
  counters_.demands.fetch_add(1, std::memory_order_relaxed);
  if (*a == last_demand_a_) return;  // the same demand again is not a change
  last_demand_a_ = *a;
  // Release: the processing thread reads the time with acquire.
  demand_->utc_ns.store(acquire::utc_now_ns(), std::memory_order_release);
}

void Publisher::send_events() {
  if (events_ == nullptr || !mqtt_.connected()) return;
  while (const pipeline::StepEvent* e = events_->front()) {
    JsonWriter w(analysis_buf_);
    const std::string_view json = write_step_event(*e, cfg_.meter_id, w);
    events_->release();
    if (!w.overflow() && send(cfg_.topics.events, json, 1))
      counters_.events_published.fetch_add(1, std::memory_order_relaxed);
  }
}

void Publisher::handle_request(Request::Kind kind, std::string_view payload) {
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  const char* name = kind == Request::Kind::start ? "start_transaction" : "stop_transaction";
  ParseResult pr = parser_.parse(kind, payload);
  auto fail = [&](const std::string& error) {
    if (!pr.reply_to) return;
    const std::string body = kind == Request::Kind::start
                                 ? write_reply(StartTransactionReply{TransactionStatus::unexpected_error, error, {}, {}, {}})
                                 : write_reply(StopTransactionReply{TransactionStatus::unexpected_error, error, {}, {}});
    reply(pr.reply_to, body);
  };
  if (!pr.ok) {
    refused(counters_.requests_malformed, "EVerest: malformed {} ({} bytes): {}{} ({} more suppressed)", name,
            payload.size(), pr.error, pr.reply_to ? "; answered UNEXPECTED_ERROR" : "; no valid replyTo, not answered");
    fail(pr.error);
    return;
  }
  if (processing_ == nullptr || processing_->finished()) {
    fail("meter is shutting down");
    return;
  }
  const std::uint64_t id = next_request_id_++;
  pending_.push_back(Pending{id, std::move(pr.request)});
  processing_->request(pipeline::ReadingRequest{id});
}

void Publisher::serve_replies() {
  if (processing_ == nullptr) return;
  pipeline::ReadingReply rr;
  while (processing_->replies().try_dequeue(rr)) {
    while (!pending_.empty() && pending_.front().id != rr.id) pending_.pop_front();  // cannot happen: FIFO both ways
    if (pending_.empty()) continue;
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    std::string body;
    if (tx_ != nullptr) tx_->input_energy(rr.input_energy_wh);
    if (p.request.kind == Request::Kind::start) {
      StartTransactionReply r = tx_ != nullptr ? tx_->start(p.request.start, rr.reading)
                                               : StartTransactionReply{TransactionStatus::not_supported,
                                                                       "signed metering is not configured", {}, {}, {}};
      body = write_reply(r);
    } else {
      StopTransactionReply r = tx_ != nullptr ? tx_->stop(p.request.stop, rr.reading)
                                              : StopTransactionReply{TransactionStatus::not_supported,
                                                                     "signed metering is not configured", {}, {}};
      body = write_reply(r);
    }
    reply(p.request.reply_to, body);
  }
  // Acquire (finished): every reading the processing thread will ever give is already queued.
  if (!pending_.empty() && processing_->finished() && processing_->replies().size_approx() == 0) {
    for (auto& p : pending_) {
      if (!p.request.reply_to) continue;
      const std::string body =
          p.request.kind == Request::Kind::start
              ? write_reply(StartTransactionReply{TransactionStatus::unexpected_error, "meter is shutting down", {}, {}, {}})
              : write_reply(StopTransactionReply{TransactionStatus::unexpected_error, "meter is shutting down", {}, {}});
      reply(p.request.reply_to, body);
    }
    pending_.clear();
  }
}

void Publisher::publish_values(std::int64_t now, bool force) {
  if (token_due_ns_ != 0 && now >= token_due_ns_) {
    token_due_ns_ = 0;
    wake_from_.store(INT64_MIN, std::memory_order_relaxed);  // the next window wakes us again
  }
  if (latest_.read(window_)) {
    // Throttle on stream time (a regular cadence aligned to windows) and on
    // wall time through a token bucket: the rate stays bounded when a replay
    // runs faster than real time, while windows that close together (several
    // per block) still all go out at --publish-interval-ms 1.
    const std::int64_t interval_ns = std::int64_t{cfg_.publish_interval_ms} * kMs;
    const double burst = std::max(2.0, double(20 * kMs) / double(interval_ns));
    tokens_ = std::min(burst, tokens_ + double(now - last_refill_ns_) / double(interval_ns));
    last_refill_ns_ = now;
    const bool due = double(window_.end_utc_ns) - last_pub_end_ns_ >= double(interval_ns - kMs / 2);
    const bool open = due && tokens_ >= 1.0;
    if (due && !open) {
      // Due in stream time, throttled in wall time: until a token is back,
      // waking this thread for every window (a system call on the
      // processing thread each) would only conflate them. The timer wakes
      // it then, and it takes the newest.
      token_due_ns_ = now + static_cast<std::int64_t>((1.0 - tokens_) * double(interval_ns)) + 1;
      wake_from_.store(INT64_MAX, std::memory_order_relaxed);
    }
    window_published_ = false;
    if (window_.energy_refused || window_.register_saturated) {
      thread_local acquire::LogLimit limit(5'000'000'000);
      if (std::uint64_t sup = 0; limit.allow(sup))
        spdlog::error("window {}: {} ({} more such windows since the last line)", window_.seq,
                      window_.energy_refused ? "energy beyond full scale or not finite: NOT BOOKED"
                                             : "a register reached its maximum and stays there",
                      sup);
    }
    if (!window_.partial && !window_.energy_refused) shown_ = window_;
    if (open) window_pending_ = true;  // else conflated away: the next window will do
  }
  if (force && !window_published_ && window_.closed_steady_ns != 0) window_pending_ = true;
  if (window_pending_ && !force && !source_live()) {
    // The source is stalled or gone: nothing goes out until it is live again.
    counters_.values_withheld_source.fetch_add(1, std::memory_order_relaxed);
    window_pending_ = false;
    return;
  }
  if (!window_pending_ || !mqtt_.connected()) return;
  // Acquire: pairs with the state writer's release after it saved the registers.
  if (persisted_ != nullptr && persisted_->load(std::memory_order_acquire) < window_.seq + 1) {
    if (held_seq_ != window_.seq) counters_.values_held_for_state.fetch_add(1, std::memory_order_relaxed);
    held_seq_ = window_.seq;
    return;
  }
  // A partial window (stream start/end, gap) carries exact registers but no
  // representative values: show the last whole window's values with them.
  const pipeline::WindowRecord* rec = &window_;
  if (window_.energy_refused && shown_.closed_steady_ns == 0) {
    window_pending_ = false;  // nothing representative to show yet
    return;
  }
  if ((window_.partial || window_.energy_refused) && shown_.closed_steady_ns != 0) {
    shown_.registers = window_.registers;
    shown_.end_utc_ns = window_.end_utc_ns;
    rec = &shown_;
  }
  JsonWriter w(buf_);
  const std::string_view json = write_powermeter_values(*rec, cfg_.meter_id, w, cfg_.stamp_messages);
  window_pending_ = false;
  if (w.overflow()) return;
  if (send(cfg_.topics.powermeter_values, json, cfg_.values_qos)) {
    const std::int64_t lat_ns = steady_now_ns() - window_.closed_steady_ns;
    latency_.record(lat_ns);
    counters_.last_latency_ns.store(lat_ns, std::memory_order_relaxed);
    counters_.values_published.fetch_add(1, std::memory_order_relaxed);
    window_published_ = true;
    last_pub_end_ns_ = double(window_.end_utc_ns);
    if (window_.an.valid && !window_.partial) {
      JsonWriter a(analysis_buf_);
      const std::string_view aj = write_analysis_message(window_, cfg_.meter_id, a);
      if (!a.overflow() && send(cfg_.topics.analysis, aj, 0))
        counters_.analysis_published.fetch_add(1, std::memory_order_relaxed);
    }
    wake_from_.store(window_.end_utc_ns + std::int64_t{cfg_.publish_interval_ms} * kMs - kMs / 2,
                     std::memory_order_relaxed);
    tokens_ -= 1.0;
  }
}

void Publisher::timers(std::int64_t now) {
  // Live: the source delivers and the registers can be saved. Back: tell
  // EVerest at once, not a period later.
  const bool state_ok = state_ok_ == nullptr || state_ok_->load(std::memory_order_relaxed);
  const bool live = source_live() && state_ok;
  if (live && !was_live_) next_check_ns_ = now;
  if (state_ok != was_state_ok_)
    spdlog::log(state_ok ? spdlog::level::warn : spdlog::level::err,
                state_ok ? "EVerest: registers saved again: communication_check resumes"
                         : "EVerest: the registers cannot be saved: communication_check withheld (EVerest raises "
                           "CommunicationFault) until they can");
  was_state_ok_ = state_ok;
  was_live_ = live;
  if (mqtt_.connected()) {
    // Only while live: EVerest raises CommunicationFault when they stop.
    // Never `false` here: that would end EVerest's check for good.
    if (cfg_.communication_check_interval_ms > 0 && now >= next_check_ns_) {
      if (live && send(cfg_.topics.communication_check, "true", 0))
        counters_.communication_checks.fetch_add(1, std::memory_order_relaxed);
      next_check_ns_ = now + std::int64_t{cfg_.communication_check_interval_ms} * kMs;
    }
    if (now >= next_key_ns_) {
      const std::string key = tx_ != nullptr ? tx_->public_key_hex() : std::string();
      if (!key.empty() && send(cfg_.topics.public_key_ocmf, "\"" + key + "\"", 0))
        counters_.public_keys.fetch_add(1, std::memory_order_relaxed);
      next_key_ns_ = now + std::int64_t{cfg_.public_key_interval_ms} * kMs;
    }
  }
  const std::int64_t timeout = std::int64_t{cfg_.heartbeat_timeout_ms} * kMs;
  if (last_heartbeat_ns_ == 0) {
    if (!warned_no_heartbeat_ && now - started_ns_ > timeout) {
      warned_no_heartbeat_ = true;
      spdlog::warn("EVerest: no heartbeat within {} ms of start; measuring goes on", cfg_.heartbeat_timeout_ms);
    }
  } else if (now - last_heartbeat_ns_ > timeout && counters_.everest_alive.exchange(false, std::memory_order_relaxed)) {
    counters_.everest_lost.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("EVerest: no heartbeat for {} ms, EVerest is gone; measuring goes on", cfg_.heartbeat_timeout_ms);
  }
}

void Publisher::run() {
  pthread_setname_np(pthread_self(), "wp-mqtt");
  mqtt_.set_handler(this);
  started_ns_ = steady_now_ns();
  while (!stop_.load(std::memory_order_relaxed)) {
    counters_.mqtt_wakeups.fetch_add(1, std::memory_order_relaxed);  // liveness for the service watchdog
    std::int64_t now = steady_now_ns();
    if (!mqtt_.connected() && !connecting_ && now >= next_connect_ns_) try_connect(now);
    if (connecting_ && !mqtt_.connected() && (mqtt_.socket() < 0 || now > connect_deadline_ns_)) {
      connecting_ = false;
      mqtt_.disconnect();
      backoff_ms_ = backoff_ms_ == 0 ? cfg_.reconnect_min_ms : std::min(2 * backoff_ms_, cfg_.reconnect_max_ms);
      next_connect_ns_ = now + backoff_ms_ * kMs;
      spdlog::warn("MQTT: {} did not accept the connection; retrying in {} ms", cfg_.broker_label, backoff_ms_);
    }
    serve_replies();
    publish_values(now);
    send_events();
    timers(now);

    // Sleep until a window, a reply, a socket event or the next timer.
    waker_.arm();
    std::int64_t wait_ns = next_misc_ns_ - now;  // no fixed polling: the next thing due
    const std::int64_t hb_timeout = std::int64_t{cfg_.heartbeat_timeout_ms} * kMs;
    if (last_heartbeat_ns_ == 0 && !warned_no_heartbeat_) wait_ns = std::min(wait_ns, started_ns_ + hb_timeout - now + kMs);
    if (last_heartbeat_ns_ != 0 && counters_.everest_alive.load(std::memory_order_relaxed))
      wait_ns = std::min(wait_ns, last_heartbeat_ns_ + hb_timeout - now + kMs);
    if (connecting_) wait_ns = std::min(wait_ns, connect_deadline_ns_ - now);
    if (token_due_ns_ != 0) wait_ns = std::min(wait_ns, token_due_ns_ - now);
    if (latest_.fresh() || (processing_ != nullptr && processing_->replies().size_approx() > 0) ||
        stop_.load(std::memory_order_relaxed))
      wait_ns = 0;
    // Waiting for the state writer: it wakes us once it saved the registers;
    // check after arm() so that wake-up cannot be missed.
    // (Only when connected: a window pending for a broker that is away waits
    // for the connection, not in a busy loop.)
    const bool awaiting_save = window_pending_ && mqtt_.connected();
    if (awaiting_save && persisted_waker_ != nullptr) persisted_waker_->arm();
    if (awaiting_save &&
        (persisted_ == nullptr || persisted_->load(std::memory_order_seq_cst) >= window_.seq + 1))
      wait_ns = 0;
    if (mqtt_.connected()) {
      if (cfg_.communication_check_interval_ms > 0) wait_ns = std::min(wait_ns, next_check_ns_ - now);
      wait_ns = std::min(wait_ns, next_key_ns_ - now);
    } else if (!connecting_) {
      wait_ns = std::min(wait_ns, next_connect_ns_ - now);
    }
    wait_ns = std::max<std::int64_t>(wait_ns, 0);
    // A socket left behind by a refused connect reports POLLHUP at once:
    // between attempts it is not polled (that was a busy loop).
    const bool poll_socket = mqtt_.socket() >= 0 && (mqtt_.connected() || connecting_);
    pollfd fds[3];
    nfds_t nfds = 0;
    fds[nfds++] = {waker_.fd(), POLLIN, 0};
    if (awaiting_save && persisted_waker_ != nullptr) fds[nfds++] = {persisted_waker_->fd(), POLLIN, 0};
    const nfds_t sock_at = nfds;
    if (poll_socket) fds[nfds++] = {mqtt_.socket(), short(POLLIN | (mqtt_.want_write() ? POLLOUT : 0)), 0};
    const timespec ts{static_cast<time_t>(wait_ns / 1'000'000'000), static_cast<long>(wait_ns % 1'000'000'000)};
    ppoll(fds, nfds, &ts, nullptr);
    waker_.drain();
    if (awaiting_save && persisted_waker_ != nullptr) persisted_waker_->drain();
    if (poll_socket) {
      if (fds[sock_at].revents & (POLLIN | POLLERR | POLLHUP)) mqtt_.on_readable();
      if ((fds[sock_at].revents & POLLOUT) && mqtt_.socket() >= 0) mqtt_.on_writable();
    }
    now = steady_now_ns();
    if (now >= next_misc_ns_) {
      if (mqtt_.socket() >= 0) mqtt_.misc();  // keepalive pings and retries: seconds matter, not ms
      next_misc_ns_ = now + 1000 * kMs;
    }
  }
  // A stop: the last values go out, and no `false` on communication_check.
  // EVerest ends its check for good on false, so neither the meter's absence
  // nor a fault after its restart would be seen; without it, EVerest raises
  // CommunicationFault while the meter is gone and clears it at the first
  // check of the next run.
  serve_replies();
  publish_values(steady_now_ns(), true);  // the last window always goes out
  if (mqtt_.connected()) {
    const std::int64_t deadline = steady_now_ns() + 1000 * kMs;
    while (mqtt_.connected() && mqtt_.want_write() && steady_now_ns() < deadline) {
      pollfd fd{mqtt_.socket(), POLLOUT, 0};
      if (poll(&fd, 1, 100) > 0) mqtt_.on_writable();
    }
    mqtt_.disconnect();
  }
}

}  // namespace wattpipe::publish

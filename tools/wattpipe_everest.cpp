// SPDX-License-Identifier: Apache-2.0
// wattpipe-everest: a command-line peer that behaves like EVerest's
// powermeter_API module, for bring-up on a bench and for tests.
//   watch     print powermeter_values as compact lines (and send heartbeats)
//   start     send start_transaction with a fresh replyTo, validate and print the reply
//   stop      send stop_transaction likewise
//   session   heartbeats, start, wait, stop; validate every message, verify the OCMF records
//   send      publish any payload to an e2m topic and print the reply (malformed-input checks)
// Every message received is validated against the contract built into wattpipe.
#include <mosquitto.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <fstream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "cli.hpp"
#include <fmt/format.h>
#include <simdjson.h>

#include "wattpipe/legal/legal.hpp"
#include "wattpipe/publish/schema.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Common {
  std::string broker = "127.0.0.1:1883";
  std::string module_id = "wattpipe";
  std::string prefix;
  std::string username, password_file, cafile, certfile, keyfile;
  double duration = 0;
  long count = 0;
  double timeout_s = 10;
  bool heartbeat = true;
  bool json = false;
};

std::string base_topic(const Common& c) {
  std::string b = c.prefix;
  if (!b.empty() && b.back() != '/') b += '/';
  return b + "everest_api/1/powermeter/" + c.module_id;
}

struct Message {
  std::string topic, payload;
};

// libmosquitto with its own network thread; messages land in a queue.
class Client {
 public:
  explicit Client(const Common& c) {
    mosquitto_lib_init();
    m_ = mosquitto_new(fmt::format("wattpipe-everest-{}-{}", ::getpid(), random_hex(4)).c_str(), true, this);
    mosquitto_int_option(m_, MOSQ_OPT_TCP_NODELAY, 1);
    if (!c.username.empty()) {
      // The password's first line (a trailing newline is not part of it).
      std::string password;
      if (!c.password_file.empty()) {
        std::ifstream f(c.password_file);
        std::getline(f, password);
      }
      mosquitto_username_pw_set(m_, c.username.c_str(), password.empty() ? nullptr : password.c_str());
    }
    if (!c.cafile.empty())
      mosquitto_tls_set(m_, c.cafile.c_str(), nullptr, c.certfile.empty() ? nullptr : c.certfile.c_str(),
                        c.keyfile.empty() ? nullptr : c.keyfile.c_str(), nullptr);
    mosquitto_message_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message* msg) {
      auto* cl = static_cast<Client*>(self);
      std::lock_guard lock(cl->mu_);
      cl->queue_.push_back(Message{msg->topic, std::string(static_cast<const char*>(msg->payload), std::size_t(msg->payloadlen))});
      cl->cv_.notify_all();
    });
    mosquitto_connect_callback_set(m_, [](mosquitto*, void* self, int rc) {
      auto* cl = static_cast<Client*>(self);
      std::lock_guard lock(cl->mu_);
      if (rc == 0) {
        for (const auto& t : cl->subs_) mosquitto_subscribe(cl->m_, nullptr, t.c_str(), 0);
        cl->connected_ = true;
      } else {
        cl->refused_ = rc;
      }
      cl->cv_.notify_all();
    });
    mosquitto_subscribe_callback_set(m_, [](mosquitto*, void* self, int, int, const int*) {
      auto* cl = static_cast<Client*>(self);
      std::lock_guard lock(cl->mu_);
      ++cl->subacks_;
      cl->cv_.notify_all();
    });
    const auto colon = c.broker.rfind(':');
    host_ = c.broker.substr(0, colon);
    port_ = colon == std::string::npos ? 1883 : std::stoi(c.broker.substr(colon + 1));
  }
  // libmosquitto's order: disconnect, then let the network thread end by
  // itself (loop_stop without force: a cancelled thread can die holding a
  // mutex that destroy then frees), then destroy, then the library.
  ~Client() {
    mosquitto_disconnect(m_);
    mosquitto_loop_stop(m_, false);
    mosquitto_destroy(m_);
    mosquitto_lib_cleanup();
  }

  static std::string random_hex(int bytes) {
    std::random_device rd;
    std::string s;
    for (int i = 0; i < bytes; ++i) s += fmt::format("{:02x}", rd() & 0xff);
    return s;
  }

  // Subscriptions made before connect() are renewed on every reconnect.
  void subscribe_on_connect(std::string topic) { subs_.push_back(std::move(topic)); }

  bool connect(double timeout_s) {
    mosquitto_reconnect_delay_set(m_, 1, 5, false);
    mosquitto_connect_async(m_, host_.c_str(), port_, 30);
    if (mosquitto_loop_start(m_) != MOSQ_ERR_SUCCESS) return false;
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] {
      return (connected_ && subacks_ >= subs_.size()) || refused_ != 0;
    }) && connected_;
  }

  // Subscribes now and waits for the broker's acknowledgement.
  bool subscribe(const std::string& topic, double timeout_s) {
    std::unique_lock lock(mu_);
    const std::size_t want = subacks_ + 1;
    if (mosquitto_subscribe(m_, nullptr, topic.c_str(), 0) != MOSQ_ERR_SUCCESS) return false;
    return cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return subacks_ >= want; });
  }

  bool publish(const std::string& topic, std::string_view payload) {
    return mosquitto_publish(m_, nullptr, topic.c_str(), int(payload.size()), payload.data(), 0, false) == MOSQ_ERR_SUCCESS;
  }

  // Waits for the next message matching `pred` (earlier non-matching ones stay queued for others).
  std::optional<Message> wait(const std::function<bool(const Message&)>& pred, double timeout_s) {
    std::unique_lock lock(mu_);
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
    for (;;) {
      for (auto it = queue_.begin(); it != queue_.end(); ++it)
        if (pred(*it)) {
          Message m = std::move(*it);
          queue_.erase(it);
          return m;
        }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) return std::nullopt;
    }
  }

  std::deque<Message> drain() {
    std::lock_guard lock(mu_);
    std::deque<Message> out;
    out.swap(queue_);
    return out;
  }

 private:
  mosquitto* m_ = nullptr;
  std::string host_;
  int port_ = 1883;
  std::vector<std::string> subs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Message> queue_;
  bool connected_ = false;
  int refused_ = 0;
  std::size_t subacks_ = 0;
};

// Heartbeats 0, 1, 2, ... every interval, as EVerest sends them.
class Heartbeat {
 public:
  Heartbeat(Client& c, std::string topic, int interval_ms) {
    thread_ = std::thread([&c, topic = std::move(topic), interval_ms, this] {
      std::uint64_t id = 0;
      while (!stop_) {
        c.publish(topic, std::to_string(id++));
        for (int t = 0; t < interval_ms && !stop_; t += 10) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }
  ~Heartbeat() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

const wattpipe::publish::Schema& schema() {
  static const wattpipe::publish::Schema s;
  return s;
}

// Checks a received message against the contract; prints and counts problems.
struct Validator {
  long messages = 0, problems = 0;
  bool check(const std::string& schema_name, const std::string& payload) {
    ++messages;
    auto errors = schema().validate(schema_name, payload);
    if (schema_name == "Powermeter") {
      simdjson::dom::parser p;
      simdjson::dom::element doc;
      std::string_view ts;
      if (p.parse(payload).get(doc) == simdjson::SUCCESS && doc["timestamp"].get_string().get(ts) == simdjson::SUCCESS &&
          (ts.size() != 24 || ts[19] != '.' || ts[23] != 'Z'))
        errors.push_back("/timestamp: not RFC 3339 UTC with milliseconds");
    }
    for (const auto& e : errors) std::fprintf(stderr, "INVALID %s: %s\n  %s\n", schema_name.c_str(), e.c_str(), payload.c_str());
    problems += long(!errors.empty());
    return errors.empty();
  }
};

// Compact line for a powermeter_values message.
std::string compact(std::string_view json) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(json.data(), json.size(), true).get(doc) != simdjson::SUCCESS) return "unparseable: " + std::string(json);
  auto num = [&](const char* obj, const char* key) -> std::string {
    double v;
    if (doc[obj][key].get_double().get(v) != simdjson::SUCCESS) return "";
    return fmt::format("{:.2f}", v);
  };
  // Per phase, then the total where there is one (DC power has only the total).
  auto phases = [&](const char* obj, const char* unit) {
    if (auto dc = num(obj, "DC"); !dc.empty()) return fmt::format("{} {}", dc, unit);
    std::string out;
    int n = 0;
    for (const char* l : {"L1", "L2", "L3"})
      if (const std::string v = num(obj, l); !v.empty()) out += (out.empty() ? "" : " ") + v, ++n;
    const std::string total = num(obj, "total");
    if (n == 0) return total.empty() ? std::string("-") : total + " " + unit;
    return n > 1 && !total.empty() ? fmt::format("{} {} (total {} {})", out, unit, total, unit) : out + " " + unit;
  };
  std::string_view ts;
  if (doc["timestamp"].get_string().get(ts) != simdjson::SUCCESS) ts = "?";
  std::string line = fmt::format("{}  U {}  I {}  P {}", ts.size() > 11 ? ts.substr(11) : ts, phases("voltage_V", "V"),
                                 phases("current_A", "A"), phases("power_W", "W"));
  if (auto f = num("frequency_Hz", "L1"); !f.empty()) line += fmt::format("  f {} Hz", f);
  double e = 0;
  if (doc["energy_Wh_import"]["total"].get_double().get(e) == simdjson::SUCCESS) line += fmt::format("  E+ {:.3f} Wh", e);
  if (doc["energy_Wh_export"]["total"].get_double().get(e) == simdjson::SUCCESS && e > 0)
    line += fmt::format("  E- {:.3f} Wh", e);
  return line;
}

// Compact line for wattpipe's analysis message (docs/analysis.md).
std::string compact_analysis(std::string_view json) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(json.data(), json.size(), true).get(doc) != simdjson::SUCCESS) return "";
  double a = 0, b = 0;
  std::string line = "    analysis:";
  if (doc["ripple_I_rms_A"].get_double().get(a) == simdjson::SUCCESS) {
    if (doc["ripple_I_pp_A"].get_double().get(b)) b = 0;
    line += fmt::format(" ripple I {:.3f} A rms, {:.3f} A pp", a, b);
    if (doc["ripple_U_rms_V"].get_double().get(a) == simdjson::SUCCESS) line += fmt::format("; U {:.3f} V rms", a);
    simdjson::dom::array peaks;
    if (doc["ripple_I_peaks"].get_array().get(peaks) == simdjson::SUCCESS) {
      line += "; I components";
      for (auto pk : peaks) {
        double f = 0, amp = 0;
        if (pk["f_Hz"].get_double().get(f) || pk["amplitude_A"].get_double().get(amp)) continue;
        line += fmt::format(" {:.0f} Hz {:.2f} A", f, amp);
      }
    }
    return line;
  }
  if (doc["thd_U_percent"]["L1"].get_double().get(a) == simdjson::SUCCESS) {
    if (doc["thd_I_percent"]["L1"].get_double().get(b)) b = 0;
    line += fmt::format(" THD U1 {:.2f} %, I1 {:.2f} %", a, b);
  }
  if (doc["unbalance_u2_percent"].get_double().get(a) == simdjson::SUCCESS) line += fmt::format("; u2 {:.3f} %", a);
  if (doc["crest_factor_I"]["L1"].get_double().get(a) == simdjson::SUCCESS) line += fmt::format("; crest I1 {:.3f}", a);
  return line;
}

// Compact line for a step event.
std::string compact_step(std::string_view json) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(json.data(), json.size(), true).get(doc) != simdjson::SUCCESS) return "";
  auto num = [&](const char* k) {
    double v = 0;
    return doc[k].get_double().get(v) == simdjson::SUCCESS ? fmt::format("{:.2f}", v) : std::string("-");
  };
  std::string_view ph = "?";
  if (doc["phase"].get_string().get(ph)) ph = "?";
  return fmt::format("    STEP {}: {} -> {} A, rise {} ms, settling {} ms, overshoot {} %, delay {} ms", ph, num("from_A"),
                     num("to_A"), num("rise_time_ms"), num("settling_time_ms"), num("overshoot_percent"), num("delay_ms"));
}

bool connect(Client& cl, const Common& c) {
  if (cl.connect(c.timeout_s)) return true;
  std::fprintf(stderr, "wattpipe-everest: cannot connect to %s\n", c.broker.c_str());
  return false;
}

int watch(const Common& c) {
  const std::string base = base_topic(c);
  Client cl(c);
  cl.subscribe_on_connect(base + "/m2e/#");
  std::string own = c.prefix;
  if (!own.empty() && own.back() != '/') own += '/';
  own += "wattpipe/" + c.module_id;
  cl.subscribe_on_connect(own + "/#");
  if (!connect(cl, c)) return 1;
  std::optional<Heartbeat> hb;
  if (c.heartbeat) hb.emplace(cl, base + "/e2m/heartbeat", 1000);
  Validator v;
  long seen = 0;
  const auto t0 = Clock::now();
  for (;;) {
    if (c.count > 0 && seen >= c.count) break;
    if (c.duration > 0 && Clock::now() - t0 >= std::chrono::duration<double>(c.duration)) break;
    auto m = cl.wait([](const Message&) { return true; }, 0.2);
    if (!m) continue;
    if (m->topic.ends_with("/m2e/powermeter_values")) {
      v.check("Powermeter", m->payload);
      std::printf("%s\n", c.json ? m->payload.c_str() : compact(m->payload).c_str());
      std::fflush(stdout);
      ++seen;
    } else if (m->topic == own + "/analysis" && !c.json) {
      std::printf("%s\n", compact_analysis(m->payload).c_str());
      std::fflush(stdout);
    } else if (m->topic == own + "/events") {
      std::printf("%s\n", c.json ? m->payload.c_str() : compact_step(m->payload).c_str());
      std::fflush(stdout);
    } else if (m->topic.ends_with("/m2e/communication_check") && m->payload == "false") {
      // Valid by the contract, but EVerest's module then stops checking this meter for good.
      std::printf("meter sent communication_check false: EVerest would stop checking it for good\n");
      std::fflush(stdout);
    }
  }
  return v.problems == 0 ? 0 : 1;
}

struct Ident {
  std::string evse_id = "EVSE-1", transaction_id, status = "ASSIGNED", type = "ISO14443", data = "04A2B3C4D5E6F7",
              level = "HEARSAY", tariff;
  std::vector<std::string> flags{"RFID_PLAIN", "OCPP_AUTH"};
};

std::string start_payload(const Ident& id, const std::string& reply_to) {
  std::string flags;
  for (const auto& f : id.flags) flags += (flags.empty() ? "\"" : ",\"") + f + "\"";
  std::string body = fmt::format(
      R"({{"evse_id":"{}","transaction_id":"{}","identification_status":"{}","identification_level":"{}",)"
      R"("identification_flags":[{}],"identification_type":"{}","identification_data":"{}")",
      id.evse_id, id.transaction_id, id.status, id.level, flags, id.type, id.data);
  if (!id.tariff.empty()) body += fmt::format(R"(,"tariff_text":"{}")", id.tariff);
  body += "}";
  return reply_to.empty() ? fmt::format(R"({{"payload":{}}})", body)
                          : fmt::format(R"({{"headers":{{"replyTo":"{}"}},"payload":{}}})", reply_to, body);
}

// Sends `payload` to e2m/<suffix> after subscribing to a fresh replyTo (when
// the payload names one through {REPLY_TO}), and returns the reply.
std::optional<std::string> request(Client& cl, const Common& c, const std::string& suffix,
                                   const std::function<std::string(const std::string&)>& make, bool want_reply) {
  const std::string base = base_topic(c);
  std::string reply_to;
  if (want_reply) {
    reply_to = base + "/m2e/reply/" + Client::random_hex(16);
    if (!cl.subscribe(reply_to, c.timeout_s)) {
      std::fprintf(stderr, "wattpipe-everest: cannot subscribe to %s\n", reply_to.c_str());
      return std::nullopt;
    }
  }
  const auto t0 = Clock::now();
  cl.publish(base + "/e2m/" + suffix, make(reply_to));
  if (!want_reply) return std::string();
  auto m = cl.wait([&](const Message& x) { return x.topic == reply_to; }, c.timeout_s);
  if (!m) {
    std::fprintf(stderr, "wattpipe-everest: no reply on %s within %.1f s\n", reply_to.c_str(), c.timeout_s);
    return std::nullopt;
  }
  std::fprintf(stderr, "reply after %.1f ms\n", std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  return m->payload;
}

std::string status_of(const std::string& reply) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  std::string_view s;
  if (p.parse(reply).get(doc) != simdjson::SUCCESS || doc["status"].get_string().get(s) != simdjson::SUCCESS) return "?";
  return std::string(s);
}

std::string field(const std::string& reply, const char* obj, const char* key) {
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  std::string_view s;
  if (p.parse(reply).get(doc) != simdjson::SUCCESS || doc[obj][key].get_string().get(s) != simdjson::SUCCESS) return {};
  return std::string(s);
}

int start_cmd(const Common& c, const Ident& id, bool no_reply) {
  Client cl(c);
  if (!connect(cl, c)) return 1;
  const auto reply = request(cl, c, "start_transaction", [&](const std::string& rt) { return start_payload(id, rt); },
                             !no_reply);
  if (!reply) return 1;
  if (no_reply) return 0;
  std::printf("%s\n", reply->c_str());
  Validator v;
  return v.check("StartTransactionReply", *reply) && status_of(*reply) == "OK" ? 0 : 1;
}

int stop_cmd(const Common& c, const std::string& tx, bool object_form, bool no_reply) {
  Client cl(c);
  if (!connect(cl, c)) return 1;
  const auto reply = request(
      cl, c, "stop_transaction",
      [&](const std::string& rt) {
        const std::string body = object_form ? fmt::format(R"({{"transaction_id":"{}"}})", tx) : fmt::format(R"("{}")", tx);
        return rt.empty() ? fmt::format(R"({{"payload":{}}})", body)
                          : fmt::format(R"({{"headers":{{"replyTo":"{}"}},"payload":{}}})", rt, body);
      },
      !no_reply);
  if (!reply) return 1;
  if (no_reply) return 0;
  std::printf("%s\n", reply->c_str());
  Validator v;
  return v.check("StopTransactionReply", *reply) && status_of(*reply) == "OK" ? 0 : 1;
}

int send_cmd(const Common& c, const std::string& suffix, const std::string& payload) {
  Client cl(c);
  if (!connect(cl, c)) return 1;
  // {REPLY_TO} in the payload is replaced by a fresh reply topic.
  const bool want = payload.find("{REPLY_TO}") != std::string::npos;
  const auto reply = request(cl, c, suffix,
                             [&](const std::string& rt) {
                               std::string p = payload;
                               if (const auto at = p.find("{REPLY_TO}"); at != std::string::npos) p.replace(at, 10, rt);
                               return p;
                             },
                             want);
  if (!reply) return 1;
  if (want) std::printf("%s\n", reply->c_str());
  return 0;
}

int session(const Common& c, Ident id, double seconds) {
  const std::string base = base_topic(c);
  Client cl(c);
  cl.subscribe_on_connect(base + "/m2e/#");
  if (!connect(cl, c)) return 1;
  Heartbeat hb(cl, base + "/e2m/heartbeat", 1000);
  Validator v;
  if (id.transaction_id.empty()) id.transaction_id = "wp-" + Client::random_hex(8);
  auto is_reply = [&](const Message& m) { return m.topic.find("/m2e/reply/") != std::string::npos; };
  const auto start = request(cl, c, "start_transaction", [&](const std::string& rt) { return start_payload(id, rt); }, true);
  if (!start) return 1;
  std::printf("start: %s\n", start->c_str());
  const bool start_ok = v.check("StartTransactionReply", *start) && status_of(*start) == "OK";
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const auto stop = request(
      cl, c, "stop_transaction",
      [&](const std::string& rt) {
        return fmt::format(R"({{"headers":{{"replyTo":"{}"}},"payload":"{}"}})", rt, id.transaction_id);
      },
      true);
  if (!stop) return 1;
  std::printf("stop: %s\n", stop->c_str());
  const bool stop_ok = v.check("StopTransactionReply", *stop) && status_of(*stop) == "OK";
  // Everything else that arrived, validated; the key to verify the records with.
  std::string key;
  long values = 0;
  for (auto& m : cl.drain()) {
    if (is_reply(m)) continue;
    if (m.topic.ends_with("/m2e/powermeter_values")) {
      v.check("Powermeter", m.payload);
      ++values;
    } else if (m.topic.ends_with("/m2e/public_key_ocmf")) {
      v.check("SendPublicKeyOCMF", m.payload);
      if (m.payload.size() > 2) key = m.payload.substr(1, m.payload.size() - 2);
    } else if (m.topic.ends_with("/m2e/communication_check")) {
      v.check("CommunicationCheck", m.payload);
    }
  }
  if (key.empty()) key = field(*stop, "signed_meter_value", "public_key");
  bool records_ok = true;
  for (const auto& [what, rec] : {std::pair{"start record", field(*stop, "start_signed_meter_value", "signed_meter_data")},
                                  std::pair{"stop record", field(*stop, "signed_meter_value", "signed_meter_data")}}) {
    const auto r = wattpipe::legal::ocmf::verify(rec, key);
    std::printf("%s:\n%s", what, wattpipe::legal::ocmf::summarize(r).c_str());
    records_ok &= r.verdict == wattpipe::legal::ocmf::Verification::Verdict::valid;
  }
  std::printf("session: %ld powermeter_values, %ld messages checked, %ld invalid; start %s, stop %s, records %s\n",
              values, v.messages, v.problems, start_ok ? "OK" : "FAILED", stop_ok ? "OK" : "FAILED",
              records_ok ? "verified" : "NOT VERIFIED");
  return start_ok && stop_ok && records_ok && v.problems == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wattpipe-everest: an EVerest powermeter_API peer for bring-up and tests"};
  app.require_subcommand(1);
  Common c;
  Ident id;
  auto common = [&](CLI::App* s) {
    s->add_option("--broker", c.broker, "MQTT broker HOST:PORT")->capture_default_str();
    s->add_option("--module-id", c.module_id, "the meter's module id")->capture_default_str();
    s->add_option("--mqtt-prefix", c.prefix, "topic prefix");
    s->add_option("--mqtt-username", c.username, "MQTT user name");
    s->add_option("--mqtt-password-file", c.password_file, "file holding the MQTT password (never on the command line)")
        ->check(CLI::ExistingFile);
    s->add_option("--mqtt-cafile", c.cafile, "CA certificate (PEM): enables TLS");
    s->add_option("--mqtt-certfile", c.certfile, "client certificate (PEM) for TLS");
    s->add_option("--mqtt-keyfile", c.keyfile, "client key (PEM) for TLS");
    s->add_option("--timeout", c.timeout_s, "seconds to wait for a connection or a reply")->capture_default_str();
  };
  auto ident = [&](CLI::App* s) {
    s->add_option("--evse-id", id.evse_id, "evse_id of the request (OCMF ID of the EVSE)")->capture_default_str();
    s->add_option("--id-status", id.status, "identification_status: ASSIGNED or NOT_ASSIGNED")->capture_default_str();
    s->add_option("--id-type", id.type, "identification_type (OCMF IT)")->capture_default_str();
    s->add_option("--id-data", id.data, "identification_data (OCMF ID)")->capture_default_str();
    s->add_option("--id-level", id.level, "identification_level (OCMF IL)")->capture_default_str();
    s->add_option("--id-flags", id.flags, "identification_flags, comma separated (OCMF IF)")->delimiter(',');
    s->add_option("--tariff-text", id.tariff, "tariff_text (OCMF TT)");
  };
  CLI::App* w = app.add_subcommand("watch", "print powermeter_values, one line each, and send heartbeats");
  common(w);
  w->add_option("--duration", c.duration, "stop after this many seconds");
  w->add_option("--count", c.count, "stop after this many messages");
  w->add_flag("--json", c.json, "print the raw JSON");
  w->add_flag("!--no-heartbeat", c.heartbeat, "do not send heartbeats");
  bool no_reply = false, object_form = false;
  CLI::App* st = app.add_subcommand("start", "start a transaction");
  common(st);
  ident(st);
  st->add_option("--transaction-id", id.transaction_id, "the transaction's id")->required();
  st->add_flag("--no-reply-to", no_reply, "send without headers.replyTo (executed, not answered)");
  std::string tx;
  CLI::App* sp = app.add_subcommand("stop", "stop a transaction (\"\" stops all)");
  common(sp);
  sp->add_option("--transaction-id", tx, "the transaction's id; \"\" stops every open one")->required();
  sp->add_flag("--object-form", object_form, "payload {\"transaction_id\":...} instead of the bare id");
  sp->add_flag("--no-reply-to", no_reply, "send without headers.replyTo");
  double seconds = 5;
  CLI::App* se = app.add_subcommand("session", "heartbeats, start, wait, stop; verify the OCMF records");
  common(se);
  ident(se);
  se->add_option("--transaction-id", id.transaction_id, "default: a fresh one");
  se->add_option("--duration,--seconds", seconds, "charging time between start and stop (--seconds: the old name)")
      ->capture_default_str();
  std::string suffix, payload;
  CLI::App* sd = app.add_subcommand("send", "publish a payload to e2m/<topic>; {REPLY_TO} becomes a fresh reply topic");
  common(sd);
  sd->add_option("--topic", suffix, "start_transaction, stop_transaction or heartbeat")->required();
  sd->add_option("--payload", payload, "the message body, as is")->required();
  wattpipe::tools::add_version(app, "wattpipe-everest");
  if (const int rc = wattpipe::tools::parse(app, argc, argv); rc >= 0) return rc;
  if (w->parsed()) return watch(c);
  if (st->parsed()) return start_cmd(c, id, no_reply);
  if (sp->parsed()) return stop_cmd(c, tx, object_form, no_reply);
  if (se->parsed()) return session(c, id, seconds);
  if (sd->parsed()) return send_cmd(c, suffix, payload);
  return 2;
}

// wattpipe-everest: a command-line peer that behaves like EVerest's
// powermeter_API module, for bring-up on a bench and for tests.
//   watch    print each powermeter_values message as one compact line
#include <mosquitto.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <simdjson.h>

namespace {

struct Common {
  std::string broker = "127.0.0.1:1883";
  std::string module_id = "wattpipe";
  std::string prefix;
  std::string username, password, cafile, certfile, keyfile;
  double duration = 0;
  long count = 0;
};

std::string base_topic(const Common& c) {
  std::string b = c.prefix;
  if (!b.empty() && b.back() != '/') b += '/';
  return b + "everest_api/1/powermeter/" + c.module_id;
}

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
  auto phases = [&](const char* obj, const char* unit) {
    std::string out;
    if (auto dc = num(obj, "DC"); !dc.empty()) return fmt::format("{} {}", dc, unit);
    for (const char* l : {"L1", "L2", "L3"}) {
      const std::string v = num(obj, l);
      if (!v.empty()) out += (out.empty() ? "" : " ") + v;
    }
    return out.empty() ? std::string("-") : out + " " + unit;
  };
  std::string_view ts;
  if (doc["timestamp"].get_string().get(ts) != simdjson::SUCCESS) ts = "?";
  std::string line = fmt::format("{}  U {}  I {}  P {}", ts.size() > 11 ? ts.substr(11) : ts, phases("voltage_V", "V"),
                                 phases("current_A", "A"), phases("power_W", "W"));
  if (auto f = num("frequency_Hz", "L1"); !f.empty()) line += fmt::format("  f {} Hz", num("frequency_Hz", "L1"));
  double e = 0;
  if (doc["energy_Wh_import"]["total"].get_double().get(e) == simdjson::SUCCESS) line += fmt::format("  E+ {:.3f} Wh", e);
  if (doc["energy_Wh_export"]["total"].get_double().get(e) == simdjson::SUCCESS && e > 0)
    line += fmt::format("  E- {:.3f} Wh", e);
  return line;
}

class Client {
 public:
  explicit Client(const Common& c) {
    mosquitto_lib_init();
    m_ = mosquitto_new(fmt::format("wattpipe-everest-{}", ::getpid()).c_str(), true, this);
    mosquitto_int_option(m_, MOSQ_OPT_TCP_NODELAY, 1);
    if (!c.username.empty()) mosquitto_username_pw_set(m_, c.username.c_str(), c.password.empty() ? nullptr : c.password.c_str());
    if (!c.cafile.empty())
      mosquitto_tls_set(m_, c.cafile.c_str(), nullptr, c.certfile.empty() ? nullptr : c.certfile.c_str(),
                        c.keyfile.empty() ? nullptr : c.keyfile.c_str(), nullptr);
    mosquitto_message_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message* msg) {
      auto* cl = static_cast<Client*>(self);
      std::lock_guard lock(cl->mu_);
      if (cl->on_message_)
        cl->on_message_(msg->topic, std::string_view(static_cast<const char*>(msg->payload), std::size_t(msg->payloadlen)));
    });
    mosquitto_connect_callback_set(m_, [](mosquitto*, void* self, int rc) {
      auto* cl = static_cast<Client*>(self);
      if (rc == 0) {
        std::lock_guard lock(cl->mu_);
        for (const auto& t : cl->subs_) mosquitto_subscribe(cl->m_, nullptr, t.c_str(), 0);
      }
    });
    const auto colon = c.broker.rfind(':');
    host_ = c.broker.substr(0, colon);
    port_ = colon == std::string::npos ? 1883 : std::stoi(c.broker.substr(colon + 1));
  }
  ~Client() {
    mosquitto_disconnect(m_);
    mosquitto_loop_stop(m_, true);
    mosquitto_destroy(m_);
    mosquitto_lib_cleanup();
  }
  void subscribe(std::string topic) { subs_.push_back(std::move(topic)); }
  template <typename F>
  void on_message(F&& f) {
    std::lock_guard lock(mu_);
    on_message_ = std::forward<F>(f);
  }
  bool connect() {
    // Keep retrying: the broker or the meter may come up after us.
    mosquitto_reconnect_delay_set(m_, 1, 5, false);
    if (mosquitto_connect_async(m_, host_.c_str(), port_, 30) != MOSQ_ERR_SUCCESS) {
      std::fprintf(stderr, "wattpipe-everest: cannot reach %s:%d, retrying\n", host_.c_str(), port_);
    }
    return mosquitto_loop_start(m_) == MOSQ_ERR_SUCCESS;
  }
  bool publish(const std::string& topic, std::string_view payload) {
    return mosquitto_publish(m_, nullptr, topic.c_str(), int(payload.size()), payload.data(), 0, false) == MOSQ_ERR_SUCCESS;
  }

 private:
  mosquitto* m_ = nullptr;
  std::string host_;
  int port_ = 1883;
  std::vector<std::string> subs_;
  std::mutex mu_;
  std::function<void(std::string_view, std::string_view)> on_message_;
};

std::atomic<bool> g_stop{false};

int watch(const Common& c, bool raw) {
  const std::string base = base_topic(c);
  Client cl(c);
  cl.subscribe(base + "/m2e/#");
  std::atomic<long> seen{0};
  cl.on_message([&](std::string_view topic, std::string_view payload) {
    if (topic.ends_with("/m2e/powermeter_values")) {
      std::printf("%s\n", raw ? std::string(payload).c_str() : compact(payload).c_str());
      std::fflush(stdout);
      ++seen;
    } else if (topic.ends_with("/m2e/communication_check") && payload == "false") {
      std::printf("meter says goodbye (communication_check false)\n");
      std::fflush(stdout);
      g_stop = true;
    }
  });
  if (!cl.connect()) return 1;
  const auto t0 = std::chrono::steady_clock::now();
  while (!g_stop && (c.count == 0 || seen < c.count) &&
         (c.duration <= 0 || std::chrono::steady_clock::now() - t0 < std::chrono::duration<double>(c.duration)))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wattpipe-everest: an EVerest powermeter_API peer for bring-up and tests"};
  app.require_subcommand(1);
  Common c;
  auto common = [&](CLI::App* s) {
    s->add_option("--broker", c.broker, "MQTT broker HOST:PORT")->capture_default_str();
    s->add_option("--module-id", c.module_id, "meter's module id")->capture_default_str();
    s->add_option("--mqtt-prefix", c.prefix, "topic prefix");
    s->add_option("--mqtt-username", c.username);
    s->add_option("--mqtt-password", c.password);
    s->add_option("--mqtt-cafile", c.cafile);
    s->add_option("--mqtt-certfile", c.certfile);
    s->add_option("--mqtt-keyfile", c.keyfile);
    s->add_option("--duration", c.duration, "stop after this many seconds");
    s->add_option("--count", c.count, "stop after this many messages");
  };
  bool raw = false;
  CLI::App* w = app.add_subcommand("watch", "print powermeter_values, one line each");
  common(w);
  w->add_flag("--json", raw, "print the raw JSON");
  CLI11_PARSE(app, argc, argv);
  if (w->parsed()) return watch(c, raw);
  return 2;
}

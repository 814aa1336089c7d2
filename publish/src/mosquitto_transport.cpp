// SPDX-License-Identifier: Apache-2.0
#include <mosquitto.h>
#include <unistd.h>

#include <mutex>
#include <stdexcept>

#include "wattpipe/publish/mqtt_transport.hpp"

namespace wattpipe::publish {
namespace {

class MosquittoTransport final : public MqttTransport {
 public:
  explicit MosquittoTransport(const MqttOptions& o) : opts_(o) {
    static std::once_flag init;
    std::call_once(init, [] { mosquitto_lib_init(); });
    std::string id = o.client_id.empty() ? "wattpipe-" + std::to_string(::getpid()) : o.client_id;
    m_ = mosquitto_new(id.c_str(), true, this);
    if (m_ == nullptr) throw std::runtime_error("mosquitto_new failed");
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(m_, MOSQ_OPT_TCP_NODELAY, 1);
    if (!o.username.empty()) mosquitto_username_pw_set(m_, o.username.c_str(), o.password.empty() ? nullptr : o.password.c_str());
    if (!o.cafile.empty()) {
      const int rc = mosquitto_tls_set(m_, o.cafile.c_str(), nullptr, o.certfile.empty() ? nullptr : o.certfile.c_str(),
                                       o.keyfile.empty() ? nullptr : o.keyfile.c_str(), nullptr);
      if (rc != MOSQ_ERR_SUCCESS) throw std::runtime_error(std::string("MQTT TLS set-up: ") + mosquitto_strerror(rc));
    }
    mosquitto_connect_callback_set(m_, [](mosquitto*, void* self, int rc) {
      auto* t = static_cast<MosquittoTransport*>(self);
      if (rc == 0) {
        t->connected_ = true;
        if (t->h_ != nullptr) t->h_->on_connected();
      } else {
        t->refused_ = rc;
      }
    });
    mosquitto_disconnect_callback_set(m_, [](mosquitto*, void* self, int rc) {
      auto* t = static_cast<MosquittoTransport*>(self);
      const bool was = t->connected_;
      t->connected_ = false;
      if (was && t->h_ != nullptr) t->h_->on_disconnected(rc);
    });
    mosquitto_message_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message* msg) {
      auto* t = static_cast<MosquittoTransport*>(self);
      if (t->h_ == nullptr || msg->topic == nullptr) return;
      // A zero-length payload has no buffer: hand on an empty view, never a null pointer.
      const std::size_t n = msg->payload != nullptr ? static_cast<std::size_t>(std::max(msg->payloadlen, 0)) : 0;
      t->h_->on_message(msg->topic, n > 0 ? std::string_view(static_cast<const char*>(msg->payload), n)
                                          : std::string_view());
    });
  }
  ~MosquittoTransport() override {
    if (m_ != nullptr) {
      mosquitto_disconnect(m_);
      mosquitto_destroy(m_);
    }
  }

  void set_handler(Handler* h) override { h_ = h; }

  bool connect(std::string& error) override {
    connected_ = false;
    refused_ = 0;
    const int rc = mosquitto_connect(m_, opts_.host.c_str(), opts_.port, opts_.keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS) {
      error = rc == MOSQ_ERR_ERRNO ? std::string("connect: ") + mosquitto_strerror(rc) : mosquitto_strerror(rc);
      return false;
    }
    return true;  // CONNACK arrives through on_readable(); connected() says when
  }
  bool connected() const override { return connected_; }
  int socket() const override { return mosquitto_socket(m_); }
  bool want_write() const override { return mosquitto_want_write(m_); }
  void on_readable() override { check(mosquitto_loop_read(m_, 1)); }
  void on_writable() override { check(mosquitto_loop_write(m_, 1)); }
  void misc() override { check(mosquitto_loop_misc(m_)); }

  bool publish(const std::string& topic, std::string_view payload, int qos, bool retain) override {
    const int rc = mosquitto_publish(m_, nullptr, topic.c_str(), static_cast<int>(payload.size()), payload.data(), qos, retain);
    check(rc);
    return rc == MOSQ_ERR_SUCCESS;
  }
  bool subscribe(const std::string& topic, int qos) override {
    return mosquitto_subscribe(m_, nullptr, topic.c_str(), qos) == MOSQ_ERR_SUCCESS;
  }
  void disconnect() override {
    connected_ = false;  // deliberate: the callback must not report a loss
    mosquitto_disconnect(m_);
  }
  int refused() const { return refused_; }

 private:
  // A failed loop call means the connection is gone.
  void check(int rc) {
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO || rc == MOSQ_ERR_PROTOCOL ||
        rc == MOSQ_ERR_TLS) {
      const bool was = connected_;
      connected_ = false;
      if (mosquitto_socket(m_) >= 0) mosquitto_disconnect(m_);
      if (was && h_ != nullptr) h_->on_disconnected(rc);
    }
  }

  MqttOptions opts_;
  mosquitto* m_ = nullptr;
  Handler* h_ = nullptr;
  bool connected_ = false;
  int refused_ = 0;
};

}  // namespace

std::unique_ptr<MqttTransport> make_mosquitto_transport(const MqttOptions& opts) {
  return std::make_unique<MosquittoTransport>(opts);
}

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
// The MQTT connection behind a small interface, so the publisher can be
// tested with a fake; MosquittoTransport is the real one (libmosquitto,
// driven from the caller's own poll loop: no hidden threads).
//
// Threading: every method from one thread (the MQTT thread). Handler
// callbacks run on that thread, inside on_readable()/on_writable()/misc().
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace wattpipe::publish {

struct MqttOptions {
  std::string host = "127.0.0.1";
  int port = 1883;
  std::string client_id;       // empty: "wattpipe-<module>-<pid>"
  int keepalive_s = 30;
  std::string username, password;
  std::string cafile, certfile, keyfile;  // TLS when cafile is set
};

class MqttTransport {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void on_connected() = 0;
    virtual void on_disconnected(int reason) = 0;
    virtual void on_message(std::string_view topic, std::string_view payload) = 0;
  };

  virtual ~MqttTransport() = default;
  virtual void set_handler(Handler* h) = 0;
  // Blocking connect (TCP, TLS, CONNECT). False with `error` on failure.
  virtual bool connect(std::string& error) = 0;
  [[nodiscard]] virtual bool connected() const = 0;
  // Socket to poll; -1 when not connected.
  [[nodiscard]] virtual int socket() const = 0;
  [[nodiscard]] virtual bool want_write() const = 0;
  virtual void on_readable() = 0;
  virtual void on_writable() = 0;
  // Keepalive pings and timeouts; call at least every second.
  virtual void misc() = 0;
  virtual bool publish(const std::string& topic, std::string_view payload, int qos, bool retain) = 0;
  virtual bool subscribe(const std::string& topic, int qos) = 0;
  virtual void disconnect() = 0;
};

std::unique_ptr<MqttTransport> make_mosquitto_transport(const MqttOptions& opts);

}  // namespace wattpipe::publish

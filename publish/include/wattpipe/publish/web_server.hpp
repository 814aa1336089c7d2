// SPDX-License-Identifier: Apache-2.0
// The live page (docs/web.md): an HTTP and WebSocket server (civetweb) that
// serves the page's assets, compiled into the binary, and pushes an update
// to every connected browser at the update interval: the newest window
// record, the health counters and the transactions as JSON, and the newest
// scope capture as a binary message.
//
// Read-only: GET only; nothing a request says changes the meter.
//
// Threading: construct, start(), stop() from the owning thread. The update
// thread reads the pipeline's triple buffers (it is their only reader) and
// never blocks a pipeline thread; each browser has its own sender thread
// and a one-message mailbox, so a slow or stuck browser only loses its own
// older updates (counted in updates_dropped). civetweb's worker threads
// serve the requests. counters() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "wattpipe/acquire/spsc_ring.hpp"
#include "wattpipe/pipeline/efficiency.hpp"
#include "wattpipe/pipeline/scope.hpp"
#include "wattpipe/pipeline/triple_buffer.hpp"
#include "wattpipe/pipeline/window.hpp"

namespace wattpipe::publish {

struct WebConfig {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free one
  std::string auth_file;                  // htdigest file (user:realm:md5), optional
  std::string realm = "wattpipe";         // the htdigest realm
  std::string cert_file, key_file;        // TLS (PEM), optional; both or neither
  std::int64_t interval_ns = 100'000'000; // one update per interval (50 ms .. 1 s)
  std::string meter_id, module_id, version;
  std::string point;  // this point's name on a stream of several ("car"), else empty
  unsigned max_clients = 16;
};

struct WebSources {
  pipeline::TripleBuffer<pipeline::WindowRecord>* window = nullptr;  // newest window (this server reads it)
  pipeline::TripleBuffer<pipeline::ScopeSnapshot>* scope = nullptr;  // newest scope capture
  acquire::SpscRing<pipeline::StepEvent>* steps = nullptr;           // step events (this server consumes them)
  std::function<std::string()> health;        // a JSON object; must not block (atomics)
  std::function<std::string()> transactions;  // a JSON array; must not block
  // The stream's other measuring points, shown beside this one (a charger's
  // grid input beside its DC output): their newest windows (this server reads them).
  struct Point {
    std::string name, module_id, meter_id;
    pipeline::TripleBuffer<pipeline::WindowRecord>* window = nullptr;
  };
  std::vector<Point> points;
  pipeline::TripleBuffer<pipeline::EfficiencyMapView>* efficiency_map = nullptr;  // two points, optional
};

struct WebCounters {
  std::atomic<std::uint64_t> updates{0};          // update messages built
  std::atomic<std::uint64_t> messages_sent{0};    // WebSocket messages written, all browsers
  std::atomic<std::uint64_t> updates_dropped{0};  // replaced in a browser's mailbox before it was sent
  std::atomic<std::uint64_t> clients{0};          // connected now
  std::atomic<std::uint64_t> clients_refused{0};  // over max_clients
  std::atomic<std::uint64_t> requests{0};         // HTTP requests served
};

class WebServer {
 public:
  // Throws std::runtime_error with a message for the user on a bad address,
  // a port in use, or an unreadable auth, certificate or key file.
  WebServer(WebConfig cfg, WebSources src);
  ~WebServer();
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  void start();
  void stop();
  // The URL the server listens at (with the port it got).
  [[nodiscard]] std::string url() const;
  [[nodiscard]] const WebCounters& counters() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wattpipe::publish

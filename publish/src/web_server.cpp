// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/web_server.hpp"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <cstring>
#include <fstream>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "wattpipe/legal/json_writer.hpp"
#include "wattpipe/publish/analysis_json.hpp"
#include "wattpipe/publish/everest_api.hpp"

namespace wattpipe::publish {

// The page's assets, compiled in (web_assets.cpp, generated from publish/web/).
struct WebAsset {
  const char* path;
  const char* mime;
  const unsigned char* data;
  std::size_t size;
};
extern const WebAsset kWebAssets[];
extern const std::size_t kWebAssetCount;

namespace {

using legal::JsonWriter;

// A browser: its connection, its sender thread and a one-message mailbox per
// kind (the newest update and the newest scope capture).
struct Client {
  mg_connection* conn = nullptr;
  std::mutex m;
  std::condition_variable cv;
  std::shared_ptr<const std::string> text, scope;
  bool closed = false;
  std::thread sender;
};

bool readable(const std::string& path) {
  std::ifstream f(path);
  return f.good();
}


// civetweb 1.15 as Debian builds it crashes on every TLS connection: it calls
// SSL_get_peer_certificate through a table filled by dlsym, and OpenSSL 3
// exports that function only as a macro (civetweb issue 1334), so the entry
// is null. TLS therefore ends here: this front accepts TLS on the public
// address and relays the bytes, WebSocket frames included, to civetweb on a
// loopback port of its own. (Digest authentication stays civetweb's.)
class TlsFront {
 public:
  TlsFront(const std::string& host, int port, const std::string& cert, const std::string& key) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (ctx_ == nullptr) throw std::runtime_error("TLS: cannot create a context");
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str()) != 1)
      throw std::runtime_error(fmt::format("--http-cert: '{}' is not a PEM certificate (chain)", cert));
    if (SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx_) != 1)
      throw std::runtime_error(fmt::format("--http-key: '{}' is not the PEM private key of --http-cert", key));
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
      throw std::runtime_error(fmt::format("--http: '{}' is not an IPv4 address", host));
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0)
      throw std::runtime_error(fmt::format("--http {}:{}: cannot listen there: {}", host, port, std::strerror(errno)));
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~TlsFront() {
    stop();
    if (fd_ >= 0) ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  [[nodiscard]] int port() const noexcept { return port_; }

  void start(int backend_port) {
    backend_ = backend_port;
    accept_ = std::thread([this] { accept_loop(); });
  }
  void stop() {
    if (stopping_.exchange(true)) return;
    ::shutdown(fd_, SHUT_RDWR);
    if (accept_.joinable()) accept_.join();
    {
      std::lock_guard lk(m_);
      for (const auto& c : conns_) ::shutdown(c->fd, SHUT_RDWR);
    }
    for (auto& c : conns_) c->thread.join();
    conns_.clear();
  }

 private:
  void accept_loop() {
    pthread_setname_np(pthread_self(), "wp-web-tls");
    while (!stopping_.load()) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;  // shut down
      }
      // Finished connections: their threads joined here, so none piles up.
      for (auto it = conns_.begin(); it != conns_.end();)
        if ((*it)->done.load()) {
          (*it)->thread.join();
          std::lock_guard lk(m_);
          it = conns_.erase(it);
        } else {
          ++it;
        }
      if (conns_.size() >= kMaxConnections) {
        ::close(c);
        continue;
      }
      auto conn = std::make_unique<Conn>();
      conn->fd = c;
      Conn* raw = conn.get();
      {
        std::lock_guard lk(m_);
        conns_.push_back(std::move(conn));
      }
      raw->thread = std::thread([this, raw] {
        relay(raw->fd);
        raw->done.store(true);
      });
    }
  }

  // One connection: handshake, then bytes both ways until either side ends.
  void relay(int c) {
    timeval tv{10, 0};  // a handshake or a half-sent record that stalls ends the connection
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, c);
    int b = -1;
    if (SSL_accept(ssl) == 1) {
      b = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<std::uint16_t>(backend_));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(b, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) pump(ssl, c, b);
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    if (b >= 0) ::close(b);
    std::lock_guard lk(m_);  // stop() shuts down open sockets under it
    ::shutdown(c, SHUT_RDWR);
  }

  static bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
      const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w, n -= std::size_t(w);
    }
    return true;
  }

  void pump(SSL* ssl, int c, int b) {
    std::array<char, 16384> buf;
    for (;;) {
      pollfd p[2] = {{c, POLLIN, 0}, {b, POLLIN, 0}};
      if (SSL_pending(ssl) == 0 && ::poll(p, 2, 1000) < 0 && errno != EINTR) return;
      if (stopping_.load()) return;
      if (SSL_pending(ssl) > 0 || (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
        const int r = SSL_read(ssl, buf.data(), int(buf.size()));
        if (r <= 0) {
          const int e = SSL_get_error(ssl, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) continue;
          return;
        }
        if (!write_all(b, buf.data(), std::size_t(r))) return;
      }
      if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t r = ::recv(b, buf.data(), buf.size(), 0);
        if (r <= 0) return;
        if (SSL_write(ssl, buf.data(), int(r)) <= 0) return;  // blocking socket: all or error
      }
    }
  }

  static constexpr std::size_t kMaxConnections = 64;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1, port_ = 0, backend_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_;
  struct Conn {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
    ~Conn() {
      if (fd >= 0) ::close(fd);
    }
  };
  std::mutex m_;                             // conns_' list against stop()'s shutdowns
  std::list<std::unique_ptr<Conn>> conns_;   // the accept thread's, then stop()'s
};

}  // namespace

struct WebServer::Impl {
  WebConfig cfg;
  WebSources src;
  WebCounters counters;
  mg_context* ctx = nullptr;
  int port = 0;        // the public one
  int civet_port = 0;  // civetweb's (the public one, or the loopback one behind the TLS front)
  std::string civet_host = "127.0.0.1";
  bool tls = false;
  std::unique_ptr<TlsFront> front;  // with TLS: the public socket; civetweb listens on loopback behind it

  std::mutex clients_m;
  std::vector<std::shared_ptr<Client>> clients;
  std::shared_ptr<const std::string> last_text, last_scope;  // under clients_m

  std::thread updater;
  std::mutex stop_m;
  std::condition_variable stop_cv;
  bool stopping = false;

  pipeline::WindowRecord window{};
  bool have_window = false;
  std::vector<pipeline::WindowRecord> point_windows;  // src.points' newest
  std::vector<bool> have_point;
  std::unique_ptr<pipeline::EfficiencyMapView> map = std::make_unique<pipeline::EfficiencyMapView>();
  std::unique_ptr<pipeline::ScopeSnapshot> scope = std::make_unique<pipeline::ScopeSnapshot>();
  std::uint64_t seq = 0;
  std::deque<std::string> steps;  // the newest step events, JSON, newest last
  std::vector<char> window_buf = std::vector<char>(64 * 1024);

  void run_updates();
  std::string update_text();
  std::string scope_bytes() const;
  void post(const std::shared_ptr<const std::string>& msg, bool is_scope);
  static void send_loop(Impl* self, std::shared_ptr<Client> c);

  // civetweb callbacks
  static int on_request(mg_connection* conn, void* cb);
  static int on_auth(mg_connection* conn, void* cb);
  static int on_ws_connect(const mg_connection* conn, void* cb);
  static void on_ws_ready(mg_connection* conn, void* cb);
  static int on_ws_data(mg_connection* conn, int bits, char* data, std::size_t len, void* cb);
  static void on_ws_close(const mg_connection* conn, void* cb);
};

std::string WebServer::Impl::update_text() {
  auto record_json = [this](const pipeline::WindowRecord& rec, const std::string& meter_id) {
    std::string out = "null";
    JsonWriter w(std::span<char>(window_buf.data(), window_buf.size()));
    const std::string_view v = write_window_record(rec, meter_id, w);
    if (!w.overflow() && !v.empty()) {
      out.assign(v);
      while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    }
    return out;
  };
  const std::string window_json = have_window ? record_json(window, cfg.meter_id) : "null";
  // The other points: [{name, module_id, window}], in stream order.
  std::string points_json = "[";
  for (std::size_t k = 0; k < src.points.size(); ++k) {
    const auto& p = src.points[k];
    points_json += legal::write_json(256, [&](JsonWriter& w) {
      w.separator();
      w.begin_object();
      w.field("name", p.name);
      w.field("module_id", p.module_id);
      w.key("window");
      w.raw("%W");
      w.end_object();
    });
    const std::size_t at = points_json.rfind("%W");
    points_json.replace(at, 2, have_point[k] ? record_json(point_windows[k], p.meter_id) : "null");
  }
  points_json += "]";
  // The efficiency map: {bin_W, bins: [{p_lo_W, p_hi_W, efficiency, E_in_Wh, E_out_Wh, windows}]}.
  std::string map_json = "null";
  if (map->bin_w > 0)
    map_json = legal::write_json(160 * map->count + 64, [&](JsonWriter& w) {
      w.begin_object();
      w.field_fixed("bin_W", map->bin_w, 3);
      w.key("bins");
      write_efficiency_bins(std::span(map->bin.data(), map->count), w);
      w.end_object();
    });
  pipeline::StepEvent e;
  while (src.steps != nullptr && src.steps->try_pop(e)) {
    std::array<char, 1024> buf;
    JsonWriter w(std::span<char>(buf.data(), buf.size()));
    write_step_event(e, cfg.meter_id, w);
    if (w.overflow()) continue;
    steps.emplace_back(w.view());
    if (steps.size() > 20) steps.pop_front();
  }
  const std::string health = src.health ? src.health() : "{}";
  const std::string tx = src.transactions ? src.transactions() : "[]";
  return legal::write_json(window_json.size() + points_json.size() + map_json.size() + health.size() + tx.size() + 512,
                           [&](JsonWriter& w) {
    w.begin_object();
    w.field("type", "update");
    w.field_uint("seq", ++seq);
    w.field("meter_id", cfg.meter_id);
    w.field("module_id", cfg.module_id);
    w.field("version", cfg.version);
    w.field_uint("interval_ms", std::uint64_t(cfg.interval_ns / 1'000'000));
    w.field("point", cfg.point);
    w.key("window");
    w.raw(window_json);
    w.key("points");
    w.raw(points_json);
    w.key("efficiency_map");
    w.raw(map_json);
    w.key("health");
    w.raw(health);
    w.key("web");
    w.begin_object();
    w.field_uint("clients", counters.clients.load(std::memory_order_relaxed));
    w.field_uint("updates_dropped", counters.updates_dropped.load(std::memory_order_relaxed));
    w.field_uint("clients_refused", counters.clients_refused.load(std::memory_order_relaxed));
    w.end_object();
    w.key("transactions");
    w.raw(tx);
    w.key("steps");
    w.begin_array();
    for (const auto& st : steps) w.separator(), w.raw(st);
    w.end_array();
    w.end_object();
  });
}

// docs/web.md, "Scope message": a 48-byte little-endian header, then float32
// minima [channel][column], then maxima.
std::string WebServer::Impl::scope_bytes() const {
  const pipeline::ScopeSnapshot& s = *scope;
  const std::size_t n = std::size_t(s.channels) * s.columns;
  std::string out(48 + 2 * n * sizeof(float), '\0');
  char* p = out.data();
  auto put = [&p](const auto& v) {
    std::memcpy(p, &v, sizeof v);
    p += sizeof v;
  };
  put(std::array<char, 4>{'W', 'P', 'S', 'C'});
  put(std::uint32_t{1});
  put(std::uint32_t{s.channels});
  put(std::uint32_t{s.columns});
  put(s.column_s);
  put(std::int64_t{s.t0_utc_ns});
  put(std::uint32_t(s.layout));
  put(std::uint32_t{s.triggered ? 1u : 0u});
  put(std::uint64_t{s.serial});
  for (const auto* side : {&s.min, &s.max})
    for (unsigned c = 0; c < s.channels; ++c) {
      std::memcpy(p, (*side)[c].data(), s.columns * sizeof(float));
      p += s.columns * sizeof(float);
    }
  return out;
}

void WebServer::Impl::post(const std::shared_ptr<const std::string>& msg, bool is_scope) {
  std::lock_guard lk(clients_m);
  (is_scope ? last_scope : last_text) = msg;
  for (auto& c : clients) {
    {
      std::lock_guard cl(c->m);
      auto& slot = is_scope ? c->scope : c->text;
      if (slot) counters.updates_dropped.fetch_add(1, std::memory_order_relaxed);  // not sent yet: the newer one replaces it
      slot = msg;
    }
    c->cv.notify_one();
  }
}

void WebServer::Impl::run_updates() {
  pthread_setname_np(pthread_self(), "wp-web");
  std::unique_lock lk(stop_m);
  // A fixed rate (deadlines, not sleeps after the work), so a busy machine
  // delays an update but does not thin them out.
  auto next = std::chrono::steady_clock::now();
  while (!stopping) {
    lk.unlock();
    if (src.window != nullptr && src.window->read(window)) have_window = true;
    for (std::size_t k = 0; k < src.points.size(); ++k)
      if (src.points[k].window->read(point_windows[k])) have_point[k] = true;
    if (src.efficiency_map != nullptr) (void)src.efficiency_map->read(*map);
    post(std::make_shared<const std::string>(update_text()), false);
    counters.updates.fetch_add(1, std::memory_order_relaxed);
    if (src.scope != nullptr && src.scope->read(*scope)) post(std::make_shared<const std::string>(scope_bytes()), true);
    lk.lock();
    const auto now = std::chrono::steady_clock::now();
    next += std::chrono::nanoseconds(cfg.interval_ns);
    if (next < now) next = now;  // more than an interval late: start afresh, no burst
    stop_cv.wait_until(lk, next, [this] { return stopping; });
  }
}

void WebServer::Impl::send_loop(Impl* self, std::shared_ptr<Client> c) {
  pthread_setname_np(pthread_self(), "wp-web-send");
  for (;;) {
    std::shared_ptr<const std::string> text, scope;
    {
      std::unique_lock lk(c->m);
      c->cv.wait(lk, [&] { return c->closed || c->text || c->scope; });
      if (c->closed) return;
      text = std::move(c->text);
      scope = std::move(c->scope);
      c->text.reset(), c->scope.reset();
    }
    // The write blocks at most civetweb's request timeout; a browser that
    // does not read is then closed by civetweb.
    if (text && mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_TEXT, text->data(), text->size()) <= 0) return;
    if (scope && mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_BINARY, scope->data(), scope->size()) <= 0) return;
    self->counters.messages_sent.fetch_add((text ? 1 : 0) + (scope ? 1 : 0), std::memory_order_relaxed);
  }
}

int WebServer::Impl::on_request(mg_connection* conn, void* cb) {
  auto* self = static_cast<Impl*>(cb);
  const mg_request_info* ri = mg_get_request_info(conn);
  self->counters.requests.fetch_add(1, std::memory_order_relaxed);
  const bool head = std::strcmp(ri->request_method, "HEAD") == 0;
  if (std::strcmp(ri->request_method, "GET") != 0 && !head) {
    mg_send_http_error(conn, 405, "read-only: GET only");
    return 405;
  }
  std::string_view uri = ri->local_uri != nullptr ? ri->local_uri : "/";
  if (uri == "/") uri = "/index.html";
  if (uri == "/api/state") {
    std::shared_ptr<const std::string> t;
    {
      std::lock_guard lk(self->clients_m);
      t = self->last_text;
    }
    const std::string body = t ? *t : std::string("{}");
    mg_send_http_ok(conn, "application/json", static_cast<long long>(body.size()));
    if (!head) mg_write(conn, body.data(), body.size());
    return 200;
  }
  for (std::size_t k = 0; k < kWebAssetCount; ++k) {
    const WebAsset& a = kWebAssets[k];
    if (uri != a.path) continue;
    mg_send_http_ok(conn, a.mime, static_cast<long long>(a.size));
    if (!head) mg_write(conn, a.data, a.size);
    return 200;
  }
  mg_send_http_error(conn, 404, "not found");
  return 404;
}

int WebServer::Impl::on_auth(mg_connection* conn, void* cb) {
  auto* self = static_cast<Impl*>(cb);
  if (mg_check_digest_access_authentication(conn, self->cfg.realm.c_str(), self->cfg.auth_file.c_str()) > 0) return 1;
  mg_send_digest_access_authentication_request(conn, self->cfg.realm.c_str());
  return 0;
}

int WebServer::Impl::on_ws_connect(const mg_connection*, void* cb) {
  auto* self = static_cast<Impl*>(cb);
  std::lock_guard lk(self->clients_m);
  if (self->clients.size() >= self->cfg.max_clients) {
    self->counters.clients_refused.fetch_add(1, std::memory_order_relaxed);
    return 1;  // refuse
  }
  return 0;
}

void WebServer::Impl::on_ws_ready(mg_connection* conn, void* cb) {
  auto* self = static_cast<Impl*>(cb);
  auto c = std::make_shared<Client>();
  c->conn = conn;
  mg_set_user_connection_data(conn, c.get());
  std::lock_guard lk(self->clients_m);
  // The newest update at once: values on screen without waiting an interval.
  c->text = self->last_text;
  c->scope = self->last_scope;
  c->sender = std::thread(send_loop, self, c);
  self->clients.push_back(c);
  self->counters.clients.store(self->clients.size(), std::memory_order_relaxed);
}

int WebServer::Impl::on_ws_data(mg_connection*, int bits, char*, std::size_t, void*) {
  // Read-only: what a browser sends is ignored; a close frame ends the connection.
  return (bits & 0x0f) == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE ? 0 : 1;
}

void WebServer::Impl::on_ws_close(const mg_connection* conn, void* cb) {
  auto* self = static_cast<Impl*>(cb);
  auto* raw = static_cast<Client*>(mg_get_user_connection_data(conn));
  if (raw == nullptr) return;
  std::shared_ptr<Client> c;
  {
    std::lock_guard lk(self->clients_m);
    auto it = std::find_if(self->clients.begin(), self->clients.end(), [raw](const auto& p) { return p.get() == raw; });
    if (it == self->clients.end()) return;
    c = *it;
    self->clients.erase(it);
    self->counters.clients.store(self->clients.size(), std::memory_order_relaxed);
  }
  {
    std::lock_guard cl(c->m);
    c->closed = true;
  }
  c->cv.notify_one();
  if (c->sender.joinable()) c->sender.join();  // before civetweb frees the connection
}

WebServer::WebServer(WebConfig cfg, WebSources src) : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(cfg);
  impl_->src = std::move(src);
  Impl& m = *impl_;
  m.point_windows.resize(m.src.points.size());
  m.have_point.assign(m.src.points.size(), false);
  m.cfg.interval_ns = std::clamp<std::int64_t>(m.cfg.interval_ns, 50'000'000, 1'000'000'000);
  if (!m.cfg.auth_file.empty() && !readable(m.cfg.auth_file))
    throw std::runtime_error(fmt::format("--http-auth-file: cannot read '{}'", m.cfg.auth_file));
  if (m.cfg.cert_file.empty() != m.cfg.key_file.empty())
    throw std::runtime_error("--http-cert and --http-key go together: give both or neither");
  m.tls = !m.cfg.cert_file.empty();
  for (const auto* f : {&m.cfg.cert_file, &m.cfg.key_file})
    if (m.tls && !readable(*f)) throw std::runtime_error(fmt::format("--http-cert/--http-key: cannot read '{}'", *f));
  const auto colon = m.cfg.listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == m.cfg.listen.size() ||
      m.cfg.listen.find_first_not_of("0123456789", colon + 1) != std::string::npos ||
      m.cfg.listen.size() - colon - 1 > 5 || std::stoi(m.cfg.listen.substr(colon + 1)) > 65535)
    throw std::runtime_error(fmt::format("--http: '{}' is not HOST:PORT", m.cfg.listen));
}

WebServer::~WebServer() { stop(); }

void WebServer::start() {
  Impl& m = *impl_;
  const auto colon = m.cfg.listen.rfind(':');
  const std::string host = m.cfg.listen.substr(0, colon);
  if (m.tls)  // the front binds the public address first: a bad one fails before civetweb starts
    m.front = std::make_unique<TlsFront>(host, std::stoi(m.cfg.listen.substr(colon + 1)), m.cfg.cert_file, m.cfg.key_file);
  mg_init_library(0);
  const std::string ports = m.tls ? std::string("127.0.0.1:0") : m.cfg.listen;
  if (!m.tls && host != "0.0.0.0") m.civet_host = host;
  const char* options[] = {"listening_ports", ports.c_str(), "num_threads", "24", "request_timeout_ms", "1000",
                           "enable_keep_alive", "no", "websocket_timeout_ms", "3600000", nullptr};
  mg_callbacks cb{};
  cb.log_message = [](const mg_connection*, const char* msg) {
    spdlog::warn("web: {}", msg);
    return 1;
  };
  m.ctx = mg_start(&cb, &m, options);
  if (m.ctx == nullptr)
    throw std::runtime_error(fmt::format("--http {}: cannot listen there (a bad address, or the port is in use)", m.cfg.listen));
  mg_server_port sp[4]{};
  if (mg_get_server_ports(m.ctx, 4, sp) > 0) m.port = m.civet_port = sp[0].port;
  if (m.front) {
    m.front->start(m.port);
    m.port = m.front->port();
  }
  if (!m.cfg.auth_file.empty()) mg_set_auth_handler(m.ctx, "/", Impl::on_auth, &m);
  mg_set_websocket_handler(m.ctx, "/ws", Impl::on_ws_connect, Impl::on_ws_ready, Impl::on_ws_data, Impl::on_ws_close,
                           &m);
  mg_set_request_handler(m.ctx, "/", Impl::on_request, &m);
  m.updater = std::thread([&m] { m.run_updates(); });
  spdlog::info("web: live page at {}", url());
}

void WebServer::stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lk(m.stop_m);
    m.stopping = true;
  }
  m.stop_cv.notify_all();
  if (m.updater.joinable()) m.updater.join();
  // Say goodbye to every browser first: civetweb notices a stop only between
  // reads, which takes seconds on an idle WebSocket; a close frame ends the
  // read at once (the browser answers it).
  {
    std::lock_guard lk(m.clients_m);
    for (auto& c : m.clients) mg_websocket_write(c->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "\x03\xe9", 2);  // 1001 going away
  }
  if (m.front) m.front->stop();
  if (m.ctx != nullptr) {
    // civetweb's master thread sees the stop only when its poll of the
    // listening socket returns (up to 2 s): a connection makes it return.
    std::atomic<bool> stopped{false};
    std::thread poke([&] {
      while (!stopped.load()) {
        const int f = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(m.civet_port));
        if (::inet_pton(AF_INET, m.civet_host.c_str(), &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        (void)::connect(f, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::close(f);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    mg_stop(m.ctx);  // closes every WebSocket (on_ws_close joins its sender)
    stopped.store(true);
    poke.join();
    m.ctx = nullptr;
  }
}

std::string WebServer::url() const {
  const auto colon = impl_->cfg.listen.rfind(':');
  std::string host = impl_->cfg.listen.substr(0, colon);
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  return fmt::format("{}://{}:{}/", impl_->tls ? "https" : "http", host, impl_->port);
}

const WebCounters& WebServer::counters() const noexcept { return impl_->counters; }

}  // namespace wattpipe::publish

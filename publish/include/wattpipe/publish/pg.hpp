// SPDX-License-Identifier: Apache-2.0
// A thin RAII layer over libpq for the store and the tools that read it:
// a connection from a libpq connection string, statements, and COPY.
//
// Threading: a Connection belongs to one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <string_view>

struct pg_conn;
struct pg_result;

namespace wattpipe::publish::pg {

// What a failed call says: libpq's message and, when the server sent one,
// its SQLSTATE (five characters, e.g. 23505 for a unique violation).
struct Failure {
  std::string message;
  std::string sqlstate;
  [[nodiscard]] bool ok() const noexcept { return message.empty(); }
};

// Checks a connection string without connecting; empty when libpq reads it.
std::string check_url(const std::string& url);
// "user@host:port/db" of a connection string, never its password.
std::string describe(const std::string& url);

class Connection {
 public:
  // Connects (blocking, at most connect_timeout_s unless the URL says
  // otherwise). On failure, connected() is false and failure() says why;
  // refused() tells a server that answered and said no (authentication, no
  // such database) from one that could not be reached.
  Connection(const std::string& url, std::string_view application_name, int connect_timeout_s = 5);
  ~Connection();
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  [[nodiscard]] bool connected() const noexcept;
  [[nodiscard]] bool refused() const noexcept { return refused_; }
  [[nodiscard]] const Failure& failure() const noexcept { return failure_; }

  // A statement without results; false with failure() set.
  bool exec(const std::string& sql);
  // A query's single value as text ("" for NULL or no row); false on failure.
  bool query_value(const std::string& sql, std::string& value);
  // COPY ... FROM STDIN with `rows` in COPY text; false on failure.
  bool copy_in(const std::string& copy_sql, std::string_view rows);
  // COPY ... TO STDOUT: each chunk (a row) to `sink`; false on failure.
  template <typename Sink>
  bool copy_out(const std::string& copy_sql, Sink&& sink);

  [[nodiscard]] pg_conn* raw() const noexcept { return c_; }

 private:
  bool begin_copy_out(const std::string& sql);
  int next_copy_chunk(char** buf);  // > 0: bytes; -1: done; -2: failed
  void free_chunk(char* buf);
  bool set_failure(pg_result* r);

  pg_conn* c_ = nullptr;
  bool refused_ = false;
  Failure failure_;
};

template <typename Sink>
bool Connection::copy_out(const std::string& copy_sql, Sink&& sink) {
  if (!begin_copy_out(copy_sql)) return false;
  for (;;) {
    char* buf = nullptr;
    const int n = next_copy_chunk(&buf);
    if (n == -1) return true;
    if (n < 0) return false;
    sink(std::string_view(buf, std::size_t(n)));
    free_chunk(buf);
  }
}

}  // namespace wattpipe::publish::pg

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/pg.hpp"

#include <libpq-fe.h>

#include <utility>

#include <fmt/format.h>

namespace wattpipe::publish::pg {

namespace {
std::string trimmed(const char* s) {
  // libpq puts a tab-indented hint on a second line; one line reads better in a log.
  std::string m;
  for (const char* c = s != nullptr ? s : ""; *c != '\0'; ++c) {
    if (*c == '\n' && c[1] == '\t') ++c;  // "\n\t" becomes one space
    m.push_back(*c == '\n' || *c == '\t' ? ' ' : *c);
  }
  while (!m.empty() && m.back() == ' ') m.pop_back();
  return m;
}
}  // namespace

std::string check_url(const std::string& url) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (opts == nullptr) {
    std::string m = err != nullptr ? trimmed(err) : "out of memory";
    PQfreemem(err);
    return m.empty() ? "not a connection string" : m;
  }
  PQconninfoFree(opts);
  return {};
}

std::string describe(const std::string& url) {
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), nullptr);
  if (opts == nullptr) return "(unreadable connection string)";
  std::string user, host, port, db;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view k = o->keyword;
    if (k == "user") user = o->val;
    else if (k == "host" || (k == "hostaddr" && host.empty())) host = o->val;
    else if (k == "port") port = o->val;
    else if (k == "dbname") db = o->val;
    else if (k == "service") db = fmt::format("service={}", o->val);
  }
  PQconninfoFree(opts);
  return fmt::format("{}{}{}{}/{}", user.empty() ? "" : user + "@", host.empty() ? "localhost" : host,
                     port.empty() ? "" : ":", port, db);
}

Connection::Connection(const std::string& url, std::string_view application_name, int connect_timeout_s) {
  // Defaults first: what the URL itself says wins (libpq's expand_dbname).
  const std::string timeout = std::to_string(connect_timeout_s), app(application_name);
  const char* keys[] = {"connect_timeout", "tcp_user_timeout", "application_name", "dbname", nullptr};
  const char* vals[] = {timeout.c_str(), "10000", app.c_str(), url.c_str(), nullptr};
  c_ = PQconnectdbParams(keys, vals, 1);
  // The server's notices ("relation ... already exists, skipping") are not the daemon's to print.
  if (c_ != nullptr) PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);
  if (c_ == nullptr) {
    failure_.message = "out of memory";
    return;
  }
  if (PQstatus(c_) != CONNECTION_OK) {
    failure_.message = trimmed(PQerrorMessage(c_));
    // The server answered and said no (FATAL: authentication, role, database), it wanted a password we
    // lack, or libpq refused an option's value (a port that is not a number): nothing a retry mends.
    const std::string& m = failure_.message;
    refused_ = PQconnectionNeedsPassword(c_) != 0 || m.find("FATAL:") != std::string::npos ||
               m.find("for connection option") != std::string::npos || m.starts_with("invalid ");
  }
}

Connection::~Connection() {
  if (c_ != nullptr) PQfinish(c_);
}

Connection::Connection(Connection&& o) noexcept
    : c_(std::exchange(o.c_, nullptr)), refused_(o.refused_), failure_(std::move(o.failure_)) {}

Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    if (c_ != nullptr) PQfinish(c_);
    c_ = std::exchange(o.c_, nullptr);
    refused_ = o.refused_;
    failure_ = std::move(o.failure_);
  }
  return *this;
}

bool Connection::connected() const noexcept { return c_ != nullptr && PQstatus(c_) == CONNECTION_OK; }

bool Connection::set_failure(pg_result* r) {
  const char* state = r != nullptr ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  failure_.sqlstate = state != nullptr ? state : "";
  failure_.message = trimmed(r != nullptr && *PQresultErrorMessage(r) != 0 ? PQresultErrorMessage(r) : PQerrorMessage(c_));
  if (failure_.message.empty()) failure_.message = "the connection failed";
  return false;
}

bool Connection::exec(const std::string& sql) {
  PGresult* r = PQexec(c_, sql.c_str());
  const ExecStatusType st = PQresultStatus(r);
  const bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) set_failure(r);
  PQclear(r);
  return ok;
}

bool Connection::query_value(const std::string& sql, std::string& value) {
  PGresult* r = PQexec(c_, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) set_failure(r);
  else value = PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);
  return ok;
}

bool Connection::copy_in(const std::string& copy_sql, std::string_view rows) {
  PGresult* r = PQexec(c_, copy_sql.c_str());
  if (PQresultStatus(r) != PGRES_COPY_IN) {
    set_failure(r);
    PQclear(r);
    return false;
  }
  PQclear(r);
  // Pieces of at most 1 MiB: libpq copies each into its output buffer.
  constexpr std::size_t kPiece = 1 << 20;
  bool sent = true;
  for (std::size_t off = 0; sent && off < rows.size(); off += kPiece) {
    const std::size_t n = std::min(kPiece, rows.size() - off);
    sent = PQputCopyData(c_, rows.data() + off, int(n)) == 1;
  }
  if (PQputCopyEnd(c_, sent ? nullptr : "wattpipe: sending failed") != 1) sent = false;
  bool ok = sent;
  while ((r = PQgetResult(c_)) != nullptr) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK && ok) ok = set_failure(r);
    PQclear(r);
  }
  if (!sent && failure_.message.empty()) set_failure(nullptr);
  return ok;
}

bool Connection::begin_copy_out(const std::string& sql) {
  PGresult* r = PQexec(c_, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COPY_OUT;
  if (!ok) set_failure(r);
  PQclear(r);
  return ok;
}

int Connection::next_copy_chunk(char** buf) {
  const int n = PQgetCopyData(c_, buf, 0);
  if (n >= 0) return n == 0 ? next_copy_chunk(buf) : n;
  bool ok = n == -1;
  PGresult* r = nullptr;
  while ((r = PQgetResult(c_)) != nullptr) {
    if (PQresultStatus(r) != PGRES_COMMAND_OK && ok) ok = set_failure(r);
    PQclear(r);
  }
  if (n == -2) set_failure(nullptr);
  return ok ? -1 : -2;
}

void Connection::free_chunk(char* buf) { PQfreemem(buf); }

}  // namespace wattpipe::publish::pg

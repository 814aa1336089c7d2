// SPDX-License-Identifier: Apache-2.0
// EVerest powermeter API (everest_api/1/powermeter/{module_id}): topics,
// request parsing (simdjson), and the JSON of every message we send.
// The contract is the AsyncAPI file publish/spec/powermeter_API.yaml.
//
// Threading: plain functions and values; RequestParser keeps a simdjson
// parser and belongs to one thread (the MQTT thread).
#pragma once

#include <cstdint>
#include <memory>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wattpipe/acquire/acquisition.hpp"
#include "wattpipe/pipeline/window.hpp"
#include "wattpipe/legal/json_writer.hpp"
#include "wattpipe/legal/legal.hpp"

namespace wattpipe::publish {

using legal::format_timestamp_ms;
using legal::JsonWriter;

struct Topics {
  std::string base;  // [prefix/]everest_api/1/powermeter/{module_id}
  std::string powermeter_values, public_key_ocmf, communication_check;
  std::string start_transaction, stop_transaction, heartbeat;
  // wattpipe's own tree, [prefix/]wattpipe/{module_id}: analysis per publish,
  // step events, and the test bench's requested current (docs/analysis.md).
  std::string wattpipe_base, analysis, events, demand;

  static Topics make(std::string_view module_id, std::string_view prefix = {});
};

// replyTo rules of the interop notes: non-empty, no '+', '#' or NUL, at most
// 65535 bytes, valid UTF-8.
bool valid_reply_topic(std::string_view t) noexcept;
bool valid_utf8(std::string_view s) noexcept;

enum class TransactionStatus { ok, not_supported, unexpected_error };
std::string_view to_string(TransactionStatus s) noexcept;

// The legal part takes a start request as EVerest sends it.
using StartTransactionRequest = legal::TransactionStart;

struct StopTransactionRequest {
  std::string transaction_id;  // "" = every open transaction
};

// A parsed request: what to do and where to answer.
struct Request {
  enum class Kind { start, stop } kind = Kind::start;
  std::optional<std::string> reply_to;  // absent: execute, answer nothing
  StartTransactionRequest start;
  StopTransactionRequest stop;
};

struct ParseResult {
  bool ok = false;
  Request request;
  std::string error;                    // why not ok
  std::optional<std::string> reply_to;  // where to send UNEXPECTED_ERROR, when known and valid
};

class RequestParser {
 public:
  RequestParser();
  ~RequestParser();
  // Parses a start_transaction or stop_transaction message. Never throws.
  ParseResult parse(Request::Kind kind, std::string_view payload);
  // Parses a heartbeat (bare JSON unsigned integer).
  std::optional<std::uint64_t> parse_heartbeat(std::string_view payload);
  // Parses a demand (wattpipe/{module}/demand): a finite JSON number of
  // amperes, or {"current_A": number}.
  std::optional<double> parse_demand(std::string_view payload);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SignedMeterValue {
  std::string signed_meter_data, signing_method, encoding_method, public_key;
  std::int64_t timestamp_utc_ns = 0;
};

struct StartTransactionReply {
  TransactionStatus status = TransactionStatus::ok;
  std::string error;
  std::optional<std::int64_t> min_stop_utc_ns, max_stop_utc_ns;
  std::optional<SignedMeterValue> signed_meter_value;
};

struct StopTransactionReply {
  TransactionStatus status = TransactionStatus::ok;
  std::string error;
  std::optional<SignedMeterValue> signed_meter_value, start_signed_meter_value;
  // Two points (the car side): the energy into and out of the charger over the
  // transaction and their ratio, beside the signed records, never in them
  // (the reply's schema takes additional properties). NaN: not sent.
  double energy_in_wh = std::numeric_limits<double>::quiet_NaN();
  double energy_out_wh = std::numeric_limits<double>::quiet_NaN();
  double efficiency = std::numeric_limits<double>::quiet_NaN();
};

// Bare reply objects (never wrapped) for the replyTo topic.
std::string write_reply(const StartTransactionReply& r);
std::string write_reply(const StopTransactionReply& r);

// The powermeter_values message for a window: every field the schema offers
// that we measure; never NaN (a non-finite value drops its object). Returns
// the view into `w`'s buffer (>= 2 KiB is enough). `stamp` adds
// wattpipe_closed_ns (steady clock of the window's close) for benchmarks.
std::string_view write_powermeter_values(const pipeline::WindowRecord& rec, std::string_view meter_id, JsonWriter& w,
                                         bool stamp = false);

// A window record for the high-frequency log (one JSON Lines record): the
// powermeter_values fields plus seq, start/end, samples, frame drops, S, N,
// PF and the window's own energy, and the losses so far when given. (>= 4 KiB buffer.)
std::string_view write_window_record(const pipeline::WindowRecord& rec, std::string_view meter_id, JsonWriter& w,
                                     const acquire::LossCounts* losses = nullptr);

}  // namespace wattpipe::publish

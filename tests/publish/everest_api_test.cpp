// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/everest_api.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "wattpipe/legal/legal.hpp"
#include "wattpipe/publish/meter_transactions.hpp"
#include "wattpipe/publish/schema.hpp"

using namespace wattpipe;
using namespace wattpipe::publish;

namespace {

const Schema& schema() {
  static const Schema s;
  return s;
}

pipeline::WindowRecord window(bool dc, unsigned phases, bool neutral) {
  pipeline::WindowRecord r;
  r.dc = dc;
  r.phases = static_cast<std::uint8_t>(phases);
  r.neutral = neutral;
  r.end_utc_ns = 1727421674127000000;  // 2024-09-27T07:21:14.127Z
  for (unsigned k = 0; k < phases; ++k) {
    r.ph[k].urms_v = 230.1234;
    r.ph[k].irms_a = 16.5;
    r.ph[k].p_w = 3600.25;
    r.ph[k].q1_var = 1200;
    r.ph[k].u_mean_v = 800.5;
    r.ph[k].i_mean_a = -20;
    r.registers.import_phase[k].uwh = 1234567 * (k + 1);
  }
  r.registers.import_total.uwh = 1234567;
  r.registers.export_total.uwh = 42;
  r.p_total_w = 10800.75;
  r.q1_total_var = 3600;
  r.frequency_valid = !dc;
  r.frequency_hz = 49.98765;
  r.phase_seq_valid = phases == 3;
  r.in_rms_a = 0.25;
  return r;
}

std::string values_json(const pipeline::WindowRecord& r) {
  std::array<char, 4096> buf;
  JsonWriter w(buf);
  return std::string(write_powermeter_values(r, "METER-1", w));
}

}  // namespace

TEST(PowermeterValues, EveryLayoutValidatesAgainstTheContract) {
  for (auto [dc, phases, neutral] : {std::tuple{false, 3u, true}, std::tuple{false, 3u, false},
                                     std::tuple{false, 1u, false}, std::tuple{true, 1u, false}}) {
    const std::string json = values_json(window(dc, phases, neutral));
    EXPECT_EQ(schema().validate("Powermeter", json), std::vector<std::string>{}) << json;
    EXPECT_NE(json.find("\"timestamp\":\"2024-09-27T07:21:14.127Z\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"energy_Wh_import\":{\"total\":1.234567"), std::string::npos) << json;
    EXPECT_NE(json.find("\"meter_id\":\"METER-1\""), std::string::npos);
    if (dc) {
      EXPECT_NE(json.find("\"voltage_V\":{\"DC\":800.500}"), std::string::npos) << json;
      EXPECT_NE(json.find("\"current_A\":{\"DC\":-20.000}"), std::string::npos) << json;
      EXPECT_EQ(json.find("frequency_Hz"), std::string::npos);
    } else {
      EXPECT_NE(json.find("\"frequency_Hz\":{\"L1\":49.9877}"), std::string::npos) << json;
      EXPECT_NE(json.find("\"VAR\":{\"total\":3600.000"), std::string::npos) << json;
      EXPECT_EQ(json.find("\"N\":") != std::string::npos, neutral) << json;
    }
    EXPECT_EQ(json.find("\"phase_seq_error\"") != std::string::npos, phases == 3) << json;
  }
}

TEST(PowermeterValues, NonFiniteValuesDropTheirObjectNeverTheMessage) {
  auto r = window(false, 3, true);
  r.ph[1].urms_v = std::numeric_limits<double>::quiet_NaN();
  r.ph[0].q1_var = std::numeric_limits<double>::infinity();
  const std::string json = values_json(r);
  EXPECT_EQ(json.find("voltage_V"), std::string::npos);
  EXPECT_EQ(json.find("VAR"), std::string::npos);
  EXPECT_EQ(json.find("nan"), std::string::npos);
  EXPECT_EQ(json.find("inf"), std::string::npos);
  EXPECT_EQ(schema().validate("Powermeter", json), std::vector<std::string>{}) << json;
}

TEST(Schema, CatchesWhatEverestWouldReject) {
  EXPECT_FALSE(schema().validate("Powermeter", R"({"timestamp":"x","energy_Wh_import":{"total":1}})").empty())
      << "bad date-time";
  EXPECT_FALSE(schema().validate("Powermeter", R"({"timestamp":"2024-01-01T00:00:00Z"})").empty())
      << "energy_Wh_import is required";
  EXPECT_FALSE(schema().validate("Powermeter", R"({"timestamp":"2024-01-01T00:00:00Z","energy_Wh_import":{"L1":1}})")
                   .empty())
      << "Energy.total is required";
  EXPECT_FALSE(
      schema().validate("Powermeter", R"({"timestamp":"2024-01-01T00:00:00Z","energy_Wh_import":{"total":"1"}})").empty())
      << "numbers are numbers";
  EXPECT_FALSE(schema().validate("StopTransactionReply", R"({"status":"MAYBE"})").empty()) << "enum";
  EXPECT_TRUE(schema().validate("StopTransactionReply", R"({"status":"OK","extra":1})").empty())
      << "additionalProperties: true";
}

TEST(Replies, AreBareObjectsThatValidate) {
  StartTransactionReply s;
  s.min_stop_utc_ns = 1'700'000'000'000'000'000;
  s.signed_meter_value = SignedMeterValue{"OCMF|{}|{}", "ECDSA-secp256r1-SHA256", "OCMF", "3059", 1'700'000'000'000'000'000};
  const std::string sj = write_reply(s);
  EXPECT_EQ(sj.rfind("{\"status\":\"OK\"", 0), 0u) << sj;
  EXPECT_EQ(schema().validate("StartTransactionReply", sj), std::vector<std::string>{}) << sj;
  StopTransactionReply e{TransactionStatus::unexpected_error, "unknown transaction id \"x\"", {}, {}};
  const std::string ej = write_reply(e);
  EXPECT_EQ(ej, R"({"status":"UNEXPECTED_ERROR","error":"unknown transaction id \"x\""})");
  EXPECT_EQ(schema().validate("StopTransactionReply", ej), std::vector<std::string>{});
}

TEST(Topics, BaseAndPrefix) {
  const Topics t = Topics::make("pm1");
  EXPECT_EQ(t.powermeter_values, "everest_api/1/powermeter/pm1/m2e/powermeter_values");
  EXPECT_EQ(t.stop_transaction, "everest_api/1/powermeter/pm1/e2m/stop_transaction");
  EXPECT_EQ(Topics::make("pm1", "site/7").heartbeat, "site/7/everest_api/1/powermeter/pm1/e2m/heartbeat");
  EXPECT_EQ(Topics::make("pm1", "site/7/").heartbeat, "site/7/everest_api/1/powermeter/pm1/e2m/heartbeat");
}

TEST(ReplyTopic, RulesOfTheInteropNotes) {
  EXPECT_TRUE(valid_reply_topic("everest_api/1/powermeter/x/m2e/reply/1234"));
  EXPECT_FALSE(valid_reply_topic(""));
  EXPECT_FALSE(valid_reply_topic("a/+/b"));
  EXPECT_FALSE(valid_reply_topic("a/#"));
  EXPECT_FALSE(valid_reply_topic(std::string_view("a\0b", 3)));
  EXPECT_FALSE(valid_reply_topic(std::string(65536, 'a')));
  EXPECT_TRUE(valid_reply_topic(std::string(65535, 'a')));
  EXPECT_FALSE(valid_reply_topic("bad\xff utf8"));
}

namespace {
constexpr const char* kStart =
    R"({"headers":{"replyTo":"r/1"},"payload":{"evse_id":"E1","transaction_id":"T1","identification_status":"ASSIGNED",)"
    R"("identification_flags":["RFID_PLAIN","OCPP_AUTH"],"identification_type":"ISO14443","identification_data":"A1B2",)"
    R"("identification_level":"HEARSAY","tariff_text":"0.42 EUR/kWh","unknown_key":[1,2]}})";
}

TEST(RequestParser, StartTransactionAllFields) {
  RequestParser p;
  const ParseResult r = p.parse(Request::Kind::start, kStart);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(*r.request.reply_to, "r/1");
  EXPECT_EQ(r.request.start.evse_id, "E1");
  EXPECT_EQ(r.request.start.transaction_id, "T1");
  EXPECT_EQ(r.request.start.identification_flags, (std::vector<std::string>{"RFID_PLAIN", "OCPP_AUTH"}));
  EXPECT_EQ(r.request.start.identification_level, "HEARSAY");
  EXPECT_EQ(r.request.start.tariff_text, "0.42 EUR/kWh");
}

TEST(RequestParser, StopAcceptsBothPayloadFormsAndNoReplyTo) {
  RequestParser p;
  auto a = p.parse(Request::Kind::stop, R"({"headers":{"replyTo":"r/2"},"payload":"T9"})");
  ASSERT_TRUE(a.ok);
  EXPECT_EQ(a.request.stop.transaction_id, "T9");
  auto b = p.parse(Request::Kind::stop, R"( { "payload" : { "transaction_id" : "T8" } , "headers":{} } )");
  ASSERT_TRUE(b.ok) << b.error;
  EXPECT_EQ(b.request.stop.transaction_id, "T8");
  EXPECT_FALSE(b.request.reply_to.has_value());
  auto c = p.parse(Request::Kind::stop, R"({"headers":{"replyTo":"r/3"},"payload":""})");
  ASSERT_TRUE(c.ok);
  EXPECT_TRUE(c.request.stop.transaction_id.empty()) << "empty id: cancel all";
}

struct Bad {
  const char* name;
  Request::Kind kind;
  std::string payload;
  bool reply;  // a reply topic is known
};

class MalformedRequests : public ::testing::TestWithParam<Bad> {};

TEST_P(MalformedRequests, AreRejectedWithAReasonAndReplyWherePossible) {
  RequestParser p;
  const Bad& b = GetParam();
  const ParseResult r = p.parse(b.kind, b.payload);
  EXPECT_FALSE(r.ok) << b.name;
  EXPECT_FALSE(r.error.empty()) << b.name;
  EXPECT_EQ(r.reply_to.has_value(), b.reply) << b.name << ": " << r.error;
  if (b.reply) {
    EXPECT_EQ(*r.reply_to, "r/x");
  }
}

namespace {
std::string start_with(const std::string& field_json) {
  return R"({"headers":{"replyTo":"r/x"},"payload":{"evse_id":"E","transaction_id":"T","identification_status":"ASSIGNED","identification_flags":[],"identification_type":"NONE")" +
         field_json + "}}";
}
std::string deep(int n) { return std::string(n, '[') + std::string(n, ']'); }
}  // namespace

INSTANTIATE_TEST_SUITE_P(
    Table, MalformedRequests,
    ::testing::Values(
        Bad{"not JSON", Request::Kind::start, "hello", false},
        Bad{"not JSON but replyTo findable", Request::Kind::stop, R"({"headers":{"replyTo":"r/x"},"payload":)", true},
        Bad{"array root", Request::Kind::start, "[1,2]", false},
        Bad{"missing payload", Request::Kind::start, R"({"headers":{"replyTo":"r/x"}})", true},
        Bad{"payload wrong type", Request::Kind::start, R"({"headers":{"replyTo":"r/x"},"payload":3})", true},
        Bad{"stop payload number", Request::Kind::stop, R"({"headers":{"replyTo":"r/x"},"payload":3})", true},
        Bad{"stop object without id", Request::Kind::stop, R"({"headers":{"replyTo":"r/x"},"payload":{}})", true},
        Bad{"missing evse_id", Request::Kind::start,
            R"({"headers":{"replyTo":"r/x"},"payload":{"transaction_id":"T","identification_status":"ASSIGNED","identification_flags":[],"identification_type":"NONE"}})",
            true},
        Bad{"evse_id wrong type", Request::Kind::start,
            R"({"headers":{"replyTo":"r/x"},"payload":{"evse_id":7,"transaction_id":"T","identification_status":"ASSIGNED","identification_flags":[],"identification_type":"NONE"}})",
            true},
        Bad{"unknown status", Request::Kind::start,
            R"({"headers":{"replyTo":"r/x"},"payload":{"evse_id":"E","transaction_id":"T","identification_status":"MAYBE","identification_flags":[],"identification_type":"NONE"}})",
            true},
        Bad{"unknown flag", Request::Kind::start,
            R"({"headers":{"replyTo":"r/x"},"payload":{"evse_id":"E","transaction_id":"T","identification_status":"ASSIGNED","identification_flags":["NOPE"],"identification_type":"NONE"}})",
            true},
        Bad{"five flags", Request::Kind::start,
            R"({"headers":{"replyTo":"r/x"},"payload":{"evse_id":"E","transaction_id":"T","identification_status":"ASSIGNED","identification_flags":["RFID_NONE","RFID_NONE","RFID_NONE","RFID_NONE","RFID_NONE"],"identification_type":"NONE"}})",
            true},
        Bad{"unknown level", Request::Kind::start, start_with(R"(,"identification_level":"GODLIKE")"), true},
        Bad{"tariff too long", Request::Kind::start, start_with(R"(,"tariff_text":")" + std::string(251, 'x') + "\""), true},
        Bad{"1 MiB payload", Request::Kind::start,
            R"({"headers":{"replyTo":"r/x"},"payload":{"evse_id":")" + std::string(1 << 20, 'x') + "\"}}", true},
        Bad{"deep nesting", Request::Kind::start, R"({"headers":{"replyTo":"r/x"},"payload":)" + deep(5000) + "}", true},
        Bad{"invalid UTF-8", Request::Kind::start, start_with(",\"identification_data\":\"\xc3\x28\""), true},
        Bad{"replyTo with wildcard", Request::Kind::start, R"({"headers":{"replyTo":"r/#"},"payload":{}})", false},
        Bad{"replyTo empty", Request::Kind::stop, R"({"headers":{"replyTo":""},"payload":"T"})", false},
        Bad{"replyTo not a string", Request::Kind::stop, R"({"headers":{"replyTo":5},"payload":"T"})", false},
        Bad{"headers not an object", Request::Kind::stop, R"({"headers":"r/x","payload":"T"})", false}),
    [](const ::testing::TestParamInfo<Bad>& i) {
      std::string n = i.param.name;
      for (char& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return n;
    });

TEST(RequestParser, HeartbeatIsABareUnsignedInteger) {
  RequestParser p;
  EXPECT_EQ(p.parse_heartbeat("42"), 42u);
  EXPECT_EQ(p.parse_heartbeat("18446744073709551615"), 18446744073709551615ull);
  EXPECT_FALSE(p.parse_heartbeat("-1"));
  EXPECT_FALSE(p.parse_heartbeat("\"42\""));
  EXPECT_FALSE(p.parse_heartbeat("{}"));
  EXPECT_FALSE(p.parse_heartbeat(""));
}

TEST(RequestParser, EmptyPayloadsAreMalformedBeforeAnyParser) {
  // A zero-length MQTT payload comes as (nullptr, 0): never handed to simdjson.
  RequestParser p;
  for (auto kind : {Request::Kind::start, Request::Kind::stop}) {
    const ParseResult r = p.parse(kind, std::string_view());
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "empty payload");
    EXPECT_FALSE(r.reply_to);
  }
  EXPECT_FALSE(p.parse_heartbeat(std::string_view()));
  EXPECT_FALSE(p.parse_heartbeat(""));
}

TEST(JsonWriter, EscapesAndReplacesInvalidUtf8) {
  std::array<char, 256> buf;
  legal::JsonWriter w(buf);
  w.string(std::string_view("a\"b\\c\n\x01\xe2\x82\xac\xff", 11));
  EXPECT_EQ(std::string(w.view()), "\"a\\\"b\\\\c\\u000a\\u0001\xe2\x82\xac\xef\xbf\xbd\"");
}

TEST(JsonWriter, NumbersAreExactFixedPoint) {
  std::array<char, 256> buf;
  legal::JsonWriter w(buf);
  w.scaled(1234567, 6);
  w.raw(' ');
  w.scaled(-5, 3);
  w.raw(' ');
  w.fixed(0.0005, 3);
  w.raw(' ');
  w.fixed(-229.9996, 3);
  w.raw(' ');
  w.fixed(std::numeric_limits<double>::quiet_NaN(), 3);
  EXPECT_EQ(std::string(w.view()), "1.234567 -0.005 0.001 -230.000 0");
  EXPECT_TRUE(w.bad_number());
}

TEST(JsonWriter, TimestampsAcrossCalendarEdges) {
  char ts[24];
  legal::format_timestamp_ms(0, ts);
  EXPECT_EQ(std::string(ts, 24), "1970-01-01T00:00:00.000Z");
  legal::format_timestamp_ms(951782400999000000, ts);  // 2000-02-29 (leap day) 00:00:00.999
  EXPECT_EQ(std::string(ts, 24), "2000-02-29T00:00:00.999Z");
  legal::format_timestamp_ms(4102444799123456789, ts);
  EXPECT_EQ(std::string(ts, 24), "2099-12-31T23:59:59.123Z");
}

TEST(JsonWriter, OverflowIsReportedNotWritten) {
  std::array<char, 8> buf;
  legal::JsonWriter w(buf);
  w.string("much too long for eight bytes");
  EXPECT_TRUE(w.overflow());
  EXPECT_LE(w.view().size(), 8u);
}

// A stop with no id closes every open transaction (EvseManager clears
// dangling ones so at start-up). The reply carries one transaction: the last
// closed, its records and its own energy balance, never another's.
TEST(MeterTransactions, AStopThatClosesSeveralRepliesWithTheLastOnesRecordsAndBalance) {
  legal::OpenError oe;
  legal::MeterOptions mo;
  mo.state_dir = "none";
  const auto meter = legal::Meter::open(mo, oe);
  ASSERT_NE(meter, nullptr) << oe.message;
  MeterTransactions tx(*meter);
  legal::Reading r;
  r.utc_ns = 1'764'800'000'000'000'000;
  r.clock_synced = true;
  r.dc = true;
  auto at = [&](std::int64_t out_uwh, double in_wh) {  // the car side's register, the grid side's energy
    r.registers.import_total.uwh = out_uwh;
    r.utc_ns += 1'000'000'000;
    tx.input_energy(in_wh);
    return r;
  };
  StartTransactionRequest a, b;
  a.evse_id = "1", a.transaction_id = "tx-a", a.identification_status = "ASSIGNED";
  b.evse_id = "2", b.transaction_id = "tx-b", b.identification_status = "ASSIGNED";
  const StartTransactionReply ra = tx.start(a, at(1'000'000, 100));  // out 1 Wh, in 100 Wh
  const StartTransactionReply rb = tx.start(b, at(3'000'000, 110));  // out 3 Wh, in 110 Wh
  ASSERT_EQ(ra.status, TransactionStatus::ok) << ra.error;
  ASSERT_EQ(rb.status, TransactionStatus::ok) << rb.error;
  ASSERT_EQ(meter->open_transactions().size(), 2u);
  const StopTransactionReply s = tx.stop(StopTransactionRequest{""}, at(43'000'000, 160));  // out 43 Wh, in 160 Wh
  ASSERT_EQ(s.status, TransactionStatus::ok) << s.error;
  EXPECT_TRUE(meter->open_transactions().empty()) << "both closed";
  // Which one was closed last is the journal's order; the reply is that one's, whole.
  ASSERT_TRUE(s.start_signed_meter_value && ra.signed_meter_value && rb.signed_meter_value);
  const bool b_last = s.start_signed_meter_value->signed_meter_data == rb.signed_meter_value->signed_meter_data;
  const bool a_last = s.start_signed_meter_value->signed_meter_data == ra.signed_meter_value->signed_meter_data;
  ASSERT_NE(a_last, b_last) << "the reply's begin record is one of the two";
  EXPECT_DOUBLE_EQ(s.energy_in_wh, b_last ? 50.0 : 60.0);
  EXPECT_DOUBLE_EQ(s.energy_out_wh, b_last ? 40.0 : 42.0);
  EXPECT_DOUBLE_EQ(s.efficiency, b_last ? 40.0 / 50 : 42.0 / 60);
  // A second stop finds nothing open: refused, with its reason.
  const StopTransactionReply again = tx.stop(StopTransactionRequest{""}, at(44'000'000, 161));
  EXPECT_EQ(again.status, TransactionStatus::unexpected_error);
  EXPECT_NE(again.error.find("no open transaction"), std::string::npos) << again.error;
}

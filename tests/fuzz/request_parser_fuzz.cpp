// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the EVerest request parser (start/stop requests,
// heartbeats and wattpipe's demand messages straight from MQTT). Also built as a plain corpus replay test
// (WATTPIPE_CORPUS_REPLAY) so CI runs every input found so far.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <simdjson.h>

#include "wattpipe/publish/everest_api.hpp"

using namespace wattpipe::publish;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

// The invariants: never throws or crashes; a reply topic is only ever a
// valid one; every reply we would send is JSON that parses.
void one(const std::uint8_t* data, std::size_t size) {
  static RequestParser parser;
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  for (auto kind : {Request::Kind::start, Request::Kind::stop}) {
    const ParseResult r = parser.parse(kind, s);
    if (r.reply_to) check(valid_reply_topic(*r.reply_to));
    if (r.ok) {
      check(r.error.empty());
      if (kind == Request::Kind::start) {
        const auto& st = r.request.start.identification_status;
        check(st == "ASSIGNED" || st == "NOT_ASSIGNED");
        check(r.request.start.identification_flags.size() <= 4);
        check(r.request.start.tariff_text.size() <= 250);
      }
    } else {
      check(!r.error.empty());
      const std::string reply = kind == Request::Kind::start
                                    ? write_reply(StartTransactionReply{TransactionStatus::unexpected_error, r.error, {}, {}, {}})
                                    : write_reply(StopTransactionReply{TransactionStatus::unexpected_error, r.error, {}, {}});
      simdjson::dom::parser p;
      simdjson::dom::element doc;
      check(p.parse(reply).get(doc) == simdjson::SUCCESS);
    }
  }
  (void)parser.parse_heartbeat(s);
  // A demand is a finite number or nothing.
  if (const auto a = parser.parse_demand(s)) check(std::isfinite(*a));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  one(data, size);
  return 0;
}

#ifdef WATTPIPE_CORPUS_REPLAY
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

int main(int argc, char** argv) {
  std::size_t n = 0;
  for (int i = 1; i < argc; ++i)
    for (const auto& e : std::filesystem::directory_iterator(argv[i])) {
      std::ifstream f(e.path(), std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      one(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      ++n;
    }
  std::cout << "replayed " << n << " inputs\n";
  return n > 0 ? 0 : 1;
}
#endif

// SPDX-License-Identifier: Apache-2.0
// The transaction rules with OCMF-signed readings (German Eichrecht): start
// records the begin reading (taken by the processing thread at an exact
// sample position) and returns the signed begin record; stop signs one
// record holding the begin and the end reading. One transaction per EVSE: a
// start on an EVSE with one open aborts that one first (TX A). A repeated
// start returns the same record. Energy measured across a restart or a
// source outage, or begun while the source is down, is flagged EF "E".
// Open transactions and the pagination counter persist in the journal,
// which is written before any record leaves.
//
// Private to the legal part (docs/legal.md).
//
// Threading: one thread (the MQTT thread).
#pragma once

#include <optional>
#include <string>

#include "ocmf.hpp"
#include "transaction_journal.hpp"
#include "wattpipe/acquire/log_limit.hpp"
#include "wattpipe/legal/legal.hpp"

namespace wattpipe::legal {

struct TransactionOptions {
  MeterInfo meter;
  double min_stop_s = 0, max_stop_s = 0;  // > 0: reported in start results
};

class Transactions {
 public:
  Transactions(ocmf::Signer signer, TransactionJournal& journal, TransactionOptions opts);

  StartResult start(const TransactionStart& req, const Reading& reading);
  // An empty id closes every open transaction.
  StopResult stop(const std::string& id, const Reading& reading);
  [[nodiscard]] const std::string& public_key_hex() const noexcept { return signer_.public_key_hex(); }

 private:
  // Signs the end record of `t` at `reading` (TX `tx`) and forgets `t`.
  std::optional<ClosedTransaction> close(const JournalTransaction& t, const Reading& reading, char tx,
                                         std::string& error);

  ocmf::Signer signer_;
  TransactionJournal& journal_;
  TransactionOptions opts_;
  acquire::LogLimit log_limit_{100'000'000};  // request-level lines: at most 10 a second
};

}  // namespace wattpipe::legal

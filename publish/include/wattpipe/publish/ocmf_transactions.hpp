// SPDX-License-Identifier: Apache-2.0
// Transactions for EVerest with OCMF-signed readings (German Eichrecht):
// start records the begin reading (taken by the processing thread at an
// exact sample position) and replies with the signed begin record; stop
// signs one record holding the begin and the end reading. Open transactions
// (one per EVSE) and the pagination counter persist in the journal.
//
// Threading: the MQTT thread only (through TransactionHandler), except
// view_json(), which any thread may call.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "wattpipe/acquire/log_limit.hpp"
#include "wattpipe/pipeline/ocmf.hpp"
#include "wattpipe/pipeline/transaction_journal.hpp"
#include "wattpipe/publish/publisher.hpp"

namespace wattpipe::publish {

struct OcmfOptions {
  pipeline::ocmf::MeterInfo meter;
  double min_stop_s = 0, max_stop_s = 0;  // > 0: reported in start replies
};

class OcmfTransactions final : public TransactionHandler {
 public:
  OcmfTransactions(pipeline::ocmf::Signer signer, pipeline::TransactionJournal& journal, OcmfOptions opts);

  StartTransactionReply start(const StartTransactionRequest& req, const pipeline::Reading& reading) override;
  StopTransactionReply stop(const StopTransactionRequest& req, const pipeline::Reading& reading) override;
  [[nodiscard]] std::string public_key_hex() const override { return signer_.public_key_hex(); }

  [[nodiscard]] std::size_t open_count() const noexcept { return journal_.open_transactions().size(); }

  // Any thread: the open and the last kViewClosed closed transactions with
  // their OCMF records and whether each verifies against the meter's key, as
  // a JSON array (docs/web.md). Rebuilt by the MQTT thread after every start
  // and stop, so readers never wait for it.
  static constexpr std::size_t kViewClosed = 20;
  [[nodiscard]] std::shared_ptr<const std::string> view_json() const {
    const std::lock_guard lock(view_mutex_);
    return view_;
  }
  // Owner thread, before the MQTT thread starts: keep the view (the live
  // page is on). Off, starts and stops pay nothing for it.
  void enable_view();

 private:
  // A record and its verification, done once (records never change).
  struct Checked {
    std::string record, reason, pagination;
    bool verifies = false;
  };
  struct Closed {
    std::string id, evse_id;
    Checked begin, end;
  };
  Checked check(const std::string& record) const;
  const Checked& begin_checked(const pipeline::JournalTransaction& t);
  void refresh_view();

  // Signs the end record of `t` at `reading` and forgets `t`. Empty on failure (with error).
  std::optional<StopTransactionReply> close(const pipeline::JournalTransaction& t, const pipeline::Reading& reading,
                                            char tx, std::string& error);
  SignedMeterValue smv(const std::string& record, std::int64_t utc_ns) const;

  pipeline::ocmf::Signer signer_;
  pipeline::TransactionJournal& journal_;
  OcmfOptions opts_;
  acquire::LogLimit log_limit_{100'000'000};  // request-level lines: at most 10 a second
  bool view_on_ = false;
  std::deque<Closed> closed_;                   // newest first
  std::map<std::string, Checked> open_checked_; // begin records of open transactions, by id
  // A mutex, not std::atomic<std::shared_ptr>: GCC 12's implementation of
  // that unlocks a load with a relaxed store, which ThreadSanitizer reports
  // as a race with the next store (the web thread reads, this one writes a
  // few times a second; neither is a pipeline thread).
  mutable std::mutex view_mutex_;
  std::shared_ptr<const std::string> view_;
};

}  // namespace wattpipe::publish

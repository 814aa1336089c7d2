// SPDX-License-Identifier: Apache-2.0
// EVerest's start/stop_transaction on the legal part's transaction rules:
// requests go in as the legal part takes them, its signed records come back
// as EVerest's replies. Also keeps the live page's view of the open and the
// last closed transactions, with whether each record verifies.
//
// Threading: the MQTT thread only (through TransactionHandler), except
// view_json(), which any thread may call.
#pragma once

#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "wattpipe/legal/legal.hpp"
#include "wattpipe/publish/publisher.hpp"
#include "wattpipe/publish/store.hpp"

namespace wattpipe::publish {

class MeterTransactions final : public TransactionHandler {
 public:
  explicit MeterTransactions(legal::Meter& meter) : meter_(meter) {}

  StartTransactionReply start(const StartTransactionRequest& req, const legal::Reading& reading) override;
  StopTransactionReply stop(const StopTransactionRequest& req, const legal::Reading& reading) override;
  [[nodiscard]] std::string public_key_hex() const override { return meter_.public_key_hex(); }
  void input_energy(double wh) override { input_wh_ = wh; }

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
  // Owner thread, before the MQTT thread starts: every start and stop also
  // goes to the database store.
  void set_store(Store* store) noexcept { store_ = store; }

 private:
  // A record and its verification, done once (records never change).
  struct Checked {
    std::string record, reason, pagination;
    bool verifies = false;
  };
  struct Closed {
    std::string id, evse_id;
    Checked begin, end;
    double e_in_wh, e_out_wh, efficiency;  // two points; NaN otherwise
  };
  // Two points: where a transaction began on the input's and the output's energy.
  struct Began {
    double input_wh;
    std::int64_t net_uwh;
  };
  struct Balance {
    double e_in_wh, e_out_wh, efficiency;
  };
  Balance balance(const std::string& id, const legal::Reading& end);
  Checked check(const std::string& record) const;
  Checked checked_begin(const std::string& id, const std::string& record) const;
  // Each closed transaction's balance (two points), in the order closed.
  std::vector<Balance> note_closed(const std::vector<legal::ClosedTransaction>& closed, const legal::Reading& at);
  void refresh_view();
  SignedMeterValue smv(const legal::SignedRecord& r) const;

  void to_store(const std::string& id, const std::string& evse_id, const legal::SignedRecord& begin,
                const legal::SignedRecord* end, const Balance* balance = nullptr);

  legal::Meter& meter_;
  Store* store_ = nullptr;
  bool view_on_ = false;
  std::deque<Closed> closed_;                   // newest first
  std::map<std::string, Checked> open_checked_; // begin records of open transactions, by id
  double input_wh_ = std::numeric_limits<double>::quiet_NaN();
  std::map<std::string, Began> began_;           // two points: open transactions, by id
  // A mutex, not std::atomic<std::shared_ptr>: GCC 12's implementation of
  // that unlocks a load with a relaxed store, which ThreadSanitizer reports
  // as a race with the next store (the web thread reads, this one writes a
  // few times a second; neither is a pipeline thread).
  mutable std::mutex view_mutex_;
  std::shared_ptr<const std::string> view_;
};

}  // namespace wattpipe::publish

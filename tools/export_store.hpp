// SPDX-License-Identifier: Apache-2.0
// wattpipe-export --store: a module's windows and steps read back from the
// database store (docs/store.md), as JSON objects with the table's column
// names, one per row, in time order: the same shape the window-log export
// reads from a JSONL file.
//
// Threading: one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace wattpipe::tools {

class StoreReader {
 public:
  // Throws std::runtime_error with libpq's reason when it cannot connect.
  StoreReader(const std::string& url, std::string module_id);
  ~StoreReader();
  // The module's first window start (ns since the epoch); -1 when it has none.
  std::int64_t first_ns();
  std::uint64_t windows_between(std::int64_t lo_ns, std::int64_t hi_ns);
  // Windows with start_ns, end_ns and their spectra; then steps, with
  // "event":"step" and t_start_ns. Throws on a failed query.
  void windows(std::int64_t lo_ns, std::int64_t hi_ns, const std::function<void(std::string_view)>& row);
  void steps(std::int64_t lo_ns, std::int64_t hi_ns, const std::function<void(std::string_view)>& row);
  [[nodiscard]] const std::string& target() const noexcept { return target_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string target_;
};

}  // namespace wattpipe::tools

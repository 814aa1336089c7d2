// SPDX-License-Identifier: Apache-2.0
// Latest-value slot between one writer and one reader: the writer never
// waits, the reader always gets the newest complete value (older ones are
// conflated away). Three buffers rotate through an atomic index swap.
//
// Threading: write() from one writer thread, read() from one reader thread.
//
// Memory ordering: the writer fills its back buffer, then exchanges it into
// the middle with acq_rel; the reader's acq_rel exchange of the middle pairs
// with it, so the buffer's contents are visible before the reader copies it.
// The reader's release half hands its old buffer back before the writer can
// reuse it.
#pragma once

#include <atomic>
#include <cstdint>

namespace wattpipe::acquire {

template <typename T>
class TripleBuffer {
 public:
  // Writer thread only.
  void write(const T& v) {
    buf_[back_].value = v;
    publish();
  }
  // Writer thread only: fill the value in place (no copy of a large T), then
  // publish() it. The back buffer holds an older value, not a blank one.
  T& back_buffer() noexcept { return buf_[back_].value; }
  void publish() noexcept {
    back_ = middle_.exchange(static_cast<std::uint8_t>(back_ | kFresh), std::memory_order_acq_rel) & kIndex;
  }

  // Reader thread only. True (and `out` set) when a value newer than the last
  // read one was written.
  bool read(T& out) {
    if (!fresh()) return false;
    front_ = middle_.exchange(front_, std::memory_order_acq_rel) & kIndex;
    out = buf_[front_].value;
    return true;
  }

  // Reader thread only. True when read() would return a value.
  [[nodiscard]] bool fresh() const noexcept { return (middle_.load(std::memory_order_acquire) & kFresh) != 0; }

 private:
  static constexpr std::uint8_t kIndex = 3, kFresh = 4;
  struct alignas(64) Slot {
    T value{};
  };
  Slot buf_[3];
  alignas(64) std::atomic<std::uint8_t> middle_{1};
  alignas(64) std::uint8_t back_ = 0;   // writer's
  alignas(64) std::uint8_t front_ = 2;  // reader's
};

}  // namespace wattpipe::acquire

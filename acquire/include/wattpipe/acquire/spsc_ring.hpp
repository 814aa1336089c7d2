// SPDX-License-Identifier: Apache-2.0
// Bounded lock-free single-producer single-consumer ring.
//
// Threading: exactly one producer thread and one consumer thread. Methods
// marked "Producer thread only." must only be called from the producer,
// "Consumer thread only." only from the consumer. capacity() may be called
// from anywhere; size_approx() from anywhere (the value may be stale).
//
// Memory ordering: the producer owns write_idx_, the consumer owns read_idx_.
// Both indices count up forever (never wrapped); slot = index & mask_.
//  - The producer fills a slot, then publishes it with a release store of
//    write_idx_; the consumer's acquire load of write_idx_ pairs with it, so
//    the slot contents are visible before the consumer reads them.
//  - The consumer finishes with a slot, then frees it with a release store of
//    read_idx_; the producer's acquire load of read_idx_ pairs with it, so the
//    consumer's reads of the slot happen before the producer overwrites it.
//  - Each side keeps a cached copy of the other side's index on its own cache
//    line and reloads the shared index only when the cache says full/empty,
//    so in steady state each side touches the other's line once per lap.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace wattpipe::acquire {

inline constexpr std::size_t kCacheLine = 64;

// Spin-wait hint for busy loops. The ring uses it on its failing paths: a
// caller that finds the ring empty (or full) and polls again at once would
// pull the other side's index line over on every try, slowing the side that
// has work; a pause costs a poller nothing, it has nothing to do.
// (Measured in bench/bm_spsc_ring.cpp.)
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

template <typename T>
class SpscRing {
  static_assert(std::is_default_constructible_v<T>, "slots are preallocated");
  static_assert(std::is_move_assignable_v<T>);

 public:
  // Any thread, before the ring is shared. Capacity is rounded up to a power of two.
  explicit SpscRing(std::size_t capacity)
      : capacity_(checked_capacity(capacity)), mask_(capacity_ - 1), slots_(std::make_unique<T[]>(capacity_)) {}

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // Any thread.
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  // Any thread; a snapshot that may be stale by the time it is used.
  [[nodiscard]] std::size_t size_approx() const noexcept {
    const std::size_t r = cons_.read_idx.load(std::memory_order_acquire);
    const std::size_t w = prod_.write_idx.load(std::memory_order_acquire);
    return w >= r ? w - r : 0;
  }

  // ---- producer side -----------------------------------------------------

  // Producer thread only. False when full.
  bool try_push(const T& v) { return emplace_one([&](T& slot) { slot = v; }); }
  // Producer thread only. False when full (v is left untouched).
  bool try_push(T&& v) { return emplace_one([&](T& slot) { slot = std::move(v); }); }

  // Producer thread only. Copies as many items as fit; one release store.
  std::size_t try_push_n(std::span<const T> items) {
    const std::size_t w = prod_.write_idx.load(std::memory_order_relaxed);
    const std::size_t n = std::min(items.size(), free_slots(w, items.size()));
    if (n == 0) return 0;
    const std::size_t first = w & mask_;
    const std::size_t head = std::min(n, capacity_ - first);
    std::copy_n(items.begin(), head, slots_.get() + first);
    std::copy_n(items.begin() + head, n - head, slots_.get());
    // Release: pairs with the consumer's acquire load of write_idx.
    prod_.write_idx.store(w + n, std::memory_order_release);
    return n;
  }

  // Producer thread only. Zero-copy: a slot to fill in place, or nullptr when
  // full. The slot holds whatever it held before. Make it visible with publish().
  [[nodiscard]] T* claim() noexcept {
    const std::size_t w = prod_.write_idx.load(std::memory_order_relaxed);
    if (free_slots(w, 1) == 0) return nullptr;
    return &slots_[w & mask_];
  }

  // Producer thread only. Publishes the slot returned by the last claim().
  void publish() noexcept {
    const std::size_t w = prod_.write_idx.load(std::memory_order_relaxed);
    // Release: pairs with the consumer's acquire load of write_idx.
    prod_.write_idx.store(w + 1, std::memory_order_release);
  }

  // ---- consumer side -----------------------------------------------------

  // Consumer thread only. False when empty.
  bool try_pop(T& out) {
    const std::size_t r = cons_.read_idx.load(std::memory_order_relaxed);
    const std::size_t avail = available(r, 1);
    if (avail == 0) return false;
    // Once per cache line, fetch a line a few lines ahead that is already
    // published (never the producer's current line).
    if (avail > kPrefetchAhead + kPerLine && (r & (kPerLine - 1)) == 0)
      __builtin_prefetch(&slots_[(r + kPrefetchAhead) & mask_], 0);
    out = std::move(slots_[r & mask_]);
    // Release: pairs with the producer's acquire load of read_idx.
    cons_.read_idx.store(r + 1, std::memory_order_release);
    return true;
  }

  // Consumer thread only. Moves out as many items as are available; one release store.
  std::size_t try_pop_n(std::span<T> out) {
    const std::size_t r = cons_.read_idx.load(std::memory_order_relaxed);
    const std::size_t n = std::min(out.size(), available(r, out.size()));
    if (n == 0) return 0;
    const std::size_t first = r & mask_;
    const std::size_t head = std::min(n, capacity_ - first);
    std::move(slots_.get() + first, slots_.get() + first + head, out.begin());
    std::move(slots_.get(), slots_.get() + (n - head), out.begin() + head);
    // Release: pairs with the producer's acquire load of read_idx.
    cons_.read_idx.store(r + n, std::memory_order_release);
    return n;
  }

  // Consumer thread only. Zero-copy: the oldest published slot, or nullptr when empty.
  [[nodiscard]] T* front() noexcept { return peek(0); }

  // Consumer thread only. The i-th published slot after the front (0 = front),
  // or nullptr when fewer than i+1 are published. Lets the consumer look ahead
  // without releasing.
  [[nodiscard]] T* peek(std::size_t i) noexcept {
    const std::size_t r = cons_.read_idx.load(std::memory_order_relaxed);
    if (available(r, i + 1) <= i) return nullptr;
    return &slots_[(r + i) & mask_];
  }

  // Consumer thread only. Frees the n oldest slots (n <= published count).
  void release(std::size_t n = 1) noexcept {
    const std::size_t r = cons_.read_idx.load(std::memory_order_relaxed);
    // Release: pairs with the producer's acquire load of read_idx.
    cons_.read_idx.store(r + n, std::memory_order_release);
  }

 private:
  template <typename Fill>
  bool emplace_one(Fill&& fill) {
    const std::size_t w = prod_.write_idx.load(std::memory_order_relaxed);
    if (free_slots(w, 1) == 0) return false;
    fill(slots_[w & mask_]);
    // Release: pairs with the consumer's acquire load of write_idx.
    prod_.write_idx.store(w + 1, std::memory_order_release);
    return true;
  }

  static std::size_t checked_capacity(std::size_t c) {
    if (c > (std::size_t{1} << 40)) throw std::length_error("SpscRing: capacity too large");
    return std::bit_ceil(std::max<std::size_t>(c, 2));
  }

  // Producer side: free slots, refreshing the cached read index only when the
  // cache cannot show `wanted` free slots.
  std::size_t free_slots(std::size_t w, std::size_t wanted) noexcept {
    std::size_t free = capacity_ - (w - prod_.cached_read);
    if (free < wanted) {
      // Acquire: pairs with the consumer's release store of read_idx.
      prod_.cached_read = cons_.read_idx.load(std::memory_order_acquire);
      free = capacity_ - (w - prod_.cached_read);
      if (free == 0) {
        // Still full: back off before the caller polls again, so the
        // consumer keeps its index line (see cpu_relax).
        for (int k = 0; k < 64; ++k) cpu_relax();
      }
    }
    return free;
  }

  // Consumer side: published slots, refreshing the cached write index only
  // when the cache cannot show `wanted` of them.
  std::size_t available(std::size_t r, std::size_t wanted) noexcept {
    std::size_t avail = cons_.cached_write - r;
    if (avail < wanted) {
      // Acquire: pairs with the producer's release store of write_idx.
      cons_.cached_write = prod_.write_idx.load(std::memory_order_acquire);
      avail = cons_.cached_write - r;
      if (avail < wanted) cpu_relax();
    }
    return avail;
  }

  static constexpr std::size_t kPerLine = std::max<std::size_t>(1, std::bit_floor(kCacheLine / sizeof(T)));
  static constexpr std::size_t kPrefetchAhead = 4 * kPerLine;

  // Read-only after construction: shared by both sides without false sharing.
  alignas(kCacheLine) const std::size_t capacity_;
  const std::size_t mask_;
  const std::unique_ptr<T[]> slots_;

  struct alignas(kCacheLine) Producer {
    std::atomic<std::size_t> write_idx{0};
    std::size_t cached_read{0};  // producer's copy of cons_.read_idx
  } prod_;

  struct alignas(kCacheLine) Consumer {
    std::atomic<std::size_t> read_idx{0};
    std::size_t cached_write{0};  // consumer's copy of prod_.write_idx
  } cons_;

  static_assert(sizeof(Producer) == kCacheLine && sizeof(Consumer) == kCacheLine,
                "each side's indices own a full cache line");
  static_assert(std::atomic<std::size_t>::is_always_lock_free);
};

}  // namespace wattpipe::acquire

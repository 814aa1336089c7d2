// SPDX-License-Identifier: Apache-2.0
// Heap allocation counting for tests and benchmarks that prove the hot path
// allocates nothing. Replaces the global operator new/delete: include this
// header in exactly one translation unit of a test or benchmark binary, never
// in a library.
//
// Threading: every thread counts into its own slot (found on its first
// allocation); the readers may run on any thread.
//
// Memory ordering: relaxed counters; readers compare snapshots taken while
// the counted threads are known to run.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace wattpipe::alloc_counter {

inline constexpr int kMaxThreads = 256;

struct Slot {
  std::atomic<pthread_t> id{};
  std::atomic<std::uint64_t> allocations{0};
};

inline Slot g_slots[kMaxThreads];
inline std::atomic<int> g_used{0};
inline std::atomic<std::uint64_t> g_total{0};
inline thread_local Slot* t_slot = nullptr;

inline void count() noexcept {
  g_total.fetch_add(1, std::memory_order_relaxed);
  if (t_slot == nullptr) {
    const int s = g_used.fetch_add(1, std::memory_order_relaxed);
    if (s >= kMaxThreads) return;
    t_slot = &g_slots[s];
    t_slot->id.store(pthread_self(), std::memory_order_relaxed);
  }
  t_slot->allocations.fetch_add(1, std::memory_order_relaxed);
}

// Every allocation of the process so far.
inline std::uint64_t total() noexcept { return g_total.load(std::memory_order_relaxed); }

// Allocations so far by the live threads whose name starts with `prefix`.
inline std::uint64_t of_threads(const char* prefix) noexcept {
  std::uint64_t sum = 0;
  const int n = g_used.load() < kMaxThreads ? g_used.load() : kMaxThreads;
  for (int k = 0; k < n; ++k) {
    char name[32] = {0};
    if (pthread_getname_np(g_slots[k].id.load(), name, sizeof name) != 0) continue;
    if (std::strncmp(name, prefix, std::strlen(prefix)) == 0) sum += g_slots[k].allocations.load();
  }
  return sum;
}

inline void* allocate(std::size_t n, std::size_t align) {
  count();
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                              : std::malloc(n ? n : 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace wattpipe::alloc_counter

void* operator new(std::size_t n) { return wattpipe::alloc_counter::allocate(n, 0); }
void* operator new[](std::size_t n) { return wattpipe::alloc_counter::allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return wattpipe::alloc_counter::allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return wattpipe::alloc_counter::allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the benchmarks: pinning threads to CPUs.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <thread>

namespace wattpipe::bench {

// Pins the calling thread to `cpu` modulo the CPUs present; returns false if not permitted.
inline bool pin_to(unsigned cpu) {
  const unsigned n = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % n, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

// Undoes pin_to for the calling thread.
inline void unpin() {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned c = 0; c < std::max(1u, std::thread::hardware_concurrency()); ++c) CPU_SET(c, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

}  // namespace wattpipe::bench

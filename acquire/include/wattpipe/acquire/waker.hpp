// SPDX-License-Identifier: Apache-2.0
// Wakes a thread that sleeps in poll() on an eventfd, but only when it said it
// is about to sleep, so a busy producer makes no system calls.
//
// Threading: arm()/drain()/fd() by the one sleeping thread; notify() by any
// number of producer threads.
//
// Memory ordering: seq_cst on both sides (Dekker): the sleeper stores armed
// then checks for work; a producer publishes work then exchanges armed. One
// of them always sees the other, so no wake-up is lost.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>

namespace wattpipe::acquire {

class Waker {
 public:
  Waker() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) throw std::runtime_error("eventfd failed");
  }
  ~Waker() { ::close(fd_); }
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;

  // Sleeping thread: call before the last check for work, then poll fd().
  void arm() noexcept {
    armed_.store(true, std::memory_order_seq_cst);
    // The sleeper's checks for work that follow must not move above the store.
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
  // Sleeping thread: after waking.
  void drain() noexcept {
    armed_.store(false, std::memory_order_relaxed);
    std::uint64_t v;
    while (::read(fd_, &v, sizeof v) > 0) {
    }
  }
  // Sleeping thread: it did not sleep after all (no system call; a wake-up
  // written meanwhile stays in the fd and ends the next poll at once).
  void disarm() noexcept { armed_.store(false, std::memory_order_relaxed); }
  [[nodiscard]] int fd() const noexcept { return fd_; }

  // Any thread: wake the sleeper whether or not it is armed (stop requests).
  void wake() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto r = ::write(fd_, &one, sizeof one);
  }

  // Any producer: whether the sleeper is armed (relaxed: a caller that must
  // not miss it puts a seq_cst fence between its publishing and this).
  [[nodiscard]] bool armed() const noexcept { return armed_.load(std::memory_order_relaxed); }

  // Any producer, after publishing work.
  void notify() noexcept {
    if (armed_.exchange(false, std::memory_order_seq_cst)) {
      const std::uint64_t one = 1;
      [[maybe_unused]] const auto r = ::write(fd_, &one, sizeof one);
    }
  }

 private:
  int fd_;
  std::atomic<bool> armed_{false};
};

}  // namespace wattpipe::acquire

// SPDX-License-Identifier: Apache-2.0
// The service manager's notification protocol (systemd's sd_notify, through
// libsystemd): READY=1 when the meter is up, WATCHDOG=1 while its threads make
// progress, STOPPING=1 at the end. Without NOTIFY_SOCKET (not run as a
// Type=notify service) every call does nothing. docs/deploy.md.
//
// Threading: one thread (Daemon::run's).
#pragma once

#include <cstdint>
#include <string>

namespace wattpipe::publish {

class ServiceNotifier {
 public:
  ServiceNotifier();
  // Half the service's WatchdogSec in ns (how often to feed it); 0: no watchdog.
  [[nodiscard]] std::int64_t watchdog_interval_ns() const noexcept { return watchdog_ns_; }
  void ready(const std::string& status);
  void watchdog();
  void status(const std::string& status);
  void stopping();

 private:
  std::int64_t watchdog_ns_ = 0;
};

}  // namespace wattpipe::publish

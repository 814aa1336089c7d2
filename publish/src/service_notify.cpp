// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/service_notify.hpp"

#include <systemd/sd-daemon.h>

namespace wattpipe::publish {

ServiceNotifier::ServiceNotifier() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_ns_ = static_cast<std::int64_t>(usec) * 1000 / 2;
}

void ServiceNotifier::ready(const std::string& status) { sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str()); }
void ServiceNotifier::watchdog() { sd_notify(0, "WATCHDOG=1"); }
void ServiceNotifier::status(const std::string& status) { sd_notifyf(0, "STATUS=%s", status.c_str()); }
void ServiceNotifier::stopping() { sd_notify(0, "STOPPING=1"); }

}  // namespace wattpipe::publish

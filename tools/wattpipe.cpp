// SPDX-License-Identifier: Apache-2.0
// wattpipe: the daemon. Everything lives in wattpipe::publish::Daemon.
#include <cstdio>

#include <spdlog/spdlog.h>

#include "wattpipe/publish/config.hpp"
#include "wattpipe/publish/daemon.hpp"

int main(int argc, char** argv) {
  wattpipe::publish::Config cfg;
  std::string error;
  switch (wattpipe::publish::parse_config(argc, argv, cfg, error)) {
    case wattpipe::publish::ParseOutcome::exit_ok: return 0;
    case wattpipe::publish::ParseOutcome::bad:
      std::fprintf(stderr, "wattpipe: %s\n", error.c_str());
      return 2;
    case wattpipe::publish::ParseOutcome::run: break;
  }
  wattpipe::publish::setup_logging(cfg.log_level);
  wattpipe::publish::Daemon daemon(std::move(cfg));
  return daemon.run();
}

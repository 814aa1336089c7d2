// SPDX-License-Identifier: Apache-2.0
// What every tool's command line shares: --version, and the exit codes the
// README lists (0 done, 1 run-time failure, 2 bad usage, configuration or
// input), also for CLI11's own parse errors (its codes are not these).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "wattpipe/legal/legal.hpp"

namespace wattpipe::tools {

inline constexpr int kExitDone = 0, kExitFailure = 1, kExitUsage = 2;

// --version prints "<name> <version> (wattpipe-legal <v> sha256:<id>)":
// which legally relevant software this build carries (docs/legal.md).
inline void add_version(CLI::App& app, const char* name) {
  app.set_version_flag("--version", std::string(name) + " " + WATTPIPE_VERSION + " (" +
                                        wattpipe::legal::software_id_text() + ")");
}

// Parses the command line: -1 to go on, otherwise the exit code (0 after
// --help or --version, 2 for bad usage, with CLI11's message).
inline int parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitDone : kExitUsage;
  }
}

}  // namespace wattpipe::tools

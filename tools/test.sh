#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tools/test.sh [ctest args...]: installs the missing Debian packages, builds
# into build/ (Release), and runs the whole CTest suite. Non-zero on any failure.
# WATTPIPE_CMAKE_ARGS adds CMake options, e.g. -DWATTPIPE_SANITIZE=thread
# (use another build dir for that: WATTPIPE_BUILD_DIR=build-tsan).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/deps.sh
ensure_packages
build="${WATTPIPE_BUILD_DIR:-build}"
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${WATTPIPE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j2
# Tests in parallel, two per core: most of them wait on daemons, brokers and
# databases (the whole suite used 105 s of CPU in 218 s on 2 cores with one
# per core), and they wait on progress, not on time, so they hold under load.
# WATTPIPE_TEST_JOBS=1 runs them one by one.
ctest --test-dir "$build" --output-on-failure -j "${WATTPIPE_TEST_JOBS:-$(( $(nproc) * 2 ))}" "$@"

// SPDX-License-Identifier: Apache-2.0
// wattpipe-bench's database store part (bench_store.cpp).
//
// Threading: the calling thread (it starts the store's own).
#pragma once

#include <cstdint>
#include <string>

namespace wattpipe::tools {

// Starts a private PostgreSQL under `tmp` on `port`, and measures the store's
// rows/s against psql's COPY of the same rows, twice each, alternated; a JSON
// object. Throws std::runtime_error when the server cannot be had.
std::string bench_store(const std::string& tmp, int port, std::uint64_t rows);

}  // namespace wattpipe::tools

// SPDX-License-Identifier: Apache-2.0
// The TripleBuffer lives in acquire (the legal part hands register snapshots
// over with it too); pipeline code keeps its short name.
#pragma once

#include "wattpipe/acquire/triple_buffer.hpp"

namespace wattpipe::pipeline {
using acquire::TripleBuffer;
}  // namespace wattpipe::pipeline

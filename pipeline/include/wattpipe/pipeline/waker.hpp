// SPDX-License-Identifier: Apache-2.0
// The Waker lives in acquire (the acquisition thread wakes the processing
// thread with it); pipeline code keeps its short name.
#pragma once

#include "wattpipe/acquire/waker.hpp"

namespace wattpipe::pipeline {
using acquire::Waker;
}  // namespace wattpipe::pipeline

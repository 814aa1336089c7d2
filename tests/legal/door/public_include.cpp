// SPDX-License-Identifier: Apache-2.0
// The control of the door test: the public header compiles from a non-legal target.
#include "wattpipe/legal/legal.hpp"

const wattpipe::legal::SoftwareId& door_probe_id() { return wattpipe::legal::software_id(); }

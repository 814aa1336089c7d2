// SPDX-License-Identifier: Apache-2.0
// Must not compile: a non-legal target reaching a private header of the legal
// part (tests/integration/test_legal.py builds it and expects the failure).
#include "state_store.hpp"

int door_probe_private() { return int(wattpipe::legal::RegisterStore::kSlots); }

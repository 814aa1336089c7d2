// SPDX-License-Identifier: Apache-2.0
// The software identification, from the header the build generates over
// the legal part's sources (legal/software_id.cmake).
#include "software_id.inc"
#include "wattpipe/legal/legal.hpp"

namespace wattpipe::legal {

const SoftwareId& software_id() noexcept {
  static const SoftwareId id{generated::kName, generated::kVersion, generated::kSha256, generated::kFiles};
  return id;
}

std::string software_id_text() {
  return std::string(generated::kName) + " " + generated::kVersion + " sha256:" + generated::kSha256;
}

std::string software_id_firmware() {
  return std::string(generated::kName) + "-" + generated::kVersion + "-" + generated::kSha256;
}

std::string_view software_manifest() noexcept { return generated::kManifest; }

}  // namespace wattpipe::legal

# SPDX-License-Identifier: Apache-2.0
# Writes the AsyncAPI YAML into a C++ source file (raw string literal), so
# tools carry the contract without the source tree.
file(READ "${IN}" yaml)
file(WRITE "${OUT}" "// Generated from publish/spec/powermeter_API.yaml; do not edit.\n#include <string_view>\nnamespace wattpipe::publish {\nstd::string_view powermeter_api_yaml() noexcept {\n  static constexpr char kYaml[] = R\"WPSPEC(${yaml})WPSPEC\";\n  return {kYaml, sizeof kYaml - 1};\n}\n}  // namespace wattpipe::publish\n")

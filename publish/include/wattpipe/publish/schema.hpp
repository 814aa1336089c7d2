// SPDX-License-Identifier: Apache-2.0
// A JSON Schema validator for the subset the AsyncAPI contract uses (type,
// required, properties, enum, items, min/maxItems, min/maxLength, $ref,
// format date-time). The contract itself is compiled into the library, so
// tools validate against the real YAML without needing the source tree.
//
// Threading: a Schema is immutable after construction; validate() may run
// on any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wattpipe::publish {

// The AsyncAPI YAML (publish/spec/powermeter_API.yaml) as built in.
std::string_view powermeter_api_yaml() noexcept;

class Schema {
 public:
  // From the built-in contract, or from YAML text.
  Schema();
  explicit Schema(std::string_view yaml);
  ~Schema();
  Schema(Schema&&) noexcept;

  // Validates `json` against components.schemas.<name>. Returns the errors
  // (empty when valid), each with a JSON-pointer-like path.
  [[nodiscard]] std::vector<std::string> validate(std::string_view name, std::string_view json) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// RFC 3339 date-time (as JSON Schema's format: date-time).
bool is_rfc3339(std::string_view s) noexcept;

}  // namespace wattpipe::publish

// SPDX-License-Identifier: Apache-2.0
#include "wattpipe/publish/schema.hpp"

#include <cmath>
#include <regex>

#include <simdjson.h>
#include <yaml-cpp/yaml.h>

namespace wattpipe::publish {

bool is_rfc3339(std::string_view s) noexcept {
  static const std::regex re(R"(^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$)");
  return std::regex_match(s.begin(), s.end(), re);
}

struct Schema::Impl {
  YAML::Node root;  // read-only after construction

  // Follows "#/components/schemas/units/types/Energy" through const nodes
  // (operator[] on a non-const yaml-cpp node would insert, and assigning one
  // node handle to another overwrites the node it refers to).
  static YAML::Node walk(const YAML::Node& n, const std::vector<std::string>& keys, std::size_t i) {
    if (i == keys.size()) return n;
    const YAML::Node c = n[keys[i]];
    if (!c) return c;
    return walk(c, keys, i + 1);
  }
  YAML::Node resolve(const std::string& ref) const {
    if (ref.rfind("#/", 0) != 0) return YAML::Node(YAML::NodeType::Undefined);
    std::vector<std::string> keys;
    std::size_t at = 2;
    for (;;) {
      const std::size_t slash = ref.find('/', at);
      keys.push_back(ref.substr(at, slash == std::string::npos ? std::string::npos : slash - at));
      if (slash == std::string::npos) break;
      at = slash + 1;
    }
    return walk(root, keys, 0);
  }

  void check(const YAML::Node& schema, simdjson::dom::element v, const std::string& path,
             std::vector<std::string>& errors, int depth) const {
    if (!schema || !schema.IsMap() || depth > 32) return;
    if (const YAML::Node ref = schema["$ref"]) {
      const YAML::Node target = resolve(ref.as<std::string>());
      if (!target) {
        errors.push_back(path + ": unresolvable $ref " + ref.as<std::string>());
        return;
      }
      check(target, v, path, errors, depth + 1);
    }
    using T = simdjson::dom::element_type;
    const T t = v.type();
    if (const YAML::Node type = schema["type"]) {
      const std::string want = type.as<std::string>();
      bool ok = false;
      if (want == "object") ok = t == T::OBJECT;
      if (want == "array") ok = t == T::ARRAY;
      if (want == "string") ok = t == T::STRING;
      if (want == "boolean") ok = t == T::BOOL;
      if (want == "integer") ok = t == T::INT64 || t == T::UINT64;
      if (want == "number") ok = t == T::INT64 || t == T::UINT64 || t == T::DOUBLE;
      if (!ok) {
        errors.push_back(path + ": expected " + want);
        return;
      }
    }
    if (const YAML::Node en = schema["enum"]) {
      std::string_view s;
      bool found = false;
      if (v.get_string().get(s) == simdjson::SUCCESS)
        for (const auto& e : en) found |= e.as<std::string>() == s;
      if (!found) errors.push_back(path + ": not one of the enum values");
    }
    if (t == T::STRING) {
      std::string_view s;
      if (v.get_string().get(s) != simdjson::SUCCESS) return;
      if (const YAML::Node f = schema["format"]; f && f.as<std::string>() == "date-time" && !is_rfc3339(s))
        errors.push_back(path + ": not an RFC 3339 date-time");
      if (const YAML::Node n = schema["maxLength"]; n && s.size() > n.as<std::size_t>())
        errors.push_back(path + ": longer than maxLength");
      if (const YAML::Node n = schema["minLength"]; n && s.size() < n.as<std::size_t>())
        errors.push_back(path + ": shorter than minLength");
    }
    if (t == T::DOUBLE) {
      double d = 0;
      if (v.get_double().get(d) == simdjson::SUCCESS && !std::isfinite(d)) errors.push_back(path + ": not finite");
    }
    if (t == T::OBJECT) {
      simdjson::dom::object o;
      if (v.get_object().get(o) != simdjson::SUCCESS) return;
      if (const YAML::Node req = schema["required"])
        for (const auto& r : req) {
          simdjson::dom::element x;
          if (o[r.as<std::string>()].get(x) != simdjson::SUCCESS)
            errors.push_back(path + ": missing required '" + r.as<std::string>() + "'");
        }
      if (const YAML::Node props = schema["properties"])
        for (auto kv : o) {
          const std::string key(kv.key);
          if (const YAML::Node p = props[key]) check(p, kv.value, path + "/" + key, errors, depth + 1);
        }
    }
    if (t == T::ARRAY) {
      simdjson::dom::array a;
      if (v.get_array().get(a) != simdjson::SUCCESS) return;
      const std::size_t n = a.size();
      if (const YAML::Node m = schema["maxItems"]; m && n > m.as<std::size_t>()) errors.push_back(path + ": too many items");
      if (const YAML::Node m = schema["minItems"]; m && n < m.as<std::size_t>()) errors.push_back(path + ": too few items");
      if (const YAML::Node items = schema["items"]) {
        std::size_t i = 0;
        for (auto e : a) check(items, e, path + "/" + std::to_string(i++), errors, depth + 1);
      }
    }
  }
};

Schema::Schema() : Schema(powermeter_api_yaml()) {}
Schema::Schema(std::string_view yaml) : impl_(std::make_unique<Impl>()) { impl_->root = YAML::Load(std::string(yaml)); }
Schema::~Schema() = default;
Schema::Schema(Schema&&) noexcept = default;

std::vector<std::string> Schema::validate(std::string_view name, std::string_view json) const {
  std::vector<std::string> errors;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (const auto e = parser.parse(json.data(), json.size(), true).get(doc); e != simdjson::SUCCESS) {
    errors.push_back(std::string("not valid JSON: ") + simdjson::error_message(e));
    return errors;
  }
  const YAML::Node& root = impl_->root;  // const: lookups must not insert
  const YAML::Node schema = root["components"]["schemas"][std::string(name)];
  if (!schema) {
    errors.push_back("no schema named " + std::string(name));
    return errors;
  }
  impl_->check(schema, doc, "", errors, 0);
  return errors;
}

}  // namespace wattpipe::publish

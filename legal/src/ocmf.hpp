// SPDX-License-Identifier: Apache-2.0
// OCMF (Open Charge Metering Format) records: building and signing them
// (ECDSA P-256 / SHA-256 via OpenSSL) and verifying any record against a
// public key, with the begin/end rules of the transparency software.
//
// A record is  OCMF|{payload JSON}|{signature JSON} ; the signature covers
// the payload bytes exactly as emitted between the pipes.
//
// Private to the legal part (docs/legal.md).
//
// Threading: Signer is immutable after construction and may be used from
// any one thread at a time (the MQTT thread); the free functions are pure.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wattpipe/legal/legal.hpp"

namespace wattpipe::legal::ocmf {

class Signer {
 public:
  // Loads an EC P-256 private key (PEM) from `path`. nullopt with `error` on failure.
  static std::optional<Signer> load(const std::string& path, std::string& error);
  // Loads `path`, or creates a new key there (mode 0600) when it does not exist.
  static std::optional<Signer> load_or_create(const std::string& path, std::string& error, bool& created);
  // A new key that lives in memory only (no state directory).
  static std::optional<Signer> generate(std::string& error);
  ~Signer();
  Signer(Signer&&) noexcept;
  Signer& operator=(Signer&&) noexcept;

  // DER SubjectPublicKeyInfo, uppercase hex.
  [[nodiscard]] const std::string& public_key_hex() const noexcept { return public_hex_; }
  // DER ECDSA signature over SHA-256(payload), uppercase hex. Empty on failure.
  [[nodiscard]] std::string sign_hex(std::string_view payload) const;

 private:
  Signer() = default;
  struct Key;
  std::unique_ptr<Key> key_;
  std::string public_hex_;
};

struct Identification {
  bool assigned = false;                 // IS
  std::string level = "NONE";            // IL
  std::vector<std::string> flags;        // IF
  std::string type = "NONE";             // IT
  std::string data;                      // ID
  std::string tariff_text;               // TT (omitted when empty)
  std::string evse_id;                   // CI, with CT "EVSEID"
};

using legal::MeterInfo;  // MF is always the software id

struct ReadingPoint {
  std::int64_t import_uwh = 0;
  std::int64_t export_uwh = 0;
  std::int64_t utc_ns = 0;
  bool clock_synced = false;  // TM status S, else I (informative)
  bool dc = false;            // RT DC, else AC
  char tx = 'B';              // B begin, E end (L/R/A/P other ends)
  std::string error_flags;    // EF: "" or e.g. "E" (energy may be incomplete)
};

// "2018-07-24T13:22:04,000+0000 S"
std::string format_tm(std::int64_t utc_ns, bool clock_synced);

// The payload JSON, keys in a fixed order.
std::string build_payload(const MeterInfo& m, std::uint64_t pagination, const Identification& id,
                          std::span<const ReadingPoint> readings);
// OCMF|payload|{"SA":...,"SD":...}; empty when signing failed.
std::string sign_record(const Signer& s, const std::string& payload);

// ---- verification: VerifiedReading, Verification, verify(), summarize(),
// records_in() and format_kwh() are declared in legal.hpp.

// A decimal number, optionally padded with spaces; nullopt for anything else.
std::optional<double> parse_number_text(std::string_view t);

// Hex and base64 helpers (exposed for tests and tools).
std::optional<std::vector<unsigned char>> decode_hex(std::string_view s);
std::optional<std::vector<unsigned char>> decode_base64(std::string_view s);
std::string encode_hex(std::span<const unsigned char> b);

}  // namespace wattpipe::legal::ocmf

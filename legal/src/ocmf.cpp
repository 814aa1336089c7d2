// SPDX-License-Identifier: Apache-2.0
#include "ocmf.hpp"
#include "ocmf_openssl.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <simdjson.h>

#include "wattpipe/acquire/clock.hpp"

#include "wattpipe/legal/json_writer.hpp"

namespace wattpipe::legal::ocmf {
using namespace detail;

// ---- encodings ---------------------------------------------------------------

std::string encode_hex(std::span<const unsigned char> b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string s;
  s.reserve(b.size() * 2);
  for (unsigned char c : b) {
    s.push_back(kHex[c >> 4]);
    s.push_back(kHex[c & 15]);
  }
  return s;
}

std::optional<std::vector<unsigned char>> decode_hex(std::string_view s) {
  if (s.size() % 2 != 0 || s.empty()) return std::nullopt;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<unsigned char> out(s.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nib(s[2 * i]), lo = nib(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return out;
}

std::optional<std::vector<unsigned char>> decode_base64(std::string_view s) {
  std::string clean;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) clean.push_back(c == '-' ? '+' : c == '_' ? '/' : c);
  while (clean.size() % 4 != 0) clean.push_back('=');
  if (clean.empty()) return std::nullopt;
  std::vector<unsigned char> out(clean.size() / 4 * 3 + 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(clean.data()), int(clean.size()));
  if (n < 0) return std::nullopt;
  std::size_t len = static_cast<std::size_t>(n);
  for (std::size_t i = clean.size(); i > 0 && clean[i - 1] == '='; --i) --len;  // EVP_DecodeBlock counts padding
  out.resize(len);
  return out;
}

// ---- signing -------------------------------------------------------------------

struct Signer::Key {
  PkeyPtr pkey;
};

Signer::~Signer() = default;
Signer::Signer(Signer&&) noexcept = default;
Signer& Signer::operator=(Signer&&) noexcept = default;

std::optional<Signer> Signer::load(const std::string& path, std::string& error) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) {
    error = "cannot read OCMF key '" + path + "': " + std::strerror(errno);
    return std::nullopt;
  }
  PkeyPtr k(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  if (!k) {
    error = "OCMF key '" + path + "' is not a PEM private key: " + openssl_error();
    return std::nullopt;
  }
  if (!EVP_PKEY_is_a(k.get(), "EC") || group_name(k.get()) != "prime256v1") {
    error = "OCMF key '" + path + "' must be an EC P-256 (secp256r1) key";
    return std::nullopt;
  }
  Signer s;
  s.public_hex_ = spki_hex(k.get());
  s.key_ = std::make_unique<Key>(Key{std::move(k)});
  return s;
}

std::optional<Signer> Signer::load_or_create(const std::string& path, std::string& error, bool& created) {
  created = false;
  if (std::filesystem::exists(path)) return load(path, error);
  PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!k) {
    error = "cannot generate an OCMF key: " + openssl_error();
    return std::nullopt;
  }
  // Written to a private temporary file, synced, then renamed into place.
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot create OCMF key '" + path + "': " + std::strerror(errno);
    return std::nullopt;
  }
  FILE* f = ::fdopen(fd, "w");
  const bool ok = f != nullptr && PEM_write_PrivateKey(f, k.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
                  std::fflush(f) == 0 && ::fsync(fd) == 0;
  if (f != nullptr) {
    std::fclose(f);
  } else {
    ::close(fd);
  }
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot write OCMF key '" + path + "': " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return std::nullopt;
  }
  created = true;
  Signer s;
  s.public_hex_ = spki_hex(k.get());
  s.key_ = std::make_unique<Key>(Key{std::move(k)});
  return s;
}

std::optional<Signer> Signer::generate(std::string& error) {
  PkeyPtr k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!k) {
    error = "cannot generate an OCMF key: " + openssl_error();
    return std::nullopt;
  }
  Signer s;
  s.public_hex_ = spki_hex(k.get());
  s.key_ = std::make_unique<Key>(Key{std::move(k)});
  return s;
}

std::string Signer::sign_hex(std::string_view payload) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_->pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(payload.data()), payload.size()) != 1)
    return {};
  std::vector<unsigned char> sig(len);
  if (EVP_DigestSign(ctx.get(), sig.data(), &len, reinterpret_cast<const unsigned char*>(payload.data()),
                     payload.size()) != 1)
    return {};
  sig.resize(len);
  return encode_hex(sig);
}

// ---- building --------------------------------------------------------------------

std::string format_tm(std::int64_t utc_ns, bool clock_synced) {
  const acquire::UtcFields f = acquire::utc_fields(utc_ns);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02u:%02u:%02u,%03d+0000 %c", f.year, f.month, f.day, f.hour,
                f.minute, f.second, int(f.ns / 1'000'000), clock_synced ? 'S' : 'I');
  return buf;
}

std::string format_kwh(std::int64_t uwh) {
  const std::int64_t tenth_wh = uwh >= 0 ? uwh / 100'000 : -((-uwh + 99'999) / 100'000);  // floor
  const bool neg = tenth_wh < 0;
  const std::int64_t a = neg ? -tenth_wh : tenth_wh;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%lld.%04lld", neg ? "-" : "", static_cast<long long>(a / 10000),
                static_cast<long long>(a % 10000));
  return buf;
}

std::string build_payload(const MeterInfo& m, std::uint64_t pagination, const Identification& id,
                          std::span<const ReadingPoint> readings) {
  return write_json(1024 + 256 * readings.size() + id.data.size() * 6 + id.tariff_text.size() * 6, [&](JsonWriter& w) {
    w.begin_object();
    w.field("FV", "1.0");
    w.field("GI", m.gateway_id);
    w.field("GS", m.serial);
    w.field("GV", m.gateway_version);
    std::string pg = std::to_string(pagination);
    pg.insert(pg.begin(), 'T');  // (not "T" + s: GCC 12 warns falsely on that)
    w.field("PG", pg);
    w.field("MV", m.vendor);
    w.field("MM", m.model);
    w.field("MS", m.serial);
    w.field("MF", software_id_firmware());  // which software signed (docs/legal.md)
    w.field_bool("IS", id.assigned);
    w.field("IL", id.level.empty() ? "NONE" : id.level);
    w.key("IF");
    w.raw('[');
    bool first = true;
    for (const auto& f : id.flags) {
      if (!first) w.raw(',');
      first = false;
      w.string(f);
    }
    w.raw(']');
    w.field("IT", id.type);
    w.field("ID", id.data);
    if (!id.tariff_text.empty()) w.field("TT", id.tariff_text);
    w.field("CT", "EVSEID");
    w.field("CI", id.evse_id);
    w.key("RD");
    w.raw('[');
    first = true;
    for (const ReadingPoint& r : readings) {
      if (!first) w.raw(',');
      first = false;
      w.begin_object();
      w.field("TM", format_tm(r.utc_ns, r.clock_synced));
      w.field("TX", std::string(1, r.tx));
      w.key("RV");
      w.raw(format_kwh(r.import_uwh));
      w.field("RI", "1-0:1.8.0");
      w.field("RU", "kWh");
      w.field("RT", r.dc ? "DC" : "AC");
      w.field("EF", r.error_flags);
      w.field("ST", "G");
      w.end_object();
      if (m.export_readings) {
        w.raw(',');
        w.begin_object();
        w.key("RV");
        w.raw(format_kwh(r.export_uwh));
        w.field("RI", "1-0:2.8.0");
        w.field("RU", "kWh");
        w.field("ST", "G");
        w.end_object();
      }
    }
    w.raw(']');
    w.end_object();
  });
}

std::string sign_record(const Signer& s, const std::string& payload) {
  const std::string sd = s.sign_hex(payload);
  if (sd.empty()) return {};
  return "OCMF|" + payload + "|{\"SA\":\"" + std::string(kSigningMethod) + "\",\"SD\":\"" + sd + "\"}";
}

std::optional<std::string> public_key_of(const std::string& pem_path, std::string& error) {
  auto s = Signer::load(pem_path, error);
  if (!s) return std::nullopt;
  return s->public_key_hex();
}

}  // namespace wattpipe::legal::ocmf

// SPDX-License-Identifier: Apache-2.0
#include "ocmf.hpp"

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
namespace {

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

struct PkeyFree {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

std::string group_name(EVP_PKEY* k) {
  char name[64] = {0};
  std::size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1) return {};
  return std::string(name, len);
}

std::string spki_hex(EVP_PKEY* k) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(k, &der);
  if (n <= 0) return {};
  std::string hex = encode_hex(std::span<const unsigned char>(der, static_cast<std::size_t>(n)));
  OPENSSL_free(der);
  return hex;
}

}  // namespace

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

// ---- verification -------------------------------------------------------------------

namespace {

struct Algorithm {
  std::string group;  // OpenSSL group name
  const EVP_MD* md = nullptr;
  std::size_t field_bytes = 0;
};

std::optional<Algorithm> parse_algorithm(std::string_view sa) {
  // ECDSA-<curve>-<hash>
  if (sa.rfind("ECDSA-", 0) != 0) return std::nullopt;
  const auto dash = sa.rfind('-');
  if (dash <= 6) return std::nullopt;
  const std::string_view curve = sa.substr(6, dash - 6), hash = sa.substr(dash + 1);
  Algorithm a;
  struct C {
    std::string_view ocmf;
    const char* group;
    std::size_t bytes;
  };
  static constexpr C kCurves[] = {
      {"secp256r1", "prime256v1", 32},       {"secp256k1", "secp256k1", 32},
      {"secp384r1", "secp384r1", 48},        {"brainpool256r1", "brainpoolP256r1", 32},
      {"brainpoolP256r1", "brainpoolP256r1", 32}, {"brainpool384r1", "brainpoolP384r1", 48},
      {"brainpoolP384r1", "brainpoolP384r1", 48}, {"secp192r1", "prime192v1", 24},
      {"secp192k1", "secp192k1", 24},
  };
  for (const C& c : kCurves)
    if (curve == c.ocmf) a.group = c.group, a.field_bytes = c.bytes;
  if (a.group.empty()) return std::nullopt;
  if (hash == "SHA256") a.md = EVP_sha256();
  if (hash == "SHA384") a.md = EVP_sha384();
  if (hash == "SHA512") a.md = EVP_sha512();
  if (a.md == nullptr) return std::nullopt;
  return a;
}

std::optional<std::vector<unsigned char>> decode_text(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  if (auto h = decode_hex(s)) return h;
  return decode_base64(s);
}

// A public key from DER SubjectPublicKeyInfo, or a raw EC point on `group`.
PkeyPtr load_public_key(const std::vector<unsigned char>& der, const std::string& group) {
  const unsigned char* p = der.data();
  if (PkeyPtr k(d2i_PUBKEY(nullptr, &p, long(der.size()))); k && p == der.data() + der.size()) return k;
  ERR_clear_error();
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group.c_str()), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<unsigned char*>(der.data()), der.size()),
      OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* k = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
    k = nullptr;
  EVP_PKEY_CTX_free(ctx);
  ERR_clear_error();
  return PkeyPtr(k);
}

// A DER signature as is, or raw r||s converted to DER.
std::optional<std::vector<unsigned char>> der_signature(const std::vector<unsigned char>& sig, std::size_t field_bytes) {
  const unsigned char* p = sig.data();
  if (ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, long(sig.size())); s != nullptr) {
    const bool whole = p == sig.data() + sig.size();
    ECDSA_SIG_free(s);
    if (whole) return sig;
  }
  ERR_clear_error();
  if (sig.size() != 2 * field_bytes) return std::nullopt;
  ECDSA_SIG* s = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(sig.data(), int(field_bytes), nullptr);
  BIGNUM* v = BN_bin2bn(sig.data() + field_bytes, int(field_bytes), nullptr);
  ECDSA_SIG_set0(s, r, v);
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(s, &der);
  ECDSA_SIG_free(s);
  if (n <= 0) return std::nullopt;
  std::vector<unsigned char> out(der, der + n);
  OPENSSL_free(der);
  return out;
}

// "2019-08-13T10:03:15,000+0000 I" -> UTC milliseconds.
std::optional<std::int64_t> parse_tm(std::string_view tm) {
  int Y, M, D, h, m, s, ms, off;
  char sign;
  if (std::sscanf(std::string(tm).c_str(), "%4d-%2d-%2dT%2d:%2d:%2d,%3d%c%4d", &Y, &M, &D, &h, &m, &s, &ms, &sign,
                  &off) != 9 ||
      (sign != '+' && sign != '-'))
    return std::nullopt;
  std::tm t{};
  t.tm_year = Y - 1900, t.tm_mon = M - 1, t.tm_mday = D, t.tm_hour = h, t.tm_min = m, t.tm_sec = s;
  const std::int64_t secs = timegm(&t);
  const std::int64_t off_s = (off / 100 * 3600 + off % 100 * 60) * (sign == '+' ? 1 : -1);
  return (secs - off_s) * 1000 + ms;
}

bool is_end(std::string_view tx) { return tx == "E" || tx == "L" || tx == "R" || tx == "A" || tx == "P"; }

}  // namespace

// A decimal number with optional surrounding spaces, nothing else.
std::optional<double> parse_number_text(std::string_view t) {
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  double v = 0;
  const auto r = std::from_chars(t.data(), t.data() + t.size(), v, std::chars_format::general);
  if (t.empty() || r.ec != std::errc{} || r.ptr != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::vector<std::string> records_in(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text.empty() || text.front() != '{') {
    out.emplace_back(text);
    return out;
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text.data(), text.size(), true).get(doc) != simdjson::SUCCESS) return out;
  std::string_view rec;
  if (doc["signed_meter_data"].get_string().get(rec) == simdjson::SUCCESS) out.emplace_back(rec);
  for (const char* k : {"start_signed_meter_value", "signed_meter_value"})
    if (doc[k]["signed_meter_data"].get_string().get(rec) == simdjson::SUCCESS) out.emplace_back(rec);
  return out;
}

Verification verify(std::string_view record, std::string_view public_key) {
  Verification v;
  auto unreadable = [&](std::string why) {
    v.verdict = Verification::Verdict::unreadable;
    v.reason = std::move(why);
    return v;
  };
  while (!record.empty() && std::isspace(static_cast<unsigned char>(record.back()))) record.remove_suffix(1);
  while (!record.empty() && std::isspace(static_cast<unsigned char>(record.front()))) record.remove_prefix(1);
  if (record.rfind("OCMF|", 0) != 0) return unreadable("not an OCMF record (must start with 'OCMF|')");
  const auto last = record.rfind('|');
  if (last <= 4) return unreadable("no signature section after the payload");
  const std::string_view payload = record.substr(5, last - 5), sig_json = record.substr(last + 1);

  simdjson::dom::parser parser, sig_parser;
  simdjson::dom::element doc, sdoc;
  if (parser.parse(payload.data(), payload.size(), true).get(doc) != simdjson::SUCCESS || !doc.is_object())
    return unreadable("payload is not a JSON object");
  if (sig_parser.parse(sig_json.data(), sig_json.size(), true).get(sdoc) != simdjson::SUCCESS || !sdoc.is_object())
    return unreadable("signature section is not a JSON object");
  auto str = [](simdjson::dom::element e, const char* key) -> std::string {
    std::string_view out;
    return e[key].get_string().get(out) == simdjson::SUCCESS ? std::string(out) : std::string();
  };
  v.algorithm = str(sdoc, "SA");
  if (v.algorithm.empty()) v.algorithm = std::string(kSigningMethod);  // the OCMF default
  const std::string se = str(sdoc, "SE"), sd = str(sdoc, "SD");
  v.pagination = str(doc, "PG");
  v.meter_serial = str(doc, "MS");
  v.meter_vendor = str(doc, "MV");
  v.meter_firmware = str(doc, "MF");
  v.identification = str(doc, "IT") + (str(doc, "ID").empty() ? "" : " " + str(doc, "ID"));

  simdjson::dom::array rd;
  if (doc["RD"].get_array().get(rd) != simdjson::SUCCESS) return unreadable("payload has no RD readings array");
  for (simdjson::dom::element r : rd) {
    VerifiedReading x;
    x.tm = str(r, "TM"), x.tx = str(r, "TX"), x.ri = str(r, "RI"), x.ru = str(r, "RU"), x.st = str(r, "ST");
    x.ef = str(r, "EF");
    double rv = 0;
    std::string_view rv_text;
    if (r["RV"].get_double().get(rv) == simdjson::SUCCESS) {
    } else if (std::int64_t iv = 0; r["RV"].get_int64().get(iv) == simdjson::SUCCESS) {
      rv = double(iv);
    } else if (r["RV"].get_string().get(rv_text) == simdjson::SUCCESS) {
      // Some meters write RV as a string padded with spaces ("       9.038").
      const auto parsed = parse_number_text(rv_text);
      if (!parsed) return unreadable("a reading's RV \"" + std::string(rv_text.substr(0, 40)) + "\" is not a number");
      rv = *parsed;
    } else {
      return unreadable("a reading has no numeric RV");
    }
    x.rv = rv;
    if (!x.tm.empty()) x.utc_ms = parse_tm(x.tm);
    v.readings.push_back(std::move(x));
  }

  const auto alg = parse_algorithm(v.algorithm);
  if (!alg) return unreadable("unsupported signature algorithm '" + v.algorithm + "'");
  const auto key_bytes = decode_text(public_key);
  if (!key_bytes) return unreadable("public key is neither hex nor base64");
  PkeyPtr key = load_public_key(*key_bytes, alg->group);
  if (!key) return unreadable("public key is neither a DER SubjectPublicKeyInfo nor a point on " + alg->group);
  if (group_name(key.get()) != alg->group) return unreadable("public key is on " + group_name(key.get()) +
                                                             ", the record says " + v.algorithm);
  std::optional<std::vector<unsigned char>> sig_bytes;
  if (se.empty() || se == "hex") sig_bytes = decode_hex(sd);
  if (!sig_bytes && (se.empty() || se == "base64")) sig_bytes = decode_base64(sd);
  if (!sig_bytes) return unreadable("signature SD is not " + (se.empty() ? std::string("hex") : se));
  const auto der = der_signature(*sig_bytes, alg->field_bytes);

  v.verdict = Verification::Verdict::invalid;
  if (der) {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    v.signature_ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, alg->md, nullptr, key.get()) == 1 &&
                     EVP_DigestVerify(ctx.get(), der->data(), der->size(),
                                      reinterpret_cast<const unsigned char*>(payload.data()), payload.size()) == 1;
    ERR_clear_error();
  }
  if (!v.signature_ok) {
    v.reason = der ? "signature does not verify" : "signature is neither DER nor raw r||s for " + alg->group;
    return v;
  }

  // Begin/end rules of the transparency software.
  const VerifiedReading* begin = nullptr;
  const VerifiedReading* end = nullptr;
  int begins = 0, ends = 0;
  for (const auto& r : v.readings) {
    if (r.tx == "B") ++begins, begin = &r;
    if (is_end(r.tx)) ++ends, end = &r;
  }
  if (begins != 1) {
    v.reason = "expected exactly one begin reading (TX B), found " + std::to_string(begins);
    return v;
  }
  if (ends > 1) {
    v.reason = "expected at most one end reading, found " + std::to_string(ends);
    return v;
  }
  if (begin->st != "G") {
    v.reason = "begin reading status ST is '" + begin->st + "', not G";
    return v;
  }
  if (end != nullptr) {
    if (end->st != "G") {
      v.reason = "end reading status ST is '" + end->st + "', not G";
      return v;
    }
    if (end < begin) {
      v.reason = "end reading comes before the begin reading";
      return v;
    }
    if (end->rv < begin->rv) {
      v.reason = "end reading RV is below the begin reading";
      return v;
    }
    if (!begin->utc_ms || !end->utc_ms) {
      v.reason = "a reading's TM cannot be read";
      return v;
    }
    if (*end->utc_ms < *begin->utc_ms) {
      v.reason = "end reading TM is before the begin reading";
      return v;
    }
  }
  v.begin_only = end == nullptr;
  v.verdict = Verification::Verdict::valid;
  return v;
}

std::string summarize(const Verification& v) {
  std::string s;
  const char* verdict = v.verdict == Verification::Verdict::valid     ? "VALID"
                        : v.verdict == Verification::Verdict::invalid ? "INVALID"
                                                                       : "UNREADABLE";
  s += std::string("verdict:    ") + verdict;
  if (v.verdict == Verification::Verdict::valid && v.begin_only) s += " (begin reading only: a transaction start)";
  if (!v.reason.empty()) s += " - " + v.reason;
  s += "\n";
  if (v.verdict == Verification::Verdict::unreadable) return s;
  s += "signature:  " + v.algorithm + (v.signature_ok ? " ok" : " FAILED") + "\n";
  s += "meter:      " + (v.meter_vendor.empty() ? std::string("?") : v.meter_vendor) + " serial " +
       (v.meter_serial.empty() ? std::string("?") : v.meter_serial) + ", pagination " + v.pagination + "\n";
  if (!v.meter_firmware.empty()) s += "software:   " + v.meter_firmware + "\n";
  s += "identified: " + v.identification + "\n";
  for (const auto& r : v.readings) {
    char line[256];
    std::snprintf(line, sizeof line, "reading:    %-2s %-32s %12.4f %-4s %-10s ST %s%s%s\n", r.tx.empty() ? "-" : r.tx.c_str(),
                  r.tm.c_str(), r.rv, r.ru.c_str(), r.ri.c_str(), r.st.c_str(), r.ef.empty() ? "" : " EF ",
                  r.ef.c_str());
    s += line;
  }
  return s;
}

std::optional<std::string> public_key_of(const std::string& pem_path, std::string& error) {
  auto s = Signer::load(pem_path, error);
  if (!s) return std::nullopt;
  return s->public_key_hex();
}

}  // namespace wattpipe::legal::ocmf

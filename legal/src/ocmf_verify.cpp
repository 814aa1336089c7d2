// SPDX-License-Identifier: Apache-2.0
// OCMF verification: any record against a public key, with the begin/end
// rules of the transparency software (declared in legal.hpp).
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <openssl/ec.h>
#include <simdjson.h>

#include "ocmf.hpp"
#include "ocmf_openssl.hpp"
#include "wattpipe/acquire/clock.hpp"

namespace wattpipe::legal::ocmf {
using namespace detail;

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
  v.identification = str(doc, "IT");
  if (const std::string id = str(doc, "ID"); !id.empty()) v.identification.append(" ").append(id);  // (not " " + id: GCC 12 warns falsely)

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

}  // namespace wattpipe::legal::ocmf

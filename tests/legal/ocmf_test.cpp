// SPDX-License-Identifier: Apache-2.0
#include "ocmf.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <simdjson.h>

using namespace wattpipe::legal;
using V = ocmf::Verification::Verdict;

namespace {

ocmf::MeterInfo meter() {
  ocmf::MeterInfo m;
  m.gateway_version = "0.1.0";
  m.vendor = "wattpipe";
  m.model = "wattpipe-sw";
  m.serial = "WP-1";
  return m;
}

ocmf::Identification ident() {
  ocmf::Identification id;
  id.assigned = true;
  id.level = "HEARSAY";
  id.flags = {"RFID_PLAIN", "OCPP_AUTH"};
  id.type = "ISO14443";
  id.data = "0A1B2C3D";
  id.evse_id = "DE*WPT*E1";
  return id;
}

ocmf::ReadingPoint reading(std::int64_t uwh, std::int64_t utc_ns, char tx) {
  ocmf::ReadingPoint p;
  p.import_uwh = uwh;
  p.utc_ns = utc_ns;
  p.tx = tx;
  p.clock_synced = true;
  return p;
}

ocmf::Signer signer() {
  std::string err;
  auto s = ocmf::Signer::generate(err);
  EXPECT_TRUE(s) << err;
  return std::move(*s);
}

}  // namespace

TEST(Ocmf, EveryPublicVectorGivesItsVerdict) {
  std::ifstream f(std::string(WATTPIPE_TEST_DATA) + "/ocmf/vectors.json");
  std::stringstream ss;
  ss << f.rdbuf();
  simdjson::dom::parser p;
  simdjson::dom::element doc = p.parse(ss.str());
  int n = 0;
  for (simdjson::dom::element v : doc["vectors"].get_array()) {
    const std::string name{std::string_view(v["name"])};
    const auto r = ocmf::verify(std::string_view(v["record"]), std::string_view(v["public_key_spki_hex"]));
    EXPECT_EQ(r.verdict, bool(v["valid"]) ? V::valid : V::invalid) << name << ": " << r.reason;
    ++n;
  }
  EXPECT_EQ(n, 4);
}

TEST(Ocmf, EverySignedRecordNamesTheSoftwareThatSignedIt) {
  const ocmf::Signer s = signer();
  const ocmf::ReadingPoint rd[] = {reading(1'000'000, 1'700'000'000'000'000'000, 'B')};
  const std::string rec = ocmf::sign_record(s, ocmf::build_payload(meter(), 1, ident(), rd));
  const SoftwareId& id = software_id();
  ASSERT_EQ(id.sha256.size(), 64u);
  EXPECT_EQ(id.sha256.find_first_not_of("0123456789abcdef"), std::string_view::npos);
  EXPECT_EQ(software_id_firmware(), "wattpipe-legal-" + std::string(id.version) + "-" + std::string(id.sha256));
  // MF sits inside the signed payload: a verifier reads it from verified bytes.
  EXPECT_NE(rec.find("\"MF\":\"" + software_id_firmware() + "\""), std::string::npos) << rec;
  const auto v = ocmf::verify(rec, s.public_key_hex());
  EXPECT_EQ(v.verdict, V::valid) << v.reason;
  EXPECT_EQ(v.meter_firmware, software_id_firmware());
  EXPECT_NE(ocmf::summarize(v).find("software:   " + software_id_firmware()), std::string::npos);
  // Changing MF after signing breaks the signature: the id cannot be swapped.
  std::string forged = rec;
  forged.replace(forged.find(std::string(id.sha256)), 1, id.sha256[0] == '0' ? "1" : "0");
  EXPECT_EQ(ocmf::verify(forged, s.public_key_hex()).verdict, V::invalid);
}

TEST(Ocmf, SignedTransactionRoundTrips) {
  const ocmf::Signer s = signer();
  const ocmf::ReadingPoint rd[] = {reading(12'345'678'901, 1'700'000'000'000'000'000, 'B'),
                                   reading(12'400'000'000, 1'700'000'060'000'000'000, 'E')};
  const std::string payload = ocmf::build_payload(meter(), 7, ident(), rd);
  EXPECT_NE(payload.find(R"("FV":"1.0")"), std::string::npos);
  EXPECT_NE(payload.find(R"("PG":"T7")"), std::string::npos);
  EXPECT_NE(payload.find(R"("RV":12.3456,"RI":"1-0:1.8.0","RU":"kWh","RT":"AC","EF":"","ST":"G")"), std::string::npos)
      << payload;
  EXPECT_NE(payload.find(R"("TM":"2023-11-14T22:13:20,000+0000 S","TX":"B")"), std::string::npos) << payload;
  EXPECT_NE(payload.find(R"("CT":"EVSEID","CI":"DE*WPT*E1")"), std::string::npos) << payload;
  const std::string rec = ocmf::sign_record(s, payload);
  const auto v = ocmf::verify(rec, s.public_key_hex());
  EXPECT_EQ(v.verdict, V::valid) << v.reason;
  EXPECT_FALSE(v.begin_only);
  EXPECT_EQ(v.pagination, "T7");
  // One changed byte in the payload breaks the signature.
  std::string tampered = rec;
  tampered[tampered.find("12.4000")] = '9';
  EXPECT_EQ(ocmf::verify(tampered, s.public_key_hex()).verdict, V::invalid);
  // Another key does not verify it.
  EXPECT_EQ(ocmf::verify(rec, signer().public_key_hex()).verdict, V::invalid);
}

TEST(Ocmf, BeginOnlyRecordIsValidAndSaidSo) {
  const ocmf::Signer s = signer();
  const ocmf::ReadingPoint rd[] = {reading(5, 1'700'000'000'000'000'000, 'B')};
  const auto v = ocmf::verify(ocmf::sign_record(s, ocmf::build_payload(meter(), 1, ident(), rd)), s.public_key_hex());
  EXPECT_EQ(v.verdict, V::valid);
  EXPECT_TRUE(v.begin_only);
  EXPECT_NE(ocmf::summarize(v).find("begin reading only"), std::string::npos);
}

TEST(Ocmf, BeginEndRulesAreChecked) {
  const ocmf::Signer s = signer();
  auto check = [&](std::vector<ocmf::ReadingPoint> rd, const char* why) {
    const auto v = ocmf::verify(ocmf::sign_record(s, ocmf::build_payload(meter(), 1, ident(), rd)), s.public_key_hex());
    EXPECT_EQ(v.verdict, V::invalid) << why;
    EXPECT_TRUE(v.signature_ok) << why;
    EXPECT_FALSE(v.reason.empty());
  };
  check({reading(500'000'000, 2'000'000'000, 'B'), reading(400'000'000, 3'000'000'000, 'E')}, "energy goes back");
  check({reading(400'000'000, 3'000'000'000, 'B'), reading(500'000'000, 2'000'000'000, 'E')}, "time goes back");
  check({reading(1, 2'000'000'000, 'E')}, "no begin");
  check({reading(1, 2'000'000'000, 'B'), reading(2, 3'000'000'000, 'B')}, "two begins");
  check({reading(1, 1, 'B'), reading(2, 2, 'E'), reading(3, 3, 'E')}, "two ends");
}

TEST(Ocmf, ExportReadingsAndDcType) {
  const ocmf::Signer s = signer();
  ocmf::MeterInfo m = meter();
  m.export_readings = true;
  ocmf::ReadingPoint b = reading(1'000'000'000, 1'000'000'000'000'000'000, 'B'), e = b;
  b.dc = e.dc = true;
  b.export_uwh = 10'000'000;
  e.export_uwh = 20'000'000;
  e.tx = 'E';
  e.import_uwh += 1;
  e.utc_ns += 1'000'000'000;
  const ocmf::ReadingPoint rd[] = {b, e};
  const std::string payload = ocmf::build_payload(m, 3, ident(), rd);
  EXPECT_NE(payload.find(R"({"RV":0.0100,"RI":"1-0:2.8.0","RU":"kWh","ST":"G"})"), std::string::npos) << payload;
  EXPECT_NE(payload.find(R"("RT":"DC")"), std::string::npos);
  EXPECT_EQ(ocmf::verify(ocmf::sign_record(s, payload), s.public_key_hex()).verdict, V::valid);
}

TEST(Ocmf, FormatsAreExact) {
  EXPECT_EQ(ocmf::format_kwh(0), "0.0000");
  EXPECT_EQ(ocmf::format_kwh(99'999), "0.0000") << "rounded down: never bill what was not measured";
  EXPECT_EQ(ocmf::format_kwh(264'000'000'000'000), "264000.0000");
  EXPECT_EQ(ocmf::format_kwh(12'345'678'901), "12.3456");
  EXPECT_EQ(ocmf::format_tm(1'565'690'595'123'456'789, false), "2019-08-13T10:03:15,123+0000 I");
}

// Keys and signatures in the other forms the verifier accepts, made with OpenSSL here.
class OtherCurves : public ::testing::TestWithParam<std::tuple<const char*, const char*, int>> {};

TEST_P(OtherCurves, VerifyWithDerOrRawKeysAndSignatures) {
  const auto [group, sa_curve, field] = GetParam();
  EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", group);
  ASSERT_NE(k, nullptr);
  const std::string payload = R"({"FV":"1.0","PG":"T1","RD":[{"TM":"2024-01-01T00:00:00,000+0000 S","TX":"B","RV":1.0,"RU":"kWh","ST":"G"},{"TM":"2024-01-01T01:00:00,000+0000 S","TX":"E","RV":2.0,"RU":"kWh","ST":"G"}]})";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  ASSERT_EQ(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, k), 1);
  ASSERT_EQ(EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(payload.data()), payload.size()), 1);
  std::vector<unsigned char> der(len);
  ASSERT_EQ(EVP_DigestSign(ctx, der.data(), &len, reinterpret_cast<const unsigned char*>(payload.data()), payload.size()), 1);
  der.resize(len);
  EVP_MD_CTX_free(ctx);
  // Raw r||s from the DER signature.
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, long(der.size()));
  std::vector<unsigned char> raw(2 * field);
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw.data(), field);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw.data() + field, field);
  ECDSA_SIG_free(sig);
  // Keys: DER SPKI (hex, base64) and the raw uncompressed point (hex).
  unsigned char* spki = nullptr;
  const int spki_len = i2d_PUBKEY(k, &spki);
  const std::string spki_hex = ocmf::encode_hex(std::span<const unsigned char>(spki, std::size_t(spki_len)));
  std::string spki_b64(4 * ((spki_len + 2) / 3), '\0');
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(spki_b64.data()), spki, spki_len);
  OPENSSL_free(spki);
  unsigned char point[200];
  std::size_t point_len = 0;
  ASSERT_EQ(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &point_len), 1);
  const std::string point_hex = ocmf::encode_hex(std::span<const unsigned char>(point, point_len));
  EVP_PKEY_free(k);

  const std::string sa = std::string("ECDSA-") + sa_curve + "-SHA256";
  std::string raw_b64(4 * ((raw.size() + 2) / 3), '\0');
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(raw_b64.data()), raw.data(), int(raw.size()));
  const std::string rec_der = "OCMF|" + payload + "|{\"SA\":\"" + sa + "\",\"SD\":\"" + ocmf::encode_hex(der) + "\"}";
  const std::string rec_raw = "OCMF|" + payload + "|{\"SA\":\"" + sa + "\",\"SE\":\"base64\",\"SD\":\"" + raw_b64 + "\"}";
  for (const std::string& key : {spki_hex, spki_b64, point_hex}) {
    EXPECT_EQ(ocmf::verify(rec_der, key).verdict, V::valid) << group << " key " << key << ": " << ocmf::verify(rec_der, key).reason;
    EXPECT_EQ(ocmf::verify(rec_raw, key).verdict, V::valid) << group << ": " << ocmf::verify(rec_raw, key).reason;
  }
}

INSTANTIATE_TEST_SUITE_P(Curves, OtherCurves,
                         ::testing::Values(std::tuple{"P-256", "secp256r1", 32}, std::tuple{"secp256k1", "secp256k1", 32},
                                           std::tuple{"P-384", "secp384r1", 48},
                                           std::tuple{"brainpoolP256r1", "brainpool256r1", 32},
                                           std::tuple{"brainpoolP384r1", "brainpoolP384r1", 48}));

TEST(Ocmf, UnreadableInputIsNotInvalid) {
  const ocmf::Signer s = signer();
  EXPECT_EQ(ocmf::verify("hello", s.public_key_hex()).verdict, V::unreadable);
  EXPECT_EQ(ocmf::verify("OCMF|{not json|{\"SD\":\"00\"}", s.public_key_hex()).verdict, V::unreadable);
  EXPECT_EQ(ocmf::verify("OCMF|{\"RD\":[]}|{\"SD\":\"00\"}", "zz-not-a-key").verdict, V::unreadable);
  EXPECT_EQ(ocmf::verify("OCMF|{\"RD\":[]}|{\"SA\":\"RSA-4096\",\"SD\":\"00\"}", s.public_key_hex()).verdict,
            V::unreadable);
}

TEST(Ocmf, KeyFileIsCreatedPrivateAndReloaded) {
  const std::string dir = std::filesystem::temp_directory_path() / ("wattpipe-key-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/k.pem";
  std::string err;
  bool created = false;
  auto a = ocmf::Signer::load_or_create(path, err, created);
  ASSERT_TRUE(a) << err;
  EXPECT_TRUE(created);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  auto b = ocmf::Signer::load_or_create(path, err, created);
  ASSERT_TRUE(b);
  EXPECT_FALSE(created);
  EXPECT_EQ(a->public_key_hex(), b->public_key_hex());
  EXPECT_EQ(a->public_key_hex().rfind("3059301306072A8648CE3D020106082A8648CE3D030107034200", 0), 0u)
      << "DER SubjectPublicKeyInfo of a P-256 key";
  std::ofstream(path) << "garbage";
  EXPECT_FALSE(ocmf::Signer::load(path, err));
  EXPECT_NE(err.find("PEM"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Ocmf, PaddedStringReadingsOfRealMetersAreRead) {
  // Some meters write RV as a string padded with spaces: the payload is
  // signed as it stands, so it is rewritten before signing here.
  const ocmf::Signer s = signer();
  const ocmf::ReadingPoint rd[] = {reading(9'038'000'000, 1'700'000'000'000'000'000, 'B'),
                                   reading(9'100'000'000, 1'700'000'060'000'000'000, 'E')};
  std::string payload = ocmf::build_payload(meter(), 3, ident(), rd);
  for (const char* rv : {"9.0380", "9.1000"}) {
    const std::string from = std::string("\"RV\":") + rv, to = std::string("\"RV\":\"      ") + rv + "\"";
    payload.replace(payload.find(from), from.size(), to);
  }
  const auto v = ocmf::verify(ocmf::sign_record(s, payload), s.public_key_hex());
  ASSERT_EQ(v.verdict, V::valid) << v.reason;
  ASSERT_EQ(v.readings.size(), 2u);
  EXPECT_DOUBLE_EQ(v.readings[0].rv, 9.038);
  EXPECT_DOUBLE_EQ(v.readings[1].rv, 9.1);
  // Not every string is a number.
  for (const char* bad : {"\"abc\"", "\"0x10\"", "\"nan\"", "\"\"", "\"1 2\""}) {
    std::string p = ocmf::build_payload(meter(), 3, ident(), rd);
    const std::string from = "\"RV\":9.0380";
    p.replace(p.find(from), from.size(), std::string("\"RV\":") + bad);
    EXPECT_EQ(ocmf::verify(ocmf::sign_record(s, p), s.public_key_hex()).verdict, V::unreadable) << bad;
  }
}

TEST(Ocmf, RecordsAreFoundInRepliesAndSignedMeterValues) {
  EXPECT_EQ(ocmf::records_in("  OCMF|{}|{}\n"), std::vector<std::string>{"OCMF|{}|{}"});
  const auto stop = ocmf::records_in(R"({"status":"OK","signed_meter_value":{"signed_meter_data":"OCMF|e|s"},)"
                                     R"("start_signed_meter_value":{"signed_meter_data":"OCMF|b|s"}})");
  EXPECT_EQ(stop, (std::vector<std::string>{"OCMF|b|s", "OCMF|e|s"}));
  EXPECT_EQ(ocmf::records_in(R"({"signed_meter_data":"OCMF|x|y"})"), std::vector<std::string>{"OCMF|x|y"});
  EXPECT_TRUE(ocmf::records_in(R"({"status":"OK"})").empty());
  EXPECT_TRUE(ocmf::records_in("{broken").empty());
}

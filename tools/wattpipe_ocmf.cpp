// SPDX-License-Identifier: Apache-2.0
// wattpipe-ocmf: verify OCMF signed meter values, or print a key's public part.
//   wattpipe-ocmf verify --public-key KEY [RECORD|FILE|-]
// The record may be given as text, a file, or standard input, and as a bare
// OCMF record or the JSON reply object of a start or stop (each
// signed_meter_data in it is verified).
//   wattpipe-ocmf pubkey --key FILE.pem
// verify exits 0 when the signature verifies and the record breaks no
// begin/end rule (a begin-only record is valid and said so), 1 when the
// signature fails or a rule is broken, 2 when the input cannot be read.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <CLI/CLI.hpp>

#include "cli.hpp"

#include "wattpipe/legal/legal.hpp"

namespace ocmf = wattpipe::legal::ocmf;

namespace {
// A key given inline (hex/base64), or a file holding one (PEM armour allowed).
std::string key_text(const std::string& arg) {
  std::string text = arg;
  const std::string path = !arg.empty() && arg[0] == '@' ? arg.substr(1) : arg;
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) {
    std::ifstream f(path);
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  if (const auto b = text.find("-----BEGIN"); b != std::string::npos) {
    const auto body = text.find('\n', b);
    const auto e = text.find("-----END", body);
    if (body != std::string::npos && e != std::string::npos) text = text.substr(body + 1, e - body - 1);
  }
  return text;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"wattpipe-ocmf: verify OCMF signed meter values"};
  wattpipe::tools::add_version(app, "wattpipe-ocmf");
  app.require_subcommand(1);
  std::string key, record = "-", keyfile;
  bool quiet = false;
  CLI::App* v = app.add_subcommand("verify", "verify a record against a public key");
  v->add_option("--public-key", key, "DER SubjectPublicKeyInfo or raw EC point, hex or base64, inline or a file")
      ->required();
  v->add_option("record", record, "the OCMF record, a file holding it, or - for standard input; a record or a "
                                  "start/stop reply (JSON)")->capture_default_str();
  v->add_flag("--quiet", quiet, "no summary, only the exit code");
  CLI::App* pk = app.add_subcommand("pubkey", "print the public key (DER SPKI hex) of a PEM private key");
  pk->add_option("--ocmf-key,--key", keyfile, "PEM private key (the daemon's --ocmf-key; --key: the old name)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (pk->parsed()) {
    std::string err;
    const auto pub = ocmf::public_key_of(keyfile, err);
    if (!pub) {
      std::cerr << "wattpipe-ocmf: " << err << "\n";
      return 2;
    }
    std::cout << *pub << "\n";
    return 0;
  }
  std::string text = record;
  std::error_code ec;
  if (record == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else if (record.rfind("OCMF|", 0) != 0 && std::filesystem::is_regular_file(record, ec)) {
    std::ifstream f(record, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (!f && !f.eof()) {
      std::cerr << "wattpipe-ocmf: cannot read '" << record << "'\n";
      return 2;
    }
  }
  const std::vector<std::string> records = ocmf::records_in(text);
  if (records.empty()) {
    std::cerr << "wattpipe-ocmf: no OCMF record found (a JSON object must hold signed_meter_data)\n";
    return 2;
  }
  int rc = 0;  // the worst verdict of all records
  for (const std::string& rec : records) {
    const ocmf::Verification r = ocmf::verify(rec, key_text(key));
    if (!quiet) std::cout << ocmf::summarize(r);
    // Which software signed, against the legal part of this build (docs/legal.md).
    if (!quiet && !r.meter_firmware.empty())
      std::cout << "            "
                << (r.meter_firmware == wattpipe::legal::software_id_firmware()
                        ? std::string("(the legal part of this build)")
                        : "(not this build's legal part, " + wattpipe::legal::software_id_firmware() + ")")
                << "\n";
    switch (r.verdict) {
      case ocmf::Verification::Verdict::valid: break;
      case ocmf::Verification::Verdict::invalid: rc = std::max(rc, 1); break;
      case ocmf::Verification::Verdict::unreadable: rc = 2; break;
    }
  }
  return rc;
}

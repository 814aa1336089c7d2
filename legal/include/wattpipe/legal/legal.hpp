// SPDX-License-Identifier: Apache-2.0
// The legally relevant part of wattpipe, behind this one door (docs/legal.md).
//
// Billing depends on what is declared here and on nothing else in the
// project: the energy registers and their integration, the state that keeps
// them across restarts (register store, transaction journal, OCMF key), the
// transaction rules and OCMF record signing, and the software
// identification that names exactly these sources. The rest of wattpipe
// (sources, metrology kernels, analysis, MQTT, web, logs, export, tools)
// reaches them only through this header; the private headers under
// legal/src are not on any other target's include path.
//
// Threading, by entry point:
// - registers, readings, snapshots: plain values;
// - EnergyIntegrator: the processing thread only;
// - Meter::open(), start_writer(), stop_writer(): the owning (main) thread;
//   the snapshot hand-off: written by the processing thread, read by the
//   meter's state-writer thread; persisted_windows() and state_healthy()
//   from any thread;
// - Meter transactions and public_key_hex(): one thread (the MQTT thread);
// - software_id(), verify(), summarize(), records_in(): any thread (pure).
//
// Memory ordering: the snapshot hand-off is a TripleBuffer (see its header);
// persisted_windows() is stored with release once a snapshot's record is in
// the page cache and must be loaded with acquire before a window's registers
// are published.
#pragma once

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wattpipe/acquire/triple_buffer.hpp"
#include "wattpipe/acquire/waker.hpp"

namespace wattpipe::legal {

// ---- Software identification ------------------------------------------------

// The legal part's name, version and the SHA-256 over exactly its source
// files (computed by the build from the target's own source list; see
// docs/legal.md for how to recompute it from a source tree).
struct SoftwareId {
  std::string_view name;     // "wattpipe-legal"
  std::string_view version;  // the legal part's own version
  std::string_view sha256;   // 64 lowercase hex digits
  std::size_t files = 0;     // how many files the hash covers
};
const SoftwareId& software_id() noexcept;
// "wattpipe-legal 1.0 sha256:<64 hex>": what --version, logs and pages show.
std::string software_id_text();
// "wattpipe-legal-1.0-<64 hex>": the form in OCMF's MF (meter firmware) field.
std::string software_id_firmware();
// The files the hash covers, as `sha256sum` prints them ("<hash>  <path>",
// one a line, sorted by path): the hash of this text is the sha256 above.
std::string_view software_manifest() noexcept;

// ---- Energy registers ---------------------------------------------------------
// Registers that do not drift: whole micro-watt-hours in an integer,
// the fraction carried in a double that stays in [0, 1). Adding a window's
// energy rounds nothing away; the only error is the double addition of the
// window energy to a value below 1 uWh (~1e-10 uWh per window).
//
// No input can corrupt a register: an addition that is negative, NaN or
// infinite is refused, and one that would pass kMaxUwh saturates there;
// both are reported to the caller (never wraps, never goes back).
// 1e18 uWh = 1 TWh: far beyond any charger's life, far inside int64.
inline constexpr std::int64_t kMaxUwh = 1'000'000'000'000'000'000;

enum class AddResult { ok, refused, saturated };

struct CompensatedRegister {
  std::int64_t uwh = 0;  // whole micro-watt-hours, [0, kMaxUwh]
  double frac_uwh = 0;   // carried fraction, [0, 1)

  // Adds x >= 0 uWh. Refuses (adds nothing) a negative or non-finite x;
  // saturates at kMaxUwh instead of overflowing.
  AddResult add_uwh(double x) noexcept {
    if (!(x >= 0) || !std::isfinite(x)) return AddResult::refused;
    const double f = frac_uwh + x;
    const double whole = std::floor(f);
    if (whole >= double(kMaxUwh - uwh)) {
      uwh = kMaxUwh;
      frac_uwh = 0;
      return AddResult::saturated;
    }
    uwh += static_cast<std::int64_t>(whole);
    frac_uwh = f - whole;
    if (!(frac_uwh >= 0 && frac_uwh < 1)) frac_uwh = 0;  // rounding at the edge of [0, 1)
    return AddResult::ok;
  }
  // True when the values are ones add_uwh() can produce (for restored state).
  [[nodiscard]] bool sane() const noexcept { return uwh >= 0 && uwh <= kMaxUwh && frac_uwh >= 0 && frac_uwh < 1; }
  [[nodiscard]] double wh() const noexcept { return (static_cast<double>(uwh) + frac_uwh) * 1e-6; }
  friend bool operator==(const CompensatedRegister&, const CompensatedRegister&) = default;
};

// All registers of a meter: imported and exported energy per phase and in total.
struct Registers {
  std::array<CompensatedRegister, 3> import_phase{};
  std::array<CompensatedRegister, 3> export_phase{};
  CompensatedRegister import_total{};
  CompensatedRegister export_total{};

  // Books one segment's net energies (uWh per phase, as many as `phases`):
  // each phase by its own sign, the total by the sign of the sum, so a phase
  // exporting while others import nets out as billing meters do. A segment
  // with a non-finite energy is refused whole (nothing booked); otherwise
  // the worst result of the additions is returned.
  AddResult book(const double* phase_uwh, unsigned phases) noexcept {
    double sum = 0;
    for (unsigned k = 0; k < phases; ++k) sum += phase_uwh[k];
    if (!std::isfinite(sum)) return AddResult::refused;
    AddResult worst = AddResult::ok;
    auto note = [&](AddResult r) {
      if (r != AddResult::ok) worst = r;
    };
    for (unsigned k = 0; k < phases; ++k) {
      const double e = phase_uwh[k];
      note(e >= 0 ? import_phase[k].add_uwh(e) : export_phase[k].add_uwh(-e));
    }
    note(sum >= 0 ? import_total.add_uwh(sum) : export_total.add_uwh(-sum));
    return worst;
  }
  [[nodiscard]] bool sane() const noexcept {
    for (int k = 0; k < 3; ++k)
      if (!import_phase[k].sane() || !export_phase[k].sane()) return false;
    return import_total.sane() && export_total.sane();
  }

  // True when no register of *this is below the same register of `o`.
  [[nodiscard]] bool covers(const Registers& o) const noexcept {
    auto ge = [](const CompensatedRegister& a, const CompensatedRegister& b) {
      return a.uwh > b.uwh || (a.uwh == b.uwh && a.frac_uwh >= b.frac_uwh);
    };
    for (int k = 0; k < 3; ++k)
      if (!ge(import_phase[k], o.import_phase[k]) || !ge(export_phase[k], o.export_phase[k])) return false;
    return ge(import_total, o.import_total) && ge(export_total, o.export_total);
  }
  friend bool operator==(const Registers&, const Registers&) = default;
};

// Register faults seen by the integrator (plain counts, processing thread).
struct RegisterFaults {
  std::uint64_t energy_refused = 0;  // segments with energy above full scale, NaN or infinite: not booked
  std::uint64_t saturated = 0;       // additions that reached kMaxUwh
};

// Registers at an exact sample position (transaction readings).
struct Reading {
  Registers registers;
  std::int64_t utc_ns = 0;
  bool clock_synced = false;
  bool dc = false;
  std::uint64_t frame = 0;    // stream position of the reading
  std::uint64_t outages = 0;  // source outages so far in this run (filled by the processing thread)
  bool source_live = true;    // the source was live when the reading was taken
};

// Registers for the state writer: closed registers plus the open window's
// energy as if committed (never published, so never seen going back).
struct StateSnapshot {
  Registers registers;
  std::uint64_t windows_closed = 0;  // windows whose registers this covers
  std::int64_t utc_ns = 0;
  std::uint64_t serial = 0;          // +1 per snapshot
};

// ---- Energy integration -------------------------------------------------------
// The integral of v·i·dt over calibrated samples, booked into the registers.
// Its input is the open window's running sums of u·i per phase (volt-amperes
// times samples, from the metrology kernel over the same samples) and the
// frames they cover; it books only what is new since the last booking, so
// a reading at any sample position is exact and nothing is booked twice.
// Plausibility: more energy on one phase than full scale (V x A) over the
// window's length so far is refused whole (nothing booked), as is NaN.
//
// Threading: the processing thread only.
class EnergyIntegrator {
 public:
  struct Segment {
    std::array<double, 3> sui{};  // sum of u·i per phase over the open window so far
    unsigned phases = 1;
    double frames = 0;            // frames the sums cover (weights)
    double fs_hz = 0;             // sample rate
  };

  EnergyIntegrator(double full_scale_v, double full_scale_a) noexcept : fs_v_(full_scale_v), fs_a_(full_scale_a) {}

  // Before the first segment: continue from saved registers.
  void restore(const Registers& r) noexcept { reg_ = r; }
  // Books the open window's energy not yet booked (a reading's position).
  AddResult commit(const Segment& s) noexcept;
  // Books the rest of the window and starts the next one.
  AddResult close(const Segment& s) noexcept;
  // The registers as if committed now, without committing (for persistence).
  [[nodiscard]] Registers folded(const Segment& s) const noexcept;

  [[nodiscard]] const Registers& registers() const noexcept { return reg_; }
  [[nodiscard]] const RegisterFaults& faults() const noexcept { return faults_; }

 private:
  AddResult book(const Segment& s, Registers& r) const noexcept;
  void count(AddResult a) noexcept;

  double fs_v_, fs_a_;
  Registers reg_;
  RegisterFaults faults_;
  std::array<double, 3> committed_sui_{};  // sum u·i of the open window already booked
};

// ---- Transactions (EVerest start/stop, OCMF-signed) ---------------------------

// A start request as the transaction rules take it (EVerest's fields).
struct TransactionStart {
  std::string evse_id, transaction_id;
  std::string identification_status;            // ASSIGNED | NOT_ASSIGNED
  std::string identification_level;             // optional
  std::vector<std::string> identification_flags;
  std::string identification_type;
  std::string identification_data;              // optional
  std::string tariff_text;                      // optional
};

inline constexpr std::string_view kSigningMethod = "ECDSA-secp256r1-SHA256";
inline constexpr std::string_view kEncodingMethod = "OCMF";

// One signed OCMF record and the time of its reading.
struct SignedRecord {
  std::string record;
  std::int64_t utc_ns = 0;
};

// A transaction that a start or stop closed (for displays and logs).
struct ClosedTransaction {
  std::string id, evse_id;
  SignedRecord begin, end;
};

// An open transaction as the rest of the meter may see it.
struct OpenTransaction {
  std::string id, evse_id;
  SignedRecord begin;
};

struct StartResult {
  std::string error;  // empty: started (or the same start repeated)
  std::optional<SignedRecord> begin;
  std::optional<std::int64_t> min_stop_utc_ns, max_stop_utc_ns;
  std::vector<ClosedTransaction> closed;  // a dangling one on the same EVSE, aborted first
};

struct StopResult {
  std::string error;  // empty: stopped
  std::optional<SignedRecord> end, begin;  // of the last transaction closed
  std::vector<ClosedTransaction> closed;
};

// OCMF meter fields the user configures (MF, the meter firmware, is always
// software_id_firmware(): it names the software that signed).
struct MeterInfo {
  std::string gateway_id = "wattpipe";   // GI
  std::string gateway_version;           // GV
  std::string vendor, model, serial;     // MV, MM, MS (and GS)
  bool export_readings = false;          // add 1-0:2.8.0 readings
};

// ---- The meter's legal state: one object, opened once -------------------------

struct MeterOptions {
  std::string state_dir;  // "" or "none": in memory only (registers, journal and key last one run)
  bool recover = false;   // continue from the best surviving value when the state is damaged
  std::string ocmf_key;   // a PEM key to sign with; "": <state_dir>/ocmf-key.pem, created when missing
  MeterInfo meter;
  double min_stop_s = 0, max_stop_s = 0;  // > 0: reported in start replies
};

struct OpenError {
  std::string message;
  bool usage = false;  // the configuration is at fault (exit 2), not the machine (exit 1)
};

struct MeterCounters {
  std::atomic<std::uint64_t> records{0};       // register records written
  std::atomic<std::uint64_t> write_errors{0};  // records, syncs or snapshots that failed
  std::atomic<std::uint64_t> syncs{0};
  std::atomic<std::uint64_t> snapshots{0};
};

class Meter {
 public:
  // Owner thread. Locks the state directory, recovers the registers, opens
  // the journal, checks both against each other (damage refuses the start
  // unless options.recover) and loads or creates the OCMF key. nullptr with
  // `error` when the meter cannot be opened.
  static std::unique_ptr<Meter> open(const MeterOptions& options, OpenError& error);
  ~Meter();
  Meter(const Meter&) = delete;
  Meter& operator=(const Meter&) = delete;

  // What was restored (owner thread, after open()).
  [[nodiscard]] const Registers& restored_registers() const noexcept;
  [[nodiscard]] std::uint64_t restored_serial() const noexcept;
  [[nodiscard]] std::uint64_t corrupt_records_skipped() const noexcept;
  [[nodiscard]] bool persistent() const noexcept;

  // The processing thread writes register snapshots here and notifies the
  // waker; null when the meter is not persistent.
  [[nodiscard]] acquire::TripleBuffer<StateSnapshot>* snapshots() noexcept;
  [[nodiscard]] acquire::Waker* snapshot_waker() noexcept;
  // Windows whose registers are saved (release; load with acquire), and the
  // waker notified after each save; null when not persistent.
  [[nodiscard]] const std::atomic<std::uint64_t>* persisted_windows() const noexcept;
  [[nodiscard]] acquire::Waker* persisted_waker() noexcept;
  // Owner thread: the state writer's thread. stop_writer() saves the newest
  // snapshot, syncs and returns when the thread has ended.
  void start_writer();
  void stop_writer();
  [[nodiscard]] const MeterCounters& counters() const noexcept;
  // Any thread: false while the registers cannot be saved (a failed write or
  // sync of the state directory: EIO, a read-only remount). The meter goes
  // on in memory, but no transaction starts or stops then, and the
  // publishers tell EVerest (docs/legal.md). Null when not persistent.
  [[nodiscard]] const std::atomic<bool>* state_healthy() const noexcept;

  // MQTT thread: the transaction rules (docs/legal.md). A reading is taken
  // by the processing thread at an exact sample position. Refused, with the
  // reason, while the state cannot be saved.
  StartResult start_transaction(const TransactionStart& request, const Reading& reading);
  // An empty id closes every open transaction.
  StopResult stop_transaction(const std::string& transaction_id, const Reading& reading);
  [[nodiscard]] std::vector<OpenTransaction> open_transactions() const;
  // DER SubjectPublicKeyInfo of the signing key, uppercase hex (any thread: immutable).
  [[nodiscard]] const std::string& public_key_hex() const noexcept;

 private:
  struct State;
  explicit Meter(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

// ---- Verification (for tools and displays; pure functions) -------------------
namespace ocmf {

struct VerifiedReading {
  std::string tm, tx, ri, ru, st, ef;
  double rv = 0;
  std::optional<std::int64_t> utc_ms;  // TM parsed
};

struct Verification {
  enum class Verdict { valid, invalid, unreadable } verdict = Verdict::unreadable;
  std::string reason;           // why not valid
  bool signature_ok = false;
  bool begin_only = false;      // a valid start record: one begin reading, no end
  std::string algorithm;        // SA used
  std::string pagination, meter_serial, meter_vendor, identification;
  std::string meter_firmware;   // MF: for wattpipe, the legal part's software id
  std::vector<VerifiedReading> readings;
};

// Verifies `record` against `public_key`: DER SubjectPublicKeyInfo or a raw
// EC point, in hex or base64. Curves secp256r1, secp256k1, secp384r1,
// brainpoolP256r1, brainpoolP384r1 (and secp192r1/k1), DER or raw r||s
// signatures in hex or base64, as the record's SA/SE say.
Verification verify(std::string_view record, std::string_view public_key);

// Human-readable summary of a verification.
std::string summarize(const Verification& v);

// The OCMF records in a text: the text itself when it is a record, or every
// signed_meter_data of a JSON object (a start or stop reply, or one
// signed_meter_value), start record first. Empty when a JSON object holds none.
std::vector<std::string> records_in(std::string_view text);

// The public key (DER SubjectPublicKeyInfo, uppercase hex) of a PEM private
// key file; nullopt with `error` when it cannot be read.
std::optional<std::string> public_key_of(const std::string& pem_path, std::string& error);

// Energy register in kWh with 4 fixed decimals, rounded down (never bills
// energy not measured): 12345678901 uWh -> "12.3456".
std::string format_kwh(std::int64_t uwh);

}  // namespace ocmf
}  // namespace wattpipe::legal

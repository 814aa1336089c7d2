# SPDX-License-Identifier: Apache-2.0
"""A meter that never lies: each way the daemon could publish a wrong, stale
or decreasing register, lose a transaction or a pagination number, or hide
that its input stopped, tried for real: a Python DAQ on real ZeroMQ sockets,
a real mosquitto, damaged state files, a full disk (a small tmpfs)."""
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import unittest
import zlib
from datetime import datetime

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402
sys.path.insert(0, os.path.join(wplib.ROOT, "python"))
import wattpipe_wprb  # noqa: E402

DC_V, DC_A = 800.0, 200.0
P_DC = DC_V * DC_A
BASE = "everest_api/1/powermeter/wattpipe"
LAYOUT_CH = {1: 2, 2: 6, 3: 8, 4: 2}


def wprb(seq, first, t0_ns, rate, frames, layout=4, fmt=3, vpc=1.0, apc=1.0, values=(DC_V, DC_A), flags=1):
    """One WPRB v1 block (docs: 64-byte little-endian header, interleaved frames)."""
    hdr = struct.pack("<4sHHHHIQQqdffI", b"WPRB", 1, 64, layout, fmt, frames, seq, first, t0_ns, rate, vpc, apc, flags)
    hdr += b"\0" * (64 - len(hdr))
    ch = LAYOUT_CH[layout]
    frame = [values[c % len(values)] for c in range(ch)]
    if fmt == 3:
        payload = struct.pack(f"<{ch}f", *frame) * frames
    elif fmt == 1:
        payload = struct.pack(f"<{ch}h", *[int(round(v)) for v in frame]) * frames
    else:
        payload = struct.pack(f"<{ch}i", *[int(round(v)) for v in frame]) * frames
    return hdr + payload


class Daq:
    """A DAQ in Python: PUSH socket, DC blocks of 100 frames at 1 kS/s paced in
    real time, t0 from the wall clock. `override(seq)` may return the bytes of
    a block to send instead (absurd input), or None for a normal one."""

    def __init__(self, rate=1000.0, frames=100):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = wplib.free_port()
        self.sock.bind(f"tcp://127.0.0.1:{self.port}")
        self.rate, self.frames = rate, frames
        self.seq = 0
        self.sent_good_frames = 0
        self.paused = threading.Event()
        self.stopping = threading.Event()
        self.override = lambda seq: None
        self.t0_of = lambda t0: t0
        self.thread = threading.Thread(target=self.run, daemon=True)

    @property
    def endpoint(self):
        return f"zmq-pull:tcp://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        return self

    def run(self):
        period = self.frames / self.rate
        next_t = time.monotonic()
        while not self.stopping.is_set():
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
            if self.paused.is_set():
                self.seq += 1  # the DAQ kept counting: a gap when it is back
                continue
            first = self.seq * self.frames
            t0 = time.time_ns() - int(period * 1e9)
            block = self.override(self.seq)
            if block is None:
                block = wprb(self.seq, first, self.t0_of(t0), self.rate, self.frames)
                self.sent_good_frames += self.frames
            try:
                self.sock.send(block, zmq.NOBLOCK)  # no peer: the block is lost, as with a real DAQ
            except zmq.Again:
                pass
            self.seq += 1

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()
        self.ctx.term()


def values_of(ev):
    return [(json.loads(p), ts) for (t, p, ts) in ev.sub.take("/m2e/powermeter_values")]


def assert_register_honest(test, values):
    """Every published register finite, non-negative and never lower than before."""
    last = {}
    for v, _ in values:
        for key in ("energy_Wh_import", "energy_Wh_export"):
            x = v[key]["total"]
            test.assertIsInstance(x, (int, float))
            test.assertGreaterEqual(x, 0, v)
            test.assertLess(x, 1e12, v)
            test.assertGreaterEqual(x, last.get(key, 0), f"{key} went back: {v}")
            last[key] = x


def utc_s(ts):
    return datetime.strptime(ts + "+0000", "%Y-%m-%dT%H:%M:%S.%fZ%z").timestamp()


class AbsurdInput(unittest.TestCase):
    def test_absurd_blocks_are_refused_by_cause_and_the_register_stays_right(self):
        """Case 1: sample rates 1e-300, 5e-324 and 0.001, float32 3e38, int16 at 3e38 per count."""
        absurd = {
            10: lambda s: wprb(s, s * 100, time.time_ns(), 1e-300, 100),
            12: lambda s: wprb(s, s * 100, time.time_ns(), 5e-324, 100),
            14: lambda s: wprb(s, s * 100, time.time_ns(), 0.001, 100),
            16: lambda s: wprb(s, s * 100, time.time_ns(), 1000.0, 100, values=(3e38, 3e38)),
            18: lambda s: wprb(s, s * 100, time.time_ns(), 1000.0, 100, fmt=1, vpc=3e38, apc=3e38, values=(100, 100)),
            20: lambda s: wprb(s, s * 100, time.time_ns(), 1000.0, 100, values=(2e6, 200.0)),  # 2 MV > 1 MV
        }
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            daq = Daq()
            daq.override = lambda s: absurd[s](s) if s in absurd else None
            daq.start()
            ev = wplib.Everest(broker.port)
            d = wplib.Daemon(tmp, ["--source", daq.endpoint, "--publish-interval-ms", "100", "--window-ms", "100"],
                             broker.port, state_dir=state).start()
            time.sleep(4.0)
            d.stop()
            daq.close()
            log, s = d.log(), d.stats()
            self.assertEqual(s["blocks_invalid"], 3, log)  # the three rates, refused at the header
            self.assertEqual(s["blocks_rejected_full_scale"], 3, log)
            self.assertIn("outside [1 Hz, 1 GHz]", log)
            self.assertIn("beyond full scale", log)
            self.assertEqual(s["register_energy_refused"], 0, "nothing absurd got past the door")
            wh = s["energy_Wh_import_total"]
            self.assertTrue(0 < wh < 1e6, log)
            # Exactly what was measured: every processed frame at 160 kW.
            self.assertAlmostEqual(wh, P_DC * s["frames_processed"] / 1000 / 3600, delta=P_DC * 0.002 / 3600)
            self.assertNotIn("nan", re.findall(r"import [^ ,]+ Wh", log)[-1])
            vals = values_of(ev)
            self.assertGreater(len(vals), 10)
            assert_register_honest(self, vals)
            # A restart continues from the value, not from an older one.
            d2 = wplib.Daemon(tmp, ["--duration", "0.5"], broker.port, name="again", state_dir=state).start()
            self.assertEqual(d2.wait(30), 0, d2.log())
            self.assertAlmostEqual(d2.stats()["energy_Wh_import_total_at_start"], wh, delta=1e-6)
            ev.close()

    def test_absurd_configuration_is_refused_with_the_key_named(self):
        with wplib.TempDir() as tmp:
            cases = [
                ("calibration:\n  I1:\n    gain: 1e300\n", "calibration.I1.gain"),
                ("calibration:\n  U1:\n    offset: 1e300\n", "calibration.U1.offset"),
                ("sim:\n  phases:\n    urms-v: 1e300\n", "urms-v"),
                ("sim:\n  phases:\n    urms_v: 1e300\n", "urms-v"),  # the old spelling: renamed, then refused
                ("sim:\n  dc_current_a: 1e9\n", "DC current"),
                ("? [1, 2]\n: 3\n", "plain name"),
                ("sim:\n  ? {a: 1}\n  : 3\n", "plain name"),
                ("calibration:\n  ? [U1]\n  : {gain: 1}\n", "plain name"),
            ]
            for text, expect in cases:
                path = os.path.join(tmp, "c.yaml")
                with open(path, "w") as f:
                    f.write(text)
                extra = ["--sim-profile", "dc"] if "dc_current" in text else []
                r = wplib.run([wplib.binary("wattpipe"), "--config", path, "--state-dir", "none", "--duration", "1",
                               *extra])
                self.assertEqual(r.returncode, 2, f"{text!r}: {r.stderr}")
                self.assertIn(expect, r.stderr, text)
            # A CT ratio is a plausible gain when allowed.
            with open(path, "w") as f:
                f.write("calibration:\n  I1:\n    gain: 2000\n")
            r = wplib.run([wplib.binary("wattpipe"), "--config", path, "--state-dir", "none", "--duration", "0.2",
                           "--broker", f"127.0.0.1:{wplib.free_port()}"])
            self.assertEqual(r.returncode, 0, r.stderr)


class DamagedState(unittest.TestCase):
    def run_meter(self, tmp, broker, state, name, args=(), code=0, seconds=1.0):
        d = wplib.Daemon(tmp, ["--duration", str(seconds), *args], broker.port, name=name, state_dir=state).start()
        self.assertEqual(d.wait(30), code, d.log())
        return d

    def test_every_file_damaged_refuses_loudly_and_recovery_is_journalled(self):
        """Case 2: all records and the snapshot flipped, truncated, deleted or replaced by garbage."""
        damages = {
            "flipped": lambda p: flip_all(p),
            "truncated": lambda p: truncate_all(p, 1000),
            "deleted": lambda p: [os.remove(f) for f in state_files(p)],
            "garbage": lambda p: [write_bytes(f, os.urandom(5000)) for f in state_files(p)],
        }
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            for kind, damage in damages.items():
                state = os.path.join(tmp, "state-" + kind)
                e1 = self.run_meter(tmp, broker, state, kind + "-a").stats()["energy_Wh_import_total"]
                damage(state)
                d = self.run_meter(tmp, broker, state, kind + "-refused", code=1)
                log = d.log()
                self.assertIn("STATE DAMAGED", log, kind)
                self.assertIn("registers", log, kind)
                self.assertIn("best surviving value", log, kind)
                self.assertIn("--state-recover", log, kind)
                # The evidence stays as it was found: a second try refuses again.
                self.run_meter(tmp, broker, state, kind + "-refused-again", code=1)
                d = self.run_meter(tmp, broker, state, kind + "-recover", args=["--state-recover"])
                self.assertIn("RECOVERING", d.log(), kind)
                with open(os.path.join(state, "transactions.journal")) as f:
                    self.assertIn('"op":"recover"', f.read(), kind)
                self.assertLessEqual(d.stats()["energy_Wh_import_total_at_start"], e1 + 1e-9)
                # Recovered state is whole again: the next start is quiet.
                d = self.run_meter(tmp, broker, state, kind + "-after")
                self.assertNotIn("STATE DAMAGED", d.log(), kind)

    def test_a_cut_ring_without_snapshot_never_costs_a_published_value(self):
        """Case 2: the WAL truncated to 1000 bytes, no snapshot: the twin ring keeps the value."""
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            ev = wplib.Everest(broker.port)
            self.run_meter(tmp, broker, state, "a", args=["--publish-interval-ms", "100"], seconds=2)
            published = max(v["energy_Wh_import"]["total"] for v, _ in values_of(ev))
            os.remove(os.path.join(state, "registers.snap"))
            with open(os.path.join(state, "registers.wal"), "r+b") as f:
                f.truncate(1000)
            d = self.run_meter(tmp, broker, state, "b", code=1)
            self.assertIn("registers.wal: 1000 bytes", d.log())
            d = self.run_meter(tmp, broker, state, "c", args=["--state-recover"])
            self.assertGreaterEqual(d.stats()["energy_Wh_import_total_at_start"], published - 1e-6)
            ev.close()


def state_files(state):
    return [os.path.join(state, n) for n in ("registers.wal", "registers.wal.b", "registers.snap")]


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def flip_all(state):
    for f in state_files(state):
        with open(f, "r+b") as fh:
            data = bytearray(fh.read())
            for i in range(0, len(data), 256):
                if data[i:i + 4] == b"WPST":
                    data[i + 40] ^= 0x5A
            fh.seek(0)
            fh.write(data)


def truncate_all(state, n):
    for f in state_files(state):
        with open(f, "r+b") as fh:
            fh.truncate(n)


def pg_of(reply):
    return int(json.loads(reply["signed_meter_value"]["signed_meter_data"].split("|")[1])["PG"][1:])


class Journal(unittest.TestCase):
    def session(self, tmp, broker, state, name, n, args=()):
        ev = wplib.Everest(broker.port)
        d = wplib.Daemon(tmp, list(args), broker.port, name=name, state_dir=state).start()
        self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10), d.log())
        pgs = []
        for k in range(n):
            s = ev.start(f"{name}-{k}")
            self.assertEqual(s["status"], "OK", s)
            pgs.append(pg_of(s))
            t = ev.stop(f"{name}-{k}")
            pgs.append(pg_of(t))
        return d, ev, pgs

    def test_damaged_or_cut_journal_refuses_and_recovery_never_reuses_a_number(self):
        """Case 3: a flipped or truncated journal: refused; recovered, pagination goes on above."""
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            for kind in ("flipped", "truncated", "deleted"):
                state = os.path.join(tmp, "state-" + kind)
                d, ev, pgs = self.session(tmp, broker, state, kind, 5)
                # One transaction left open: it must not vanish without a word.
                self.assertEqual(ev.start(f"{kind}-open")["status"], "OK")
                time.sleep(0.3)  # the registers' copy of the journal's count is written
                self.assertEqual(d.stop(), 0, d.log())
                ev.close()
                path = os.path.join(state, "transactions.journal")
                with open(path, "r+b") as f:
                    data = bytearray(f.read())
                    if kind == "flipped":
                        data[len(data) // 2] ^= 0x20
                        f.seek(0)
                        f.write(data)
                    elif kind == "truncated":
                        f.truncate(data.index(b"\n") + 1)  # a clean cut: every line left is valid
                if kind == "deleted":
                    os.remove(path)
                r = wplib.Daemon(tmp, ["--duration", "1"], broker.port, name=kind + "-refused", state_dir=state).start()
                self.assertEqual(r.wait(30), 1, r.log())
                self.assertIn("transactions.journal", r.log())
                self.assertIn("STATE DAMAGED", r.log())
                d2, ev2, pgs2 = self.session(tmp, broker, state, kind + "-rec", 2, args=["--state-recover"])
                self.assertIn("RECOVERING", d2.log())
                self.assertGreater(min(pgs2), max(pgs), f"{kind}: pagination reused {pgs} then {pgs2}")
                self.assertEqual(d2.stop(), 0)
                ev2.close()

    def test_full_disk_is_logged_leaves_no_torn_entry_and_loses_nothing_after(self):
        """Case 3: the disk fills while running, then space returns."""
        with wplib.TempDir() as tmp:
            mnt = os.path.join(tmp, "small")
            os.makedirs(mnt)
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt], capture_output=True, text=True)
            if r.returncode != 0:
                self.skipTest("cannot mount a tmpfs here (needs root): " + r.stderr.strip())
            try:
                with wplib.Broker(tmp) as broker:
                    state = os.path.join(mnt, "state")
                    ev = wplib.Everest(broker.port)
                    d = wplib.Daemon(tmp, ["--publish-interval-ms", "100"], broker.port, state_dir=state).start()
                    self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10))
                    # One EVSE each: a start on a busy EVSE would close its transaction.
                    self.assertEqual(ev.start("before-full", evse="before-full")["status"], "OK")
                    filler = os.path.join(mnt, "filler")
                    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
                    for chunk in (1 << 16, 1 << 12, 1):  # to the last byte
                        try:
                            while True:
                                os.write(fd, b"\0" * chunk)
                        except OSError:
                            pass
                    os.close(fd)
                    # The journal's last page may still take an entry or two; then appends fail.
                    replies = {f"while-full-{k}": ev.start(f"while-full-{k}", evse=f"while-full-{k}") for k in range(10)}
                    accepted = [tx for tx, rep in replies.items() if rep["status"] == "OK"]
                    refused = [tx for tx, rep in replies.items() if rep["status"] == "UNEXPECTED_ERROR"]
                    self.assertGreaterEqual(len(refused), 5, replies)
                    os.remove(filler)
                    ok = ev.start("after-space-returns", evse="after-space-returns")
                    self.assertEqual(ok["status"], "OK", ok)
                    time.sleep(0.3)
                    self.assertEqual(d.stop(), 0, d.log())
                    log = d.log()
                    self.assertRegex(log, r"error.*cannot write transaction journal")
                    self.assertFalse(os.path.exists(os.path.join(state, "registers.snap.tmp")))
                    with open(os.path.join(state, "transactions.journal"), "rb") as f:
                        text = f.read()
                    # Every entry whole: length and CRC hold, no torn entry left behind.
                    self.assertTrue(text.endswith(b"\n"))
                    for line in text.split(b"\n")[:-1]:
                        n, crc, body = int(line[:8], 16), int(line[9:17], 16), line[18:]
                        self.assertEqual((len(body), zlib.crc32(body)), (n, crc), line[:80])
                    for tx in refused:
                        self.assertNotIn(tx.encode() + b'"', text, "a refused start left nothing")
                    ev.close()
                    # After a restart every accepted transaction is there.
                    ev = wplib.Everest(broker.port)
                    d2 = wplib.Daemon(tmp, [], broker.port, name="b", state_dir=state).start()
                    self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10))
                    self.assertIn(f"{2 + len(accepted)} open transaction", d2.log())
                    for tx in ["before-full", "after-space-returns", *accepted]:
                        self.assertEqual(ev.stop(tx)["status"], "OK", tx)
                    self.assertEqual(d2.stop(), 0)
                    ev.close()
            finally:
                subprocess.run(["umount", "-l", mnt], capture_output=True)

    def test_a_request_flood_keeps_the_journal_bounded_and_the_log_quiet(self):
        """Case 3 and 5: 1500 start/stop pairs without replyTo."""
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            ev = wplib.Everest(broker.port)
            d = wplib.Daemon(tmp, [], broker.port, state_dir=state).start()
            self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10))
            for k in range(1500):
                ev.start(f"flood-{k}", reply=False)
                ev.stop(f"flood-{k}", reply=False)
            # The last one is answered: every request before it was handled.
            self.assertEqual(ev.start("last")["status"], "OK")
            self.assertEqual(d.stop(), 0)
            size = os.path.getsize(os.path.join(state, "transactions.journal"))
            self.assertLess(size, 400_000, f"journal grew to {size} bytes")
            lines = d.log().count("\n")
            self.assertLess(lines, 300, f"{lines} log lines for a request flood")
            self.assertIn("more transaction lines suppressed", d.log())
            ev.close()


class SourceHealth(unittest.TestCase):
    def test_a_daq_that_stops_stops_values_and_checks_and_the_outage_is_flagged(self):
        """Case 4: the DAQ stops for 2.5 s and comes back."""
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            daq = Daq().start()
            ev = wplib.Everest(broker.port)
            d = wplib.Daemon(tmp, ["--source", daq.endpoint, "--publish-interval-ms", "100", "--window-ms", "100",
                                   "--source-timeout-ms", "500"], broker.port).start()
            self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10), d.log())
            self.assertEqual(ev.start("across-outage")["status"], "OK")
            time.sleep(1.0)
            daq.paused.set()
            t_stop = time.time()
            time.sleep(2.5)
            t_back = time.time()
            daq.paused.clear()
            time.sleep(2.0)
            stop = ev.stop("across-outage")
            t_end = time.time()
            d.stop()
            daq.close()
            log = d.log()
            self.assertEqual(log.count("STALLED"), 1, log)
            self.assertIn("live again after an outage", log)
            # Nothing went out between the stall being seen and the source's return.
            quiet_from, quiet_to = t_stop + 1.0, t_back
            during = [m for m in ev.sub.take() if quiet_from < m[2] < quiet_to and
                      (m[0].endswith("powermeter_values") or m[0].endswith("communication_check"))]
            self.assertEqual(during, [], "values or checks during the outage")
            after = [m for m in ev.sub.take("communication_check") if t_back + 0.5 < m[2] < t_end]
            self.assertTrue(after and all(p == b"true" for (_, p, _) in after), "checks resume, never false")
            s = d.stats()
            self.assertEqual(s["outages"], 1)
            self.assertGreater(s["frames_lost_gap"], 2000)
            self.assertAlmostEqual(s["energy_Wh_import_total"], P_DC * s["frames_processed"] / 1000 / 3600,
                                   delta=P_DC * 0.002 / 3600)
            # The transaction survived, and its end reading says energy may be missing.
            self.assertEqual(stop["status"], "OK", stop)
            rd = [r for r in json.loads(stop["signed_meter_value"]["signed_meter_data"].split("|")[1])["RD"]
                  if "TX" in r]
            self.assertEqual(rd[0]["EF"], "")
            self.assertEqual(rd[1]["EF"], "E")
            assert_register_honest(self, values_of(ev))
            ev.close()

    def test_a_daq_that_never_connects_gets_no_communication_check(self):
        """Case 4: nothing ever arrives."""
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            ev = wplib.Everest(broker.port)
            d = wplib.Daemon(tmp, ["--source", f"zmq:tcp://127.0.0.1:{wplib.free_port()}", "--source-timeout-ms", "500"],
                             broker.port).start()
            time.sleep(3.0)
            d.stop()
            # None at all: not while the input never came, and no false at the stop.
            time.sleep(0.3)  # anything the stop sent, through the broker
            self.assertEqual(ev.sub.take("communication_check"), [])
            self.assertEqual(ev.sub.take("powermeter_values"), [])
            self.assertIn("no valid block since start", d.log())
            self.assertEqual(d.stats()["source_health"], "gone")
            ev.close()

    def test_lying_clocks_are_replaced_flagged_and_never_stop_publishing(self):
        """Case 4: one block an hour ahead; a DAQ whose t0 is 0; OCMF never signs 1970."""
        for kind, t0_of, seq_hit in (("hour-ahead", None, 15), ("zero", lambda t0: 0, None)):
            with self.subTest(kind), wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
                daq = Daq()
                if t0_of:
                    daq.t0_of = t0_of
                else:
                    daq.override = lambda s: (wprb(s, s * 100, time.time_ns() + 3600 * 10**9, 1000.0, 100)
                                              if s == seq_hit else None)
                daq.start()
                ev = wplib.Everest(broker.port)
                d = wplib.Daemon(tmp, ["--source", daq.endpoint, "--publish-interval-ms", "100", "--window-ms",
                                       "100"], broker.port).start()
                self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10), d.log())
                start = ev.start("tx-" + kind)
                time.sleep(3.0)
                d.stop()
                daq.close()
                vals = values_of(ev)
                self.assertGreater(len(vals), 15, d.log())
                for v, recv in vals:
                    self.assertLess(abs(utc_s(v["timestamp"]) - recv), 5, f"{kind}: timestamp {v['timestamp']}")
                gaps = [b[1] - a[1] for a, b in zip(vals, vals[1:])]
                self.assertLess(max(gaps), 1.0, f"{kind}: publishing stopped for {max(gaps):.1f} s")
                self.assertIn("using the receive-time mapping", d.log())
                tm = json.loads(start["signed_meter_value"]["signed_meter_data"].split("|")[1])["RD"][0]["TM"]
                self.assertFalse(tm.startswith("1970"), tm)
                signed_at = datetime.strptime(tm[:19] + "+0000", "%Y-%m-%dT%H:%M:%S%z").timestamp()
                self.assertLess(abs(signed_at - time.time()), 60, tm)
                if kind == "zero":
                    self.assertTrue(tm.endswith(" I"), f"clock not synchronised must say so: {tm}")
                self.assertGreater(d.stats()["blocks_time_replaced"], 0)
                ev.close()

    def test_losses_are_logged_as_they_happen_under_the_shared_names(self):
        """Case 4: gaps and invalid blocks show up in the log while running, and in the exit line."""
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            daq = Daq()
            daq.override = lambda s: (b"garbage" if s % 10 == 3 else
                                      wprb(s, s * 100, time.time_ns(), 1000.0, 100, values=(float("nan"), 1.0))
                                      if s % 10 == 6 else None)
            daq.start()
            d = wplib.Daemon(tmp, ["--source", daq.endpoint, "--log", os.path.join(tmp, "w.jsonl")],
                             broker.port).start()
            deadline = time.time() + 15
            while time.time() < deadline and "input losses since the last line" not in d.log():
                time.sleep(0.2)
            running_log = d.log()
            self.assertIn("input losses since the last line", running_log)
            self.assertIsNone(d.proc.poll(), "logged while running, not at exit")
            d.stop()
            daq.close()
            for name in ("frames_lost_gap", "frames_invalid", "blocks_invalid"):
                self.assertIn(name + " +", running_log)
                self.assertRegex(d.log(), r"stopped after .*losses: .*" + name)
                self.assertGreater(d.stats()[name], 0)
            with open(os.path.join(tmp, "w.jsonl")) as f:
                recs = wplib.windows_of(f)
            self.assertGreater(recs[-1]["losses"]["frames_lost_gap"], 0)
            for name in recs[-1]["losses"]:
                self.assertIn(name, d.stats(), "one set of names for the log, the stats and the exit line")


class OtherWaysIn(unittest.TestCase):
    def test_replies_go_only_under_the_meters_own_reply_prefix(self):
        """Case 5: replyTo naming the value topics, e2m, or another meter."""
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            ev = wplib.Everest(broker.port)
            spy = wplib.Subscriber(broker.port, ["#"])
            d = wplib.Daemon(tmp, ["--publish-interval-ms", "100"], broker.port).start()
            self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10))
            targets = [BASE + "/m2e/powermeter_values", BASE + "/m2e/public_key_ocmf", BASE + "/m2e/communication_check",
                       BASE + "/e2m/heartbeat", "everest_api/1/powermeter/other/m2e/powermeter_values",
                       BASE + "/m2e/reply", BASE + "/m2e/replyX/1"]
            for t in targets:
                spy.publish(BASE + "/e2m/stop_transaction", json.dumps({"headers": {"replyTo": t}, "payload": "x"}))
            self.assertEqual(ev.stop("nothing-open")["status"], "UNEXPECTED_ERROR")  # a proper one is answered
            time.sleep(0.5)
            d.stop()
            bodies = [(t, p) for (t, p, _) in spy.take() if b'"status"' in p]
            self.assertTrue(all("/m2e/reply/" in t for t, _ in bodies), bodies)
            self.assertEqual(d.stats()["replies_refused_topic"], len(targets))
            spy.close()
            ev.close()

    def test_empty_payloads_are_malformed_not_a_crash(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            ev = wplib.Everest(broker.port)
            d = wplib.Daemon(tmp, [], broker.port).start()
            self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10))
            for t in ("heartbeat", "start_transaction", "stop_transaction"):
                ev.sub.publish(f"{BASE}/e2m/{t}", b"")
            time.sleep(0.5)
            self.assertIsNone(d.proc.poll(), d.log())
            self.assertEqual(d.stop(), 0, d.log())
            s = d.stats()
            self.assertEqual(s["everest_heartbeats_malformed"], 1)
            self.assertEqual(s["requests_malformed"], 2)
            ev.close()

    def test_a_second_daemon_on_the_same_state_dir_is_refused(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            a = wplib.Daemon(tmp, [], broker.port, name="a", state_dir=state).start()
            deadline = time.time() + 10
            while "registers restored" not in a.log() and time.time() < deadline:
                time.sleep(0.05)
            b = wplib.Daemon(tmp, ["--duration", "1"], broker.port, name="b", state_dir=state).start()
            self.assertEqual(b.wait(30), 2, b.log())
            self.assertIn(f"pid {a.proc.pid}", b.log())
            self.assertEqual(a.stop(), 0)

    def test_logs_never_truncate_what_is_there(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            jsonl, raw = os.path.join(tmp, "w.jsonl"), os.path.join(tmp, "r.wprb")
            with open(jsonl, "w") as f:
                f.write('{"earlier":"run"}\n{"torn":')
            earlier_raw = os.urandom(3000)
            with open(raw, "wb") as f:
                f.write(earlier_raw)
            d = wplib.Daemon(tmp, ["--duration", "1", "--log", jsonl, "--log-raw", raw], broker.port).start()
            self.assertEqual(d.wait(30), 0, d.log())
            with open(jsonl) as f:
                lines = f.read().split("\n")
            self.assertEqual(lines[0], '{"earlier":"run"}')
            self.assertEqual(lines[1], '{"torn":', "the torn line ends where it ended; this run starts anew")
            self.assertIn('"type":"header"', lines[2], "this run's part starts with its header record")
            self.assertIn('"seq":0', lines[3])
            with open(raw + ".1", "rb") as f:
                self.assertEqual(f.read(), earlier_raw, "the earlier raw log moved aside intact")
            with open(raw, "rb") as f:
                self.assertEqual(f.read(4), b"WPRN", "the new raw log opens with its note")
            notes = wattpipe_wprb.notes(raw)
            self.assertEqual(len(notes), 1)
            self.assertEqual(notes[0]["software_id"], wplib.software_id())
            self.assertGreater(len(wattpipe_wprb.read_file(raw)[1]), 0, "and its blocks read past the note")


class OcmfVerify(unittest.TestCase):
    def test_verify_takes_a_file_or_a_reply_object(self):
        """Case 6: a record as a file path, and the JSON reply of a stop."""
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            ev = wplib.Everest(broker.port)
            d = wplib.Daemon(tmp, [], broker.port).start()
            self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10))
            ev.start("v")
            time.sleep(0.3)
            stop = ev.stop("v")
            d.stop()
            key = stop["signed_meter_value"]["public_key"]
            rec_path = os.path.join(tmp, "record.txt")
            with open(rec_path, "w") as f:
                f.write(stop["signed_meter_value"]["signed_meter_data"] + "\n")
            r = wplib.run([wplib.binary("wattpipe-ocmf"), "verify", "--public-key", key, rec_path])
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            r = wplib.run([wplib.binary("wattpipe-ocmf"), "verify", "--public-key", key, "-"], input=json.dumps(stop))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stdout.count("signature"), 2, r.stdout)  # the start record and the stop record
            bad = json.loads(json.dumps(stop))
            bad["signed_meter_value"]["signed_meter_data"] = bad["signed_meter_value"]["signed_meter_data"].replace(
                '"TX":"E"', '"TX":"X"')
            r = wplib.run([wplib.binary("wattpipe-ocmf"), "verify", "--public-key", key, "-"], input=json.dumps(bad))
            self.assertEqual(r.returncode, 1, r.stdout)
            ev.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

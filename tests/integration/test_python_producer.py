# SPDX-License-Identifier: Apache-2.0
"""The Python producer module (python/wattpipe_wprb.py) against the real
daemon: what Python sends over ZeroMQ or writes to a file is what wattpipe
measures and logs, sample for sample."""
import json
import math
import os
import signal
import subprocess
import sys
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
import wattpipe_wprb as wprb  # noqa: E402

RATE = 20000.0
U_RMS = (230.0, 231.0, 229.0)
I_RMS = (16.0, 10.0, 5.0)
PHI = math.radians(25.0)


def three_phase(n, start=0):
    t = (start + np.arange(n))[:, None] / RATE
    shift = np.array([0, -2 * np.pi / 3, 2 * np.pi / 3])
    u = np.sqrt(2) * np.array(U_RMS) * np.sin(2 * np.pi * 50 * t + shift)
    i = np.sqrt(2) * np.array(I_RMS) * np.sin(2 * np.pi * 50 * t + shift - PHI)
    z = np.zeros((n, 1))
    return np.hstack([u, z, i, z])


def windows(path):
    with open(path) as f:
        return [r for r in wplib.windows_of(f) if "event" not in r]


class Module(unittest.TestCase):
    def test_round_trip_and_refusals(self):
        x = three_phase(3000)
        h, y = wprb.decode_block(wprb.encode_block(x, "AC3N", RATE, 123, sequence=7, first_frame=70))
        self.assertEqual((h.layout, h.frame_count, h.sequence, h.first_frame, h.t0_ns), ("AC3N", 3000, 7, 70, 123))
        np.testing.assert_array_equal(y, x.astype(np.float32))
        h, y = wprb.decode_block(wprb.encode_block(x, "AC3N", RATE, 0, fmt="int16", volts_per_count=0.02,
                                                   amperes_per_count=0.002))
        self.assertLessEqual(np.max(np.abs(y[:, :4] - x[:, :4])), 0.01 + 1e-6)
        self.assertLessEqual(np.max(np.abs(y[:, 4:] - x[:, 4:])), 0.001 + 1e-6)
        with self.assertRaisesRegex(wprb.WprbError, "shape"):
            wprb.encode_block(x[:, :6], "AC3N", RATE, 0)
        bad = x.copy()
        bad[5, 2] = np.nan
        with self.assertRaisesRegex(wprb.WprbError, "NaN"):
            wprb.encode_block(bad, "AC3N", RATE, 0)
        with self.assertRaisesRegex(wprb.WprbError, "does not match"):
            wprb.decode_block(wprb.encode_block(x, "AC3N", RATE, 0)[:-4])
        with self.assertRaisesRegex(wprb.WprbError, "magic"):
            wprb.decode_block(b"XPRB" + wprb.encode_block(x, "AC3N", RATE, 0)[4:])


class AgainstTheDaemon(unittest.TestCase):
    def check_windows(self, recs):
        full = [r for r in recs if not r["partial"]]
        self.assertGreaterEqual(len(full), 5)
        for r in full:
            for k, ph in enumerate(("L1", "L2", "L3")):
                self.assertAlmostEqual(r["voltage_V"][ph], U_RMS[k], delta=U_RMS[k] * 1e-4, msg=r)
                self.assertAlmostEqual(r["current_A"][ph], I_RMS[k], delta=I_RMS[k] * 1e-4, msg=r)
                p = U_RMS[k] * I_RMS[k] * math.cos(PHI)
                self.assertAlmostEqual(r["power_W"][ph], p, delta=p * 2e-4, msg=r)

    def test_zmq_push_is_measured_and_logged_sample_for_sample(self):
        with wplib.TempDir() as tmp:
            ep = f"tcp://127.0.0.1:{wplib.free_port()}"
            log, raw = os.path.join(tmp, "w.jsonl"), os.path.join(tmp, "raw.wprb")
            d = wplib.Daemon(tmp, ["--source", f"zmq-pull:{ep}", "--log", log, "--log-raw", raw]).start()
            n = int(1.5 * RATE)
            x = three_phase(n)
            with wprb.Publisher(ep, "AC3N", RATE, paced=True, block_frames=500) as pub:
                for at in range(0, n, 2000):
                    pub.send(x[at:at + 2000])
            time.sleep(0.5)
            d.signal(signal.SIGTERM)
            self.assertEqual(d.wait(20), 0, d.log())
            s = d.stats()
            self.assertEqual(s["frames_processed"], n, d.log())
            self.assertEqual(s["frames_lost_gap"] + s["frames_dropped"] + s["blocks_invalid"], 0)
            self.check_windows(windows(log))
            h, back = wprb.read_file(raw)
            self.assertEqual(h.layout, "AC3N")
            np.testing.assert_array_equal(back, x.astype(np.float32))

    def test_file_written_by_python_replays_through_the_daemon(self):
        with wplib.TempDir() as tmp:
            path, log = os.path.join(tmp, "py.wprb"), os.path.join(tmp, "w.jsonl")
            n = int(2 * RATE)
            wprb.write_file(path, three_phase(n), "AC3N", RATE, t0_ns=1_700_000_000_000_000_000, fmt="int32",
                            volts_per_count=1e-4, amperes_per_count=1e-5)
            d = wplib.Daemon(tmp, ["--source", f"replay:{path}", "--max-rate", "--log", log]).start()
            self.assertEqual(d.wait(60), 0, d.log())
            self.assertEqual(d.stats()["frames_processed"], n)
            recs = windows(log)
            self.check_windows(recs)
            self.assertEqual(recs[0]["start_ns"], 1_700_000_000_000_000_000)

    def test_the_ten_lines_in_docs_wprb_md_feed_the_daemon(self):
        # The snippet a user copies from docs/wprb.md, run as written (only the port changed).
        with open(os.path.join(ROOT, "docs", "wprb.md")) as f:
            doc = f.read()
        snippet = doc.split("## Feeding wattpipe from Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
        self.assertLessEqual(len([x for x in snippet.splitlines() if x.strip()]), 12, snippet)
        with wplib.TempDir() as tmp:
            ep = f"tcp://127.0.0.1:{wplib.free_port()}"
            log = os.path.join(tmp, "w.jsonl")
            d = wplib.Daemon(tmp, ["--source", f"zmq-pull:{ep}", "--log", log]).start()
            script = os.path.join(tmp, "snippet.py")
            with open(script, "w") as f:
                f.write(snippet.replace("tcp://127.0.0.1:5555", ep))
            r = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "python")})
            self.assertEqual(r.returncode, 0, r.stderr)
            time.sleep(0.5)
            d.signal(signal.SIGTERM)
            self.assertEqual(d.wait(20), 0, d.log())
            self.assertEqual(d.stats()["frames_processed"], 20000, d.log())
            full = [w for w in windows(log) if not w["partial"]]
            self.assertGreaterEqual(len(full), 3)
            for w in full:
                self.assertAlmostEqual(w["voltage_V"]["L2"], 230, delta=0.05)
                self.assertAlmostEqual(w["current_A"]["L3"], 16, delta=0.01)
                self.assertAlmostEqual(w["PF"]["L1"], 0.95, delta=1e-3)

    def test_example_script_feeds_the_daemon(self):
        with wplib.TempDir() as tmp:
            ep = f"tcp://127.0.0.1:{wplib.free_port()}"
            d = wplib.Daemon(tmp, ["--source", f"zmq-pull:{ep}"]).start()
            r = subprocess.run([sys.executable, os.path.join(ROOT, "python", "examples", "feed_three_phase.py"),
                                "--endpoint", ep, "--seconds", "1"], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            time.sleep(0.5)
            d.signal(signal.SIGTERM)
            self.assertEqual(d.wait(20), 0, d.log())
            s = d.stats()
            self.assertEqual(s["frames_processed"], 20000, d.log())
            self.assertAlmostEqual(s["energy_Wh_import_total"], 3 * 230 * 16 * 0.95 / 3600, delta=0.05)


if __name__ == "__main__":
    unittest.main(verbosity=2)

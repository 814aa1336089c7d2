# SPDX-License-Identifier: Apache-2.0
"""COMTRADE records replayed through the daemon, and the exports
(wattpipe-export: CSV, HDF5, COMTRADE) read back by independent readers:
wattpipe's own COMTRADE reader, python3-h5py and pandas."""
import csv
import json
import math
import os
import struct
import sys
import unittest

import h5py
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import wattpipe_wprb as wprb  # noqa: E402

RATE = 4000.0
U_RMS, I_RMS, PHI = (230.0, 232.0, 228.0), (16.0, 12.0, 8.0), math.radians(20)


def three_phase(n):
    t = np.arange(n)[:, None] / RATE
    shift = np.array([0, -2 * np.pi / 3, 2 * np.pi / 3])
    u = np.sqrt(2) * np.array(U_RMS) * np.sin(2 * np.pi * 50 * t + shift)
    i = np.sqrt(2) * np.array(I_RMS) * np.sin(2 * np.pi * 50 * t + shift - PHI)
    return u, i


def windows(path):
    with open(path) as f:
        return [r for r in wplib.windows_of(f) if "event" not in r]


def export(*args):
    return wplib.run([wplib.binary("wattpipe-export"), *args], timeout=120)


def read_trend(base):
    """A FLOAT32 COMTRADE trend (nrates 0): channel names, units, samples, time stamps (us), the .cfg lines."""
    with open(base + ".cfg", newline="") as f:
        cfg = f.read().split("\r\n")
    n_analog = int(cfg[1].split(",")[1].rstrip("A"))
    chans = [cfg[2 + k].split(",") for k in range(n_analog)]
    rest = cfg[2 + n_analog:]
    assert rest[1] == "0", "nrates 0: the time stamps are the times"
    n = int(rest[2].split(",")[1])
    assert rest[5] == "FLOAT32" and float(rest[6]) == 1.0
    raw = np.fromfile(base + ".dat", dtype=np.dtype([("n", "<u4"), ("t", "<u4"), ("x", "<f4", (n_analog,))]))
    assert len(raw) == n
    return [c[1] for c in chans], [c[4] for c in chans], raw["x"], raw["t"], cfg


class ComtradeIn(unittest.TestCase):
    def check(self, recs, scale=1.0):
        full = [r for r in recs if not r["partial"]]
        self.assertGreaterEqual(len(full), 5)
        for r in full:
            for k, ph in enumerate(("L1", "L2", "L3")):
                self.assertAlmostEqual(r["voltage_V"][ph], U_RMS[k] * scale, delta=U_RMS[k] * scale * 2e-4, msg=r)
                self.assertAlmostEqual(r["current_A"][ph], I_RMS[k], delta=I_RMS[k] * 2e-4, msg=r)
                p = U_RMS[k] * scale * I_RMS[k] * math.cos(PHI)
                self.assertAlmostEqual(r["power_W"][ph], p, delta=p * 5e-4, msg=r)

    def test_1999_ascii_secondary_values_in_kv_through_the_daemon(self):
        # A relay's record: VT 20 kV : 100 V with values in kV secondary, CT 1:1 in A,
        # the currents listed before the voltages, one status channel.
        n = int(2 * RATE)
        u, i = three_phase(n)
        u_sec_kv = u / 200 / 1000  # the primary is 200x the secondary
        with wplib.TempDir() as tmp:
            cfg = os.path.join(tmp, "relay.cfg")
            with open(cfg, "w", newline="") as f:
                f.write("Substation 4,Relay 21,1999\r\n7,6A,1D\r\n")
                for k, ph in enumerate("ABC"):
                    f.write(f"{k + 1},I{ph},{ph},Line 1,A,0.001,0,0,-99999,99999,1,1,P\r\n")
                for k, ph in enumerate("ABC"):
                    f.write(f"{k + 4},V{ph},{ph},Line 1,kV,0.000001,0,0,-99999,99999,20000,100,S\r\n")
                f.write("1,Trip,,,0\r\n50\r\n1\r\n%g,%d\r\n" % (RATE, n))
                f.write("23/11/2026,20:12:58.000000\r\n23/11/2026,20:12:58.500000\r\nASCII\r\n1\r\n")
            with open(os.path.join(tmp, "relay.dat"), "w", newline="") as f:
                for s in range(n):
                    cur = ",".join(str(int(round(x / 0.001))) for x in i[s])
                    vol = ",".join(str(int(round(x / 0.000001))) for x in u_sec_kv[s])
                    f.write(f"{s + 1},{int(s * 250)},{cur},{vol},0\r\n")
            log = os.path.join(tmp, "w.jsonl")
            d = wplib.Daemon(tmp, ["--source", f"comtrade:{cfg}", "--max-rate", "--log", log]).start()
            self.assertEqual(d.wait(60), 0, d.log())
            self.assertEqual(d.stats()["frames_processed"], n)
            recs = windows(log)
            # Integer counts of 1 mV secondary (0.2 V primary) and 1 mA: within 2e-4.
            self.check(recs)
            self.assertEqual(recs[0]["start"], "2026-11-23T20:12:58.000Z")

    def test_2013_cff_float32_with_a_channel_map_by_name(self):
        n = int(2 * RATE)
        u, i = three_phase(n)
        with wplib.TempDir() as tmp:
            cff = os.path.join(tmp, "bench.cff")
            names = ["Ua", "Ub", "Uc", "Ia", "Ib", "Ic", "Freq"]
            units = ["V", "V", "V", "A", "A", "A", "Hz"]
            cfg = "Bench,DAQ,2013\r\n7,7A,0D\r\n"
            for k, (nm, un) in enumerate(zip(names, units)):
                cfg += f"{k + 1},{nm},,,{un},1,0,0,-1e6,1e6,1,1,P\r\n"
            cfg += "50\r\n1\r\n%g,%d\r\n" % (RATE, n)
            cfg += "23/11/2026,21:12:58.000000\r\n23/11/2026,21:12:58.000000\r\nFLOAT32\r\n1\r\n+1,0\r\n0,0\r\n"
            dat = b"".join(struct.pack("<II7f", s + 1, s * 250, *u[s], *i[s], 50.0) for s in range(n))
            with open(cff, "wb") as f:
                f.write(b"--- file type: CFG ---\r\n" + cfg.encode() + b"--- file type: INF ---\r\n"
                        + b"--- file type: HDR ---\r\n" + f"--- file type: DAT BINARY: {len(dat)} ---\r\n".encode()
                        + dat)
            log = os.path.join(tmp, "w.jsonl")
            d = wplib.Daemon(tmp, ["--source", f"comtrade:{cff}", "--max-rate", "--log", log, "--channel-map",
                                   "U1=Ua,U2=Ub,U3=Uc,I1=Ia,I2=Ib,I3=6"]).start()
            self.assertEqual(d.wait(60), 0, d.log())
            recs = windows(log)
            self.check(recs)
            self.assertEqual(recs[0]["start"], "2026-11-23T20:12:58.000Z", "local time +1 h")

    def test_bad_records_exit_2_naming_the_line(self):
        with wplib.TempDir() as tmp:
            cfg = os.path.join(tmp, "r.cfg")
            head = "S,D,1999\n2,2A,0D\n1,U,,,V,1,0,0,-9,9,1,1,P\n2,I,,,A,1,0,0,-9,9,1,1,P\n50\n"
            tail = "01/01/2026,00:00:00.000000\n01/01/2026,00:00:00.000000\nASCII\n1\n"
            with open(os.path.join(tmp, "r.dat"), "w") as f:
                f.write("1,0,1,2\n2,250,,2\n")
            for rates, dat_needed, expect in [
                ("1\n4000,2\n", True, "r.dat line 2: channel 1 'U' is missing"),
                ("2\n4000,1\n8000,2\n", False, "2 sampling rates in one record"),
                ("1\n4000\n", False, "r.cfg line 7: expected samp,endsamp"),
            ]:
                with open(cfg, "w") as f:
                    f.write(head + rates + tail)
                r = wplib.run([wplib.binary("wattpipe"), "--source", f"comtrade:{cfg}", "--state-dir", "none",
                               "--max-rate"])
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(expect, r.stderr)
            r = wplib.run([wplib.binary("wattpipe"), "--source", "sim", "--channel-map", "U1=1", "--state-dir", "none"])
            self.assertEqual(r.returncode, 2)
            self.assertIn("--channel-map: only for --source comtrade", r.stderr)


class Exports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A raw and a window log written by the daemon, from a known signal.
        cls.tmp_ctx = wplib.TempDir()
        cls.tmp = cls.tmp_ctx.__enter__()
        n = int(3 * RATE)
        u, i = three_phase(n)
        z = np.zeros((n, 1))
        cls.sent = np.hstack([u, z, i, z]).astype(np.float32)
        src = os.path.join(cls.tmp, "src.wprb")
        wprb.write_file(src, cls.sent, "AC3N", RATE, t0_ns=1_795_464_778_000_000_000, block_frames=700)
        cls.raw, cls.log = os.path.join(cls.tmp, "raw.wprb"), os.path.join(cls.tmp, "w.jsonl")
        d = wplib.Daemon(cls.tmp, ["--source", f"replay:{src}", "--max-rate", "--log-raw", cls.raw, "--log", cls.log,
                                   "--analysis", "on"]).start()
        assert d.wait(60) == 0, d.log()

    @classmethod
    def tearDownClass(cls):
        cls.tmp_ctx.__exit__(None, None, None)

    def test_comtrade_round_trip_through_the_daemon_is_sample_exact(self):
        for kind in ("float32", "binary32"):
            base = os.path.join(self.tmp, f"ct-{kind}")
            r = export(self.raw, "-f", "comtrade", "--comtrade-type", kind, "-o", base)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(base + ".cfg") as f:
                cfg = f.read().splitlines()
            self.assertTrue(cfg[0].endswith(",2013"))
            self.assertEqual(cfg[1], "8,8A,0D")
            self.assertEqual(cfg[-4], kind.upper())
            self.assertEqual(os.path.getsize(base + ".dat"), len(self.sent) * (8 + 4 * 8))
            back = os.path.join(self.tmp, f"back-{kind}.wprb")
            d = wplib.Daemon(self.tmp, ["--source", f"comtrade:{base}.cfg", "--max-rate", "--log-raw", back,
                                        "--channel-map", "U1=U1,U2=U2,U3=U3,UN=UN,I1=I1,I2=I2,I3=I3,IN=IN"],
                             name=f"back-{kind}").start()
            self.assertEqual(d.wait(60), 0, d.log())
            h, got = wprb.read_file(back)
            self.assertEqual(h.t0_ns, 1_795_464_778_000_000_000)
            if kind == "float32":
                np.testing.assert_array_equal(got, self.sent)
            else:
                np.testing.assert_allclose(got, self.sent, rtol=0, atol=340 / 2**31)

    def test_hdf5_raw_and_windows_read_by_h5py_and_pandas(self):
        h5 = os.path.join(self.tmp, "raw.h5")
        r = export(self.raw, "-f", "hdf5", "-o", h5)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(h5) as f:
            self.assertEqual(f.attrs["layout"], "AC3N")
            self.assertEqual(f.attrs["start_ns"], 1_795_464_778_000_000_000)
            self.assertEqual(f["raw"].attrs["sample_rate_Hz"], RATE)
            self.assertEqual(f.attrs["software_id"], wplib.software_id(), "what recorded the samples")
            for k, name in enumerate(["U1", "U2", "U3", "UN", "I1", "I2", "I3", "IN"]):
                np.testing.assert_array_equal(f["raw"][name][:], self.sent[:, k])
                self.assertEqual(f["raw"][name].attrs["units"], "V" if name[0] == "U" else "A")
            np.testing.assert_allclose(f["raw/t_s"][:], np.arange(len(self.sent)) / RATE, atol=1e-9)
        h5w = os.path.join(self.tmp, "w.h5")
        r = export(self.log, "-f", "hdf5", "-o", h5w)
        self.assertEqual(r.returncode, 0, r.stderr)
        recs = windows(self.log)
        with h5py.File(h5w) as f:
            df = pd.DataFrame({k: v[:] for k, v in f["windows"].items()})
            self.assertEqual(len(df), len(recs))
            np.testing.assert_allclose(df["power_W_L2"], [r["power_W"]["L2"] for r in recs])
            self.assertEqual(list(df["start_ns"]), [r["start_ns"] for r in recs])
            self.assertEqual(f.attrs["software_id"], wplib.software_id(), "what measured the windows")
            self.assertEqual(f["windows/voltage_V_L1"].attrs["units"], "V")
            self.assertEqual(f["windows/thd_I_percent_L3"].attrs["units"], "%")
            self.assertEqual(f["spectra/harmonics_U_V_L1"].shape, (len(recs), 50))
            np.testing.assert_allclose(f["spectra/harmonics_U_V_L1"][2], recs[2]["harmonics_U_V"]["L1"])

    def test_csv_columns_time_range_and_decimation(self):
        out = os.path.join(self.tmp, "w.csv")
        r = export(self.log, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            rows = list(csv.DictReader(f))
        recs = windows(self.log)
        self.assertEqual(len(rows), len(recs))
        for col in ("t_s", "time_utc", "voltage_V_L1", "S_VA_total", "N_VA_L2", "PF_L3", "energy_Wh_import_L1",
                    "flags" if "flags" in recs[0] else "partial", "thd_U_percent_L1", "unbalance_u2_percent",
                    "harmonics_I_A_L1_5", "frequency_Hz_L1"):
            self.assertIn(col, rows[0])
        self.assertEqual(rows[0]["time_utc"], "2026-11-23T20:12:58.000000000Z")
        self.assertEqual(int(rows[3]["start_ns"]), recs[3]["start_ns"])
        self.assertAlmostEqual(float(rows[3]["power_W_total"]), recs[3]["power_W"]["total"], places=3)
        # 1 s to 2 s: the windows that start in it, both ends included.
        r = export(self.log, "-o", out, "--from", "1", "--to", "2")
        with open(out) as f:
            rows = list(csv.DictReader(f))
        t0 = recs[0]["start_ns"]
        inside = [w for w in recs if t0 + 1e9 <= w["start_ns"] <= t0 + 2e9]
        self.assertEqual(len(inside), 5)
        self.assertEqual([int(x["start_ns"]) for x in rows], [w["start_ns"] for w in inside], r.stderr)
        self.assertEqual(float(rows[0]["t_s"]), 0.0)
        r = export(self.raw, "-o", out, "--decimate", "4", "--from", "2026-11-23T20:12:59Z", "--to", "1.5")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(list(rows[0].keys()), ["frame", "t_s", "time_utc", "U1_V", "U2_V", "U3_V", "UN_V", "I1_A",
                                                "I2_A", "I3_A", "IN_A"])
        self.assertEqual(len(rows), int(0.5 * RATE / 4) + 1)
        self.assertEqual(int(rows[1]["frame"]) - int(rows[0]["frame"]), 4)
        self.assertEqual(int(rows[0]["frame"]), int(RATE))
        self.assertEqual(np.float32(rows[0]["U2_V"]), self.sent[int(RATE), 1], "9 digits give the float32 back")

    def test_a_window_log_as_a_comtrade_trend(self):
        base = os.path.join(self.tmp, "trend")
        r = export(self.log, "-f", "comtrade", "-o", base)
        self.assertEqual(r.returncode, 0, r.stderr)
        names, units, samples, times_us, _ = read_trend(base)
        with open(self.log) as f:
            windows = [w for w in wplib.windows_of(f) if "start_ns" in w and "event" not in w]
        self.assertEqual(samples.shape, (len(windows), len(names)))
        i = names.index("power_W_total")
        self.assertEqual(units[i], "W")
        self.assertEqual(units[names.index("voltage_V_L1")], "V")
        np.testing.assert_allclose(samples[:, i], [w["power_W"]["total"] for w in windows], rtol=1e-6)
        # Each sample at its window's start, to the microsecond.
        t0 = windows[0]["start_ns"]
        self.assertEqual(list(times_us), [round((w["start_ns"] - t0) / 1000) for w in windows])

    def test_refusals(self):
        r = export(self.raw, "-f", "hdf5")
        self.assertEqual(r.returncode, 2)
        r = export(self.raw, "--from", "yesterday")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--from 'yesterday'", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

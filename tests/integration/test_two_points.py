# SPDX-License-Identifier: Apache-2.0
"""Two measuring points on one clock (WPRB layout 5, AC3N_DC: a charger's
grid input and its DC output), both in one daemon (--points): closed-form
signals on both sides give a known efficiency and loss, to 1e-4, the same to
the last bit as one daemon per point (--point); one live DAQ stream, each
point its own EVerest module (values, communication_check and transaction
replies valid against both API files, transactions independent of each
other), and a stall of the stream stops both modules' communication_check."""
import json
import math
import os
import sys
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402
sys.path.insert(0, os.path.join(wplib.ROOT, "python"))
import wattpipe_wprb as wprb  # noqa: E402

RATE = 20000.0
U_RMS = (230.0, 231.0, 229.0)
I_RMS = (16.0, 10.0, 5.0)
PHI = math.radians(25.0)
U_DC, I_DC = 400.0, 15.0
P_GRID = sum(u * i for u, i in zip(U_RMS, I_RMS)) * math.cos(PHI)  # 6466.5 W
P_CAR = U_DC * I_DC                                                # 6000 W


def charger_frames(n, i_late_s=0.0):
    """Both points' closed-form frames; `i_late_s`: the grid currents sampled that late."""
    t = np.arange(n)[:, None] / RATE
    shift = np.array([0, -2 * np.pi / 3, 2 * np.pi / 3])
    u = np.sqrt(2) * np.array(U_RMS) * np.sin(2 * np.pi * 50 * t + shift)
    i = np.sqrt(2) * np.array(I_RMS) * np.sin(2 * np.pi * 50 * (t + i_late_s) + shift - PHI)
    z = np.zeros((n, 1))
    return np.hstack([u, z, i, z, np.full((n, 1), U_DC), np.full((n, 1), I_DC)])


class TwoPoints(unittest.TestCase):
    def test_known_power_on_each_side_gives_the_known_efficiency_and_loss(self):
        seconds = 3.0  # 150 whole cycles
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            path = os.path.join(tmp, "bench.wprb")
            wprb.write_file(path, charger_frames(int(seconds * RATE)), "AC3N_DC", RATE, t0_ns=1_764_800_000_000_000_000)
            # Both points in one daemon: the car side bills (--module-id), the grid side is its own module.
            log = os.path.join(tmp, "bench.jsonl")
            logs = {"car": log, "grid": os.path.join(tmp, "bench.grid.jsonl")}
            raw = os.path.join(tmp, "bench-raw.wprb")
            d = wplib.Daemon(tmp, ["--source", f"replay:{path}", "--max-rate", "--points", "grid,car", "--module-id",
                                   "bench", "--grid-module-id", "bench_in", "--log", log, "--log-raw", raw],
                             broker.port, name="both").start()
            self.assertEqual(d.wait(60), 0, d.log())
            s = d.stats()
            self.assertEqual(s["stop_reason"], "source ended")
            self.assertEqual((s["point"], s["module_id"]), ("car", "bench"))
            self.assertEqual(sorted(s["points"]), ["car", "grid"])
            self.assertEqual(s["points"]["grid"]["module_id"], "bench_in")
            energy = {}
            for point in ("grid", "car"):
                p = s["points"][point]
                self.assertEqual(p["frames_processed"], int(seconds * RATE), point)
                self.assertEqual(p["point_queue_blocks_dropped"], 0, point)
                energy[point] = p["energy_Wh_import_total"]
            self.assertEqual(s["energy_Wh_import_total"], energy["car"])
            # The efficiency map: one bin (6 kW, in 0-10 kW), on the car side only.
            self.assertEqual([(b["p_lo_W"], b["p_hi_W"]) for b in s["efficiency_map"]], [(0, 10000)])
            self.assertAlmostEqual(s["efficiency_map"][0]["efficiency"], P_CAR / P_GRID, delta=1e-4)
            self.assertNotIn("efficiency_map", s["points"]["grid"])
            self.assertTrue(os.path.exists(os.path.join(tmp, "state-both", "grid", "registers.snap")),
                            "the grid side's registers in its own state directory")
            # The raw log records the stream once, whole, sample for sample; it replays as the stream.
            self.assertFalse(os.path.exists(os.path.join(tmp, "bench-raw.grid.wprb")), "one raw log, not one per point")
            header, recorded = wprb.read_file(raw)
            self.assertEqual(header.layout, "AC3N_DC")
            np.testing.assert_array_equal(recorded, wprb.read_file(path)[1])
            self.assertEqual((s["log_raw_frames_written"], s["raw_log_overflow_blocks"]), (int(seconds * RATE), 0))
            again = wplib.Daemon(tmp, ["--source", f"replay:{raw}", "--max-rate", "--points", "grid,car",
                                       "--module-id", "again"], broker.port, name="again").start()
            self.assertEqual(again.wait(60), 0, again.log())
            for point in ("grid", "car"):
                self.assertEqual(again.stats()["points"][point]["energy_Wh_import_total"], energy[point], point)
            # One daemon per point (--point) measures the same samples the same, to the last bit.
            for point in ("grid", "car"):
                one = wplib.Daemon(tmp, ["--source", f"replay:{path}", "--max-rate", "--point", point, "--module-id",
                                         f"one_{point}"], broker.port, name=f"one-{point}").start()
                self.assertEqual(one.wait(60), 0, one.log())
                self.assertEqual(one.stats()["energy_Wh_import_total"], energy[point], point)
            efficiency = energy["car"] / energy["grid"]
            loss_w = (energy["grid"] - energy["car"]) * 3600 / seconds
            self.assertAlmostEqual(efficiency, P_CAR / P_GRID, delta=1e-4)
            self.assertAlmostEqual(loss_w, P_GRID - P_CAR, delta=P_GRID * 1e-4)
            # Each point's windows carry its own quantities: the grid per phase, the car as DC.
            with open(logs["grid"]) as f:
                grid = [w for w in wplib.windows_of(f) if "start_ns" in w and not w["partial"]]
            with open(logs["car"]) as f:
                car = [w for w in wplib.windows_of(f) if "start_ns" in w and not w["partial"]]
            self.assertTrue(grid and car)
            for w in grid:
                self.assertAlmostEqual(w["power_W"]["total"], P_GRID, delta=P_GRID * 1e-4)
                self.assertAlmostEqual(w["voltage_V"]["L2"], U_RMS[1], delta=U_RMS[1] * 1e-4)
            for w in car:
                self.assertAlmostEqual(w["power_W"]["total"], P_CAR, delta=P_CAR * 1e-5)
                self.assertEqual(w["voltage_V"]["DC"], U_DC)
                # The car side against the grid side on exactly its window's samples.
                self.assertAlmostEqual(float(w["P_in_W"]), P_GRID, delta=P_GRID * 1e-4)
                self.assertAlmostEqual(float(w["efficiency"]), P_CAR / P_GRID, delta=1e-4)
                self.assertAlmostEqual(float(w["loss_W"]), P_GRID - P_CAR, delta=P_GRID * 1e-4)
            self.assertNotIn("efficiency", grid[0], "the grid side has no other side")
            # wattpipe-plot draws the efficiency, the loss and the map of the car side's log.
            png = os.path.join(tmp, "car.png")
            r = wplib.run([wplib.binary("wattpipe-plot"), logs["car"], "-o", png, "--efficiency-bin-kw", "5"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertGreater(os.path.getsize(png), 10000)
            # The exported map (CSV, and /efficiency_map in HDF5) is the daemon's, from the car side's log.
            csv_path = os.path.join(tmp, "map.csv")
            r = wplib.run([wplib.binary("wattpipe-export"), logs["car"], "--efficiency-map", "-o", csv_path])
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(csv_path) as f:
                header, *rows = [line.strip().split(",") for line in f if line.strip()]
            self.assertEqual(header, ["p_lo_W", "p_hi_W", "efficiency", "E_in_Wh", "E_out_Wh", "windows"])
            self.assertEqual(len(rows), len(s["efficiency_map"]))
            for row, b in zip(rows, s["efficiency_map"]):
                self.assertEqual((float(row[0]), float(row[1])), (b["p_lo_W"], b["p_hi_W"]))
                self.assertAlmostEqual(float(row[2]), b["efficiency"], delta=1e-4)
                self.assertEqual(int(row[5]), len(car))
            h5_path = os.path.join(tmp, "car.h5")
            r = wplib.run([wplib.binary("wattpipe-export"), logs["car"], "-f", "hdf5", "-o", h5_path])
            self.assertEqual(r.returncode, 0, r.stderr)
            import h5py
            with h5py.File(h5_path, "r") as h5:
                m = h5["efficiency_map"]
                self.assertEqual(float(m.attrs["bin_W"]), 10000.0)
                self.assertEqual(list(m["p_lo_W"][:]), [b["p_lo_W"] for b in s["efficiency_map"]])
                self.assertAlmostEqual(float(m["efficiency"][0]), P_CAR / P_GRID, delta=1e-4)
                self.assertEqual(int(m["windows"][0]), len(car))
            # A bin width of 2 kW puts the 6 kW output into 6-8 kW; the grid side has no map to give.
            r = wplib.run([wplib.binary("wattpipe-export"), logs["car"], "--efficiency-map", "--efficiency-bin-kw", "2"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.splitlines()[1].split(",")[:2], ["6000", "8000"])
            r = wplib.run([wplib.binary("wattpipe-export"), logs["grid"], "--efficiency-map", "-o", csv_path + ".grid"])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("no window measured against an input", r.stderr)
            self.assertFalse(os.path.exists(csv_path + ".grid"))
            # One clock: both points' windows lie on the recording's time line.
            self.assertEqual(grid[0]["start_ns"] // 10**9, car[0]["start_ns"] // 10**9)
            # The ten-channel recording exported as it is: CSV and HDF5 give back every sample of both points.
            frames = wprb.read_file(path)[1]
            names = wprb.CHANNELS["AC3N_DC"]
            r = wplib.run([wplib.binary("wattpipe-export"), path, "-o", os.path.join(tmp, "raw.csv")])
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(tmp, "raw.csv")) as f:
                header = f.readline().strip().split(",")
                raw = np.loadtxt(f, delimiter=",", usecols=range(3, 13))
            self.assertEqual(header[3:], [n + ("_V" if n.startswith("U") else "_A") for n in names])
            np.testing.assert_allclose(raw, frames, rtol=1e-8, atol=0)
            r = wplib.run([wplib.binary("wattpipe-export"), path, "-f", "hdf5", "-o", os.path.join(tmp, "raw.h5")])
            self.assertEqual(r.returncode, 0, r.stderr)
            import h5py
            with h5py.File(os.path.join(tmp, "raw.h5"), "r") as h5:
                self.assertEqual(h5.attrs["layout"], "AC3N_DC")
                for k, n in enumerate(names):
                    np.testing.assert_array_equal(h5["raw"][n][:], frames[:, k].astype(np.float32), n)
            # The recording through COMTRADE (both points' channels by name, or mapped) measures the same.
            base = os.path.join(tmp, "bench")
            r = wplib.run([wplib.binary("wattpipe-export"), path, "-f", "comtrade", "-o", base])
            self.assertEqual(r.returncode, 0, r.stderr)
            mapped = ",".join(f"{n}={k + 1}" for k, n in enumerate(wprb.CHANNELS["AC3N_DC"]))
            for extra in ([], ["--channel-map", mapped]):
                d = wplib.Daemon(tmp, ["--source", f"comtrade:{base}.cfg", "--max-rate", "--points", "grid,car",
                                       "--state-dir", "none", *extra], broker.port, name="c").start()
                self.assertEqual(d.wait(60), 0, d.log())
                for point in ("grid", "car"):
                    self.assertEqual(d.stats()["points"][point]["energy_Wh_import_total"], energy[point], point)
            # Without --points or --point the stream is refused, with the reason; so is a point it lacks.
            for args, words in [([], "carries 2 measuring points: grid (AC3N), car (DC); measure them with --points, "
                                     "or one with --point"),
                                (["--points", "car,grid"], None)]:
                d = wplib.Daemon(tmp, ["--source", f"replay:{path}", "--max-rate", *args], broker.port, name="refused").start()
                self.assertEqual(d.wait(60), 0, d.log())
                if words:
                    self.assertIn(words, d.log())
                    self.assertEqual(d.stats()["frames_processed"], 0)
                else:  # the order of --points is free: the first one reads the stream
                    self.assertEqual(d.stats()["points"]["grid"]["energy_Wh_import_total"], energy["grid"])
            for args, words in [(["--points", "grid,grid"], "'grid' twice"),
                                (["--points", "grid,dc2"], "'dc2' is not a measuring point"),
                                (["--point", "car", "--points", "grid,car"], "give one of them"),
                                (["--grid-module-id", "wattpipe"], "the same as --module-id")]:
                r = wplib.run([wplib.binary("wattpipe"), "--source", f"replay:{path}", "--state-dir", "none", *args])
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(words, r.stderr)

    def test_both_points_stop_on_the_same_frame(self):
        # Stopped mid-stream (--duration): the grid side reads the stream, stops, and the car side takes
        # what it was handed before it ends, so both registers cover the same samples.
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            d = wplib.Daemon(tmp, ["--sim-profile", "charger", "--duration", "2", "--state-dir", "none"],
                             broker.port, name="stop").start()
            self.assertEqual(d.wait(60), 0, d.log())
            s = d.stats()
            self.assertEqual(s["stop_reason"], "duration reached")
            self.assertEqual(s["points"]["grid"]["point_queue_blocks_dropped"], 0)
            self.assertEqual(s["points"]["car"]["point_queue_blocks_dropped"], 0)
            self.assertGreater(s["frames_processed"], 0)
            self.assertEqual(s["points"]["car"]["frames_processed"], s["points"]["grid"]["frames_processed"])

    def test_each_point_gets_its_own_analysis(self):
        # The grid side's currents carry a 5th harmonic of 10 %, the output's current a 300 Hz
        # ripple of 2 A peak: the grid side finds the THD, the car side the ripple, neither the other's.
        n = int(2 * RATE)
        frames = charger_frames(n)
        t = np.arange(n) / RATE
        shift = np.array([0, -2 * np.pi / 3, 2 * np.pi / 3])
        frames[:, 4:7] += 0.1 * np.sqrt(2) * np.array(I_RMS) * np.sin(5 * (2 * np.pi * 50 * t[:, None] + shift - PHI))
        frames[:, 9] += 2.0 * np.sin(2 * np.pi * 300 * t)
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            path = os.path.join(tmp, "bench.wprb")
            wprb.write_file(path, frames, "AC3N_DC", RATE, t0_ns=1_764_800_000_000_000_000)
            log = os.path.join(tmp, "an.jsonl")
            d = wplib.Daemon(tmp, ["--source", f"replay:{path}", "--max-rate", "--points", "grid,car", "--analysis",
                                   "on", "--log", log, "--state-dir", "none"], broker.port, name="an").start()
            self.assertEqual(d.wait(60), 0, d.log())
            with open(os.path.join(tmp, "an.grid.jsonl")) as f:
                grid = [w for w in wplib.windows_of(f) if "thd_I_percent" in w]
            with open(log) as f:
                car = [w for w in wplib.windows_of(f) if "ripple_I_rms_A" in w]
            self.assertGreater(len(grid), 5)
            self.assertGreater(len(car), 5)
            for w in grid:
                for ph in ("L1", "L2", "L3"):
                    self.assertAlmostEqual(w["thd_I_percent"][ph], 10.0, delta=0.05, msg=ph)
                self.assertNotIn("ripple_I_rms_A", w)
            for w in car:
                self.assertAlmostEqual(w["ripple_I_rms_A"], 2.0 / math.sqrt(2), delta=0.01)
                self.assertNotIn("thd_I_percent", w)

    def test_the_grid_sides_calibration_reaches_the_input_power_of_the_efficiency(self):
        # Gains and offsets on the grid side's channels (a CT's ratio error), and its currents sampled
        # one frame late (delay-us): the car side's input power, loss and efficiency are those of the
        # calibrated grid side, as its own power is. Uncorrected, the delay alone moves P by 0.7 %.
        gain_u1, gain_i2, offset_i3, late_us = 1.02, 1.03, 0.5, 50.0
        p_cal = (gain_u1 * U_RMS[0] * I_RMS[0] + gain_i2 * U_RMS[1] * I_RMS[1] + U_RMS[2] * I_RMS[2]) * math.cos(PHI)
        # (an offset on a current adds nothing to the mean power of whole cycles)
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            path = os.path.join(tmp, "bench.wprb")
            wprb.write_file(path, charger_frames(int(2 * RATE), late_us * 1e-6), "AC3N_DC", RATE,
                            t0_ns=1_764_800_000_000_000_000)
            config = os.path.join(tmp, "cal.yaml")
            with open(config, "w") as f:
                f.write(f"calibration:\n  U1: {{gain: {gain_u1}}}\n  I1: {{delay-us: {late_us}}}\n"
                        f"  I2: {{gain: {gain_i2}, delay-us: {late_us}}}\n  I3: {{offset: {offset_i3}, delay-us: {late_us}}}\n")
            log = os.path.join(tmp, "cal.jsonl")
            d = wplib.Daemon(tmp, ["--config", config, "--source", f"replay:{path}", "--max-rate", "--points",
                                   "grid,car", "--log", log, "--state-dir", "none"], broker.port, name="cal").start()
            self.assertEqual(d.wait(60), 0, d.log())
            with open(os.path.join(tmp, "cal.grid.jsonl")) as f:
                grid = [w for w in wplib.windows_of(f) if "start_ns" in w and not w["partial"]]
            with open(log) as f:
                car = [w for w in wplib.windows_of(f) if "start_ns" in w and not w["partial"]]
            self.assertTrue(grid and car)
            for w in grid:
                self.assertAlmostEqual(w["power_W"]["total"], p_cal, delta=p_cal * 1e-4)
            for w in car:
                self.assertAlmostEqual(float(w["P_in_W"]), p_cal, delta=p_cal * 1e-4)
                self.assertAlmostEqual(float(w["efficiency"]), P_CAR / p_cal, delta=1e-4)
            self.assertGreater(abs(P_CAR / p_cal - P_CAR / P_GRID), 1e-3, "the calibration moves the efficiency")

    def test_one_stream_two_modules_independent_and_both_stalled(self):
        schema = wplib.Schema()  # the original API file and EVerest's 2026-08 one
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            port = wplib.free_port()
            daq = wplib.subprocess.Popen([wplib.binary("wattpipe-daq"), "--bind", f"tcp://127.0.0.1:{port}",
                                          "--sim-profile", "charger", "--sim-session-s", "30", "--quiet"])
            wplib._STARTED.append(daq)
            ev = {m: wplib.Everest(broker.port, module_id=m) for m in ("ch", "ch_grid")}
            d = wplib.Daemon(tmp, ["--source", f"zmq:tcp://127.0.0.1:{port}", "--points", "grid,car", "--module-id", "ch",
                                   "--publish-interval-ms", "100", "--communication-check-interval-ms", "200"],
                             broker.port, name="ch").start()
            try:
                deadline = time.time() + 20
                while time.time() < deadline and not all(len(e.values()) >= 3 for e in ev.values()):
                    time.sleep(0.05)
                values = {m: e.values() for m, e in ev.items()}
                self.assertIn("DC", values["ch"][-1]["voltage_V"], "the car module shows the DC output")
                self.assertIn("L3", values["ch_grid"][-1]["voltage_V"], "the grid module shows three phases")
                for m, vs in values.items():
                    for v in vs:
                        self.assertEqual(schema.check_powermeter(v), [], m)
                    checks = [json.loads(p) for (_, p, _) in ev[m].sub.take("/m2e/communication_check")]
                    self.assertTrue(checks, m)
                    for c in checks:
                        self.assertEqual(schema.errors("CommunicationCheck", c), [], m)
                        self.assertIs(c, True)
                # Transactions are each module's own: a stop on one leaves the other's open.
                started = {"ch": ev["ch"].start("tx-car"), "ch_grid": ev["ch_grid"].start("tx-grid")}
                for m, r in started.items():
                    self.assertEqual(r["status"], "OK", m)
                    self.assertEqual(schema.errors("StartTransactionReply", r), [], m)
                time.sleep(1)
                stopped = ev["ch"].stop("tx-car")
                self.assertEqual(stopped["status"], "OK")
                self.assertEqual(schema.errors("StopTransactionReply", stopped), [])
                wrong = ev["ch_grid"].stop("tx-car")
                self.assertEqual(wrong["status"], "UNEXPECTED_ERROR", "not the grid's")
                self.assertEqual(schema.errors("StopTransactionReply", wrong), [])
                # The stream stalls: both modules stop sending communication_check.
                for e in ev.values():
                    e.sub.take()
                daq.terminate()
                daq.wait(10)
                stalled_at = time.time()
                time.sleep(3.5)
                for m, e in ev.items():
                    late = [ts for (t, _, ts) in e.sub.take("/m2e/communication_check") if ts > stalled_at + 1.5]
                    self.assertEqual(late, [], f"{m}: communication_check went on after the stream stalled")
            finally:
                self.assertEqual(d.stop(), 0, d.log())
                for e in ev.values():
                    e.close()
                if daq.poll() is None:
                    daq.kill()
            # The car side's transaction: the energy efficiency beside its signed records (not in them).
            import re
            m = re.search(r"transaction 'tx-car': ([0-9.]+) Wh out of ([0-9.]+) Wh in: efficiency ([0-9.]+)", d.log())
            self.assertIsNotNone(m, d.log())
            e_out, e_in, eff = (float(x) for x in m.groups())
            self.assertGreater(e_in, e_out)
            self.assertAlmostEqual(eff, e_out / e_in, delta=1e-4)
            self.assertGreater(eff, 0.7)
            self.assertNotIn("efficiency", stopped["signed_meter_value"]["signed_meter_data"])
            # ... and in the stop reply EVerest receives, beside them (valid against both API files above).
            self.assertEqual((stopped["energy_out_Wh"], stopped["energy_in_Wh"]), (e_out, e_in))
            self.assertAlmostEqual(stopped["efficiency"], eff, delta=1e-4)
            s = d.stats()
            self.assertEqual(s["points"]["grid"]["transactions_open"], 1)
            self.assertEqual(s["transactions_open"], 0)
            self.assertNotEqual(s["points"]["grid"]["ocmf_public_key"], s["ocmf_public_key"], "each module its own key")
            grid_e = s["points"]["grid"]["energy_Wh_import_total"]
            car_e = s["energy_Wh_import_total"]
            self.assertGreater(grid_e, car_e, "the input takes more than the output gives")
            self.assertGreater(car_e / grid_e, 0.7)


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""A register that survives anything, and transactions that survive restarts:
SIGKILL at random moments, corrupt and truncated state files, an unusable
state directory, and a transaction open across a crash."""
import json
import os
import random
import re
import signal
import sys
import time
import unittest
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

P_AC3 = 3 * 230 * 16 * 0.95
RESTORED = re.compile(r"registers restored from record (\d+) \(import ([0-9.]+) Wh")


def utc(ts):
    return datetime.strptime(ts + "+0000", "%Y-%m-%dT%H:%M:%S.%fZ%z").timestamp()


def restored_wh(log):
    m = RESTORED.findall(log)
    if not m:
        raise AssertionError("no 'registers restored' line:\n" + log)
    return float(m[-1][1])


def wait_for_start(d, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if "registers restored" in d.log():
            return
        time.sleep(0.02)
    raise AssertionError("daemon did not start:\n" + d.log())


class CrashSafety(unittest.TestCase):
    def test_sigkill_twenty_times_never_goes_back_and_loses_at_most_100ms(self):
        rng = random.Random(20261123)
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            topic = "everest_api/1/powermeter/wattpipe/m2e/powermeter_values"
            sub = wplib.Subscriber(broker.port, [topic])
            # 1-cycle windows, published each: the last value before a kill is at most ~20 ms old.
            args = ["--window-cycles", "1", "--publish-interval-ms", "1"]
            last = None  # (energy Wh, window end UTC s, kill time UTC s)
            losses = []
            for i in range(20):
                d = wplib.Daemon(tmp, args, broker.port, name=f"run{i}", state_dir=state).start()
                wait_for_start(d)
                if last is not None:
                    e_pub, t_pub, t_recv, t_kill = last
                    x = restored_wh(d.log())
                    self.assertGreaterEqual(x, e_pub - 1e-6, f"run {i}: register went back below a published value")
                    # Measured = processed: when the last value arrived, samples up to
                    # its window end were processed, and processing went on in real
                    # time until the kill. (Samples acquired but not yet processed
                    # were never measured; under sanitizers that lag is large.)
                    measured_at_kill = e_pub + P_AC3 * (t_kill - t_recv) / 3600
                    lost_s = (measured_at_kill - x) / P_AC3 * 3600
                    losses.append(lost_s)
                    self.assertLessEqual(lost_s, 0.100, f"run {i}: lost {lost_s * 1000:.1f} ms of energy")
                    # Nothing counted twice: never more than the samples that existed by the kill.
                    at_most = e_pub + P_AC3 * (t_kill - t_pub) / 3600
                    self.assertLessEqual(x, at_most + P_AC3 * 0.010 / 3600, f"run {i}: restored more than was measured")
                time.sleep(rng.uniform(0.3, 1.5))
                os.kill(d.proc.pid, signal.SIGKILL)
                t_kill = time.time()
                d.proc.wait()
                time.sleep(0.1)
                msgs = sub.take()
                self.assertTrue(msgs, d.log())
                v = json.loads(msgs[-1][1])
                last = (v["energy_Wh_import"]["total"], utc(v["timestamp"]), msgs[-1][2], t_kill)
                with sub.lock:
                    sub.messages.clear()
            # A final clean run: the register holds everything, and it goes on.
            d = wplib.Daemon(tmp, ["--duration", "1"], broker.port, name="final", state_dir=state).start()
            self.assertEqual(d.wait(30), 0, d.log())
            s = d.stats()
            self.assertGreaterEqual(s["energy_Wh_import_total_at_start"], last[0] - 1e-6)
            self.assertGreater(s["energy_Wh_import_total"], s["energy_Wh_import_total_at_start"])
            sub.close()
            print(f"lost per kill (ms): max {max(losses) * 1000:.1f}, mean {sum(losses) / len(losses) * 1000:.1f}")


class StateFiles(unittest.TestCase):
    def run_meter(self, tmp, broker, state, seconds=1.0, name="m", extra=()):
        d = wplib.Daemon(tmp, ["--duration", str(seconds), *extra], broker.port, name=name, state_dir=state).start()
        self.assertEqual(d.wait(30), 0, d.log())
        return d

    def refuse_then_recover(self, tmp, broker, state, name):
        """Damage refuses the start (exit 1, naming it); --state-recover starts from the best value."""
        d = wplib.Daemon(tmp, ["--duration", "1"], broker.port, name=name + "-refused", state_dir=state).start()
        self.assertEqual(d.wait(30), 1, d.log())
        self.assertIn("STATE DAMAGED", d.log())
        self.assertIn("best surviving value", d.log())
        return self.run_meter(tmp, broker, state, name=name, extra=["--state-recover"])

    def test_corrupt_newest_records_refuse_then_the_twin_ring_keeps_the_value(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            d1 = self.run_meter(tmp, broker, state, name="a")
            e1 = d1.stats()["energy_Wh_import_total"]
            # Remove the snapshot and damage every record except the oldest few.
            os.remove(os.path.join(state, "registers.snap"))
            wal = os.path.join(state, "registers.wal")
            with open(wal, "r+b") as f:
                data = bytearray(f.read())
                good = [i for i in range(len(data) // 256) if data[i * 256:i * 256 + 4] == b"WPST"]
                self.assertGreater(len(good), 10)
                for i in good[-5:]:
                    data[i * 256 + 30] ^= 0xFF
                f.seek(0)
                f.write(data)
            d2 = self.refuse_then_recover(tmp, broker, state, "b")
            s = d2.stats()
            self.assertEqual(s["state_corrupt_records_skipped"], 5)
            self.assertAlmostEqual(s["energy_Wh_import_total_at_start"], e1, delta=1e-6)
            self.assertIn("registers.wal: 5 record(s) fail their checks", d2.log())
            self.assertIn("RECOVERING", d2.log())

    def test_truncated_ring_refuses_then_recovers_without_loss(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            e1 = self.run_meter(tmp, broker, state, name="a").stats()["energy_Wh_import_total"]
            with open(os.path.join(state, "registers.wal"), "r+b") as f:
                f.truncate(100)  # mid-record
            d2 = self.refuse_then_recover(tmp, broker, state, "b")
            self.assertAlmostEqual(d2.stats()["energy_Wh_import_total_at_start"], e1, delta=1e-6)

    def test_unusable_state_dir_is_a_clear_error_at_start_up(self):
        with wplib.TempDir() as tmp:
            blocker = os.path.join(tmp, "file")
            with open(blocker, "w") as f:
                f.write("x")
            r = wplib.run([wplib.binary("wattpipe"), "--state-dir", os.path.join(blocker, "state"), "--duration", "1"])
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("state dir", r.stderr)

    def test_bad_ocmf_key_file_names_the_flag(self):
        with wplib.TempDir() as tmp:
            key = os.path.join(tmp, "key.pem")
            with open(key, "w") as f:
                f.write("not a key\n")
            r = wplib.run([wplib.binary("wattpipe"), "--state-dir", os.path.join(tmp, "s"), "--ocmf-key", key,
                           "--duration", "1"])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("--ocmf-key", r.stderr)

    def test_key_is_private_and_stable_across_restarts(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            k1 = self.run_meter(tmp, broker, state, name="a").stats()["ocmf_public_key"]
            k2 = self.run_meter(tmp, broker, state, name="b").stats()["ocmf_public_key"]
            self.assertEqual(k1, k2)
            self.assertEqual(os.stat(os.path.join(state, "ocmf-key.pem")).st_mode & 0o777, 0o600)


class TransactionsAcrossRestarts(unittest.TestCase):
    def test_transaction_open_at_a_crash_stops_with_energy_from_both_runs(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            ev = wplib.Everest(broker.port)
            d1 = wplib.Daemon(tmp, ["--publish-interval-ms", "100"], broker.port, name="a", state_dir=state).start()
            self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10))
            start = ev.start("tx-crash")
            self.assertEqual(start["status"], "OK")
            time.sleep(1.0)
            os.kill(d1.proc.pid, signal.SIGKILL)
            d1.proc.wait()
            time.sleep(0.5)  # the meter is off: this energy is not measured
            d2 = wplib.Daemon(tmp, ["--publish-interval-ms", "100"], broker.port, name="b", state_dir=state).start()
            self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check") and m[2] > time.time() - 1, 10))
            time.sleep(1.0)
            stop = ev.stop("tx-crash")
            self.assertEqual(stop["status"], "OK", stop)
            self.assertIn("1 open transaction", d2.log())
            smv = stop["signed_meter_value"]
            rc, out = wplib.verify_ocmf(smv["signed_meter_data"], smv["public_key"])
            self.assertEqual(rc, 0, out)
            rd = [r for r in json.loads(smv["signed_meter_data"].split("|")[1])["RD"] if "TX" in r]
            self.assertEqual(rd[1]["EF"], "E", "the end reading says the transaction crossed a restart")
            self.assertEqual(rd[0]["EF"], "")
            kwh = rd[1]["RV"] - rd[0]["RV"]
            # Energy from both runs, and never the 0.5 s off: the second run's
            # register goes on exactly from what the first one saved.
            restored = re.search(r"registers restored from record \d+ \(import ([0-9.]+) Wh", d2.log())
            self.assertIsNotNone(restored, d2.log())
            restored_kwh = float(restored.group(1)) / 1000
            self.assertGreater(restored_kwh, rd[0]["RV"], "the first run's energy is in the transaction")
            self.assertGreater(rd[1]["RV"], restored_kwh, "the second run's energy is in the transaction")
            # About 1 s before the crash and 1 s after it (plus start-up): at
            # least one of them whatever the machine's speed (sanitizer builds
            # start slowly), never the 2.5 s of the whole test.
            self.assertGreater(kwh, P_AC3 * 1.0 / 3.6e6)
            self.assertLess(kwh, P_AC3 * 3.0 / 3.6e6)
            self.assertEqual(smv["public_key"], start["signed_meter_value"]["public_key"], "same key after restart")
            d2.stop()
            ev.close()

    def test_pagination_rises_across_restarts(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            state = os.path.join(tmp, "state")
            pgs = []
            for run in range(3):
                ev = wplib.Everest(broker.port)
                d = wplib.Daemon(tmp, [], broker.port, name=f"r{run}", state_dir=state).start()
                self.assertIsNotNone(ev.sub.wait_for(lambda m: m[0].endswith("communication_check"), 10))
                for k in range(2):
                    s = ev.start(f"tx-{run}-{k}")
                    t = ev.stop(f"tx-{run}-{k}")
                    for r in (s, t):
                        pgs.append(int(json.loads(r["signed_meter_value"]["signed_meter_data"].split("|")[1])["PG"][1:]))
                if run == 1:
                    os.kill(d.proc.pid, signal.SIGKILL)
                    d.proc.wait()
                else:
                    self.assertEqual(d.stop(), 0)
                ev.close()
            self.assertEqual(pgs, sorted(set(pgs)), f"pagination repeated or went back: {pgs}")


if __name__ == "__main__":
    unittest.main(verbosity=2)

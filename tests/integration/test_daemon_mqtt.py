# SPDX-License-Identifier: Apache-2.0
"""End to end: simulator -> ring -> metrology -> powermeter_values on a real
mosquitto, checked by an independent peer (paho + jsonschema on the YAML)."""
import json
import os
import signal
import sys
import time
import unittest
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402


def ts(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


class DaemonPublishesToBroker(unittest.TestCase):
    def test_values_arrive_valid_and_energy_matches_power_times_time(self):
        schema = wplib.Schema()
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            base = wplib.topic_base("testmeter")
            sub = wplib.Subscriber(broker.port, [base + "/m2e/#"])
            d = wplib.Daemon(tmp, ["--module-id", "testmeter", "--duration", "3", "--publish-interval-ms", "200"],
                             broker.port).start()
            self.assertEqual(d.wait(30), 0, d.log())
            time.sleep(0.2)
            sub.close()
            values = [json.loads(p) for (_, p, _) in sub.take("/m2e/powermeter_values")]
            self.assertGreaterEqual(len(values), 8, d.log())
            for v in values:
                self.assertEqual(schema.check_powermeter(v), [], v)
            energies = [v["energy_Wh_import"]["total"] for v in values]
            self.assertEqual(energies, sorted(energies), "imported energy must never go back")
            self.assertGreater(energies[-1], energies[0])
            # Energy between the first and last message vs mean power x time.
            # The first window is the unsynchronised one; use whole-cycle ones.
            steady = values[1:]
            de_wh = steady[-1]["energy_Wh_import"]["total"] - steady[0]["energy_Wh_import"]["total"]
            dt_s = ts(steady[-1]["timestamp"]) - ts(steady[0]["timestamp"])
            p_w = sum(v["power_W"]["total"] for v in steady[1:]) / (len(steady) - 1)
            self.assertAlmostEqual(de_wh / (p_w * dt_s / 3600.0), 1.0, delta=0.01)
            # The simulator's ac3 profile: 3 x 230 V x 16 A x 0.95.
            self.assertAlmostEqual(p_w, 3 * 230 * 16 * 0.95, delta=3 * 230 * 16 * 0.95 * 0.001)
            checks = sub.take("/m2e/communication_check")
            self.assertGreaterEqual(len(checks), 2)
            # Never false, not even at the stop: EVerest would end its check for good.
            self.assertEqual({p for (_, p, _) in checks}, {b"true"})

            stats = d.stats()
            for key in ("frames_acquired", "frames_processed", "frames_dropped", "messages_published", "elapsed_s",
                        "energy_Wh_import_total", "energy_Wh_export_total"):
                self.assertIn(key, stats)
            self.assertEqual(stats["frames_acquired"], stats["frames_processed"] + stats["frames_dropped"])
            self.assertGreater(stats["frames_processed"], 50000)
            self.assertGreaterEqual(stats["energy_Wh_import_total"], energies[-1])
            self.assertGreaterEqual(stats["messages_published"], len(values))

    def test_a_replay_faster_than_real_time_is_throttled_without_a_wakeup_per_window(self):
        # At --max-rate, windows close thousands of times a second; the wall-time
        # throttle lets one message out per interval, and the MQTT thread is not
        # woken for the windows in between (each wake-up is a system call on the
        # processing thread).
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            base = wplib.topic_base("fast")
            sub = wplib.Subscriber(broker.port, [base + "/m2e/powermeter_values"])
            d = wplib.Daemon(tmp, ["--module-id", "fast", "--max-rate", "--duration", "2", "--publish-interval-ms", "100",
                                   "--sim-profile", "dc"], broker.port).start()
            self.assertEqual(d.wait(30), 0, d.log())
            time.sleep(0.2)
            sub.close()
            stats = d.stats()
            windows = stats["windows_closed"]
            # Many windows a second (fewer under a sanitizer, still far more than messages).
            self.assertGreater(windows, 2500, "max rate: many windows a second")
            values = [json.loads(p) for (_, p, _) in sub.take("/m2e/powermeter_values")]
            # About 2 s / 100 ms messages (a burst of 2 at start, the last at shutdown).
            self.assertGreaterEqual(len(values), 10, d.log())
            self.assertLessEqual(len(values), 30, d.log())
            energies = [v["energy_Wh_import"]["total"] for v in values]
            self.assertEqual(energies, sorted(energies))
            self.assertLess(stats["mqtt_wakeups"], windows / 25, stats)

    def test_sigterm_and_sigint_stop_cleanly_and_write_stats(self):
        for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
            with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
                d = wplib.Daemon(tmp, [], broker.port).start()
                time.sleep(1.5)
                d.signal(sig)
                self.assertEqual(d.wait(20), 0, d.log())
                stats = d.stats()
                self.assertEqual(stats["stop_reason"], name)
                self.assertEqual(stats["frames_acquired"], stats["frames_processed"] + stats["frames_dropped"])
                self.assertGreater(stats["energy_Wh_import_total"], 0)


class RealTimeSetUp(unittest.TestCase):
    def test_affinity_priority_and_mlock_apply_or_warn_and_carry_on(self):
        with wplib.TempDir() as tmp:
            d = wplib.Daemon(tmp, ["--acq-cpu", "0", "--proc-cpu", "1", "--rt-priority", "10", "--mlock",
                                   "--duration", "1.5", "--broker", "127.0.0.1:1"]).start()
            self.assertEqual(d.wait(30), 0, d.log())
            s = d.stats()
            self.assertEqual(s["frames_dropped"], 0)
            self.assertGreater(s["frames_processed"], 20000)
            log = d.log()
            # Without CAP_SYS_NICE each setting warns once; with it, none does.
            self.assertLessEqual(log.count("SCHED_FIFO priority 10 not permitted"), 2)


class BadConfigurationExitsTwo(unittest.TestCase):
    def check(self, args, key, files=None):
        with wplib.TempDir() as tmp:
            argv = [wplib.binary("wattpipe"), "--state-dir", os.path.join(tmp, "s"), "--duration", "1"]
            for name, text in (files or {}).items():
                path = os.path.join(tmp, name)
                with open(path, "w") as f:
                    f.write(text)
                args = [a.replace("@" + name, path) for a in args]
            r = wplib.run(argv + args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(key, r.stderr)

    def test_flag_value_not_a_number(self):
        self.check(["--sample-rate", "fast"], "sample-rate")

    def test_unknown_flag(self):
        self.check(["--no-such-flag", "1"], "no-such-flag")

    def test_bad_broker(self):
        self.check(["--broker", "localhost"], "broker")

    def test_bad_source(self):
        self.check(["--source", "tape:x"], "source")

    def test_unknown_profile(self):
        self.check(["--sim-profile", "ac7"], "sim-profile")

    def test_config_unknown_key(self):
        self.check(["--config", "@c.yaml"], "bogus_key", {"c.yaml": "module-id: x\nbogus_key: 3\n"})

    def test_config_bad_value(self):
        self.check(["--config", "@c.yaml"], "publish-interval-ms", {"c.yaml": "publish-interval-ms: soon\n"})

    def test_config_not_yaml(self):
        self.check(["--config", "@c.yaml"], "c.yaml", {"c.yaml": "a: [unclosed\n"})

    def test_config_missing_file(self):
        self.check(["--config", "/nonexistent/wattpipe.yaml"], "config")

    def test_config_nested_bad_value(self):
        self.check(["--config", "@c.yaml"], "sim.frequency_hz", {"c.yaml": "sim:\n  frequency_hz: high\n"})

    def test_help_exits_zero(self):
        r = wplib.run([wplib.binary("wattpipe"), "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("--publish-interval-ms", r.stdout)


class ConfigFileWorks(unittest.TestCase):
    def test_yaml_keys_are_flag_names_and_flags_override(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            cfg = os.path.join(tmp, "w.yaml")
            with open(cfg, "w") as f:
                f.write(f"module-id: fromyaml\nbroker: 127.0.0.1:{broker.port}\nduration: 30\n"
                        "publish-interval-ms: 100\nsim-profile: ac1\n")
            sub = wplib.Subscriber(broker.port, ["everest_api/1/powermeter/fromyaml/m2e/powermeter_values"])
            d = wplib.Daemon(tmp, ["--config", cfg, "--duration", "1.5"]).start()
            self.assertEqual(d.wait(30), 0, d.log())
            time.sleep(0.2)
            sub.close()
            values = [json.loads(p) for (_, p, _) in sub.take()]
            self.assertGreater(len(values), 3)
            self.assertIn("L1", values[-1]["voltage_V"])
            self.assertNotIn("L2", values[-1]["voltage_V"], "ac1 profile: one phase")
            self.assertLess(d.stats()["elapsed_s"], 10, "the flag's duration overrides the file's")


if __name__ == "__main__":
    unittest.main(verbosity=2)

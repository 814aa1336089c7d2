# SPDX-License-Identifier: Apache-2.0
"""Analysis end to end: the daemon on the simulator, a real mosquitto, the
analysis and step-event messages validated against the shipped JSON Schema,
the demand input answered with a delay, and every field in the JSONL log."""
import json
import os
import sys
import time
import unittest

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

SCHEMA_PATH = os.path.join(os.path.dirname(wplib.SPEC), "wattpipe_analysis.schema.json")
with open(SCHEMA_PATH) as f:
    SCHEMA = json.load(f)


def validator(name):
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})


ANALYSIS, STEP = validator("analysis"), validator("step_event")


def errors(v, obj):
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in v.iter_errors(obj)]


def records(path):
    with open(path) as f:
        return wplib.windows_of(f)


class Analysis(unittest.TestCase):
    def test_dc_session_ripple_and_steps_on_mqtt_and_in_the_log_with_demand_delay(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            sub = wplib.Subscriber(broker.port, ["wattpipe/an/#"])
            log = os.path.join(tmp, "w.jsonl")
            # A 20 s session: demand steps 500 -> 300 -> 500 A at 4 s and 5 s.
            d = wplib.Daemon(tmp, ["--module-id", "an", "--analysis", "on", "--sim-profile", "dc-session", "--sim-session-s", "20",
                                   "--duration", "6.5", "--publish-interval-ms", "200", "--log", log],
                             broker_port=broker.port).start()
            # The bench asks for 300 A as soon as the meter is up, well before the
            # simulator's step at 4 s: that step's delay is measured from it.
            self.assertIsNotNone(sub.wait_for(lambda m: m[0].endswith("/analysis"), 10), d.log())
            sent_before = time.time()
            sub.publish("wattpipe/an/demand", json.dumps({"current_A": 300}), qos=1)
            sub.publish("wattpipe/an/demand", "not a number", qos=1)
            self.assertEqual(d.wait(60), 0, d.log())
            sub.close()
            s = d.stats()
            self.assertEqual(s["demands"], 1)
            self.assertEqual(s["demands_malformed"], 1)
            analysis = [json.loads(p) for t, p, _ in sub.take("/analysis")]
            self.assertGreaterEqual(len(analysis), 20)
            self.assertEqual(s["analysis_published"], len(analysis))
            for a in analysis:
                self.assertEqual(errors(ANALYSIS, a), [], a)
                self.assertEqual(a["layout"], "DC")
            # The profile's ripple: 300 Hz 3 A and 2 kHz 1 A on I (RMS sqrt(5) A).
            steady = [a for a in analysis if "ripple_I_peaks" in a and a["ripple_I_rms_A"] < 3]
            self.assertTrue(steady)
            for a in steady[-3:]:
                self.assertAlmostEqual(a["ripple_I_rms_A"], 5 ** 0.5, delta=0.02)
                freqs = sorted(p["f_Hz"] for p in a["ripple_I_peaks"][:2])
                self.assertAlmostEqual(freqs[0], 300, delta=2)
                self.assertAlmostEqual(freqs[1], 2000, delta=2)
            events = [json.loads(p) for t, p, _ in sub.take("/events")]
            for e in events:
                self.assertEqual(errors(STEP, e), [], e)
            down = [e for e in events if abs(e["from_A"] - 500) < 1 and abs(e["to_A"] - 300) < 1]
            self.assertEqual(len(down), 1, events)
            # Second order, 4 ms, damping 0.6: about 9.5 % overshoot; the demand came before the response.
            self.assertAlmostEqual(down[0]["overshoot_percent"], 9.5, delta=2)
            self.assertIn("delay_ms", down[0])
            self.assertGreater(down[0]["delay_ms"], 0)
            # The demand came after sent_before; 10 % of a 4 ms response is within 50 ms of the start.
            self.assertLess(down[0]["delay_ms"], (down[0]["t_start_ns"] / 1e9 + 0.05 - sent_before) * 1000)
            self.assertEqual(s["events_published"], len(events))
            # The log: every window with its analysis fields, the same step events as lines.
            recs = records(log)
            windows = [r for r in recs if "event" not in r]
            steps = [r for r in recs if r.get("event") == "step"]
            self.assertEqual(len(windows), s["windows_closed"])
            self.assertEqual(len(steps), s["steps"])
            self.assertEqual([e["t_start_ns"] for e in steps], [e["t_start_ns"] for e in events])
            keys = ["ripple_U_rms_V", "ripple_I_rms_A", "ripple_U_pp_V", "ripple_I_pp_A", "U_min_V", "U_max_V",
                    "I_min_A", "I_max_A", "ripple_I_bands", "ripple_U_bands", "ripple_I_peaks"]
            whole = [w for w in windows if abs(w["samples"] - 2000) < 1]
            self.assertGreater(len(whole), 50)
            for w in whole:
                for k in keys:
                    self.assertIn(k, w)
                sub_schema = {k: w[k] for k in w if k in SCHEMA["$defs"]["analysis_fields"]["properties"]}
                self.assertEqual(errors(validator("analysis_fields"), sub_schema), [])
                # 20 kS/s: the top band is cut at half the sample rate.
                self.assertEqual(w["ripple_I_bands"][-1]["f_hi_Hz"], 10000.0)
            # The CSV export: one row per window, the step lines left out, the analysis columns in.
            csv_path = os.path.join(tmp, "w.csv")
            r = wplib.run([wplib.binary("wattpipe-log2csv"), log, "-o", csv_path])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"{len(steps)} step events left out", r.stderr)
            with open(csv_path) as f:
                lines = f.read().splitlines()
            self.assertEqual(len(lines), 1 + len(windows))
            for k in ("ripple_I_rms_A", "ripple_U_pp_V", "I_max_A"):
                self.assertIn(k, lines[0].split(","))
            # The plot reads the same log: ripple panel, steps marked.
            png = os.path.join(tmp, "w.png")
            r = wplib.run([wplib.binary("wattpipe-plot"), log, "-o", png])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"{len(steps)} step event(s) marked", r.stderr)
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_ac3_harmonics_thd_and_unbalance_from_a_yaml_configured_simulator(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            cfg = os.path.join(tmp, "ac.yaml")
            with open(cfg, "w") as f:
                f.write("sim:\n"
                        "  phases: [{urms_v: 230, irms_a: 16}, {urms_v: 225, irms_a: 16}, {urms_v: 235, irms_a: 16}]\n"
                        "  i_harmonics: [{order: 5, percent: 20}, {order: 7, percent: 10}]\n"
                        "  u_harmonics: [{order: 5, percent: 3}]\n")
            sub = wplib.Subscriber(broker.port, ["wattpipe/ac/#"])
            log = os.path.join(tmp, "w.jsonl")
            d = wplib.Daemon(tmp, ["--config", cfg, "--module-id", "ac", "--analysis", "on", "--duration", "2", "--log", log],
                             broker_port=broker.port).start()
            self.assertEqual(d.wait(60), 0, d.log())
            sub.close()
            analysis = [json.loads(p) for t, p, _ in sub.take("/analysis")]
            self.assertGreaterEqual(len(analysis), 1)
            for a in analysis:
                self.assertEqual(errors(ANALYSIS, a), [], a)
            whole = [w for w in records(log) if w.get("whole_cycles")]
            self.assertGreater(len(whole), 3)
            for w in whole:
                self.assertAlmostEqual(w["thd_I_percent"]["L1"], (20 ** 2 + 10 ** 2) ** 0.5, delta=0.02)
                self.assertAlmostEqual(w["thd_U_percent"]["L2"], 3, delta=0.02)
                self.assertAlmostEqual(w["harmonics_I_A"]["L3"][4], 3.2, delta=0.0032)
                self.assertAlmostEqual(w["harmonics_U_V"]["L2"][0], 225, delta=0.225)
                # Magnitudes 230/225/235 at 120 degrees: u2 = |U-|/|U+|.
                self.assertAlmostEqual(w["unbalance_u2_percent"], 1.2551, delta=0.01)
                self.assertEqual(len(w["harmonics_U_deg"]["L1"]), 50)
            # The plot: THD panel and the harmonics bar chart.
            png = os.path.join(tmp, "ac.png")
            r = wplib.run([wplib.binary("wattpipe-plot"), log, "-o", png])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertGreater(os.path.getsize(png), 20000)

    def test_analysis_is_off_by_default_and_bad_bands_are_refused(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            sub = wplib.Subscriber(broker.port, ["wattpipe/off/#"])
            log = os.path.join(tmp, "w.jsonl")
            d = wplib.Daemon(tmp, ["--module-id", "off", "--duration", "1", "--log", log],
                             broker_port=broker.port).start()
            self.assertEqual(d.wait(60), 0, d.log())
            sub.close()
            self.assertEqual(sub.take("/analysis"), [])
            self.assertTrue(all("harmonics_U_V" not in w and "U_peak_V" not in w for w in records(log)))
            for bad in ["10-5", "a-b", "0-10,", "-5-10"]:
                r = wplib.run([wplib.binary("wattpipe"), "--ripple-bands-hz", bad, "--duration", "0.1",
                               "--state-dir", "none"])
                self.assertEqual(r.returncode, 2, bad)
                self.assertIn("--ripple-bands-hz", r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""Conformance of wattpipe to EVerest's powermeter API, driven from outside
the daemon by a real MQTT client (paho) and checked against the contract
(publish/spec/powermeter_API.yaml) with jsonschema."""
import json
import re
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

SCHEMA = wplib.Schema()
P_AC3 = 3 * 230 * 16 * 0.95


class Meter:
    """A broker, a daemon and an EVerest peer for one test."""

    def __init__(self, args=(), module_id="wattpipe", prefix=""):
        self.tmp_ctx = wplib.TempDir()
        self.tmp = self.tmp_ctx.__enter__()
        self.broker = wplib.Broker(self.tmp).start()
        self.ev = wplib.Everest(self.broker.port, module_id, prefix)
        argv = ["--module-id", module_id] + (["--mqtt-prefix", prefix] if prefix else []) + list(args)
        self.daemon = wplib.Daemon(self.tmp, argv, self.broker.port).start()
        # The meter is up once its first communication check arrives.
        if not self.ev.sub.wait_for(lambda m: m[0].endswith("/m2e/communication_check"), 15):
            raise AssertionError("no communication_check from the meter:\n" + self.daemon.log())

    def finish(self):
        rc = self.daemon.stop()
        time.sleep(0.2)
        self.ev.close()
        self.broker.stop()
        return rc

    def close(self):
        try:
            if self.daemon.proc and self.daemon.proc.poll() is None:
                self.daemon.proc.kill()
            self.ev.close()
        except Exception:
            pass
        self.broker.stop()
        self.tmp_ctx.__exit__(None, None, None)


class Channels(unittest.TestCase):
    def setUp(self):
        self.m = Meter(["--publish-interval-ms", "200", "--communication-check-interval-ms", "300",
                        "--public-key-interval-ms", "500"])

    def tearDown(self):
        self.m.close()

    def test_every_channel_publishes_schema_valid_messages(self):
        time.sleep(3)
        self.assertEqual(self.m.finish(), 0, self.m.daemon.log())
        sub = self.m.ev.sub
        values = [json.loads(p) for (_, p, _) in sub.take("/m2e/powermeter_values")]
        self.assertGreaterEqual(len(values), 10)
        for v in values:
            self.assertEqual(SCHEMA.check_powermeter(v), [], v)
        for v in values[1:-1]:
            self.assertEqual(set(v["voltage_V"]), {"L1", "L2", "L3"})
            self.assertIn("N", v["current_A"])
            self.assertIn("VAR", v)
            self.assertIn("frequency_Hz", v)
            self.assertFalse(v["phase_seq_error"])
            self.assertEqual(v["meter_id"], "WATTPIPE-0001")
        keys = [json.loads(p) for (_, p, _) in sub.take("/m2e/public_key_ocmf")]
        self.assertGreaterEqual(len(keys), 4, "at connect and then periodically")
        self.assertEqual(len(set(keys)), 1)
        for k in keys:
            self.assertEqual(SCHEMA.errors("SendPublicKeyOCMF", k), [])
        self.assertTrue(keys[0].startswith("3059301306072A8648CE3D0201"), "DER SubjectPublicKeyInfo, hex")
        checks = [p for (_, p, _) in sub.take("/m2e/communication_check")]
        self.assertGreaterEqual(len(checks), 8)
        # Never false, not even at the stop (finish() above): EVerest would end its check for good.
        self.assertTrue(all(json.loads(c) is True for c in checks), checks[-3:])
        for c in checks:
            self.assertEqual(SCHEMA.errors("CommunicationCheck", json.loads(c)), [])


class CommunicationCheckOff(unittest.TestCase):
    def test_interval_zero_sends_none(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            sub = wplib.Subscriber(broker.port, ["everest_api/1/powermeter/wattpipe/m2e/#"])
            d = wplib.Daemon(tmp, ["--communication-check-interval-ms", "0", "--duration", "2",
                                   "--publish-interval-ms", "200"], broker.port).start()
            self.assertEqual(d.wait(30), 0, d.log())
            time.sleep(0.2)
            sub.close()
            self.assertEqual(sub.take("/m2e/communication_check"), [])
            self.assertGreater(len(sub.take("/m2e/powermeter_values")), 3)


class Liveness(unittest.TestCase):
    def test_heartbeat_gone_and_back_is_logged_once_each_and_measuring_goes_on(self):
        m = Meter(["--heartbeat-timeout-ms", "1000", "--publish-interval-ms", "200"])
        try:
            def logged(text, n):  # waits on what the daemon says, not on time
                deadline = time.time() + 20
                while m.daemon.log().count(text) < n and time.time() < deadline:
                    time.sleep(0.02)
                return m.daemon.log().count(text)
            for i in range(6):
                m.ev.heartbeat(i)
                time.sleep(0.1)
            self.assertEqual(logged("EVerest is alive", 1), 1)
            self.assertEqual(logged("EVerest is gone", 1), 1)  # silence past the timeout
            e_mid = m.ev.values()[-1]["energy_Wh_import"]["total"]
            for i in range(6, 12):
                m.ev.heartbeat(i)
                time.sleep(0.1)
            self.assertEqual(logged("EVerest is alive", 2), 2)
            time.sleep(0.4)  # the last heartbeats' delivery through the broker
            self.assertEqual(m.finish(), 0)
            log = m.daemon.log()
            self.assertEqual(log.count("EVerest is gone"), 1, log)
            self.assertEqual(log.count("EVerest is alive"), 2, log)
            s = m.daemon.stats()
            self.assertEqual(s["everest_heartbeats"], 12)
            self.assertEqual(s["everest_last_heartbeat_id"], 11)
            self.assertEqual(s["everest_lost"], 1)
            self.assertGreater(m.ev.values()[-1]["energy_Wh_import"]["total"], e_mid, "measuring went on")
        finally:
            m.close()


class Transactions(unittest.TestCase):
    def setUp(self):
        self.m = Meter(["--publish-interval-ms", "200", "--transaction-min-s", "60", "--transaction-max-s", "3600"])

    def tearDown(self):
        self.m.close()

    def key(self):
        k = self.m.ev.sub.wait_for(lambda x: x[0].endswith("/m2e/public_key_ocmf"), 10)
        return json.loads(k[1])

    def test_start_stop_replies_are_signed_and_verify(self):
        ev = self.m.ev
        start = ev.start("tx-1")
        self.assertEqual(SCHEMA.errors("StartTransactionReply", start), [], start)
        self.assertEqual(start["status"], "OK")
        self.assertIn("transaction_min_stop_time", start)
        self.assertIn("transaction_max_stop_time", start)
        time.sleep(1.5)
        stop = ev.stop("tx-1")
        self.assertEqual(SCHEMA.errors("StopTransactionReply", stop), [], stop)
        self.assertEqual(stop["status"], "OK")
        smv = stop["signed_meter_value"]
        self.assertEqual(smv["encoding_method"], "OCMF")
        self.assertEqual(smv["signing_method"], "ECDSA-secp256r1-SHA256")
        self.assertEqual(smv["public_key"], self.key())
        rc, out = wplib.verify_ocmf(smv["signed_meter_data"], smv["public_key"])
        self.assertEqual(rc, 0, out)
        self.assertIn("VALID", out)
        payload = json.loads(smv["signed_meter_data"].split("|")[1])
        rd = [r for r in payload["RD"] if "TX" in r]
        self.assertEqual([r["TX"] for r in rd], ["B", "E"])
        self.assertEqual(payload["CT"], "EVSEID")
        self.assertEqual(payload["CI"], "EVSE-1")
        self.assertEqual(payload["ID"], "04AABBCCDD")
        # The signed payload names the software that signed it (docs/legal.md),
        # and wattpipe-ocmf verify shows it as this build's legal part.
        name, version, sha = re.fullmatch(r"(\S+) (\S+) sha256:([0-9a-f]{64})", wplib.software_id()).groups()
        self.assertEqual(payload["MF"], f"{name}-{version}-{sha}")
        self.assertIn("software:   " + payload["MF"], out)
        self.assertIn("(the legal part of this build)", out)
        # 1.5 s of 10.5 kW between the readings (0.1 Wh resolution, scheduling slack).
        delivered_kwh = rd[1]["RV"] - rd[0]["RV"]
        self.assertGreater(delivered_kwh, P_AC3 * 1.0 / 3.6e6)
        self.assertLess(delivered_kwh, P_AC3 * 3.0 / 3.6e6)
        rc, out = wplib.verify_ocmf(stop["start_signed_meter_value"]["signed_meter_data"], smv["public_key"])
        self.assertEqual(rc, 0, out)
        self.assertIn("begin reading only", out)
        self.assertEqual(stop["start_signed_meter_value"]["signed_meter_data"],
                         start["signed_meter_value"]["signed_meter_data"])

    def test_object_form_stop_and_unknown_id(self):
        ev = self.m.ev
        self.assertEqual(ev.start("tx-obj")["status"], "OK")
        self.assertEqual(ev.stop("tx-obj", object_form=True)["status"], "OK")
        unknown = ev.stop("no-such-tx")
        self.assertEqual(unknown["status"], "UNEXPECTED_ERROR")
        self.assertIn("no-such-tx", unknown["error"])
        self.assertEqual(SCHEMA.errors("StopTransactionReply", unknown), [])

    def test_empty_id_closes_every_open_transaction(self):
        ev = self.m.ev
        self.assertEqual(ev.start("tx-a", evse="E1")["status"], "OK")
        self.assertEqual(ev.start("tx-b", evse="E2")["status"], "OK")
        r = ev.stop("")
        self.assertEqual(r["status"], "OK", r)
        self.assertEqual(ev.stop("tx-a")["status"], "UNEXPECTED_ERROR")
        self.assertEqual(ev.stop("tx-b")["status"], "UNEXPECTED_ERROR")
        none_open = ev.stop("")
        self.assertEqual(none_open["status"], "UNEXPECTED_ERROR", "nothing was open")
        self.assertIn("error", none_open)

    def test_request_without_reply_to_is_executed_not_answered(self):
        ev = self.m.ev
        before = len(ev.sub.take())
        ev.start("tx-silent", reply=False)
        time.sleep(0.5)
        replies = [m for m in ev.sub.take()[before:] if "/m2e/reply/" in m[0]]
        self.assertEqual(replies, [])
        self.assertEqual(ev.stop("tx-silent")["status"], "OK", "the silent start was executed")

    def test_pagination_is_unique_and_rises(self):
        ev = self.m.ev
        pgs = []
        for i in range(3):
            s = ev.start(f"tx-pg-{i}", evse=f"E{i}")
            pgs.append(json.loads(s["signed_meter_value"]["signed_meter_data"].split("|")[1])["PG"])
            t = ev.stop(f"tx-pg-{i}")
            pgs.append(json.loads(t["signed_meter_value"]["signed_meter_data"].split("|")[1])["PG"])
        nums = [int(p[1:]) for p in pgs]
        self.assertEqual(nums, sorted(set(nums)))


MALFORMED = [
    # (name, topic, payload template, reply expected)
    ("not json", "start_transaction", "this is not json", False),
    ("not json, replyTo findable", "stop_transaction", '{"headers":{"replyTo":"{RT}"},"payload":', True),
    ("wrong type", "start_transaction", '{"headers":{"replyTo":"{RT}"},"payload":{"evse_id":1}}', True),
    ("missing fields", "start_transaction", '{"headers":{"replyTo":"{RT}"},"payload":{"evse_id":"E"}}', True),
    ("unknown enum", "start_transaction",
     '{"headers":{"replyTo":"{RT}"},"payload":{"evse_id":"E","transaction_id":"T","identification_status":"SORT_OF",'
     '"identification_flags":[],"identification_type":"NONE"}}', True),
    ("stop number", "stop_transaction", '{"headers":{"replyTo":"{RT}"},"payload":12}', True),
    ("1 MiB", "start_transaction", '{"headers":{"replyTo":"{RT}"},"payload":{"evse_id":"' + "x" * (1 << 20) + '"}}', True),
    ("deep nesting", "start_transaction", '{"headers":{"replyTo":"{RT}"},"payload":' + "[" * 3000 + "]" * 3000 + "}", True),
    ("invalid utf-8", "start_transaction", None, True),
    ("bad replyTo", "stop_transaction", '{"headers":{"replyTo":"a/+/b"},"payload":"T"}', False),
    ("heartbeat garbage", "heartbeat", '{"id":"x"}', False),
]


class Robustness(unittest.TestCase):
    def test_malformed_requests_get_unexpected_error_and_the_meter_keeps_measuring(self):
        m = Meter(["--publish-interval-ms", "200"])
        try:
            ev = m.ev
            e0 = None
            for name, topic, template, want_reply in MALFORMED:
                def make(rt, template=template):
                    if template is None:  # raw bytes with invalid UTF-8
                        return ('{"headers":{"replyTo":"' + rt + '"},"payload":{"evse_id":"').encode() + b"\xc3\x28" + b'"}}'
                    return template.replace("{RT}", rt)
                if e0 is None and ev.values():
                    e0 = ev.values()[-1]["energy_Wh_import"]["total"]
                reply = ev.request(topic, make, timeout=3.0 if want_reply else 0.5)
                if want_reply:
                    self.assertIsNotNone(reply, name)
                    self.assertEqual(reply["status"], "UNEXPECTED_ERROR", name)
                    self.assertTrue(reply.get("error"), name)
                    self.assertEqual(SCHEMA.errors("StartTransactionReply", reply), [], name)
                else:
                    self.assertIsNone(reply, name)
                self.assertIsNone(m.daemon.proc.poll(), f"daemon died on {name}")
            time.sleep(0.5)
            # Still measuring and answering.
            self.assertGreater(ev.values()[-1]["energy_Wh_import"]["total"], e0 or 0)
            self.assertEqual(ev.start("tx-after")["status"], "OK")
            self.assertEqual(m.finish(), 0)
            s = m.daemon.stats()
            self.assertGreaterEqual(s["requests_malformed"], 9)
            self.assertEqual(s["everest_heartbeats_malformed"], 1)
            log = m.daemon.log()
            self.assertLess(log.count("malformed"), len(MALFORMED), "log lines are rate-limited")
        finally:
            m.close()

    def test_broker_restart_loses_no_energy(self):
        with wplib.TempDir() as tmp:
            broker = wplib.Broker(tmp).start()
            port = broker.port
            d = wplib.Daemon(tmp, ["--publish-interval-ms", "200"], port).start()
            try:
                sub = wplib.Subscriber(port, ["everest_api/1/powermeter/wattpipe/m2e/powermeter_values"])
                self.assertIsNotNone(sub.wait_for(lambda m: True, 10))
                time.sleep(1)
                before = [json.loads(p) for (_, p, _) in sub.take()]
                sub.close()
                broker.stop()
                time.sleep(2.5)  # the meter keeps measuring without a broker
                broker = wplib.Broker(tmp, port=port).start()
                sub = wplib.Subscriber(port, ["everest_api/1/powermeter/wattpipe/m2e/powermeter_values"])
                first = sub.wait_for(lambda m: True, 15)
                self.assertIsNotNone(first, "publishing resumes after the broker comes back:\n" + d.log())
                time.sleep(1)
                after = [json.loads(p) for (_, p, _) in sub.take()]
                sub.close()
                self.assertEqual(d.stop(), 0)
                s = d.stats()
                self.assertGreaterEqual(s["mqtt_connects"], 2)
                self.assertGreaterEqual(s["mqtt_connection_losses"], 1)
                # Energy between the last value before and the first after equals
                # power x time across the outage: nothing was lost.
                a, b = before[-1], after[0]
                dt = (time_of(b) - time_of(a))
                de = b["energy_Wh_import"]["total"] - a["energy_Wh_import"]["total"]
                self.assertGreater(dt, 2.0)
                self.assertAlmostEqual(de / (P_AC3 * dt / 3600), 1.0, delta=0.01)
            finally:
                if d.proc.poll() is None:
                    d.proc.kill()
                broker.stop()


def time_of(v):
    from datetime import datetime
    return datetime.strptime(v["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


class Options(unittest.TestCase):
    def test_topic_prefix_applies_to_every_topic(self):
        m = Meter(["--publish-interval-ms", "200"], module_id="pm7", prefix="site/3")
        try:
            self.assertEqual(m.ev.start("tx-p")["status"], "OK")
            self.assertEqual(m.ev.stop("tx-p")["status"], "OK")
            time.sleep(0.5)
            topics = {t for (t, _, _) in m.ev.sub.take()}
            self.assertIn("site/3/everest_api/1/powermeter/pm7/m2e/powermeter_values", topics)
            self.assertIn("site/3/everest_api/1/powermeter/pm7/m2e/communication_check", topics)
        finally:
            m.close()

    def test_password_broker(self):
        with wplib.TempDir() as tmp:
            pw = os.path.join(tmp, "passwd")
            subprocess.run(["mosquitto_passwd", "-b", "-c", pw, "meter", "s3cret"], check=True, capture_output=True)
            os.chmod(pw, 0o600)
            with open(os.path.join(tmp, "pwfile"), "w") as f:
                f.write("s3cret\n")
            with wplib.Broker(tmp, password_file=pw) as broker:
                sub = wplib.Subscriber(broker.port, ["everest_api/#"], username="meter", password="s3cret")
                d = wplib.Daemon(tmp, ["--mqtt-username", "meter", "--mqtt-password-file", os.path.join(tmp, "pwfile"),
                                       "--duration", "2", "--publish-interval-ms", "200", "--mqtt-qos", "1"],
                                 broker.port).start()
                self.assertEqual(d.wait(30), 0, d.log())
                time.sleep(0.2)
                sub.close()
                self.assertGreater(len(sub.take("/m2e/powermeter_values")), 3)
                # A wrong password: refused, retried, and measuring goes on.
                with open(os.path.join(tmp, "badpw"), "w") as f:
                    f.write("wrong\n")
                d2 = wplib.Daemon(tmp, ["--mqtt-username", "meter", "--mqtt-password-file", os.path.join(tmp, "badpw"),
                                        "--duration", "2"], broker.port, name="badpw").start()
                self.assertEqual(d2.wait(30), 0, d2.log())
                s = d2.stats()
                self.assertEqual(s["values_published"], 0)
                self.assertGreater(s["energy_Wh_import_total"], 0)
                self.assertIn("did not accept", d2.log())

    def test_tls_broker_with_client_certificates(self):
        with wplib.TempDir() as tmp:
            ossl = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=tmp)
            ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                 "-subj", "/CN=wattpipe test CA", "-keyout", "ca.key", "-out", "ca.pem")
            for name, cn in (("server", "127.0.0.1"), ("client", "meter")):
                ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}",
                     "-keyout", f"{name}.key", "-out", f"{name}.csr")
                with open(os.path.join(tmp, f"{name}.ext"), "w") as f:
                    f.write("subjectAltName=IP:127.0.0.1\n" if name == "server" else "extendedKeyUsage=clientAuth\n")
                ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
            p = lambda n: os.path.join(tmp, n)
            tls = {"cafile": p("ca.pem"), "certfile": p("server.pem"), "keyfile": p("server.key"),
                   "require_certificate": True}
            with wplib.Broker(tmp, tls=tls) as broker:
                sub = wplib.Subscriber(broker.port, ["everest_api/#"], cafile=p("ca.pem"), certfile=p("client.pem"),
                                       keyfile=p("client.key"))
                d = wplib.Daemon(tmp, ["--mqtt-cafile", p("ca.pem"), "--mqtt-certfile", p("client.pem"),
                                       "--mqtt-keyfile", p("client.key"), "--duration", "2",
                                       "--publish-interval-ms", "200"], broker.port).start()
                self.assertEqual(d.wait(30), 0, d.log())
                time.sleep(0.2)
                sub.close()
                values = [json.loads(x) for (_, x, _) in sub.take("/m2e/powermeter_values")]
                self.assertGreater(len(values), 3, d.log())
                for v in values:
                    self.assertEqual(SCHEMA.check_powermeter(v), [])


class EverestTool(unittest.TestCase):
    def test_wattpipe_everest_session_validates_and_verifies(self):
        m = Meter(["--publish-interval-ms", "200"])
        try:
            r = wplib.run([wplib.binary("wattpipe-everest"), "session", "--broker", f"127.0.0.1:{m.broker.port}",
                           "--seconds", "1.5"], timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("records verified", r.stdout)
            self.assertIn("0 invalid", r.stdout)
        finally:
            m.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

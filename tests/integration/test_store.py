# SPDX-License-Identifier: Apache-2.0
"""The database store (docs/store.md) against a real PostgreSQL the test
starts itself (initdb in a temporary directory, a free loopback port, a
password login): two daemons storing at once through a server stop and
start, every window compared with the JSONL log of the same run; nothing
lost or doubled when a spool is sent again; the spool's limit dropping
spectra first and keeping a transaction's windows; clear errors at start-up
for a bad URL, a wrong password and a missing database."""
import json
import os
import shutil
import sys
import time
import unittest
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402


def jsonl_windows(path):
    with open(path) as f:
        return [r for r in (json.loads(x, parse_float=Decimal) for x in f if x.strip())
                if "start_ns" in r and r.get("type") is None]


def key_us(ns):
    return (ns + 500) // 1000


class Store(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = wplib.TempDir()
        cls.tmp = cls.tmpdir.__enter__()
        cls.pg = wplib.Postgres(cls.tmp).start()
        cls.broker = wplib.Broker(cls.tmp).start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()
        cls.pg.stop()
        cls.tmpdir.__exit__(None, None, None)

    def daemon(self, name, args, url=None):
        return wplib.Daemon(self.tmp, ["--module-id", name, "--store", url or self.pg.url()] + args,
                            self.broker.port, name=name)

    def rows(self, module, columns):
        out = self.pg.sql(f"SELECT (extract(epoch FROM t_start) * 1000000)::bigint, {columns} FROM wattpipe_windows "
                          f"WHERE module_id = '{module}' ORDER BY t_start")
        return [line.split("|") for line in out.splitlines()] if out else []

    def count(self, table, module):
        return int(self.pg.sql(f"SELECT count(*) FROM {table} WHERE module_id = '{module}'"))

    def test_start_up_errors_say_what_is_wrong(self):
        cases = [
            ("postgresql://wattpipe@127.0.0.1:notaport/lab", "notaport"),
            ("postgresql://wattpipe@127.0.0.1:5432/lab?sslmode=sometimes", "sslmode"),
            (self.pg.url(password="wrong"), "password authentication failed"),
            (self.pg.url(db="no_such_db"), 'database "no_such_db" does not exist'),
        ]
        for i, (url, said) in enumerate(cases):
            d = self.daemon(f"bad{i}", ["--duration", "2"], url=url).start()
            self.assertEqual(d.wait(30), 2, d.log())
            self.assertIn(said, d.log())
            self.assertNotIn("wrong@", d.log(), "the password is never logged")

    def test_two_daemons_through_a_server_restart_store_every_window_once(self):
        ev = wplib.Everest(self.broker.port, module_id="bench-dc")
        dc = self.daemon("bench-dc", ["--sim-profile", "dc", "--window-ms", "10", "--publish-interval-ms", "100",
                                      "--log", os.path.join(self.tmp, "dc.jsonl")]).start()
        ac = self.daemon("bench-ac", ["--sim-profile", "ac3", "--window-cycles", "1", "--analysis", "on",
                                      "--log", os.path.join(self.tmp, "ac.jsonl")]).start()
        try:
            deadline = time.time() + 20
            # Until both have rows (the first daemon to connect makes the tables).
            while time.time() < deadline and self.pg.sql(
                    "SELECT count(DISTINCT module_id) FROM wattpipe_windows WHERE module_id IN ('bench-dc', 'bench-ac')"
                    if self.pg.sql("SELECT to_regclass('wattpipe_windows') IS NOT NULL") == "t" else "SELECT 0") != "2":
                time.sleep(0.1)
            time.sleep(1)
            self.pg.stop()
            # The database is away: metering, MQTT and transactions go on.
            values_before = len(ev.values())
            started = ev.start("tx-db")
            self.assertEqual(started["status"], "OK", started)
            time.sleep(1.5)
            stopped = ev.stop("tx-db")
            self.assertEqual(stopped["status"], "OK", stopped)
            time.sleep(1)
            self.assertGreater(len(ev.values()), values_before, "values stopped while the database was away")
            self.pg.start()
            time.sleep(3)
        finally:
            self.assertEqual(dc.stop(), 0, dc.log())
            self.assertEqual(ac.stop(), 0, ac.log())
            ev.close()
        for d in (dc, ac):
            s = d.stats()
            self.assertGreaterEqual(s["store_connects"], 2, d.log())
            self.assertGreater(s["store_batches_spooled"], 0, "nothing was spooled while the server was down")
            self.assertEqual(s["store_rows_lost"], 0)
            self.assertEqual(s["store_windows_missed"], 0)
            self.assertEqual(s["store_spool_batches"], 0, "the spool was not sent after the server came back")
            self.assertIn("lost the database", d.log())

        # DC: every window of the log, once, with its values and its register to the micro-watt-hour.
        logged = jsonl_windows(os.path.join(self.tmp, "dc.jsonl"))
        stored = self.rows("bench-dc", "seq, p_w, u_dc_v, i_dc_a, e_import_wh, e_export_wh, partial")
        self.assertEqual([key_us(w["start_ns"]) for w in logged], [int(r[0]) for r in stored])
        for w, r in zip(logged, stored):
            self.assertEqual(int(r[1]), w["seq"])
            self.assertAlmostEqual(float(r[2]), float(w["power_W"]["total"]), delta=5e-4 + 1e-12 * abs(float(r[2])))
            self.assertAlmostEqual(float(r[3]), float(w["voltage_V"]["DC"]), delta=5e-4)
            self.assertAlmostEqual(float(r[4]), float(w["current_A"]["DC"]), delta=5e-4)
            self.assertEqual(Decimal(r[5]), w["energy_Wh_import"]["total"])
            self.assertEqual(Decimal(r[6]), w["energy_Wh_export"]["total"])
            self.assertEqual(r[7] == "t", w["partial"])
        self.assertEqual(dc.stats()["store_windows_written"], len(logged))

        # AC with analysis: per phase, THD, and the spectra of every analysed window.
        logged = jsonl_windows(os.path.join(self.tmp, "ac.jsonl"))
        stored = self.rows("bench-ac", "u_l1_v, i_l3_a, p_w, thd_i_l1_pct, e_import_wh")
        self.assertEqual([key_us(w["start_ns"]) for w in logged], [int(r[0]) for r in stored])
        for w, r in zip(logged, stored):
            if "L1" in w.get("voltage_V", {}):
                self.assertAlmostEqual(float(r[1]), float(w["voltage_V"]["L1"]), delta=5e-4)
                self.assertAlmostEqual(float(r[2]), float(w["current_A"]["L3"]), delta=5e-4)
                self.assertAlmostEqual(float(r[3]), float(w["power_W"]["total"]), delta=5e-4 + 1e-12 * abs(float(r[3])))
            if "thd_I_percent" in w:
                self.assertAlmostEqual(float(r[4]), float(w["thd_I_percent"]["L1"]), delta=5e-4)
            else:
                self.assertEqual(r[4], "")
            self.assertEqual(Decimal(r[5]), w["energy_Wh_import"]["total"])
        with_harmonics = sum(1 for w in logged if "harmonics_U_V" in w)
        self.assertGreater(with_harmonics, 0)
        self.assertEqual(self.count("wattpipe_spectra", "bench-ac"), with_harmonics)
        dims = self.pg.sql("SELECT array_dims(harm_u_v) FROM wattpipe_spectra WHERE module_id = 'bench-ac' LIMIT 1")
        self.assertEqual(dims, "[1:3][1:50]")

        # The transaction of the outage, with the very records EVerest was given.
        where = "FROM wattpipe_transactions WHERE module_id = 'bench-dc' AND transaction_id = 'tx-db'"
        self.assertEqual(self.pg.sql("SELECT begin_ocmf " + where),
                         stopped["start_signed_meter_value"]["signed_meter_data"])
        self.assertEqual(self.pg.sql("SELECT end_ocmf " + where), stopped["signed_meter_value"]["signed_meter_data"])
        self.assertEqual(self.pg.sql("SELECT t_end > t_begin " + where), "t")
        self.assertEqual(self.pg.sql("SELECT max(version) FROM wattpipe_schema"), "1")

        # Read back by wattpipe-export: the DC module as CSV (every window), the AC one as HDF5 with its spectra.
        csv_path = os.path.join(self.tmp, "dc-from-db.csv")
        r = wplib.run([wplib.binary("wattpipe-export"), "--store", self.pg.url(), "--module-id", "bench-dc",
                       "-o", csv_path])
        self.assertEqual(r.returncode, 0, r.stderr)
        import csv
        with open(csv_path) as f:
            table = list(csv.DictReader(f))
        logged = jsonl_windows(os.path.join(self.tmp, "dc.jsonl"))
        self.assertEqual(len(table), len(logged))
        self.assertEqual([int(t["seq"]) for t in table], [w["seq"] for w in logged])
        self.assertEqual([Decimal(t["e_import_wh"]) for t in table], [w["energy_Wh_import"]["total"] for w in logged])
        h5_path = os.path.join(self.tmp, "ac-from-db.h5")
        r = wplib.run([wplib.binary("wattpipe-export"), "--store", self.pg.url(), "--module-id", "bench-ac",
                       "-f", "hdf5", "-o", h5_path, "--from", "1", "--to", "3"])
        self.assertEqual(r.returncode, 0, r.stderr)
        import h5py
        with h5py.File(h5_path) as h5:
            n = len(h5["windows/u_l1_v"])
            self.assertEqual(h5["windows/u_l1_v"].attrs["units"], "V")
            self.assertEqual(h5["spectra/harm_u_v_1"].shape, (n, 50))
            first = int(h5["windows/start_ns"][0])
        ac_logged = jsonl_windows(os.path.join(self.tmp, "ac.jsonl"))
        t0 = key_us(ac_logged[0]["start_ns"])
        in_range = [w for w in ac_logged if 1e6 <= key_us(w["start_ns"]) - t0 <= 3e6]
        self.assertEqual(n, len(in_range))
        self.assertEqual(key_us(first), key_us(in_range[0]["start_ns"]))
        # And as a COMTRADE trend: a sample per window at its start, the quantities with their units.
        base = os.path.join(self.tmp, "dc-trend")
        r = wplib.run([wplib.binary("wattpipe-export"), "--store", self.pg.url(), "--module-id", "bench-dc",
                       "-f", "comtrade", "-o", base])
        self.assertEqual(r.returncode, 0, r.stderr)
        from test_data_formats import read_trend
        names, units, samples, times_us, _ = read_trend(base)
        self.assertEqual(len(samples), len(logged))
        self.assertEqual(units[names.index("p_w")], "W")
        self.assertEqual(units[names.index("u_dc_v")], "V")
        self.assertEqual(list(times_us), [key_us(w["start_ns"]) - key_us(logged[0]["start_ns"]) for w in logged])
        r = wplib.run([wplib.binary("wattpipe-export"), "--store", self.pg.url(), "--module-id", "nobody"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("holds no window record", r.stderr)

    def test_a_spool_sent_again_doubles_nothing(self):
        state = os.path.join(self.tmp, "state-late")
        away = f"postgresql://wattpipe:bench-secret@127.0.0.1:{wplib.free_port()}/lab"
        first = wplib.Daemon(self.tmp, ["--module-id", "late", "--store", away, "--sim-profile", "dc",
                                        "--window-ms", "10", "--duration", "2.5", "--state-dir", state,
                                        "--log", os.path.join(self.tmp, "late1.jsonl")],
                             self.broker.port, name="late1").start()
        self.assertEqual(first.wait(60), 0, first.log())
        self.assertIn("cannot reach the database", first.log())
        s = first.stats()
        self.assertGreater(s["store_spool_batches"], 0)
        self.assertEqual(s["store_windows_written"], 0)
        spool = os.path.join(state, "store-spool")
        kept = os.path.join(self.tmp, "spool-copy")
        shutil.copytree(spool, kept)
        # The next run sends the earlier run's windows first, then its own.
        second = wplib.Daemon(self.tmp, ["--module-id", "late", "--store", self.pg.url(), "--sim-profile", "dc",
                                         "--window-ms", "10", "--duration", "1.5", "--state-dir", state,
                                         "--log", os.path.join(self.tmp, "late2.jsonl")],
                              self.broker.port, name="late2").start()
        self.assertEqual(second.wait(60), 0, second.log())
        logged = jsonl_windows(os.path.join(self.tmp, "late1.jsonl")) + jsonl_windows(os.path.join(self.tmp, "late2.jsonl"))
        self.assertEqual(self.count("wattpipe_windows", "late"), len(logged))
        self.assertEqual(second.stats()["store_spool_batches"], 0)
        # As if a reply had been lost after the commit: the same batches again.
        for f in os.listdir(kept):
            shutil.copy(os.path.join(kept, f), spool)
        third = wplib.Daemon(self.tmp, ["--module-id", "late", "--store", self.pg.url(), "--sim-profile", "dc",
                                        "--window-ms", "10", "--duration", "1", "--state-dir", state,
                                        "--log", os.path.join(self.tmp, "late3.jsonl")],
                             self.broker.port, name="late3").start()
        self.assertEqual(third.wait(60), 0, third.log())
        self.assertGreater(third.stats()["store_batches_deduplicated"], 0)
        logged += jsonl_windows(os.path.join(self.tmp, "late3.jsonl"))
        self.assertEqual(self.count("wattpipe_windows", "late"), len(logged), "a row was doubled or lost")
        stored = [int(r[0]) for r in self.rows("late", "seq")]
        self.assertEqual(sorted(key_us(w["start_ns"]) for w in logged), stored)

    def test_the_spool_limit_drops_spectra_first_and_keeps_transaction_windows(self):
        state = os.path.join(self.tmp, "state-full")
        away = f"postgresql://wattpipe:bench-secret@127.0.0.1:{wplib.free_port()}/lab"
        ev = wplib.Everest(self.broker.port, module_id="full")
        log = os.path.join(self.tmp, "full.jsonl")
        d = wplib.Daemon(self.tmp, ["--module-id", "full", "--store", away, "--sim-profile", "ac3",
                                    "--window-cycles", "1", "--analysis", "on", "--store-spool-max-mb", "0.25",
                                    "--store-batch-ms", "100", "--state-dir", state, "--log", log,
                                    "--publish-interval-ms", "100"], self.broker.port, name="full").start()
        try:
            deadline = time.time() + 20
            while time.time() < deadline and not ev.values():
                time.sleep(0.05)
            time.sleep(1)
            self.assertEqual(ev.start("tx-kept")["status"], "OK")
            time.sleep(2)
            self.assertEqual(ev.stop("tx-kept")["status"], "OK")
            time.sleep(4)
        finally:
            self.assertEqual(d.stop(), 0, d.log())
            ev.close()
        s = d.stats()
        self.assertGreater(s["store_spectra_dropped"], 0)
        self.assertGreater(s["store_windows_dropped"], 0)
        self.assertLessEqual(s["store_spool_bytes"], 0.25e6 * 1.5)
        self.assertIn("dropped the oldest", d.log())
        # Send what the spool kept.
        send = wplib.Daemon(self.tmp, ["--module-id", "full-send", "--store", self.pg.url(), "--duration", "0.5",
                                       "--state-dir", state], self.broker.port, name="full-send").start()
        self.assertEqual(send.wait(60), 0, send.log())
        t_begin, t_end = (int(x) for x in self.pg.sql(
            "SELECT (extract(epoch FROM t_begin) * 1000000)::bigint, (extract(epoch FROM t_end) * 1000000)::bigint "
            "FROM wattpipe_transactions WHERE module_id = 'full' AND transaction_id = 'tx-kept'").split("|"))
        logged = [key_us(w["start_ns"]) for w in jsonl_windows(log)]
        stored = set(int(r[0]) for r in self.rows("full", "seq"))
        during = [t for t in logged if t_begin <= t <= t_end]
        self.assertGreater(len(during), 50)
        self.assertEqual([t for t in during if t not in stored], [], "a window of the transaction was dropped")
        self.assertLess(len(stored), len(logged), "nothing outside the transaction was dropped")
        self.assertLess(self.count("wattpipe_spectra", "full"), len(stored))


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A lab's worth of benches into one database: N daemons (default 20), each
with 1 ms windows (1000 windows/s), store into one private PostgreSQL on
this machine. Every few seconds it counts each module's rows in the database
against the windows its daemon has closed by then; at the end it checks that
every window is there, once, and prints the lag over the run and a verdict.
Not part of the suite (it loads the machine for a minute).

    tools/store_scale.py [--daemons 20] [--seconds 60] [--sample-rate 10000]
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import wplib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--daemons", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--sample-rate", type=float, default=10000, help="simulator samples/s per channel")
    ap.add_argument("--every", type=float, default=5, help="seconds between two counts")
    a = ap.parse_args()
    with wplib.TempDir() as tmp, wplib.Postgres(tmp) as pg, wplib.Broker(tmp) as broker:
        names = [f"bench-{k:02d}" for k in range(a.daemons)]
        daemons = [wplib.Daemon(tmp, ["--module-id", n, "--store", pg.url(), "--sim-profile", "dc",
                                      "--window-ms", "1", "--sample-rate", str(a.sample_rate),
                                      "--duration", str(a.seconds)], broker.port, name=n) for n in names]
        t0 = time.time()
        for d in daemons:
            d.start()
        samples = []  # (t, rows behind the windows closed, per the clock: max over modules)
        while time.time() - t0 + a.every < a.seconds - 0.5:
            time.sleep(a.every)
            t = time.time() - t0
            out = pg.sql("SELECT module_id, count(*), extract(epoch FROM now() - max(t_end)) FROM wattpipe_windows "
                         "GROUP BY module_id") or ""
            rows = {m: (int(c), float(age)) for m, c, age in (line.split("|") for line in out.splitlines())}
            ages = [rows[n][1] for n in names if n in rows]
            total = sum(c for c, _ in rows.values())
            samples.append((t, max(ages) if len(ages) == len(names) else float("inf"), total))
            print(f"{t:6.1f} s: {total} rows in the database, {total / t:.0f} rows/s; the newest row of the "
                  f"slowest module is {samples[-1][1]:.2f} s old", flush=True)
        codes = [d.wait(a.seconds + 120) for d in daemons]
        stats = [d.stats() for d in daemons]
        closed = sum(s["windows_closed"] for s in stats)
        written = sum(s["store_windows_written"] for s in stats)
        in_db = int(pg.sql("SELECT count(*) FROM wattpipe_windows"))
        distinct = int(pg.sql("SELECT count(*) FROM (SELECT DISTINCT module_id, t_start FROM wattpipe_windows) d"))
        missed = sum(s["store_windows_missed"] + s["store_windows_queue_overflow"] + s["store_rows_lost"] for s in stats)
        spooled = sum(s["store_batches_spooled"] for s in stats)
        lag_max = max(s["store_lag_max_s"] for s in stats)
        half = [age for t, age, _ in samples if t >= a.seconds / 2]
        first = [age for t, age, _ in samples if t < a.seconds / 2]
        growing = bool(half and first) and max(half) > max(first) + 1.0
        result = {
            "daemons": a.daemons, "seconds": a.seconds, "windows_closed": closed, "store_windows_written": written,
            "rows_in_database": in_db, "distinct_rows": distinct, "windows_missed": missed,
            "batches_spooled": spooled, "store_lag_max_s": round(lag_max, 3),
            "newest_row_age_s": [round(age, 2) for _, age, _ in samples],
            "rows_per_s": round(in_db / a.seconds), "exit_codes_all_0": all(c == 0 for c in codes),
        }
        ok = result["exit_codes_all_0"] and in_db == closed == written == distinct and missed == 0 and not growing
        result["verdict"] = "held" if ok else "NOT held"
        print(json.dumps(result, indent=1))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""tools/soak.py [--minutes 10] [--bin build/bin]: a long run that must stay flat.

The simulator at --max-rate (AC3N at 20 kS/s: days of signal in minutes),
a transaction started and stopped every few seconds by an EVerest-like peer,
the JSONL log rotating with retention, and a private mosquitto. Every few
seconds it reads the daemon's resident memory, open descriptors, threads and
the state directory's sizes from /proc and the file system, and prints them;
at the end, the verdict against the limits: RSS growth after warm-up under
1 MiB, no descriptor or thread growth, state and journal bounded, every
transaction answered, zero frames dropped. Exit 0 when all hold. Not part of
the test suite (it takes minutes on purpose)."""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def proc(pid):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    return {
        "rss_kib": int(status["VmRSS"].split()[0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(status["Threads"]),
    }


def dir_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin"), help="where wattpipe is")
    ap.add_argument("--warmup-s", type=float, default=60.0, help="RSS growth counts from here")
    ap.add_argument("--every-s", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--tx-every-s", type=float, default=3.0, help="seconds between transactions")
    a = ap.parse_args()
    os.environ["WATTPIPE_BIN_DIR"] = os.path.abspath(a.bin)
    import wplib  # noqa: E402 (after WATTPIPE_BIN_DIR)

    tmp = tempfile.mkdtemp(prefix="wattpipe-soak-")
    state, logdir = os.path.join(tmp, "state"), os.path.join(tmp, "logs")
    os.makedirs(logdir)
    duration = a.minutes * 60
    failures = []
    with wplib.Broker(tmp) as broker:
        ev = wplib.Everest(broker.port, module_id="soak")
        d = wplib.Daemon(tmp, ["--module-id", "soak", "--sim-profile", "ac3", "--max-rate", "--duration", str(duration),
                               "--state-dir", state, "--log", os.path.join(logdir, "w.jsonl"), "--log-max-mb", "8",
                               "--log-keep", "3"], broker.port).start()
        t0 = time.time()
        samples, tx, answered = [], 0, 0
        next_sample, next_tx = t0 + 5, t0 + 2
        print(f"soak: {a.minutes:g} min in {tmp}")
        print(f"{'t_s':>6} {'rss_MiB':>8} {'fds':>4} {'thr':>4} {'state_kB':>9} {'journal_kB':>10} {'logs_MB':>8} {'tx':>5}")
        try:
            while d.proc.poll() is None:
                now = time.time()
                # (none in the last seconds: the daemon ends at --duration, maybe between a start and its stop)
                if now >= next_tx and now < t0 + duration - 5:
                    tx += 1
                    r1 = ev.start(f"soak-{tx}")
                    r2 = ev.stop(f"soak-{tx}")
                    ok = bool(r1 and r1.get("status") == "OK" and r2 and r2.get("status") == "OK")
                    answered += int(ok)
                    if not ok:
                        print(f"soak: transaction soak-{tx} at {now - t0:.0f} s: start {r1}, stop {r2}", flush=True)
                    next_tx = now + a.tx_every_s
                if now >= next_sample:
                    try:
                        p = proc(d.proc.pid)
                    except (FileNotFoundError, ProcessLookupError):
                        break
                    journal = os.path.join(state, "transactions.journal")
                    p.update(t=now - t0, state=dir_bytes(state), journal=os.path.getsize(journal) if os.path.exists(journal) else 0,
                             logs=dir_bytes(logdir))
                    samples.append(p)
                    print(f"{p['t']:6.0f} {p['rss_kib'] / 1024:8.2f} {p['fds']:4d} {p['threads']:4d} {p['state'] / 1024:9.0f} "
                          f"{p['journal'] / 1024:10.1f} {p['logs'] / 1e6:8.1f} {tx:5d}", flush=True)
                    next_sample = now + a.every_s
                time.sleep(0.05)
            rc = d.wait(60)
        finally:
            if d.proc.poll() is None:
                d.stop()
            ev.close()
    s = d.stats()
    warm = [p for p in samples if p["t"] >= a.warmup_s] or samples[-1:]
    rss_growth = (max(p["rss_kib"] for p in warm) - warm[0]["rss_kib"]) / 1024 if warm else 0
    figures = {
        "minutes": a.minutes,
        "frames": s["frames_processed"],
        "signal_days_at_20ks": s["frames_processed"] / 20000 / 86400,
        "frames_per_s": s["frames_processed"] / max(1e-9, s["elapsed_s"]),
        "frames_dropped": s["frames_dropped"],
        "transactions": tx,
        "transactions_answered_ok": answered,
        "rss_mib_after_warmup": warm[0]["rss_kib"] / 1024 if warm else None,
        "rss_growth_mib_after_warmup": rss_growth,
        "fds_min_max": [min(p["fds"] for p in samples), max(p["fds"] for p in samples)] if samples else None,
        "threads_min_max": [min(p["threads"] for p in samples), max(p["threads"] for p in samples)] if samples else None,
        "state_bytes_max": max(p["state"] for p in samples) if samples else None,
        "journal_bytes_max": max(p["journal"] for p in samples) if samples else None,
        "log_bytes_max": max(p["logs"] for p in samples) if samples else None,
        "log_rotations": s.get("log_rotations"),
        "log_files_removed": s.get("log_files_removed"),
        "exit_code": rc,
    }
    print(json.dumps(figures, indent=1))
    if rc != 0:
        failures.append(f"exit code {rc}")
    if rss_growth >= 1.0:
        failures.append(f"RSS grew {rss_growth:.2f} MiB after warm-up")
    if samples and len({p["fds"] for p in warm}) > 1 and max(p["fds"] for p in warm) > warm[0]["fds"]:
        failures.append(f"descriptors grew: {figures['fds_min_max']}")
    if samples and max(p["threads"] for p in warm) > warm[0]["threads"]:
        failures.append(f"threads grew: {figures['threads_min_max']}")
    if figures["journal_bytes_max"] and figures["journal_bytes_max"] > 512 * 1024:
        failures.append(f"journal reached {figures['journal_bytes_max']} bytes")
    if figures["log_bytes_max"] and figures["log_bytes_max"] > 5 * 8 * 1024 * 1024:
        failures.append(f"logs reached {figures['log_bytes_max']} bytes with --log-keep 3 --log-max-mb 8")
    if answered != tx:
        failures.append(f"{tx - answered} of {tx} transactions not answered OK")
    if s["frames_dropped"]:
        failures.append(f"{s['frames_dropped']} frames dropped")
    print("soak: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    if not failures:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: Apache-2.0
"""The daemon as a systemd service, against a stand-in for the service
manager: a UNIX datagram socket named by NOTIFY_SOCKET receives READY=1 and
then WATCHDOG=1 while the daemon runs, and no WATCHDOG=1 once its
processing thread stalls (WATTPIPE_TEST_STALL_AFTER_FRAMES, which the
daemon's configuration reads). SIGHUP reopens the log files (logrotate)."""
import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402


def records(path):
    with open(path) as f:
        return wplib.windows_of(f)


class Manager:
    """The service manager's end of sd_notify: datagrams with their arrival times."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.s.settimeout(0.05)
        self.path = path
        self.got = []  # (time, message)

    def collect(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            try:
                self.got.append((time.time(), self.s.recv(4096).decode()))
            except socket.timeout:
                pass

    def close(self):
        self.s.close()


def start(tmp, args, env_extra, name):
    d = wplib.Daemon(tmp, args, name=name)
    env = dict(os.environ, **env_extra)
    with open(d.log_path, "a") as log:
        d.proc = wplib.subprocess.Popen(d.argv, stdout=log, stderr=wplib.subprocess.STDOUT, env=env)
    wplib._STARTED.append(d.proc)
    return d


class Service(unittest.TestCase):
    def run_notified(self, tmp, broker, env, name, seconds):
        """The daemon under a stand-in service manager (watchdog every 0.4 s) for
        `seconds`, then stopped; returns the manager (with what it got) and the daemon."""
        m = Manager(os.path.join(tmp, "notify"))
        d = start(tmp, ["--broker", f"127.0.0.1:{broker.port}"],
                  {"NOTIFY_SOCKET": m.path, "WATCHDOG_USEC": "400000", **env}, name)
        try:
            m.collect(seconds)
        finally:
            self.assertEqual(d.stop(), 0, d.log())
        m.collect(0.3)
        m.close()
        return m, d

    def test_ready_then_watchdog_while_it_runs(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            m, d = self.run_notified(tmp, broker, {}, "svc", 3)
            msgs = [x for _, x in m.got]
            self.assertTrue(msgs, "nothing was sent")
            self.assertTrue(msgs[0].startswith("READY=1"), msgs[:3])
            self.assertIn("STATUS=measuring", msgs[0])
            # Fed again and again while it runs (counts, not timing: that is the service manager's job),
            # and STOPPING last.
            self.assertGreaterEqual(msgs.count("WATCHDOG=1"), 3, msgs)
            self.assertEqual(msgs[-1], "STOPPING=1", msgs[-3:])

    def test_no_watchdog_once_the_processing_thread_stalls(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            # The simulator at 20 kS/s: 20 000 frames after about a second.
            m, d = self.run_notified(tmp, broker, {"WATTPIPE_TEST_STALL_AFTER_FRAMES": "20000"}, "stall", 4)
            msgs = [x for _, x in m.got]
            self.assertIn("WATCHDOG=1", msgs, "fed before the stall")
            self.assertIn("watchdog: the processing thread makes no progress", d.log())
            # Once stalled (after about 1 s of 4) it is never fed again: between the last WATCHDOG=1
            # and STOPPING=1 lie many missed intervals (5 of 0.2 s here; a fed daemon misses none).
            last_fed = max(t for t, x in m.got if x == "WATCHDOG=1")
            stopping = [t for t, x in m.got if x == "STOPPING=1"][0]
            self.assertGreater(stopping - last_fed, 1.0, msgs[-5:])

    def test_no_notify_socket_no_messages_and_no_harm(self):
        with wplib.TempDir() as tmp:
            d = wplib.Daemon(tmp, ["--broker", "127.0.0.1:1", "--duration", "1"]).start()
            self.assertEqual(d.wait(30), 0, d.log())

    def test_sighup_reopens_the_log_files(self):
        with wplib.TempDir() as tmp:
            log = os.path.join(tmp, "w.jsonl")
            raw = os.path.join(tmp, "r.wprb")
            d = wplib.Daemon(tmp, ["--broker", "127.0.0.1:1", "--log", log, "--log-raw", raw], name="hup").start()
            try:
                deadline = time.time() + 10
                while time.time() < deadline and (not os.path.exists(log) or os.path.getsize(log) == 0):
                    time.sleep(0.1)
                time.sleep(1.2)  # a flush
                # logrotate: move the files away, then SIGHUP.
                os.rename(log, log + ".1")
                os.rename(raw, raw + ".1")
                d.signal(signal.SIGHUP)
                deadline = time.time() + 10
                while time.time() < deadline and not (os.path.exists(log) and os.path.getsize(log) > 0):
                    time.sleep(0.1)
                time.sleep(1.2)
            finally:
                self.assertEqual(d.stop(), 0, d.log())
            self.assertIn("SIGHUP: reopening the log files", d.log())
            old, new = records(log + ".1"), records(log)
            self.assertTrue(old and new)
            # Nothing lost or doubled across the reopen: window sequence numbers continue.
            seqs = [r["seq"] for r in old + new if "seq" in r]
            self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
            self.assertGreater(os.path.getsize(raw), 0)
            self.assertGreater(os.path.getsize(raw + ".1"), 0)
            self.assertEqual(d.stats()["log_reopens"], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)

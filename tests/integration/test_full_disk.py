# SPDX-License-Identifier: Apache-2.0
"""Logs on a filesystem that fills up, on a small tmpfs the test mounts:
metering and publishing go on, the full disk is counted and shown while it
lasts, and writing resumes by itself once space is back, the gap marked.
Retention keeps a rotating log within its limits. Skipped, with the reason,
only where mounting a tmpfs is impossible (not root, no CAP_SYS_ADMIN)."""
import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402
sys.path.insert(0, os.path.join(wplib.ROOT, "python"))
import wattpipe_wprb  # noqa: E402


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def page_url(daemon):
    m = re.search(r"live page at (http://[0-9.]+:\d+/)", daemon.log())
    return m.group(1) if m else None


def health(url):
    with urllib.request.urlopen(url + "api/state", timeout=5) as r:
        return json.load(r)["health"]


def wait(what, predicate, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Mounted(unittest.TestCase):
    """A temporary directory with a file system mounted in it (self.mnt) for
    each test; skipped, with the reason, where mounting is impossible."""
    what = ""

    def mount(self):  # -> (ok, why)
        raise NotImplementedError

    def setUp(self):
        self.tmpdir = wplib.TempDir()
        self.tmp = self.tmpdir.__enter__()
        ok, why = self.mount()
        if not ok:
            self.tmpdir.__exit__(None, None, None)
            self.skipTest(f"cannot mount {self.what} here ({why or 'mount failed'})")

    def tearDown(self):
        umount(self.mnt)
        self.tmpdir.__exit__(None, None, None)


class FullDisk(Mounted):
    what = "a tmpfs"

    def mount(self):
        self.mnt = os.path.join(self.tmp, "small")
        return mount_tmpfs(self.mnt, "4m")

    def test_logs_resume_after_the_disk_was_full(self):
        filler = os.path.join(self.mnt, "filler")
        with open(filler, "wb") as f:  # leave about 600 KB: the raw log fills it within a second or two
            f.write(b"\0" * (4 * 1024 * 1024 - 600 * 1024))
        jsonl, raw = os.path.join(self.mnt, "w.jsonl"), os.path.join(self.mnt, "r.wprb")
        with wplib.Broker(self.tmp) as broker:
            sub = wplib.Subscriber(broker.port, [wplib.topic_base("disk") + "/m2e/powermeter_values"])
            d = wplib.Daemon(self.tmp, ["--module-id", "disk", "--window-cycles", "1", "--publish-interval-ms", "100",
                                        "--log", jsonl, "--log-raw", raw, "--http", "127.0.0.1:0"], broker.port).start()
            try:
                url = wait("the page's URL", lambda: page_url(d))
                full = wait("the full disk in the health panel",
                            lambda: (lambda h: h if not h["logs_writing"] and h["log_raw_blocks_not_written"] > 0 else None)(health(url)))
                self.assertGreater(full["log_write_errors"], 0)
                # Metering and publishing go on while the disk is full.
                values_at_full = len(sub.take())
                wait("values published while the disk is full", lambda: len(sub.take()) >= values_at_full + 5)
                self.assertIn("LOG NOT WRITTEN", d.log())
                self.assertLess(d.log().count("LOG NOT WRITTEN"), 10, "said at a bounded rate, not per window")
                # Space back: writing resumes by itself, with no signal and no restart.
                os.remove(filler)
                wait("the logs writing again", lambda: health(url)["logs_writing"])
                def text():
                    with open(jsonl) as f:
                        return f.read()
                wait("windows written after the resume",
                     lambda: '"type":"gap"' in text() and text().rstrip().rsplit("\n", 1)[-1].startswith('{"seq"'))
            finally:
                self.assertEqual(d.stop(), 0, d.log())
                sub.close()
        s = d.stats()
        self.assertIn("LOG RESUMED", d.log())
        self.assertGreaterEqual(s["log_resumes"], 1)
        self.assertGreater(s["log_raw_blocks_not_written"], 0)
        self.assertTrue(s["log_writing"])
        # Every window is accounted for: written, not written (counted), or lost to the queue.
        self.assertEqual(s["log_windows_written"] + s["log_windows_not_written"] + s["log_windows_lost"],
                         s["windows_closed"])
        with open(jsonl) as f:
            recs = [json.loads(x) for x in f if x.strip().startswith("{") and x.strip().endswith("}")]
        gaps = [r for r in recs if r.get("type") == "gap"]
        self.assertTrue(gaps, "the gap is marked in the log")
        self.assertEqual(sum(g["windows_not_written"] for g in gaps), s["log_windows_not_written"])
        self.assertIn("space", gaps[0]["reason"].lower())
        seqs = [r["seq"] for r in recs if "seq" in r]
        self.assertEqual(seqs, sorted(set(seqs)), "windows in order, none twice")
        self.assertGreater(seqs[-1], gaps[-1]["first_seq"], "windows after the gap")
        # The raw log started a new file (its note first); the one that filled is kept aside.
        with open(raw, "rb") as f:
            self.assertEqual(f.read(4), b"WPRN")
        self.assertTrue(any(n.startswith("r.wprb.") for n in os.listdir(self.mnt)))
        self.assertGreater(len(wattpipe_wprb.read_file(raw)[1]), 0)
        # The registers never depended on the disk.
        self.assertGreater(s["energy_Wh_import_total"], s["energy_Wh_import_total_at_start"])
        self.assertEqual(s["state_write_errors"], 0)

    def test_the_database_spool_on_a_full_disk_counts_what_it_lost_and_resumes(self):
        filler = os.path.join(self.mnt, "filler")
        with open(filler, "wb") as f:  # leave about 200 KB: DC windows of 10 ms fill it within a second or two
            f.write(b"\0" * (4 * 1024 * 1024 - 200 * 1024))
        spool = os.path.join(self.mnt, "spool")
        away = f"postgresql://wattpipe:bench-secret@127.0.0.1:{wplib.free_port()}/lab"
        with wplib.Broker(self.tmp) as broker:
            sub = wplib.Subscriber(broker.port, [wplib.topic_base("spool") + "/m2e/powermeter_values"])
            d = wplib.Daemon(self.tmp, ["--module-id", "spool", "--sim-profile", "dc", "--window-ms", "10",
                                        "--publish-interval-ms", "100", "--store", away, "--store-spool-dir", spool,
                                        "--store-spool-max-mb", "0", "--log", os.path.join(self.tmp, "spool.jsonl"),
                                        "--http", "127.0.0.1:0"], broker.port).start()
            try:
                url = wait("the page's URL", lambda: page_url(d))
                wait("rows lost to the full disk, in the health panel", lambda: health(url)["store_rows_lost"] > 0)
                self.assertFalse(health(url)["store_connected"])
                values_at_full = len(sub.take())
                wait("values published while the spool's disk is full", lambda: len(sub.take()) >= values_at_full + 5)
                lost_then = health(url)["store_rows_lost"]
                os.remove(filler)
                spooled_then = len(os.listdir(spool))
                wait("the spool writing again", lambda: len(os.listdir(spool)) > spooled_then + 3)
            finally:
                self.assertEqual(d.stop(), 0, d.log())
                sub.close()
        s = d.stats()
        self.assertIn("rows lost", d.log())
        self.assertLess(d.log().count("rows lost"), 10, "said at a bounded rate, not per batch")
        self.assertGreaterEqual(s["store_rows_lost"], lost_then)
        # Every window is in the spool or counted as lost: send the spool, and count.
        with wplib.Postgres(self.tmp) as pg:
            send = wplib.Daemon(self.tmp, ["--module-id", "spool-send", "--store", pg.url(), "--store-spool-dir", spool,
                                           "--duration", "0.5"], name="send").start()
            self.assertEqual(send.wait(60), 0, send.log())
            stored = int(pg.sql("SELECT count(*) FROM wattpipe_windows WHERE module_id = 'spool'"))
        self.assertEqual(stored + s["store_rows_lost"], s["windows_closed"])
        self.assertGreater(stored, 0)

    def test_an_export_onto_a_full_disk_fails_clearly_and_leaves_no_partial_file(self):
        raw = os.path.join(self.tmp, "r.wprb")  # made on the roomy disk
        d = wplib.Daemon(self.tmp, ["--duration", "3", "--log-raw", raw, "--broker", "127.0.0.1:1",
                                    "--state-dir", "none"], name="rec").start()
        self.assertEqual(d.wait(30), 0, d.log())
        # 64 kB left: less than any of the three formats takes for these
        # samples (HDF5 compresses them, to about a sixth).
        self.assertGreater(os.path.getsize(raw), 1_200_000)
        with open(os.path.join(self.mnt, "filler"), "wb") as f:
            f.write(b"\0" * (4 * 1024 * 1024 - 64 * 1024))
        for fmt in ("hdf5", "csv", "comtrade"):
            out = os.path.join(self.mnt, "r." + fmt)
            r = wplib.run([wplib.binary("wattpipe-export"), raw, "-f", fmt, "-o", out], timeout=120)
            self.assertEqual(r.returncode, 1, f"{fmt}: {r.stderr}")
            self.assertIn("fail", r.stderr, fmt)
            self.assertEqual(sorted(os.listdir(self.mnt)), ["filler"], f"{fmt} left a partial file")

    def test_retention_keeps_the_newest_rotated_files(self):
        log = os.path.join(self.mnt, "w.jsonl")
        d = wplib.Daemon(self.tmp, ["--window-cycles", "1", "--log", log, "--log-max-mb", "0.02", "--log-keep", "3",
                                    "--sim-profile", "ac3", "--duration", "3",
                                    "--broker", "127.0.0.1:1", "--state-dir", "none"]).start()
        self.assertEqual(d.wait(60), 0, d.log())
        s = d.stats()
        parts = sorted((n for n in os.listdir(self.mnt) if n.startswith("w.jsonl.")), key=lambda n: int(n.rsplit(".", 1)[1]))
        self.assertGreater(s["log_rotations"], 5)
        self.assertEqual(len(parts), 3, "--log-keep 3")
        self.assertEqual(s["log_files_removed"], s["log_rotations"] - 3)
        # The newest are kept: the numbers run up to the last rotation.
        self.assertEqual([int(p.rsplit(".", 1)[1]) for p in parts],
                         list(range(s["log_rotations"] - 2, s["log_rotations"] + 1)))
        # And by size: the rotated files stay under the total.
        for n in parts:
            os.remove(os.path.join(self.mnt, n))
        os.remove(log)
        d = wplib.Daemon(self.tmp, ["--window-cycles", "1", "--log", log, "--log-max-mb", "0.02", "--log-max-total-mb", "0.05",
                                    "--sim-profile", "ac3", "--duration", "3",
                                    "--broker", "127.0.0.1:1", "--state-dir", "none"], name="total").start()
        self.assertEqual(d.wait(60), 0, d.log())
        s = d.stats()
        total = sum(os.path.getsize(os.path.join(self.mnt, n)) for n in os.listdir(self.mnt) if n.startswith("w.jsonl."))
        self.assertGreater(s["log_files_removed"], 0)
        self.assertLessEqual(total, 0.05 * 1024 * 1024)


EXT4_IOC_SHUTDOWN, EXT4_GOING_FLAGS_DEFAULT = 0x8004587D, 0


class StateDirFails(Mounted):
    """The state directory on an ext4 image the test mounts and then shuts
    down (EXT4_IOC_SHUTDOWN, after syncing what it had accepted): from then on
    every write and sync there fails with EIO, as on a failing disk or after
    an errors=remount-ro."""

    what = "an ext4 image"

    def mount(self):
        self.img, self.mnt = os.path.join(self.tmp, "state.img"), os.path.join(self.tmp, "state-fs")
        os.makedirs(self.mnt)
        with open(self.img, "wb") as f:
            f.truncate(32 * 1024 * 1024)
        mk = subprocess.run(["mkfs.ext4", "-q", "-F", self.img], capture_output=True, text=True)
        if mk.returncode != 0:
            return False, mk.stderr.strip()
        mnt = subprocess.run(["mount", "-o", "loop", self.img, self.mnt], capture_output=True, text=True)
        return mnt.returncode == 0, mnt.stderr.strip()

    def test_registers_go_on_in_memory_and_nothing_is_signed_that_could_not_be_kept(self):
        import fcntl
        import struct
        state = os.path.join(self.mnt, "state")
        with wplib.Broker(self.tmp) as broker:
            ev = wplib.Everest(broker.port, module_id="sd")
            d = wplib.Daemon(self.tmp, ["--module-id", "sd", "--publish-interval-ms", "100", "--http", "127.0.0.1:0",
                                        "--state-dir", state], broker.port).start()
            try:
                url = wait("the page's URL", lambda: page_url(d))
                wait("values", lambda: len(ev.values()) >= 3)
                self.assertEqual(ev.start("tx-1")["status"], "OK")
                fd = os.open(self.mnt, os.O_RDONLY)
                try:
                    fcntl.ioctl(fd, EXT4_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_DEFAULT))
                finally:
                    os.close(fd)
                wait("the state's failure in the health panel", lambda: health(url)["registers_saved"] is False)
                failed_at = time.time()
                published = max(v["energy_Wh_import"]["total"] for v in ev.values())
                # No transaction begins or ends that a restart could lose; the reply says why.
                for reply in (ev.start("tx-2", evse="EVSE-2"), ev.stop("tx-1")):
                    self.assertEqual(reply["status"], "UNEXPECTED_ERROR", reply)
                    self.assertIn("cannot save its registers", reply["error"])
                    self.assertIn("Input/output error", reply["error"])
                # EVerest is told: communication_check stops (CommunicationFault), and no
                # register a crash could take back is published. Three periods of it:
                checks = lambda: [ts for (t, _, ts) in ev.sub.take("/m2e/communication_check") if ts > failed_at + 1.2]
                values = lambda: [ts for (t, _, ts) in ev.sub.take("/m2e/powermeter_values") if ts > failed_at + 1.2]
                time.sleep(4.5)
                self.assertEqual(checks(), [], "communication_check went on while the registers could not be saved")
                self.assertEqual(values(), [], "values went on while their registers could not be saved")
                self.assertTrue(health(url)["source_health"] == "live", "measuring goes on")
                frames_then = health(url)["frames_processed"]
                wait("processing going on in memory", lambda: health(url)["frames_processed"] > frames_then)
            finally:
                self.assertEqual(d.stop(), 0, d.log())
                ev.close()
            s = d.stats()
            self.assertGreater(s["state_write_errors"], 0)
            self.assertIn("STATE NOT SAVED", d.log())
            self.assertGreater(s["energy_Wh_import_total"], published, "the register went on in memory")
            # What was published survives: remount the image, and the restored registers
            # are no less than any value EVerest saw; the refused transaction left nothing open.
            umount(self.mnt)
            self.assertEqual(subprocess.run(["mount", "-o", "loop", self.img, self.mnt]).returncode, 0)
            again = wplib.Daemon(self.tmp, ["--module-id", "sd", "--duration", "0.5", "--state-dir", state],
                                 broker.port, name="again").start()
            self.assertEqual(again.wait(30), 0, again.log())
            a = again.stats()
            self.assertGreaterEqual(a["energy_Wh_import_total_at_start"], published)
            self.assertEqual(a["transactions_open"], 1, "tx-1 is still open: its stop was refused, not half done")


if __name__ == "__main__":
    unittest.main(verbosity=2)

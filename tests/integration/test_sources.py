# SPDX-License-Identifier: Apache-2.0
"""The three sources end to end through the daemon: ZeroMQ from wattpipe-daq
(a real external process and real sockets), and replay of WPRB files."""
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

P_AC3 = 3 * 230 * 16 * 0.95


def daq(*args, timeout=60):
    r = wplib.run([wplib.binary("wattpipe-daq"), *args], timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"wattpipe-daq failed: {r.stderr}")
    return r


class ZmqSource(unittest.TestCase):
    def run_stream(self, daemon_source, daq_args_list):
        source, *more = daemon_source.split()
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            d = wplib.Daemon(tmp, ["--source", source, *more], broker.port).start()
            for args in daq_args_list:
                daq(*args)
            time.sleep(0.5)
            d.signal(signal.SIGTERM)
            self.assertEqual(d.wait(20), 0, d.log())
            return d.stats(), d.log()

    def test_gap_corrupt_and_nan_blocks_are_counted_exactly_and_restart_survives(self):
        port = wplib.free_port()
        ep = f"tcp://127.0.0.1:{port}"
        common = ["--bind", ep, "--wait-subscriber", "--block-frames", "1024", "--sample-rate", "50000"]
        stats, log = self.run_stream(f"zmq:{ep}", [
            common + ["--frames", str(40 * 1024), "--drop-block", "10", "--corrupt-block", "20", "--nan-block", "25"],
            # The DAQ goes away and comes back: a new stream from sequence 0.
            common + ["--frames", str(20 * 1024), "--format", "int16"],
        ])
        self.assertEqual(stats["frames_lost_gap"], 2 * 1024, log)  # the dropped block and the unreadable one
        self.assertEqual(stats["blocks_invalid"], 2, log)
        self.assertEqual(stats["frames_invalid"], 1024, log)
        self.assertEqual(stats["stream_restarts"], 1, log)
        self.assertEqual(stats["frames_acquired"], 40 * 1024 - 3 * 1024 + 20 * 1024)
        self.assertEqual(stats["frames_acquired"], stats["frames_processed"] + stats["frames_dropped"])
        self.assertIn("invalid block skipped", log)
        # Energy of what arrived: 57 blocks of ac3 at 50 kS/s.
        expected_wh = P_AC3 * stats["frames_processed"] / 50000 / 3600
        self.assertAlmostEqual(stats["energy_Wh_import_total"] / expected_wh, 1.0, delta=0.01)

    def test_pull_socket_receives_every_block(self):
        port = wplib.free_port()
        ep = f"tcp://127.0.0.1:{port}"
        stats, log = self.run_stream(f"zmq-pull:{ep}", [
            ["--bind", ep, "--push", "--frames", str(30 * 1000), "--block-frames", "1000", "--max-rate",
             "--profile", "dc"],
        ])
        self.assertEqual(stats["frames_acquired"], 30000, log)
        self.assertEqual(stats["frames_lost_gap"], 0)
        self.assertAlmostEqual(stats["energy_Wh_import_total"], 800 * 200 * 30000 / 20000 / 3600, delta=1e-6)


    def test_pull_holds_the_sender_back_instead_of_dropping(self):
        # The sender is several times faster than the daemon with its analysis
        # on: a SUB source would drop blocks in the ring; PULL waits instead.
        port = wplib.free_port()
        ep = f"tcp://127.0.0.1:{port}"
        frames = 6000 * 1024
        stats, log = self.run_stream(f"zmq-pull:{ep} --analysis on", [
            ["--bind", ep, "--push", "--frames", str(frames), "--block-frames", "1024", "--max-rate",
             "--sample-rate", "1000000", "--profile", "ac3"],
        ])
        self.assertEqual(stats["frames_acquired"], frames, log)
        self.assertEqual(stats["frames_processed"], frames, log)
        self.assertEqual(stats["frames_dropped"] + stats["frames_lost_gap"], 0, log)


class Replay(unittest.TestCase):
    def test_max_rate_replay_ends_by_itself_with_the_right_energy(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            path = os.path.join(tmp, "ac3.wprb")
            daq("--write", path, "--max-rate", "--frames", str(20000 * 3))
            sub = wplib.Subscriber(broker.port, [wplib.topic_base("wattpipe") + "/m2e/powermeter_values"])
            d = wplib.Daemon(tmp, ["--source", f"replay:{path}", "--max-rate"], broker.port).start()
            self.assertEqual(d.wait(60), 0, d.log())
            s = d.stats()
            self.assertEqual(s["stop_reason"], "source ended")
            self.assertEqual(s["frames_processed"], 60000)
            self.assertAlmostEqual(s["energy_Wh_import_total"], P_AC3 * 3 / 3600, delta=P_AC3 * 3 / 3600 * 1e-4)
            time.sleep(0.3)
            sub.close()
            last = json.loads(sub.take()[-1][1])
            self.assertAlmostEqual(last["energy_Wh_import"]["total"], s["energy_Wh_import_total"], delta=1e-5,
                                   msg="the last window is published before exit")

    def test_truncated_file_replays_every_good_block_then_exits_cleanly(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            path = os.path.join(tmp, "cut.wprb")
            daq("--write", path, "--max-rate", "--frames", str(10 * 1024), "--sim-profile", "dc")
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) - 100)
            d = wplib.Daemon(tmp, ["--source", f"replay:{path}", "--max-rate"], broker.port).start()
            self.assertEqual(d.wait(60), 0, d.log())
            s = d.stats()
            self.assertEqual(s["frames_processed"], 9 * 1024)
            self.assertIn("truncated", s["source_end_reason"])
            self.assertIn("truncated", d.log())

    def test_paced_replay_follows_the_block_timestamps(self):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            path = os.path.join(tmp, "paced.wprb")
            daq("--write", path, "--max-rate", "--frames", str(int(1.5 * 20000)), "--sim-profile", "ac1")
            d = wplib.Daemon(tmp, ["--source", f"replay:{path}"], broker.port).start()
            self.assertEqual(d.wait(60), 0, d.log())
            s = d.stats()
            self.assertEqual(s["frames_processed"], 30000)
            self.assertGreaterEqual(s["elapsed_s"], 1.2, "a paced replay takes the file's own time")

    def test_missing_file_is_a_configuration_error(self):
        r = wplib.run([wplib.binary("wattpipe"), "--source", "replay:/nonexistent.wprb", "--state-dir", "none"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("nonexistent.wprb", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

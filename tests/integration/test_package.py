# SPDX-License-Identifier: Apache-2.0
"""The Debian package: `cpack -G DEB` in the (Release) build directory makes
wattpipe_<version>_<arch>.deb holding the tools, the service unit, the
logrotate snippet, the commented configuration, docs and schemas, with its
run-time dependencies named by Debian package; systemd-analyze accepts the
unit; the installed daemon runs on the shipped configuration, also with
every key uncommented at its default; and, through tools/service-test.sh,
the package installs and runs as a service on a booted systemd (watchdog
fed, a stalled daemon killed by the watchdog and restarted)."""
import glob
import os
import subprocess
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

BUILD_DIR = os.environ.get("WATTPIPE_BUILD_DIR_ABS", os.path.dirname(wplib.BIN_DIR))


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    return r.returncode, r.stdout + r.stderr


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpdir = wplib.TempDir()
        cls.tmp = cls.tmpdir.__enter__()
        rc, out = run(["cpack", "-G", "DEB", "-B", cls.tmp], cwd=BUILD_DIR)
        assert rc == 0, out
        debs = glob.glob(os.path.join(cls.tmp, "wattpipe_*_*.deb"))
        assert len(debs) == 1, os.listdir(cls.tmp)
        cls.deb = debs[0]
        cls.root = os.path.join(cls.tmp, "root")
        rc, out = run(["dpkg-deb", "-x", cls.deb, cls.root])
        assert rc == 0, out

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.__exit__(None, None, None)

    def test_installs_and_runs_as_a_systemd_service(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: tools/service-test.sh mounts an overlay and boots systemd-nspawn")
        if any(k in os.environ for k in ("ASAN_OPTIONS", "TSAN_OPTIONS")):
            self.skipTest("sanitizer builds do not run under the unit's hardening (MemoryDenyWriteExecute, filters)")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "service-test.sh")
        rc, out = run([script, self.deb])
        if rc == 77:
            self.skipTest("this machine cannot boot the container: " + out[-300:])
        self.assertEqual(rc, 0, out)
        self.assertIn("Watchdog timeout", out)

    def test_name_and_contents(self):
        arch = run(["dpkg", "--print-architecture"])[1].strip()
        self.assertEqual(os.path.basename(self.deb), f"wattpipe_0.1.0_{arch}.deb")
        rc, listing = run(["dpkg-deb", "-c", self.deb])
        self.assertEqual(rc, 0)
        for f in ["./usr/bin/wattpipe", "./usr/bin/wattpipe-everest", "./usr/bin/wattpipe-ocmf", "./usr/bin/wattpipe-daq",
                  "./usr/bin/wattpipe-export", "./usr/bin/wattpipe-log2csv", "./usr/bin/wattpipe-plot", "./usr/bin/wattpipe-bench",
                  "./usr/lib/systemd/system/wattpipe.service", "./etc/wattpipe/wattpipe.yaml", "./etc/logrotate.d/wattpipe",
                  "./usr/share/doc/wattpipe/README.md", "./usr/share/doc/wattpipe/LICENSE",
                  "./usr/share/doc/wattpipe/docs/web.md", "./usr/share/doc/wattpipe/docs/deploy.md", "./usr/share/doc/wattpipe/docs/store.md",
                  "./usr/share/wattpipe/spec/powermeter_API.yaml", "./usr/share/wattpipe/spec/wattpipe_web.schema.json",
                  "./usr/lib/python3/dist-packages/wattpipe_wprb.py",
                  "./usr/share/doc/wattpipe/examples/feed_three_phase.py"]:
            self.assertIn(f, listing)
        self.assertIn("-rwxr-xr-x", [line for line in listing.splitlines() if line.endswith("./usr/bin/wattpipe")][0])

    def test_dependencies_and_conffiles(self):
        rc, depends = run(["dpkg-deb", "-f", self.deb, "Depends"])
        self.assertEqual(rc, 0)
        for pkg in ["libzmq5", "libmosquitto1", "libssl3", "libyaml-cpp0.7", "libcivetweb1", "libsystemd0", "libpq5", "libc6"]:
            self.assertIn(pkg, depends)
        control = os.path.join(self.tmp, "control")
        self.assertEqual(run(["dpkg-deb", "-e", self.deb, control])[0], 0)
        with open(os.path.join(control, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/wattpipe/wattpipe.yaml", "/etc/logrotate.d/wattpipe"])

    def test_systemd_accepts_the_unit(self):
        unit = os.path.join(self.root, "usr/lib/systemd/system/wattpipe.service")
        with open(unit) as f:
            text = f.read()
        # Verified against this machine's systemd, with ExecStart pointing at
        # the extracted binary (systemd-analyze checks that it exists).
        check_dir = os.path.join(self.tmp, "unit")
        os.makedirs(check_dir)
        with open(os.path.join(check_dir, "wattpipe.service"), "w") as f:
            f.write(text.replace("/usr/bin/wattpipe", os.path.join(self.root, "usr/bin/wattpipe")))
        rc, out = run(["systemd-analyze", "verify", "--man=no", os.path.join(check_dir, "wattpipe.service")])
        self.assertEqual((rc, out), (0, ""))
        for line in ["Type=notify", "WatchdogSec=", "Restart=on-failure", "DynamicUser=yes", "StateDirectory=wattpipe",
                     "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                     "ExecStart=/usr/bin/wattpipe --config /etc/wattpipe/wattpipe.yaml"]:
            self.assertIn(line, text)

    def test_the_daemon_runs_on_the_shipped_config_and_on_every_key_at_its_default(self):
        conf = os.path.join(self.root, "etc/wattpipe/wattpipe.yaml")
        with open(conf) as f:
            text = f.read()
        self.assertIsNone(yaml.safe_load(text), "all commented out")
        keys = [line[1:].split(":", 1)[0] for line in text.splitlines() if line.startswith("#") and not line.startswith("# ")]
        self.assertGreater(len(keys), 50)
        for k in ["source", "broker", "module-id", "publish-interval-ms", "http", "analysis", "log", "state-dir"]:
            self.assertIn(k, keys)
        binary = os.path.join(self.root, "usr/bin/wattpipe")
        common = ["--duration", "1", "--state-dir", "none", "--broker", "127.0.0.1:1"]
        rc, out = run([binary, "--config", conf] + common)
        self.assertEqual(rc, 0, out)
        # Every key uncommented: the same daemon (its defaults are what the file says).
        full = os.path.join(self.tmp, "full.yaml")
        with open(full, "w") as f:
            f.write("\n".join(line[1:] if line.startswith("#") and not line.startswith("# ") else line
                              for line in text.splitlines()))
        rc, out = run([binary, "--config", full] + common)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""One style across the tools: every tool answers --version with its name
and the project's version, --help with a help text for every flag, and bad
usage with exit code 2 (README: exit codes)."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

TOOLS = ["wattpipe", "wattpipe-everest", "wattpipe-ocmf", "wattpipe-daq", "wattpipe-log2csv", "wattpipe-export", "wattpipe-bench",
         "wattpipe-plot"]


def run_tool(name, *args):
    argv = [wplib.binary(name), *args]
    if name == "wattpipe-plot":
        argv = [sys.executable, *argv]
    return wplib.run(argv, timeout=30)


class ToolsCli(unittest.TestCase):
    def test_version(self):
        versions = set()
        for t in TOOLS:
            r = run_tool(t, "--version")
            self.assertEqual(r.returncode, 0, t + r.stderr)
            # The project's version and the legal part's id (docs/legal.md).
            m = re.fullmatch(rf"{re.escape(t)} (\d+\.\d+\.\d+) \((wattpipe-legal \S+ sha256:[0-9a-f]{{64}})\)\n", r.stdout)
            self.assertIsNotNone(m, f"{t}: {r.stdout!r}")
            versions.add(m.groups())
        self.assertEqual(len(versions), 1, versions)

    def test_every_flag_has_a_help_text(self):
        subcommands = {"wattpipe-everest": ["watch", "start", "stop", "session", "send"], "wattpipe-ocmf": ["verify", "pubkey"]}
        for t, args in [(t, []) for t in TOOLS] + [(t, [sc]) for t, scs in subcommands.items() for sc in scs]:
            r = run_tool(t, *args, "--help")
            self.assertEqual(r.returncode, 0, f"{t} {args}")
            bare = []
            lines = r.stdout.splitlines()
            for k, line in enumerate(lines):
                if not re.match(r"^\s+(-\w, )?--[\w-]+", line):
                    continue
                # CLI11: "  --flag TYPE [default]   text", or the text on the next line when the flag is long.
                has_text = len(re.split(r"\s{2,}", line.strip())) > 1
                nxt = lines[k + 1] if k + 1 < len(lines) else ""
                if not has_text and not (nxt.startswith("      ") and not nxt.strip().startswith("-")):
                    bare.append(line.strip())
            self.assertEqual(bare, [], f"{t} {args}: flags without a help text")

    def test_bad_usage_is_exit_code_2(self):
        for t in TOOLS:
            r = run_tool(t, "--no-such-flag")
            self.assertEqual(r.returncode, 2, f"{t}: {r.stdout}{r.stderr}")

    def test_a_file_a_tool_cannot_read_is_exit_code_2(self):
        missing = "/nonexistent/wattpipe-test-file"
        for t, args in [("wattpipe-plot", [missing]), ("wattpipe-log2csv", [missing]),
                        ("wattpipe-ocmf", ["verify", "--public-key", "00", missing]),
                        ("wattpipe", ["--config", missing])]:
            r = run_tool(t, *args)
            self.assertEqual(r.returncode, 2, f"{t}: {r.stdout}{r.stderr}")

    def test_daq_takes_the_daemons_name_for_the_simulator_profile(self):
        with wplib.TempDir() as tmp:
            for flag in ("--sim-profile", "--profile"):
                path = os.path.join(tmp, flag.strip("-") + ".wprb")
                r = run_tool("wattpipe-daq", "--write", path, "--max-rate", "--frames", "2048", flag, "dc", "--quiet")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertGreater(os.path.getsize(path), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)

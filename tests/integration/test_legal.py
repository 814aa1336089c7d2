# SPDX-License-Identifier: Apache-2.0
"""The legal part's separation and identification (docs/legal.md):

- the running binary names its legal part, and the files it lists are the
  ones of this tree, their hashes giving the id;
- the list is complete: every file of legal/ and every project header the
  legal sources include is in it;
- in a copy of the tree: two build directories give the same id, a change
  to a legal file changes it, a change anywhere else does not;
- a non-legal target cannot include a private legal header (the public one
  compiles: the control)."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

ROOT = wplib.ROOT


def software_id():
    r = wplib.run([wplib.binary("wattpipe"), "--software-id"], timeout=30)
    assert r.returncode == 0, r.stderr
    first, _, manifest = r.stdout.partition("\n")
    return first, manifest


def id_of_build(build):
    """The id a build directory generated (its legal/software_id.inc)."""
    with open(os.path.join(build, "legal", "software_id.inc")) as f:
        return re.search(r'kSha256 = "([0-9a-f]{64})"', f.read()).group(1)


def cmake(*args, cwd=None, check=True):
    r = subprocess.run(["cmake", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"cmake {' '.join(args)}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


class SoftwareId(unittest.TestCase):
    def test_the_binary_names_the_files_of_this_tree(self):
        first, manifest = software_id()
        m = re.fullmatch(r"wattpipe-legal (\S+) sha256:([0-9a-f]{64})", first)
        self.assertIsNotNone(m, first)
        self.assertEqual(hashlib.sha256(manifest.encode()).hexdigest(), m.group(2), "the id is the manifest's hash")
        # sha256sum -c, as a user checks a source tree against a binary.
        r = subprocess.run(["sha256sum", "-c", "--strict", "-"], input=manifest, cwd=ROOT, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertGreaterEqual(manifest.count("\n"), 15)

    def test_the_list_holds_every_legal_file_and_what_they_include(self):
        _, manifest = software_id()
        listed = {line.split("  ", 1)[1] for line in manifest.splitlines()}
        for dirpath, _, files in os.walk(os.path.join(ROOT, "legal")):
            for f in files:
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
                self.assertIn(rel, listed, f"{rel} is in legal/ but not identified")
        # Every project header a legal file includes is identified too.
        include = re.compile(r'#include "([^"]+)"')
        roots = [os.path.join(ROOT, "legal", "src"), os.path.join(ROOT, "legal", "include"),
                 os.path.join(ROOT, "acquire", "include")]
        checked = 0
        for rel in listed:
            if not rel.endswith((".cpp", ".hpp")):
                continue
            with open(os.path.join(ROOT, rel)) as f:
                for inc in include.findall(f.read()):
                    if inc == "software_id.inc":  # generated from the list itself
                        continue
                    found = [os.path.relpath(os.path.join(r, inc), ROOT) for r in roots if os.path.exists(os.path.join(r, inc))]
                    self.assertTrue(found, f"{rel} includes {inc}, found nowhere")
                    self.assertIn(found[0], listed, f"{rel} includes {inc}, which the id does not cover")
                    checked += 1
        self.assertGreater(checked, 10)


class BuildProperties(unittest.TestCase):
    """One copy of the tree, configured twice: the id's properties, and the door."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wattpipe-legal-")
        cls.src = os.path.join(cls.tmp, "src")
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
        if not any(files):  # not a git checkout (a source tarball): copy what is there but builds
            shutil.copytree(ROOT, cls.src, ignore=shutil.ignore_patterns("build*", ".git"))
        for f in filter(None, files):
            if not os.path.exists(os.path.join(ROOT, f.decode())):  # deleted, not yet committed
                continue
            dst = os.path.join(cls.src, f.decode())
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f.decode()), dst)
        cls.a, cls.b = os.path.join(cls.tmp, "build-a"), os.path.join(cls.tmp, "build-b")
        for b in (cls.a, cls.b):
            cmake("-S", cls.src, "-B", b, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DWATTPIPE_BUILD_BENCH=OFF")
            cmake("--build", b, "--target", "wattpipe_legal_identify")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def rebuild_id(self):
        cmake("--build", self.a, "--target", "wattpipe_legal_identify")
        return id_of_build(self.a)

    def touch(self, rel, text):
        with open(os.path.join(self.src, rel), "a") as f:
            f.write(text)

    def test_two_build_dirs_agree_and_match_the_tree(self):
        self.assertEqual(id_of_build(self.a), id_of_build(self.b))
        first, _ = software_id()
        self.assertEqual(first.split("sha256:")[1], id_of_build(self.a), "the copy is the tree the suite built")

    def test_a_change_inside_changes_the_id_and_outside_does_not(self):
        before = id_of_build(self.a)
        outside = ["pipeline/src/analysis.cpp", "acquire/src/simulator.cpp", "publish/src/daemon.cpp", "README.md"]
        for rel in outside:
            self.touch(rel, "\n// a change outside the legal part\n")
        self.assertEqual(self.rebuild_id(), before, "a change outside the legal part moved the id")
        for rel in ["legal/src/transactions.cpp", "acquire/include/wattpipe/acquire/clock.hpp"]:
            path = os.path.join(self.src, rel)
            with open(path) as f:
                original = f.read()
            self.touch(rel, "\n// a change inside the legal part\n")
            changed = self.rebuild_id()
            self.assertNotEqual(changed, before, f"{rel} changed and the id did not")
            with open(path, "w") as f:
                f.write(original)
            self.assertEqual(self.rebuild_id(), before, f"{rel} restored, the id must be back")

    def test_a_file_added_to_the_target_is_identified(self):
        before = id_of_build(self.a)
        cml = os.path.join(self.src, "legal", "CMakeLists.txt")
        with open(cml) as f:
            original = f.read()
        with open(os.path.join(self.src, "legal", "src", "added.cpp"), "w") as f:
            f.write("// SPDX-License-Identifier: Apache-2.0\nint wattpipe_legal_added() { return 1; }\n")
        with open(cml, "w") as f:
            f.write(original.replace("  src/meter.cpp\n", "  src/meter.cpp\n  src/added.cpp\n"))
        try:
            now = self.rebuild_id()  # the build reconfigures itself: CMakeLists.txt changed
            self.assertNotEqual(now, before)
            with open(os.path.join(self.a, "legal", "software-id.manifest")) as f:
                self.assertIn("  legal/src/added.cpp\n", f.read())
        finally:
            with open(cml, "w") as f:
                f.write(original)
            os.remove(os.path.join(self.src, "legal", "src", "added.cpp"))
        self.assertEqual(self.rebuild_id(), before)

    def test_a_private_legal_header_is_out_of_reach(self):
        ok = cmake("--build", self.b, "--target", "legal_door_public", check=False)
        self.assertEqual(ok.returncode, 0, "the control: legal.hpp must compile\n" + ok.stdout[-2000:])
        bad = cmake("--build", self.b, "--target", "legal_door_private", check=False)
        self.assertNotEqual(bad.returncode, 0, "a non-legal target compiled a private legal header")
        self.assertRegex(bad.stdout + bad.stderr, r"state_store\.hpp: No such file")


if __name__ == "__main__":
    unittest.main(verbosity=2)

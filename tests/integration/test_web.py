# SPDX-License-Identifier: Apache-2.0
"""The live page in a real browser: headless Chromium driven by its WebDriver
loads the page from the daemon (simulator, real mosquitto), sees the values,
the scope, the phasors and the analysis panels move, makes no request
anywhere else, logs no error; the update message validates against the
shipped JSON Schema. Also: read-only, digest authentication, TLS, and clear
errors (exit 2) for bad files.

Set WATTPIPE_SCREENSHOT_DIR to keep the screenshots (docs/img/ holds the
README's, made this way)."""
import base64
import json
import os
import re
import ssl
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

import jsonschema
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wplib  # noqa: E402

SCHEMA_PATH = os.path.join(os.path.dirname(wplib.SPEC), "wattpipe_web.schema.json")
with open(SCHEMA_PATH) as f:
    UPDATE = jsonschema.Draft202012Validator(json.load(f))
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = os.environ.get("WATTPIPE_SCREENSHOT_DIR")


def page_url(daemon, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(r"live page at (https?://[0-9.]+:\d+/)", daemon.log())
        if m:
            return m.group(1)
        if daemon.proc.poll() is not None:
            raise AssertionError("daemon exited: " + daemon.log())
        time.sleep(0.05)
    raise AssertionError("no URL in the log: " + daemon.log())


def browser(*extra):
    o = webdriver.ChromeOptions()
    for a in [*extra, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1500,1900",
              "--disable-background-networking", "--disable-component-update", "--no-first-run"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)


def wait_js(d, expr, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = d.execute_script("return " + expr)
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout} s: {expr}")


def cell(d, q, p):
    return d.execute_script(f"const c = document.querySelector('td[data-q=\"{q}\"][data-p=\"{p}\"]'); return c ? c.textContent : null")


def inked(d, canvas_id):
    """Pixels a canvas has drawn (alpha > 0)."""
    return d.execute_script(
        f"const c = document.getElementById('{canvas_id}'); const a = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < a.length; i += 4) if (a[i] > 0) n++; return n;")


def requested_urls(d):
    urls = []
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m["method"] == "Network.requestWillBeSent":
            urls.append(m["params"]["request"]["url"])
        elif m["method"] == "Network.webSocketCreated":
            urls.append(m["params"]["url"])
    return urls


class LivePage(unittest.TestCase):
    def run_page(self, profile, check, extra=(), store=False):
        with wplib.TempDir() as tmp, wplib.Broker(tmp) as broker:
            pg = wplib.Postgres(tmp).start() if store else None
            if pg:
                extra = (*extra, "--store", pg.url())
            daemon = wplib.Daemon(tmp, ["--sim-profile", profile, "--analysis", "on", "--http", "127.0.0.1:0",
                                        "--publish-interval-ms", "100", "--module-id", "web", *extra],
                                  broker_port=broker.port).start()
            try:
                url = page_url(daemon)
                d = browser()
                try:
                    t0 = time.time()
                    d.get(url)
                    wait_js(d, "window.wattpipe && window.wattpipe.last && window.wattpipe.last.window")
                    first_s = time.time() - t0
                    checks = check(d, broker)
                    wait_js(d, "window.wattpipe.scopes >= 2")
                    self.assertGreater(inked(d, "scope"), 2000, "the scope has drawn the waveform")
                    self.assertGreater(inked(d, "trends"), 500)
                    # The update message against the shipped schema.
                    last = d.execute_script("return window.wattpipe.last")
                    errs = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in UPDATE.iter_errors(last)]
                    self.assertEqual(errs, [])
                    if SHOTS:
                        time.sleep(1.5)  # some trend
                        d.save_screenshot(os.path.join(SHOTS, f"live-{profile}.png"))
                    # No console errors; every request went to the daemon.
                    logs = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
                    self.assertEqual(logs, [])
                    host = url.split("//", 1)[1].rstrip("/")
                    urls = requested_urls(d)
                    self.assertTrue(urls)
                    foreign = [u for u in urls if u.split("//", 1)[-1].split("/", 1)[0] != host]
                    self.assertEqual(foreign, [], "requests went elsewhere")
                    self.assertTrue(any(u.startswith("ws://") and u.endswith("/ws") for u in urls))
                    print(f"{profile}: first values {first_s:.2f} s after loading; {len(urls)} requests", file=sys.stderr)
                    return checks, last
                finally:
                    d.quit()
            finally:
                self.assertEqual(daemon.stop(), 0, daemon.log())
                if pg:
                    pg.stop()

    def test_ac3_values_scope_phasors_harmonics(self):
        def check(d, broker):
            u1 = float(cell(d, "U", "L1"))
            i1 = float(cell(d, "I", "L1"))
            self.assertAlmostEqual(u1, 230, delta=2.3)
            self.assertAlmostEqual(i1, 16, delta=0.2)
            e0 = cell(d, "E import", "total")
            wait_js(d, f"document.querySelector('td[data-q=\"E import\"][data-p=\"total\"]').textContent !== '{e0}'")
            self.assertGreater(float(cell(d, "E import", "total")), float(e0), "values change over time")
            wait_js(d, "window.wattpipe.scope && window.wattpipe.scope.triggered")
            s = d.execute_script("const s = window.wattpipe.scope; return {c: s.channels, n: s.columns, l: s.layout, "
                                 "u0: s.max[0], ulo: Math.min(...s.min.slice(0, s.columns)), uhi: Math.max(...s.max.slice(0, s.columns))}")
            self.assertEqual(s["c"], 8)
            self.assertEqual(s["l"], 3)  # AC3N
            # Triggered at U1's rising zero crossing: the first column starts near 0 V;
            # the capture spans whole cycles of a 325 V peak.
            self.assertLess(abs(s["u0"]), 325 * 0.2)
            self.assertAlmostEqual(s["uhi"], 325.3, delta=3)
            self.assertAlmostEqual(s["ulo"], -325.3, delta=3)
            self.assertGreater(inked(d, "phasors"), 500)
            self.assertGreater(inked(d, "bars"), 0)
            self.assertIn("THD I", d.find_element("id", "analysis-text").text)
            # The page names the legal part that signs (docs/legal.md).
            name, version, sha = wplib.software_id().replace("sha256:", "").split()
            self.assertEqual(d.find_element("id", "legal").text, f"Signed by {name} {version}, sha256 {sha}")
            # The health panel in words and groups, not counter names.
            panel = d.find_element("id", "health").text
            for words in ("Input", "Frames processed", "EVerest and MQTT", "Broker connected yes", "State and logs",
                          "Registers saved yes", "This page"):
                self.assertIn(words, panel)
            self.assertNotIn("frames_processed", panel)
            # A transaction from an EVerest peer: open, then closed, its records verifying.
            ev = wplib.Everest(broker.port, module_id="web")
            try:
                self.assertEqual(ev.start("tx-web-1")["status"], "OK")
                wait_js(d, "document.getElementById('transactions').textContent.includes('tx-web-1')")
                self.assertIn("open", d.find_element("id", "transactions").text)
                self.assertEqual(ev.stop("tx-web-1")["status"], "OK")
                wait_js(d, "document.getElementById('transactions').textContent.includes('closed')")
                tx = d.execute_script("return window.wattpipe.last.transactions")
                self.assertEqual([(t["id"], t["open"], t["begin"]["verifies"], t["end"]["verifies"]) for t in tx],
                                 [("tx-web-1", False, True, True)])
                self.assertTrue(tx[0]["end"]["record"].startswith("OCMF|"))
            finally:
                ev.close()
            return True

        _, last = self.run_page("ac3", check)
        self.assertIn("harmonics_I_A", last["window"])
        self.assertIn(last["health"]["source_health"], ("live",))
        self.assertTrue(last["health"]["broker_connected"])
        self.assertEqual("{name} {version} sha256:{sha256}".format(**last["health"]["legal"]), wplib.software_id())

    def test_dc_session_values_ripple_and_steps(self):
        def check(d, broker):
            self.assertIsNotNone(cell(d, "U", "DC"))
            self.assertGreater(float(cell(d, "P", "DC")), 1000)
            wait_js(d, "document.getElementById('analysis-text').textContent.includes('ripple peak-to-peak')")
            wait_js(d, "window.wattpipe.scope && window.wattpipe.scope.layout === 4")
            # The database store in its own group, in words.
            wait_js(d, "document.getElementById('health').textContent.includes('Windows stored')")
            panel = d.find_element("id", "health").text
            for words in ("Database", "Connected yes", "Behind by, s", "Waiting on disk, MB", "Rows lost 0"):
                self.assertIn(words, panel)
            self.assertNotIn("store_", panel)
            return True

        _, last = self.run_page("dc-session", check, store=True)
        self.assertTrue(last["health"]["store_connected"])
        self.assertGreater(last["health"]["store_windows_written"], 0)
        self.assertIn("ripple_I_pp_A", last["window"])
        self.assertIn("DC", last["window"]["voltage_V"])


    def test_charger_both_sides_efficiency_and_its_map(self):
        # One daemon, both measuring points of the charger: the page is the car side's
        # (the billing module), with the grid input beside it and the efficiency map.
        def check(d, broker):
            wait_js(d, "document.getElementById('values').textContent.includes('Efficiency')"
                       " && document.getElementById('grid-values').textContent.includes('PF')"
                       " && window.wattpipe.last.efficiency_map && window.wattpipe.last.efficiency_map.bins.length >= 2")
            eff = float(cell(d, "Efficiency", "DC"))
            self.assertGreater(eff, 70)
            self.assertLess(eff, 100)
            # Both cells of one rendering (the power ramps between updates).
            p_in, p_out = d.execute_script(
                "const q = (n) => document.querySelector(`#values td[data-q=\"${n}\"][data-p=\"DC\"]`).textContent;"
                "return [q('P input'), q('P')]")
            self.assertGreater(float(p_in), float(p_out), "the input takes more")
            self.assertIn("DC output · module web", d.find_element("id", "values-title").text)
            self.assertIn("Grid input · module web_grid", d.find_element("id", "grid-title").text)
            grid_p = d.execute_script("return document.querySelector('#grid-values td[data-q=\"P\"][data-p=\"total\"]').textContent")
            self.assertGreater(float(grid_p), 0)
            self.assertIn("THD I L1", d.find_element("id", "grid-note").text)
            self.assertFalse(d.execute_script("return document.getElementById('map-panel').hidden"))
            self.assertGreater(inked(d, "effmap"), 500, "the map has drawn its bars")
            return True

        _, last = self.run_page("charger", check)
        self.assertIn("efficiency", last["window"])
        self.assertEqual(last["point"], "car")
        self.assertEqual([p["name"] for p in last["points"]], ["grid"])
        self.assertEqual(last["points"][0]["module_id"], "web_grid")
        self.assertIn("L3", last["points"][0]["window"]["voltage_V"])
        for b in last["efficiency_map"]["bins"]:
            self.assertAlmostEqual(b["efficiency"], b["E_out_Wh"] / b["E_in_Wh"], places=5)
            self.assertGreater(b["efficiency"], 0.5)
            self.assertLess(b["efficiency"], 1)

    def test_charger_car_side_alone(self):
        # --point car: one module, the efficiency against the grid input still on the page.
        def check(d, broker):
            wait_js(d, "document.getElementById('values').textContent.includes('Efficiency')")
            self.assertTrue(d.execute_script("return document.getElementById('grid-panel').hidden"))
            return True

        _, last = self.run_page("charger", check, extra=("--point", "car"))
        self.assertEqual(last["points"], [])


class Security(unittest.TestCase):
    def test_read_only_auth_tls_and_bad_files(self):
        with wplib.TempDir() as tmp:
            # Bad or missing files: a clear error, exit 2, before anything runs.
            for args, words in [(["--http-auth-file", os.path.join(tmp, "none")], "--http-auth-file"),
                                (["--http-cert", os.path.join(tmp, "c.pem")], "go together"),
                                (["--http-cert", os.path.join(tmp, "c.pem"), "--http-key", os.path.join(tmp, "k.pem")], "cannot read"),
                                ([], "HOST:PORT")]:
                listen = "127.0.0.1" if not args else "127.0.0.1:0"
                r = wplib.run([wplib.binary("wattpipe"), "--state-dir", "none", "--broker", "127.0.0.1:1", "--duration", "1",
                               "--http", listen, *args])
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(words, r.stderr)

            # Digest authentication from an htdigest file.
            import hashlib
            auth = os.path.join(tmp, "htdigest")
            with open(auth, "w") as f:
                f.write("bench:wattpipe:" + hashlib.md5(b"bench:wattpipe:s3cret").hexdigest() + "\n")
            d = wplib.Daemon(tmp, ["--broker", "127.0.0.1:1", "--http", "127.0.0.1:0", "--http-auth-file", auth], name="auth").start()
            try:
                url = page_url(d)
                with self.assertRaises(urllib.error.HTTPError) as e:
                    urllib.request.urlopen(url + "api/state", timeout=5)
                self.assertEqual(e.exception.code, 401)
                pm = urllib.request.HTTPPasswordMgrWithDefaultRealm()
                pm.add_password(None, url, "bench", "s3cret")
                op = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(pm))
                self.assertEqual(op.open(url, timeout=5).status, 200)
                pm2 = urllib.request.HTTPPasswordMgrWithDefaultRealm()
                pm2.add_password(None, url, "bench", "wrong")
                with self.assertRaises(urllib.error.HTTPError):
                    urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(pm2)).open(url, timeout=5)
                # Read-only: nothing but GET (and HEAD).
                with self.assertRaises(urllib.error.HTTPError) as e:
                    op.open(urllib.request.Request(url + "api/state", data=b"{}", method="POST"), timeout=5)
                self.assertEqual(e.exception.code, 405)
            finally:
                self.assertEqual(d.stop(), 0)

            # TLS with a self-signed certificate.
            cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
            d = wplib.Daemon(tmp, ["--broker", "127.0.0.1:1", "--http", "127.0.0.1:0", "--http-cert", cert, "--http-key", key],
                             name="tls").start()
            try:
                url = page_url(d)
                self.assertTrue(url.startswith("https://"))
                ctx = ssl.create_default_context(cafile=cert)
                ctx.check_hostname = False
                body = urllib.request.urlopen(url + "api/state", timeout=5, context=ctx).read()
                self.assertIn(b'"type":"update"', body)
                # The page and its WebSocket (wss) through TLS, in the browser.
                b = browser("--ignore-certificate-errors")
                try:
                    b.get(url)
                    wait_js(b, "window.wattpipe && window.wattpipe.updates >= 2 && window.wattpipe.scopes >= 1")
                    self.assertTrue(any(u.startswith("wss://") for u in requested_urls(b)))
                finally:
                    b.quit()
            finally:
                self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""Helpers for wattpipe's integration tests: a real mosquitto on a free
loopback port, the real daemon binary, a paho subscriber, and schema
validation against the AsyncAPI contract (publish/spec/powermeter_API.yaml)."""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import jsonschema
import paho.mqtt.client as mqtt
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN_DIR = os.environ.get("WATTPIPE_BIN_DIR", os.path.join(ROOT, "build", "bin"))
SPEC = os.environ.get("WATTPIPE_SPEC", os.path.join(ROOT, "publish", "spec", "powermeter_API.yaml"))
# EVerest's main branch as of 2026-08 (still everest_api/1): messages must be valid under both.
SPEC_2026_08 = os.path.join(os.path.dirname(SPEC), "powermeter_API-2026-08.yaml")
TEST_DATA = os.environ.get("WATTPIPE_TEST_DATA", os.path.join(ROOT, "tests", "data"))
MOSQUITTO = os.environ.get("MOSQUITTO", shutil.which("mosquitto") or "/usr/sbin/mosquitto")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# Every process a test starts, so that a failing test never leaves a daemon
# or a broker running (they would load the machine for the tests after it).
_STARTED = []


@atexit.register
def _kill_leftovers():
    for p in _STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()


def _end(proc, sig, timeout):
    """Ends a server the test started: `sig`, then SIGKILL after `timeout` s."""
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def binary(name):
    return os.path.join(BIN_DIR, name)


def software_id():
    """The first line of `wattpipe --software-id`: "wattpipe-legal V sha256:HEX"."""
    r = subprocess.run([binary("wattpipe"), "--software-id"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()[0]


def windows_of(lines):
    """The records of a JSONL window log, without its header lines (the first
    line of every file names the software that wrote it: docs/export.md)."""
    recs = [json.loads(x) for x in lines if x.strip()]
    return [r for r in recs if r.get("type") != "header"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Broker:
    """A private mosquitto on 127.0.0.1; optional password file and TLS."""

    def __init__(self, workdir, port=None, password_file=None, tls=None):
        self.workdir = workdir
        self.port = port or free_port()
        self.password_file = password_file
        self.tls = tls  # dict(cafile, certfile, keyfile, require_certificate)
        self.proc = None
        self.log = os.path.join(workdir, f"mosquitto-{self.port}.log")

    def conf(self):
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            # As root mosquitto would drop to its own user, which cannot read
            # the test's private files (password file, TLS keys).
            lines.insert(0, "user root")
        if self.password_file:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines += ["allow_anonymous true"]
        if self.tls:
            lines += [f"cafile {self.tls['cafile']}", f"certfile {self.tls['certfile']}", f"keyfile {self.tls['keyfile']}"]
            if self.tls.get("require_certificate"):
                lines += ["require_certificate true", "use_identity_as_username true"]
        path = os.path.join(self.workdir, f"mosquitto-{self.port}.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self):
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf()], stdout=log, stderr=subprocess.STDOUT)
        _STARTED.append(self.proc)
        wait_port(self.port)
        return self

    def stop(self):
        _end(self.proc, signal.SIGTERM, 5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Schema:
    """Validates JSON against a schema of components.schemas in the AsyncAPI
    file, and in EVerest's newer one beside it (both must accept a message)."""

    def __init__(self, path=SPEC):
        self.docs = []
        for p in [path] + ([SPEC_2026_08] if path == SPEC and os.path.exists(SPEC_2026_08) else []):
            with open(p) as f:
                doc = yaml.safe_load(f)
            self.docs.append((os.path.basename(p), doc, jsonschema.RefResolver(base_uri="", referrer=doc)))
        self.doc = self.docs[0][1]
        self.cache = {}

    def validators(self, name):
        if name not in self.cache:
            schema = {"$ref": "#/components/schemas/" + name}
            self.cache[name] = [(f, jsonschema.Draft7Validator(schema, resolver=r)) for (f, _, r) in self.docs]
        return self.cache[name]

    def errors(self, name, obj):
        return [(f"{f}: " if k else "") + e.message
                for k, (f, v) in enumerate(self.validators(name)) for e in v.iter_errors(obj)]

    def check_powermeter(self, obj):
        """Schema plus what EVerest itself requires (interop notes)."""
        errs = self.errors("Powermeter", obj)
        ts = obj.get("timestamp", "")
        if not TIMESTAMP_RE.match(ts):
            errs.append(f"timestamp {ts!r} is not RFC 3339 UTC with milliseconds")
        for key in ("power_W", "VAR", "energy_Wh_export"):
            if key in obj and "total" not in obj[key]:
                errs.append(f"{key}.total missing")
        if "frequency_Hz" in obj and "L1" not in obj["frequency_Hz"]:
            errs.append("frequency_Hz.L1 missing")
        return errs


class Subscriber:
    """A paho client that records every message with its arrival time."""

    def __init__(self, port, topics, **conn):
        self.messages = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(client_id=f"test-sub-{os.getpid()}-{id(self)}", clean_session=True)
        if conn.get("username"):
            self.client.username_pw_set(conn["username"], conn.get("password"))
        if conn.get("cafile"):
            self.client.tls_set(ca_certs=conn["cafile"], certfile=conn.get("certfile"), keyfile=conn.get("keyfile"))
        self.topics = topics
        self.connected = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("subscriber could not connect")

    def _on_connect(self, client, userdata, flags, rc):
        for t in self.topics:
            client.subscribe(t, qos=0)
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload, time.time()))

    def publish(self, topic, payload, qos=0):
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish()

    def take(self, suffix=None):
        with self.lock:
            return [(t, p, ts) for (t, p, ts) in self.messages if suffix is None or t.endswith(suffix)]

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                found = [m for m in self.messages if predicate(m)]
            if found:
                return found[0]
            time.sleep(0.01)
        return None

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class Daemon:
    """The real wattpipe binary with a private state dir and stats file."""

    def __init__(self, workdir, args, broker_port=None, name="wattpipe", state_dir=None):
        self.workdir = workdir
        self.stats_path = os.path.join(workdir, f"stats-{name}.json")
        self.log_path = os.path.join(workdir, f"{name}.log")
        argv = [binary("wattpipe")]
        if broker_port is not None:
            argv += ["--broker", f"127.0.0.1:{broker_port}"]
        if "--state-dir" not in args:
            argv += ["--state-dir", state_dir or os.path.join(workdir, f"state-{name}")]
        if "--stats-json" not in args:
            argv += ["--stats-json", self.stats_path]
        self.argv = argv + list(args)
        self.proc = None

    def start(self):
        if os.path.exists(self.stats_path):
            os.remove(self.stats_path)
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        _STARTED.append(self.proc)
        return self

    def wait(self, timeout=60):
        return self.proc.wait(timeout)

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode if self.proc else None

    def stats(self):
        with open(self.stats_path) as f:
            return json.load(f)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def topic_base(module_id, prefix=""):
    base = f"everest_api/1/powermeter/{module_id}"
    return f"{prefix.rstrip('/')}/{base}" if prefix else base


class TempDir:
    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="wattpipe-test-")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


class Everest:
    """An EVerest-like peer in Python: heartbeats, requests with fresh replyTo."""

    def __init__(self, port, module_id="wattpipe", prefix="", **conn):
        self.base = topic_base(module_id, prefix)
        self.sub = Subscriber(port, [self.base + "/m2e/#"], **conn)
        self.counter = 0

    def heartbeat(self, hb_id):
        self.sub.publish(self.base + "/e2m/heartbeat", str(hb_id))

    def request(self, suffix, payload_fn, timeout=10.0, reply=True):
        """payload_fn(reply_to) -> str; returns the parsed reply (or None)."""
        import uuid
        reply_to = f"{self.base}/m2e/reply/{uuid.uuid4()}"
        if reply:
            self.sub.client.subscribe(reply_to, qos=0)
            time.sleep(0.05)
        self.sub.publish(f"{self.base}/e2m/{suffix}", payload_fn(reply_to))
        if not reply:
            return None
        m = self.sub.wait_for(lambda m: m[0] == reply_to, timeout)
        return None if m is None else json.loads(m[1])

    def start(self, tx, evse="EVSE-1", reply=True, **fields):
        payload = {"evse_id": evse, "transaction_id": tx, "identification_status": "ASSIGNED",
                   "identification_flags": ["RFID_PLAIN"], "identification_type": "ISO14443",
                   "identification_data": "04AABBCCDD", **fields}

        def make(rt):
            return json.dumps({"headers": {"replyTo": rt}, "payload": payload} if reply else {"payload": payload})
        return self.request("start_transaction", make, reply=reply)

    def stop(self, tx, object_form=False, reply=True):
        body = {"transaction_id": tx} if object_form else tx

        def make(rt):
            return json.dumps({"headers": {"replyTo": rt}, "payload": body} if reply else {"payload": body})
        return self.request("stop_transaction", make, reply=reply)

    def values(self):
        return [json.loads(p) for (_, p, _) in self.sub.take("/m2e/powermeter_values")]

    def close(self):
        self.sub.close()


def verify_ocmf(record, key):
    """Runs wattpipe-ocmf verify; returns (exit code, output)."""
    r = run([binary("wattpipe-ocmf"), "verify", "--public-key", key, "-"], input=record)
    return r.returncode, r.stdout + r.stderr


def _pg_bin(name):
    """A PostgreSQL server program (Debian keeps them per version under /usr/lib/postgresql)."""
    found = shutil.which(name)
    if found:
        return found
    base = "/usr/lib/postgresql"
    versions = sorted((v for v in os.listdir(base) if v.isdigit()), key=int) if os.path.isdir(base) else []
    for v in reversed(versions):
        p = os.path.join(base, v, "bin", name)
        if os.path.exists(p):
            return p
    raise RuntimeError(f"{name} not found: install postgresql (tools/test.sh does)")


class Postgres:
    """A private PostgreSQL on a free loopback port: initdb in a directory of
    its own, a password-protected user, one database. As root the server
    runs as the `postgres` user (it refuses root), with its files owned by it."""

    def __init__(self, workdir, user="wattpipe", password="bench-secret", db="lab"):
        self.workdir = workdir
        self.base = os.path.join(workdir, "pg")
        self.data = os.path.join(self.base, "data")
        self.port = free_port()
        self.user, self.password, self.db = user, password, db
        self.proc = None
        self.log = os.path.join(self.base, "postgres.log")
        # As root: the server's own processes run as postgres (so signals reach the postmaster itself).
        self._as = dict(user="postgres", group="postgres", extra_groups=[]) if os.geteuid() == 0 else {}

    def url(self, password=None, db=None):
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@127.0.0.1:{self.port}/{db or self.db}"

    def init(self):
        os.makedirs(self.base, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        pwfile = os.path.join(self.base, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self._as:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        r = subprocess.run([_pg_bin("initdb"), "-D", self.data, "-U", self.user, "--pwfile", pwfile,
                            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                            "--locale=C.UTF-8", "--no-sync"],
                           capture_output=True, text=True, timeout=120, cwd=self.base, **self._as)
        assert r.returncode == 0, r.stdout + r.stderr
        return self

    def start(self):
        if not os.path.exists(self.data):
            self.init()
        # fsync off: a test's server holds nothing worth a power cut, and the disk is shared.
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([_pg_bin("postgres"), "-D", self.data, "-p", str(self.port),
                                          "-k", self.base, "-c", "listen_addresses=127.0.0.1",
                                          "-c", "fsync=off", "-c", "synchronous_commit=off",
                                          "-c", "full_page_writes=off"],
                                         stdout=log, stderr=subprocess.STDOUT, cwd=self.base, **self._as)
        _STARTED.append(self.proc)
        wait_port(self.port, timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline:  # the port opens before the server takes logins
            r = subprocess.run(["psql", "-h", self.base, "-p", str(self.port), "-U", self.user, "-d", "postgres",
                                "-Atc", "SELECT 1"], capture_output=True, text=True)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        if self.sql("SELECT 1 FROM pg_database WHERE datname = '%s'" % self.db, db="postgres") != "1":
            self.sql(f"CREATE DATABASE {self.db}", db="postgres")
        return self

    def stop(self):
        """A fast shutdown (SIGINT): sessions end, the server goes away."""
        _end(self.proc, signal.SIGINT, 30)
        self.proc = None

    def sql(self, query, db=None):
        """One query through psql over the server's socket; its output, rows by lines, fields by '|'."""
        r = subprocess.run(["psql", "-h", self.base, "-p", str(self.port), "-U", self.user, "-d", db or self.db,
                            "-v", "ON_ERROR_STOP=1", "-Atc", query], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

"""Helpers shared by the sync hammer and the crash tests: a `musit-tui --serve` child on
a loopback port, and a small keep-alive JSON client over http.client (one per thread)."""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("MUSIT_BIN", os.path.join(ROOT, ".build", "debug", "musit-tui"))
# MUSIT_SPLIT=1: every server a test starts is the split deployment, a gateway
# (`--role gateway --accounts … --library … --social … --stats …`) with its Accounts, Library, Social and Stats
# services in processes of their own on the same data; kill9 kills the gateway, the services live on (the split
# tests kill them too).
SPLIT = os.environ.get("MUSIT_SPLIT") == "1"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """`musit-tui --serve` on loopback with its data in a directory of its own."""

    def __init__(self, data=None, port=None, extra_env=None, preexec_fn=None, args=None, log_name="server.log"):
        self.data = data or tempfile.mkdtemp(prefix="musit-sync-")
        self.port = port or free_port()
        # More flags after --serve: a role and its gRPC port, the services' addresses.
        self.args = list(args or [])
        self.log_name = log_name
        self.companions = []
        self.extra_env = extra_env or {}
        self.preexec_fn = preexec_fn
        self.proc = None
        self.log = None

    def start(self, timeout=30):
        if SPLIT and not self.args:
            self.args = ["--role", "gateway"]
            for service in ("accounts", "library", "social", "stats"):
                grpc = free_port()
                self.companions.append(Server(data=self.data, extra_env=self.extra_env, log_name="%s.log" % service,
                                              args=["--role", service, "--grpc-port", str(grpc)]).start(timeout))
                self.args += ["--" + service, "127.0.0.1:%d" % grpc]
        env = dict(os.environ, MUSIT_BCRYPT_COST="4", MUSIT_LOG_LEVEL="warning", HOME=self.data)
        env.update(self.extra_env)
        self.log = open(os.path.join(self.data, self.log_name), "ab")
        self.proc = subprocess.Popen([BIN, "--serve", "--port", str(self.port), "--data", self.data] + self.args,
                                     stdout=self.log, stderr=self.log, env=env,
                                     preexec_fn=self.preexec_fn)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    c.close()
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited with %s; log:\n%s" % (self.proc.returncode, self.read_log()))
            time.sleep(0.05)
        raise RuntimeError("server did not answer /healthz")

    def read_log(self):
        with open(os.path.join(self.data, self.log_name), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self):
        self._stop()
        for companion in self.companions:
            companion._stop()

    def _stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()


class Client:
    """One keep-alive connection; reconnects after any error. Not shared between threads."""

    def __init__(self, port, token=None, timeout=90):
        self.port = port
        self.token = token
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None, raw=False):
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = body
        if body is not None and not isinstance(body, (bytes, bytearray)):
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                payload = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.close()
                if raw:
                    return r.status, payload
                return r.status, (json.loads(payload) if payload else None)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed meanwhile: one fresh try.
                self.close()
                if attempt == 1:
                    raise
            except Exception:
                # Anything else (a timeout, an answer cut short) leaves http.client's
                # connection mid-request, refusing every later request: drop it.
                self.close()
                raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


SERVICES = ("accounts", "library", "social", "stats")


def start_split():
    """The five processes on one data directory, started: each service alone (`--role`) on a
    gRPC port of its own, and a gateway naming them. Returns (services by name, their gRPC
    ports, the gateway); each can be stopped, killed and started again on its own."""
    ports = {s: free_port() for s in SERVICES}
    first = Server(args=["--role", "accounts", "--grpc-port", str(ports["accounts"])], log_name="accounts.log")
    services = {"accounts": first}
    for s in SERVICES[1:]:
        services[s] = Server(data=first.data, args=["--role", s, "--grpc-port", str(ports[s])], log_name=s + ".log")
    gateway = Server(data=first.data, log_name="gateway.log",
                     args=["--role", "gateway"] + sum((["--" + s, "127.0.0.1:%d" % p] for s, p in ports.items()), []))
    for s in list(services.values()) + [gateway]:
        s.start()
    return services, ports, gateway


def register(port, name, password="correct horse"):
    status, body = Client(port).request("POST", "/api/v1/auth/register", {"username": name, "password": password})
    assert status == 201, (status, body)
    return body["accessToken"]


def befriend(port, a_token, b_name, b_token, a_name):
    s, b = Client(port, a_token).request("POST", "/api/v1/friends/requests", {"username": b_name})
    assert s == 201, (s, b)
    s, b = Client(port, b_token).request("POST", "/api/v1/friends/requests/%s/accept" % a_name)
    assert s == 200, (s, b)


def variant(base, n, prefix="crash"):
    """`base` with an ID3v1 tag of its own: other bytes, so never a duplicate of another."""
    title = ("%s %d" % (prefix, n)).encode().ljust(30, b"\0")
    return base + b"TAG" + title + b"\0" * 30 + b"\0" * 30 + b"2026" + b"\0" * 30 + b"\x0c"


class CPUPressure:
    """Busy loops at low priority on every core, so the server's tasks are preempted at
    arbitrary moments (where races show) without starving the test itself."""

    def __init__(self, workers=None):
        self.workers = workers or os.cpu_count() or 2
        self.procs = []

    def __enter__(self):
        for _ in range(self.workers):
            self.procs.append(subprocess.Popen(["nice", "-n", "5", "python3", "-c", "while True: pass"]))
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


FAILURES = []


def wait_for(predicate, limit):
    """Seconds until `predicate()` holds (an exception counts as not yet: a process coming
    back), or None after `limit` seconds."""
    t0 = time.time()
    while time.time() - t0 < limit:
        try:
            if predicate():
                return time.time() - t0
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.02)
    return None


def check(cond, what):
    """Prints one finding; a failed one is kept for `finish`."""
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def finish(name):
    """Exits 1 after any failed check, else says `name` passed."""
    if FAILURES:
        print("%d failure(s)" % len(FAILURES))
        sys.exit(1)
    print("%s: all passed" % name)

"""What the server benchmarks share: a free loopback port, a JSON call, a server's peak RSS."""
import atexit
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(port, method, path, body=None, token=None, data=None, content_type="application/json"):
    """A JSON call, or with `data`, those bytes as the body in `content_type`."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=data if data is not None else json.dumps(body).encode() if body is not None else None)
    req.add_header("content-type", content_type)
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        data = r.read()
        return json.loads(data) if data else None


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0


COMPANIONS = []


def start_server(binary, **env):
    """`binary --serve` on a free loopback port with a fresh data directory, once it answers
    /healthz; returns the process and its port. `env` adds to the environment.
    `binary@split` starts the split deployment: Accounts, Library, Social and Stats alone (`--role
    accounts`, …) and the gateway (`--role gateway --accounts … --library … --social … --stats …`) on the same
    data; the gateway is returned, the services are stopped when the bench exits."""
    split = binary.endswith("@split")
    binary = binary[:-len("@split")] if split else binary
    port = free_port()
    data = tempfile.mkdtemp()
    role = []
    if split:
        role = ["--role", "gateway"]
        for service in ("accounts", "library", "social", "stats"):
            grpc, http = free_port(), free_port()
            proc = subprocess.Popen([binary, "--serve", "--role", service, "--grpc-port", str(grpc), "--port", str(http),
                                     "--data", data], env={**os.environ, **env},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            COMPANIONS.append(proc)
            for _ in range(100):
                try:
                    call(http, "GET", "/healthz")
                    break
                except Exception:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.1)
            # An older build refuses the role of a service it keeps in its gateway (Accounts, Library).
            if proc.poll() is None:
                role += ["--" + service, "127.0.0.1:%d" % grpc]
    server = subprocess.Popen([binary, "--serve", "--port", str(port), "--data", data] + role,
                              env={**os.environ, "MUSIT_BCRYPT_COST": "4", **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            call(port, "GET", "/healthz")
            break
        except Exception:
            time.sleep(0.1)
    return server, port


@atexit.register
def _stop_companions():
    for p in COMPANIONS:
        if p.poll() is None:
            p.terminate()
            p.wait()

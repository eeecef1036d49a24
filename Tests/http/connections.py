"""Connections against a live `musit-tui --serve`: the idle, header-read and body timeouts,
HTTP/1.0 and `Connection: close` framing (RFC 9112 §9.3), and the connection cap under a
descriptor limit of 1,024 while healthy clients keep being answered."""
import os
import resource
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, check, finish, register  # noqa: E402



def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def closed_within(sock, seconds):
    """Seconds until the server closes `sock` (reads EOF), or None if it stays open."""
    start = time.time()
    sock.settimeout(0.05)
    while time.time() - start < seconds:
        try:
            data = sock.recv(65536)
            if data == b"":
                return time.time() - start
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.time() - start
    return None


def read_response(sock, timeout=5):
    """One response's head and body (Content-Length framed), or the bytes to EOF."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(body) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return lines[0], headers, body


def timeouts():
    server = Server(extra_env={"MUSIT_IDLE_TIMEOUT": "2", "MUSIT_HEADER_TIMEOUT": "1"}).start()
    try:
        # A connection that never sends anything.
        s = connect(server.port)
        t = closed_within(s, 6)
        check(t is not None and 1.5 < t < 3.5, "a silent connection is closed after the 2 s idle timeout (%s)" % t)
        # Keep-alive after a response, then silence.
        s = connect(server.port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = read_response(s)
        check(status.startswith("HTTP/1.1 200"), "healthz answers: " + status)
        t = closed_within(s, 6)
        check(t is not None and 1.5 < t < 3.5, "a kept-alive connection idle for 2 s is closed (%s)" % t)
        # Thirty slow-header clients: a byte every 0.2 s never finishes a header in 1 s.
        slow = [connect(server.port) for _ in range(30)]
        start = time.time()
        open_ = set(range(30))
        closed_at = {}
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
        i = 0
        while open_ and time.time() - start < 6:
            for n in list(open_):
                try:
                    slow[n].sendall(request[i:i + 1])
                except OSError:
                    closed_at[n] = time.time() - start
                    open_.discard(n)
            for n in list(open_):
                slow[n].settimeout(0.001)
                try:
                    if slow[n].recv(1) == b"":
                        closed_at[n] = time.time() - start
                        open_.discard(n)
                except (socket.timeout, BlockingIOError):
                    pass
                except OSError:
                    closed_at[n] = time.time() - start
                    open_.discard(n)
            i += 1
            time.sleep(0.2)
        worst = max(closed_at.values()) if closed_at else None
        check(not open_ and worst is not None and worst < 2.0,
              "30 slow-header clients are all closed by the 1 s header timeout (%d open, last at %s s)" % (len(open_), worst))
        # A request body that stops arriving.
        s = connect(server.port)
        s.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user")
        t = closed_within(s, 6)
        check(t is not None and 1.5 < t < 3.5, "a stalled request body is closed after 2 s (%s)" % t)
        # A held long-poll outlives the idle timeout: it has a timeout of its own.
        token = register(server.port, "poller")
        start = time.time()
        status, body = Client(server.port, token).request("GET", "/api/v1/events?cursor=0&timeout=4")
        took = time.time() - start
        check(status == 200 and took > 3.5, "a long-poll held 4 s is answered, not cut at 2 s (%d after %.1f s)" % (status, took))
        # HTTP/1.0 without keep-alive: a 1.0 response, then the server closes.
        s = connect(server.port)
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        status, headers, body = read_response(s)
        t = closed_within(s, 1.5)
        check(status.startswith("HTTP/1.0 200") and t is not None and t < 0.5,
              "HTTP/1.0 gets a 1.0 answer and a close (%s, closed after %s)" % (status, t))
        # HTTP/1.0 asking for keep-alive keeps it (the answer has a length).
        s = connect(server.port)
        s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, headers, _ = read_response(s)
        s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status2, _, _ = read_response(s)
        check(headers.get("connection", "").lower() == "keep-alive" and status2.startswith("HTTP/1.0 200"),
              "HTTP/1.0 with keep-alive is kept alive (%s / %s)" % (headers.get("connection"), status2))
        # HTTP/1.1 with Connection: close.
        s = connect(server.port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, _ = read_response(s)
        t = closed_within(s, 1.5)
        check(status.startswith("HTTP/1.1 200") and t is not None and t < 0.5,
              "Connection: close is honoured (%s, closed after %s)" % (headers.get("connection"), t))
        # Expect: 100-continue is answered at once, and the body is then taken.
        token = register(server.port, "expecter")
        body = b'{"username": "nobody-here"}'
        s = connect(server.port)
        start = time.time()
        s.sendall(("POST /api/v1/friends/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                   % (token, len(body))).encode())
        s.settimeout(3)
        interim = s.recv(4096)
        waited = time.time() - start
        s.sendall(body)
        status, _, _ = read_response(s)
        check(interim.startswith(b"HTTP/1.1 100 Continue") and waited < 0.5 and status.startswith("HTTP/1.1 404"),
              "Expect: 100-continue gets 100 Continue in %.3f s, then the answer (%r, %s)" % (waited, interim[:25], status))
        # curl uploads over 1 MB with Expect: it no longer waits a second for nothing.
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-X", "POST",
                              "http://127.0.0.1:%d/api/v1/friends/requests" % server.port,
                              "-H", "Authorization: Bearer " + token, "-H", "Content-Type: application/json",
                              "--data-binary", "@-"], input=b'{"username":"' + b"x" * 1_500_000 + b'"}',
                             capture_output=True).stdout.decode().split()
        check(out and out[0] in ("400", "404", "413") and float(out[1]) < 0.5,
              "curl's 1.5 MB request is answered in %s s (%s)" % (out[1] if len(out) > 1 else "?", out[0] if out else "?"))
    finally:
        server.stop()


def cap():
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    server = Server(preexec_fn=limit).start()
    held = []
    slowest = 0.0
    failed = 0
    try:
        for n in range(1, 1201):
            try:
                held.append(connect(server.port))
            except OSError:
                pass
            if n % 50 == 0:
                start = time.time()
                try:
                    c = Client(server.port, timeout=5)
                    status, _ = c.request("GET", "/healthz")
                    c.close()
                    if status != 200:
                        failed += 1
                except OSError:
                    failed += 1
                slowest = max(slowest, time.time() - start)
        alive = 0
        for s in held:
            s.settimeout(0.001)
            try:
                if s.recv(1) != b"":
                    alive += 1
            except (socket.timeout, BlockingIOError):
                alive += 1
            except OSError:
                pass
        check(failed == 0 and slowest < 2.0,
              "with 1,024 descriptors and 1,200 idle connections, healthz always answers (%d failed, slowest %.3f s)" % (failed, slowest))
        check(alive < 1024 - 64, "the oldest idle connections were closed to stay under the cap (%d of 1,200 open)" % alive)
        log = server.read_log()
        check("connection cap of" in log, "the cap is logged")
        status, body = Client(server.port).request("POST", "/api/v1/auth/register",
                                                   {"username": "afterflood", "password": "correct horse"})
        check(status == 201, "an account can still be made after the flood (%d)" % status)
    finally:
        for s in held:
            s.close()
        server.stop()


if __name__ == "__main__":
    timeouts()
    cap()
    finish("connections")

"""SIGTERM while 10,000 long-polls are held: every poll gets a whole answer (an empty
events page, its client resumes from the cursor) and the process exits 0 within 5 s.
The clients are non-blocking sockets on one epoll, so the test itself holds no thread per
poll and its own pace does not decide whether the server answers in time."""
import errno
import json
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, check, finish, register  # noqa: E402

POLLS = 10_000
EXIT_WITHIN = 5.0


class Conn:
    """One client connection and what it has received."""

    __slots__ = ("sock", "out", "buf", "status", "headers", "body", "done", "closed", "connected")

    def __init__(self, sock, request):
        self.sock = sock
        self.out = request
        self.buf = b""
        self.status = None
        self.headers = None
        self.body = None
        self.done = False       # a whole response arrived
        self.closed = None      # "eof" or "reset" once the peer went
        self.connected = False

    def parse(self, at_eof=False):
        """Sets `done` once `buf` holds a whole response (Content-Length or chunked)."""
        if self.done:
            return
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        if self.status is None:
            lines = self.buf[:head_end].decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
            self.headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
        rest = self.buf[head_end + 4:]
        if "content-length" in self.headers:
            n = int(self.headers["content-length"])
            if len(rest) >= n:
                self.body, self.done = rest[:n], True
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            body, pos = b"", 0
            while True:
                eol = rest.find(b"\r\n", pos)
                if eol < 0:
                    return
                size = int(rest[pos:eol].split(b";")[0] or b"0", 16)
                if size == 0:
                    if rest.find(b"\r\n\r\n", eol) >= 0 or rest[eol + 2:eol + 4] == b"\r\n":
                        self.body, self.done = body, True
                    return
                if len(rest) < eol + 2 + size + 2:
                    return
                body += rest[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
        elif at_eof:
            self.body, self.done = rest, True

    @property
    def page_ok(self):
        """A 200 whose body is an events page."""
        if not self.done or self.status != 200:
            return False
        try:
            page = json.loads(self.body)
        except ValueError:
            return False
        return isinstance(page, dict) and isinstance(page.get("events"), list) and "cursor" in page


class Polls:
    """Many keep-alive connections with one long-poll each, driven by one selector."""

    def __init__(self, port, token, cursor, timeout, window=256):
        self.addr = ("127.0.0.1", port)
        self.request = ("GET /api/v1/events?cursor=%d&timeout=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Authorization: Bearer %s\r\n\r\n" % (cursor, timeout, token)).encode()
        self.window = window    # connects in flight at once: the listen backlog is finite
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.connecting = 0
        self.connect_errors = 0

    def _connect_one(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex(self.addr)
        c = Conn(s, self.request)
        self.conns.append(c)
        if rc not in (0, errno.EINPROGRESS):
            self.connect_errors += 1
            c.closed = "connect:%s" % errno.errorcode.get(rc, rc)
            s.close()
            return
        self.connecting += 1
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def open(self, n, deadline):
        """Opens `n` connections and sends each its poll; True once all are sent."""
        target = len(self.conns) + n
        while time.time() < deadline:
            while len(self.conns) < target and self.connecting < self.window:
                self._connect_one()
            self.pump(0.05)
            if len(self.conns) >= target and self.connecting == 0 and all(not c.out or c.closed for c in self.conns[-n:]):
                return True
        return False

    def pump(self, seconds):
        """Runs the selector for up to `seconds`: finishes connects, sends, reads."""
        for key, mask in self.sel.select(seconds):
            c = key.data
            if mask & selectors.EVENT_WRITE:
                if not c.connected:
                    self.connecting -= 1
                    c.connected = True
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self.connect_errors += 1
                        self._drop(c, "connect:%s" % errno.errorcode.get(err, err))
                        continue
                try:
                    sent = c.sock.send(c.out)
                except BlockingIOError:
                    continue
                except OSError:
                    self._drop(c, "reset")
                    continue
                c.out = c.out[sent:]
                if not c.out:
                    self.sel.modify(c.sock, selectors.EVENT_READ, c)
            if mask & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    self._drop(c, "reset")
                    continue
                if not data:
                    c.parse(at_eof=True)
                    self._drop(c, "eof")
                    continue
                c.buf += data
                c.parse()

    def _drop(self, c, how):
        c.closed = how
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def open_count(self):
        return sum(1 for c in self.conns if c.closed is None)

    def close_all(self, reset=False):
        """Closes every open connection; with `reset`, by RST (SO_LINGER 0) instead of FIN."""
        for c in self.conns:
            if c.closed is None:
                if reset:
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self._drop(c, "client")


def gauge(port, name="musit_long_polls_held"):
    status, body = Client(port, timeout=10).request("GET", "/metrics", raw=True)
    assert status == 200, "/metrics answered %d" % status
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("%s is not in /metrics" % name)


def wait_gauge(port, polls, want, seconds):
    """Pumps `polls` until the gauge reads `want`; the last reading and the seconds taken."""
    start = time.time()
    value = None
    while time.time() - start < seconds:
        polls.pump(0.2)
        value = gauge(port)
        if value == want:
            break
    return value, time.time() - start


def head_cursor(port, token):
    status, page = Client(port, token).request("GET", "/api/v1/events?cursor=0&timeout=0")
    assert status == 200, status
    return page["cursor"]


def cpu_seconds(pid):
    """User plus system CPU time of a live process, from /proc/PID/stat."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        print("FAIL the hard descriptor limit is %d; this test needs %d" % (hard, need))
        sys.exit(1)
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def log_tail(server, lines=30):
    return "\n".join(server.read_log().splitlines()[-lines:])


def main():
    raise_fd_limit(POLLS + 512)
    server = Server().start()
    polls = None
    try:
        token = register(server.port, "shutdowner")
        cursor = head_cursor(server.port, token)
        # 60 s, the longest poll allowed: nothing but the shutdown can end these early.
        polls = Polls(server.port, token, cursor, timeout=60)
        start = time.time()
        sent = polls.open(POLLS, deadline=start + 40)
        opened = time.time() - start
        held, waited = wait_gauge(server.port, polls, POLLS, 40 - opened)
        early = sum(1 for c in polls.conns if c.done or c.closed)
        print("%d polls sent in %.1f s, gauge %s after %.1f s more (%d connect errors, %d answered or closed early)"
              % (len(polls.conns), opened, held, waited, polls.connect_errors, early))
        if not (sent and held == POLLS and early == 0):
            check(False, "the server holds all %d polls before the signal (gauge %s, %d early)" % (POLLS, held, early))
            print("server log (last lines):\n" + log_tail(server))
            finish("shutdown")
        check(True, "the server holds all %d polls (gauge %d)" % (POLLS, held))

        cpu_before = cpu_seconds(server.proc.pid)
        cpu_last = cpu_before
        signalled = time.time()
        server.proc.send_signal(signal.SIGTERM)
        exited_at = None
        last_answer = None
        answered_before = 0
        # Watch past the 5 s bound so a late exit is measured, not only flagged.
        while time.time() - signalled < EXIT_WITHIN + 5:
            polls.pump(0.02)
            done = sum(1 for c in polls.conns if c.done)
            if done > answered_before:
                answered_before, last_answer = done, time.time() - signalled
            if exited_at is None:
                # Read before `poll` reaps the process and its /proc entry goes.
                cpu_last = cpu_seconds(server.proc.pid) or cpu_last
            if exited_at is None and server.proc.poll() is not None:
                exited_at = time.time() - signalled
            if exited_at is not None and polls.open_count() == 0:
                break
        if exited_at is None:
            server.proc.kill()
            server.proc.wait()
        rc = server.proc.returncode

        answered = sum(1 for c in polls.conns if c.page_ok)
        other = {}
        for c in polls.conns:
            if c.done and not c.page_ok:
                other[c.status] = other.get(c.status, 0) + 1
        cut = sum(1 for c in polls.conns if not c.done and c.buf)
        silent = sum(1 for c in polls.conns if not c.done and not c.buf and c.closed)
        still_open = sum(1 for c in polls.conns if not c.done and c.closed is None)
        closed_after = sum(1 for c in polls.conns if c.done and c.closed in ("eof", "reset"))
        print("after SIGTERM: %d of %d answered with an events page, last at %s s; other answers %s; "
              "%d cut mid-answer, %d closed unanswered, %d still open unanswered; %d closed by the server after answering"
              % (answered, POLLS, "%.3f" % last_answer if last_answer is not None else "-", other, cut, silent,
                 still_open, closed_after))
        print("exit: %s s after the signal, code %s; the server used %.2f s of CPU meanwhile"
              % ("%.3f" % exited_at if exited_at is not None else "no exit within %.0f" % (EXIT_WITHIN + 5), rc,
                 (cpu_last or 0) - (cpu_before or 0)))
        check(answered == POLLS, "every held poll gets a whole 200 events page (%d of %d)" % (answered, POLLS))
        check(exited_at is not None and exited_at <= EXIT_WITHIN,
              "the process exits within %.0f s of SIGTERM (%s)"
              % (EXIT_WITHIN, "%.3f s" % exited_at if exited_at is not None else "still running"))
        check(rc == 0, "the exit code is 0 (%s)" % rc)
        if answered != POLLS or exited_at is None or exited_at > EXIT_WITHIN or rc != 0:
            print("server log (last lines):\n" + log_tail(server))
    finally:
        if polls:
            polls.close_all()
        server.stop()
    finish("shutdown")


if __name__ == "__main__":
    main()

"""Whole-file and Range GETs of a song's audio racing the song's DELETE, round after round.
Every answer must be whole (200 or 206, exactly Content-Length bytes, the right bytes) or a
404 problem. A head that promises N bytes and then a closed connection is what a player
cannot tell from a network fault: it retries, seeks or shows a broken track."""
import json
import os
import random
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, check, finish, register  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))
ROUNDS = int(os.environ.get("MUSIT_RACE_ROUNDS", "30"))
MIB = 1 << 20


def fixture(owner):
    """The bytes to upload: the largest fixture the server takes, repeated past 1.5 MiB when
    the server takes that too, so whole-file and > 1 MiB range answers take a while to send."""
    files = []
    for name in os.listdir(AUDIO):
        path = os.path.join(AUDIO, name)
        if name.endswith(".mp3") and os.path.isfile(path) and os.access(path, os.R_OK):
            files.append((os.path.getsize(path), name))
    single = None
    for _, name in sorted(files, reverse=True):
        with open(os.path.join(AUDIO, name), "rb") as f:
            data = f.read()
        status, song = owner.request("POST", "/api/v1/songs", data, {"Content-Type": "audio/mpeg"})
        if status == 201:
            owner.request("DELETE", "/api/v1/songs/%d" % song["id"])
            single = (name, data)
            break
    assert single, "the server takes none of the fixtures in MUSIT_TEST_AUDIO"
    name, data = single
    repeated = data * (int(1.5 * MIB) // len(data) + 1)
    status, song = owner.request("POST", "/api/v1/songs", repeated, {"Content-Type": "audio/mpeg"})
    if status == 201:
        owner.request("DELETE", "/api/v1/songs/%d" % song["id"])
        return "%s x%d" % (name, len(repeated) // len(data)), repeated
    return name, data


def kinds(size):
    """(name, Range header or None, how it reads, how many in flight): whole files, ranges on
    both sides of the 1 MiB line between ranges served from memory and those sent from the
    file, an open end and a suffix. Readers are fast, slow, or probes that leave once the
    body has begun: a body that began comes from a file that was open, so a probe only asks
    whether the head's promise is kept, and probes ask often, which is what lands GETs on
    the moment of the delete."""
    large = min(int(1.2 * MIB), size - 2)
    mid = min(900_000, size // 2)
    return [
        ("whole", None, "fast", 3),
        ("whole-slow", None, "slow", 2),
        ("whole-probe", None, "probe", 16),
        ("range-1.2M", "bytes=1-%d" % large, "fast", 2),
        ("range-1.2M-slow", "bytes=1-%d" % large, "slow", 1),
        ("range-1.2M-probe", "bytes=1-%d" % large, "probe", 8),
        ("range-64K", "bytes=1000-%d" % min(1000 + 65535, size - 1), "fast", 2),
        ("range-880K", "bytes=%d-%d" % (size - mid - 1, size - 2), "fast", 2),
        ("range-open", "bytes=4096-", "fast", 2),
        ("range-suffix-slow", "bytes=-%d" % (size - 1000), "slow", 1),
    ]


def bursts(size):
    """The GETs sent at the moment of the delete: probes of the two shapes read by path."""
    large = min(int(1.2 * MIB), size - 2)
    return [("whole-burst", None, "probe", 16), ("range-1.2M-burst", "bytes=1-%d" % large, "probe", 8)]


def expected_slice(header, data):
    spec = header[len("bytes="):]
    a, _, b = spec.partition("-")
    if a == "":
        return data[len(data) - int(b):]
    return data[int(a):(int(b) + 1 if b else len(data))]


class Fetch:
    """One GET on a non-blocking connection of its own, and what came back."""

    def __init__(self, port, url, shape, after_delete, request=None, connected=False):
        self.shape = shape
        self.kind, self.range, self.mode, _ = shape
        self.after_delete = after_delete
        self.sock = socket.socket()
        if self.mode == "slow":
            # A small receive window makes the server wait on this reader while it sends.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        if connected:
            self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        if not connected:
            self.sock.connect_ex(("127.0.0.1", port))
        req = request or "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % url
        if self.range:
            req += "Range: %s\r\n" % self.range
        self.out = (req + "\r\n").encode()
        self.buf = bytearray()
        self.status, self.headers, self.length, self.body_at = None, {}, -1, -1
        self.ended = None

    def received(self, data):
        """Takes bytes; True once a probe has what it came for (a body that began)."""
        self.buf += data
        if self.status is None:
            at = self.buf.find(b"\r\n\r\n")
            if at < 0:
                return False
            lines = bytes(self.buf[:at]).decode("latin-1").split("\r\n")
            self.status = int(lines[0].split(" ")[1])
            for line in lines[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.length = int(self.headers.get("content-length", "-1"))
            self.body_at = at + 4
        if self.mode == "probe" and self.status in (200, 206) and len(self.buf) > self.body_at:
            self.ended = "began"
            return True
        return False

    @property
    def body(self):
        return bytes(self.buf[self.body_at:]) if self.body_at >= 0 else b""

    def finish(self, how):
        """Ends the fetch at EOF (`how` None) or on an error: 'whole', or how it broke."""
        if how:
            self.ended = how
        elif self.status is None:
            self.ended = "closed before a head"
        elif self.length >= 0 and len(self.buf) - self.body_at < self.length:
            self.ended = "cut after %d of %d bytes" % (len(self.buf) - self.body_at, self.length)
        else:
            self.ended = "whole"

    def judge(self, data):
        """'complete', 'began' (a probe), '404', or what went wrong."""
        status, body = self.status, self.body
        if self.ended == "began":
            want = expected_slice(self.range, data) if self.status == 206 else data
            return "began" if body == want[:len(body)] else "%d beginning with wrong bytes" % status
        if self.ended != "whole":
            return "%s (status %s)" % (self.ended, status) if status else self.ended
        if status == 200:
            return "complete" if body == data else "200 with wrong bytes (%d)" % len(body)
        if status == 206:
            want = expected_slice(self.range, data) if self.range else None
            return "complete" if body == want else "206 with wrong bytes (%d, want %s)" % (len(body), want and len(want))
        if status == 404:
            try:
                problem = json.loads(body)
            except ValueError:
                return "404 without a problem body"
            return "404" if isinstance(problem, dict) and problem.get("status") == 404 else "404 with %r" % body[:80]
        return "status %d" % status


def race(port, owner, data, shapes, burst_shapes, rnd):
    """One song, GETs of every shape in flight, its DELETE at a random moment among them."""
    status, song = owner.request("POST", "/api/v1/songs", data, {"Content-Type": "audio/mpeg"})
    assert status == 201, "round %d: upload answered %d %s" % (rnd, status, song)
    sid = song["id"]
    status, urls = owner.request("GET", "/api/v1/songs/%d/stream" % sid)
    assert status == 200, "round %d: stream URLs answered %d" % (rnd, status)
    deleted = {}
    # The DELETE goes out amid a burst of fresh GETs, from connections made beforehand so
    # they all leave at once: GETs that arrive while the server is deleting are the ones
    # that can find the song and then not find its file.
    burst = [Fetch(port, urls["audio"], shape, False, connected=True) for shape in burst_shapes
             for _ in range(shape[3])]
    random.shuffle(burst)
    eraser = Fetch(port, None, ("delete", None, "fast", 0), False, connected=True,
                   request="DELETE /api/v1/songs/%d HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                           "Connection: close\r\n" % (sid, owner.token))
    burst.insert(random.randrange(len(burst) + 1), eraser)
    delete_at = time.time() + random.uniform(0.05, 0.4)
    sel = selectors.DefaultSelector()
    paused = {}  # slow readers, and when each reads next
    results = []
    # Each slot asks again as soon as its answer is in, until it sees the song gone, so
    # some GET of every shape is always between its lookup of the song and its reading of
    # the file when the file goes.
    idle = [shape for shape in shapes for _ in range(shape[3])]
    give_up = time.time() + 60
    while time.time() < give_up:
        for shape in idle:
            f = Fetch(port, urls["audio"], shape, "at" in deleted)
            sel.register(f.sock, selectors.EVENT_WRITE, f)
        idle = []
        if burst and time.time() >= delete_at:
            for f in burst:
                f.sock.send(f.out)
                f.out = b""
                sel.register(f.sock, selectors.EVENT_READ, f)
            burst = []
        if not sel.get_map() and not paused and not burst:
            break
        now = time.time()
        for f, when in list(paused.items()):
            if when <= now:
                del paused[f]
                sel.register(f.sock, selectors.EVENT_READ, f)
        wait = 0.002 if paused else 0.05
        if burst:
            wait = max(0, min(wait, delete_at - time.time()))
        for key, mask in sel.select(wait):
            f = key.data
            if mask & selectors.EVENT_WRITE:
                try:
                    f.out = f.out[f.sock.send(f.out):]
                except BlockingIOError:
                    continue
                except OSError as e:
                    f.finish("send failed: %s" % e.strerror)
                if f.out and not f.ended:
                    continue
                if not f.ended:
                    sel.modify(f.sock, selectors.EVENT_READ, f)
                    continue
            else:
                try:
                    data_in = f.sock.recv(4096 if f.mode == "slow" else 262144)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    f.finish("reset")
                else:
                    if data_in and not f.received(data_in):
                        if f.mode == "slow":
                            sel.unregister(f.sock)
                            paused[f] = time.time() + 0.002
                        continue
                    if not data_in:
                        f.finish(None)
            sel.unregister(f.sock)
            f.sock.close()
            if f is eraser:
                deleted["status"], deleted["at"] = f.status, time.time()
                continue
            outcome = f.judge(data)
            results.append((f.kind, outcome, f.after_delete))
            if outcome in ("complete", "began") and f.shape in shapes and not ("at" in deleted and time.time() - deleted["at"] > 5):
                idle.append(f.shape)
    for key in list(sel.get_map().values()):
        key.data.sock.close()
        results.append((key.data.kind, "no end in 60 s", key.data.after_delete))
    for f in paused:
        f.sock.close()
        results.append((f.kind, "no end in 60 s", f.after_delete))
    for f in burst:
        f.sock.close()
    assert deleted.get("status") == 204, "round %d: DELETE answered %s" % (rnd, deleted.get("status"))
    return results


def main():
    server = Server().start()
    try:
        owner = Client(server.port, register(server.port, "racer"), timeout=30)
        name, data = fixture(owner)
        shapes, burst_shapes = kinds(len(data)), bursts(len(data))
        print("uploading %s: %d bytes; %d GETs in flight: %s; the DELETE amid %s"
              % (name, len(data), sum(s[3] for s in shapes), ", ".join("%s x%d" % (s[0], s[3]) for s in shapes),
                 ", ".join("%s x%d" % (s[0], s[3]) for s in burst_shapes)))
        seed = os.environ.get("MUSIT_RACE_SEED", str(int(time.time())))
        random.seed(seed)
        fine = ("complete", "began", "404")
        totals = {}
        bad_rounds = late = gone = 0
        bad_by_kind = {}
        start = time.time()
        for rnd in range(1, ROUNDS + 1):
            results = race(server.port, owner, data, shapes, burst_shapes, rnd)
            counts = {}
            late += sum(1 for _, outcome, after in results if outcome in ("complete", "began") and after)
            gone += sum(1 for _, outcome, after in results if outcome == "404" and after)
            for kind, outcome, _ in results:
                key = outcome if outcome in fine else "broken"
                counts[key] = counts.get(key, 0) + 1
                totals[key] = totals.get(key, 0) + 1
                if key == "broken":
                    bad_by_kind.setdefault(kind, []).append(outcome)
            broken = [(k, o) for k, o, _ in results if o not in fine]
            bad_rounds += bool(broken)
            print("round %2d: %3d complete, %3d probes began, %2d 404, %d broken%s"
                  % (rnd, counts.get("complete", 0), counts.get("began", 0), counts.get("404", 0), counts.get("broken", 0),
                     "".join("; %s: %s" % b for b in broken[:4]) + ("; ..." if len(broken) > 4 else "")), flush=True)
        took = time.time() - start
        print("overall: %d complete, %d probes began, %d 404, %d broken answers in %d of %d rounds (%.1f s, seed %s)"
              % (totals.get("complete", 0), totals.get("began", 0), totals.get("404", 0), totals.get("broken", 0),
                 bad_rounds, ROUNDS, took, seed))
        print("GETs sent after the DELETE was answered: %d answered 404, %d served the song" % (gone, late))
        for kind, outcomes in sorted(bad_by_kind.items()):
            print("  broken %s: %d (%s)" % (kind, len(outcomes), ", ".join(sorted(set(o.split(" after")[0] for o in outcomes)))))
        check(totals.get("404", 0) >= ROUNDS, "every round ends with the song gone (%d 404s)" % totals.get("404", 0))
        check(late == 0, "no GET sent after the DELETE was answered is served the song (%d)" % late)
        check(not totals.get("broken"),
              "every answer is whole or a 404 problem (%d broken in %d of %d rounds)"
              % (totals.get("broken", 0), bad_rounds, ROUNDS))
        log = server.read_log().strip()
        if log:
            lines = log.splitlines()
            print("server log: %d lines; the last:\n%s" % (len(lines), "\n".join(lines[-10:])))
    finally:
        server.stop()
    finish("delete_race")


if __name__ == "__main__":
    main()

"""Two `--serve` instances over one PostgreSQL (MUSIT_DATABASE_URL) and one media directory:
a token signed by one is taken by the other; a poll held on one is woken by a message
committed on the other at once, not at its 30 s timeout, with that message exactly; a song
deleted through one is gone on the other within a second (row, audio, HLS), though the other
had it cached; and a media token the other had verified stops when its user is deleted."""
import os
import statistics
import tempfile
import threading
import time

from common import Client, FAILURES, Server, befriend, check, finish, register

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))


def gone_within(port, token, paths, seconds):
    """Seconds until every path answers 404 (or 401 for a token URL), or None."""
    start = time.time()
    while time.time() - start < seconds:
        codes = [Client(port, token).request("GET", p, raw=True)[0] for p in paths]
        if all(c in (401, 404) for c in codes):
            return time.time() - start
        time.sleep(0.02)
    return None


def main():
    media = tempfile.mkdtemp(prefix="musit-media-")
    a = Server(extra_env={"MUSIT_MEDIA": media, "MUSIT_LOG_LEVEL": "notice"})
    b = Server(extra_env={"MUSIT_MEDIA": media, "MUSIT_LOG_LEVEL": "notice"})
    # Both at the same moment, on a database without tables: the migrations run once.
    starts = [threading.Thread(target=s.start) for s in (a, b)]
    for t in starts:
        t.start()
    for t in starts:
        t.join()
    try:
        applied = [s.read_log().count("PostgreSQL migrations applied") for s in (a, b)]
        check(sorted(applied) == [0, 1], "two instances started together on an empty database: migrations applied once (%s)" % applied)
        alice = register(a.port, "xalice")
        bob = register(a.port, "xbob")
        befriend(a.port, alice, "xbob", bob, "xalice")
        s, me = Client(b.port, alice).request("GET", "/api/v1/me")
        check(s == 200, "a token signed by one instance is taken by the other (%d)" % s)
        poller = Client(b.port, bob)
        _, page = poller.request("GET", "/api/v1/events?cursor=0&timeout=0")
        cursor = page["cursor"]
        delays = []
        sender = Client(a.port, alice)
        for i in range(20):
            result = {}

            def poll():
                s, page = poller.request("GET", "/api/v1/events?cursor=%d&timeout=30" % cursor)
                result["at"] = time.time()
                result["page"] = page

            t = threading.Thread(target=poll)
            t.start()
            time.sleep(0.2)  # the poll is held on b
            sent = time.time()
            s, _ = sender.request("POST", "/api/v1/messages", {"to": "xbob", "clientId": "x-%d" % i, "body": "hop %d" % i})
            t.join(35)
            page = result.get("page") or {"events": [], "cursor": cursor}
            bodies = [e["message"]["body"] for e in page["events"] if e.get("message")]
            if bodies != ["hop %d" % i]:
                FAILURES.append("message %d: the poll on the other instance got %s" % (i, bodies))
            delays.append(result.get("at", sent + 99) - sent)
            cursor = page["cursor"]
        delays.sort()
        check(not FAILURES and delays[-1] < 1.0,
              "20 messages sent on one instance woke polls held on the other: p50 %.0f ms, max %.0f ms"
              % (statistics.median(delays) * 1000, delays[-1] * 1000))

        # A song deleted through a, while b has its row, its open file and a token cached.
        with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
            s, song = Client(a.port, alice).request("POST", "/api/v1/songs", f.read(), {"Content-Type": "audio/mpeg"})
        sid = song["id"]
        _, urls = Client(b.port, bob).request("GET", "/api/v1/songs/%d/stream" % sid)
        warm = [Client(b.port).request("GET", urls["audio"], raw=True)[0] for _ in range(2)] + \
            [Client(b.port, bob).request("GET", "/api/v1/songs/%d/audio" % sid, raw=True)[0]]
        check(warm == [200, 200, 200], "b streams the song a stored, from the shared media directory (%s)" % warm)
        s, _ = Client(a.port, alice).request("DELETE", "/api/v1/songs/%d" % sid)
        took = gone_within(b.port, bob, ["/api/v1/songs/%d" % sid, "/api/v1/songs/%d/audio" % sid, urls["audio"], urls["hls"]], 3)
        check(s == 204 and took is not None and took < 1.0,
              "deleted through a, the song's row, audio and HLS are gone on b in %s s" % (None if took is None else "%.3f" % took))
        # A media token b verified (and cached) for a song that stays, whose user is deleted through a.
        carol = register(a.port, "xcarol")
        with open(os.path.join(AUDIO, "sine1k_48k.mp3"), "rb") as f:
            s, kept = Client(a.port, alice).request("POST", "/api/v1/songs", f.read(), {"Content-Type": "audio/mpeg"})
        _, curls = Client(b.port, carol).request("GET", "/api/v1/songs/%d/stream" % kept["id"])
        first = Client(b.port).request("GET", curls["audio"], raw=True)[0]
        s, _ = Client(a.port, carol).request("DELETE", "/api/v1/me", {"password": "correct horse"})
        took = gone_within(b.port, None, [curls["audio"]], 3)
        check(first == 200 and s == 204 and took is not None and took < 1.0,
              "a media token cached on b stops within a second of its user's deletion on a (%s s)" % (None if took is None else "%.3f" % took))
    finally:
        a.stop()
        b.stop()
    finish("cross-instance")


if __name__ == "__main__":
    main()

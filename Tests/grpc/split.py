"""The split deployment: the gateway (`--role gateway --stats H:P`) and Stats (`--role stats`)
in two processes over gRPC, on one data directory, as they would share a database.

- The API is the same: plays and the admin statistics through the gateway.
- Deletions cross the split through the outbox: a deleted song's or account's plays leave
  Stats within a second.
- Stats killed (-9): the routes that need it answer 503 with Retry-After within 2 s while
  sign-in and the rest work; started again, they work within 2 s; deletions made while it
  was down reach it.
- A slow Stats and a 200 ms budget: 504 within 250 ms, and Stats sees the call cancelled.
- Rounds of plays and deletions with kill -9 of either side at random moments: at the end
  no play of a deleted song is left, no acknowledged play is lost, none is repeated, and the
  outbox is empty."""
import http.client
import json
import os
import random
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, check, finish, free_port, register, variant as tagged  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))
ROUNDS = int(os.environ.get("MUSIT_SPLIT_ROUNDS", "12"))
with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
    BASE = f.read()


def variant(n):
    return tagged(BASE, n, "split")


def metric(port, prefix):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    total = 0.0
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(prefix):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Deployment:
    def __init__(self, data, extra_stats_env=None, rpc_timeout=None):
        self.data = data
        self.grpc = free_port()
        self.stats = Server(data=data, args=["--role", "stats", "--grpc-port", str(self.grpc)], log_name="stats.log",
                            extra_env=extra_stats_env)
        env = {"MUSIT_RPC_TIMEOUT": rpc_timeout} if rpc_timeout else {}
        self.gateway = Server(data=data, args=["--role", "gateway", "--stats", "127.0.0.1:%d" % self.grpc],
                              log_name="gateway.log", extra_env=env)

    def start(self):
        self.stats.start()
        self.gateway.start()
        return self

    def stop(self):
        self.gateway.stop()
        self.stats.stop()


def wait_for(predicate, limit):
    t0 = time.time()
    while time.time() - t0 < limit:
        if predicate():
            return time.time() - t0
        time.sleep(0.02)
    return None


data = os.environ.get("MUSIT_SPLIT_DATA") or None
d = Deployment(data=data)
d.data = d.stats.data
d.gateway.data = d.stats.data
d.start()
gw = d.gateway.port
try:
    admin = register(gw, "admin")
    bob = register(gw, "bob")
    A = Client(gw, admin)
    B = Client(gw, bob)
    songs = []
    for n in range(2):
        s, song = A.request("POST", "/api/v1/songs", variant(n), {"Content-Type": "audio/mpeg"})
        assert s == 201, (s, song)
        songs.append(song["id"])

    # The same API across the split.
    s, p = B.request("POST", "/api/v1/plays", {"songId": songs[0], "event": "start", "position": 0})
    check(s == 201 and p.get("playId", 0) > 0, "a play starts through the gateway (%s)" % s)
    s, _ = B.request("POST", "/api/v1/plays", {"songId": songs[0], "event": "end", "position": 4.5, "playId": p["playId"]})
    check(s == 204, "and ends (%s)" % s)
    for _ in range(2):
        A.request("POST", "/api/v1/plays", {"songId": songs[1], "event": "start", "position": 0})
    s, st = A.request("GET", "/api/v1/admin/stats")
    check(s == 200 and [(t["songId"], t["plays"]) for t in st["topSongs"]] == [(songs[1], 2), (songs[0], 1)]
          and st["playsPerDay"][-1]["plays"] == 3 and st["users"] == 2 and st["songs"] == 2,
          "admin statistics compose Stats' totals with the owners' counts")
    s, _ = B.request("POST", "/api/v1/plays", {"songId": songs[0], "event": "end", "position": 1, "playId": p["playId"] + 100})
    check(s == 404, "another's play is 404 across the split (%s)" % s)

    # Deletions cross through the outbox.
    s, _ = A.request("DELETE", "/api/v1/songs/%d" % songs[1])
    took = wait_for(lambda: [t["songId"] for t in A.request("GET", "/api/v1/admin/stats")[1]["topSongs"]] == [songs[0]], 2)
    check(took is not None and took < 1, "a deleted song's plays leave Stats within 1 s (%s s)" % took)
    s, _ = B.request("DELETE", "/api/v1/me", {"password": "correct horse"})
    check(s in (200, 204), "bob deletes his account (%s)" % s)
    took = wait_for(lambda: A.request("GET", "/api/v1/admin/stats")[1]["topSongs"] == [], 2)
    check(took is not None and took < 1, "a deleted account's plays leave Stats within 1 s (%s s)" % took)

    # Stats killed: 503 where it is needed, the rest works; back within 2 s.
    d.stats.kill9()
    t0 = time.time()
    s, body = A.request("GET", "/api/v1/admin/stats", raw=True) if False else A.request("GET", "/api/v1/admin/stats")
    took = time.time() - t0
    check(s == 503 and took < 2, "Stats down: admin statistics 503 in %.3f s (%s)" % (took, s))
    conn = http.client.HTTPConnection("127.0.0.1", gw, timeout=5)
    conn.request("GET", "/api/v1/admin/stats", headers={"Authorization": "Bearer " + admin})
    r = conn.getresponse()
    r.read()
    check(r.getheader("Retry-After") == "1" and r.getheader("Content-Type") == "application/problem+json",
          "with Retry-After: 1, as problem+json")
    s, _ = A.request("POST", "/api/v1/plays", {"songId": songs[0], "event": "start", "position": 0})
    check(s == 503, "a play start: 503 (%s)" % s)
    s, _ = A.request("GET", "/api/v1/me")
    s2, _ = Client(gw).request("POST", "/api/v1/auth/login", {"username": "admin", "password": "correct horse"})
    s3, _ = A.request("GET", "/api/v1/songs")
    check((s, s2, s3) == (200, 200, 200), "me, sign-in and the library work (%s, %s, %s)" % (s, s2, s3))
    s, extra = A.request("POST", "/api/v1/songs", variant(99), {"Content-Type": "audio/mpeg"})
    A.request("DELETE", "/api/v1/songs/%d" % songs[0])   # its Forget waits in the outbox
    d.stats.start()
    t0 = time.time()
    took = wait_for(lambda: A.request("GET", "/api/v1/admin/stats")[0] == 200, 5)
    check(took is not None and took < 2, "Stats back: statistics again within 2 s (%.3f s)" % (took or -1))
    took = wait_for(lambda: A.request("GET", "/api/v1/admin/stats")[1]["topSongs"] == [], 3)
    check(took is not None, "the deletion made while it was down reached it")
finally:
    d.stop()

# A slow Stats: a 200 ms budget gives 504 within 250 ms, and the callee is cancelled.
slow = Deployment(data=None, extra_stats_env={"MUSIT_FAULT_DELAY": "Overview:2000"}, rpc_timeout="0.2")
slow.gateway.data = slow.stats.data
slow.start()
try:
    token = register(slow.gateway.port, "admin")
    c = Client(slow.gateway.port, token)
    before = metric(slow.stats.port, 'grpc_server_handled_total{grpc_service="musit.stats.v1.Stats",grpc_method="Overview"')
    times = []
    for _ in range(5):
        t0 = time.time()
        s, body = c.request("GET", "/api/v1/admin/stats")
        times.append((s, time.time() - t0))
    check(all(s == 504 for s, _ in times) and max(t for _, t in times) < 0.25,
          "slow Stats, 200 ms budget: 504 in %s" % ", ".join("%.0f ms" % (t * 1000) for _, t in times))
    took = wait_for(lambda: metric(slow.stats.port, 'grpc_server_handled_total{grpc_service="musit.stats.v1.Stats",'
                                   'grpc_method="Overview",grpc_code="DeadlineExceeded"')
                    + metric(slow.stats.port, 'grpc_server_handled_total{grpc_service="musit.stats.v1.Stats",'
                             'grpc_method="Overview",grpc_code="Canceled"') - before >= 5, 2)
    check(took is not None, "Stats ended all 5 calls as cancelled or past their deadline, not after 2 s of work")
finally:
    slow.stop()

# Exactly once under kill -9 of either side.
d = Deployment(data=None)
d.gateway.data = d.stats.data
d.start()
gw = d.gateway.port
acked = {}        # song id → plays answered 201
uncertain = {}    # song id → plays whose answer was lost (the process died) or 5xx
deleted = set()   # songs whose DELETE was answered 204
maybe_deleted = set()
rng = random.Random(int(os.environ.get("MUSIT_SPLIT_SEED", str(int(time.time())))))
try:
    token = register(gw, "admin")
    kills = {"stats": 0, "gateway": 0}
    live = []
    for rnd in range(ROUNDS):
        c = Client(gw, token, timeout=10)
        s, song = c.request("POST", "/api/v1/songs", variant(1000 + rnd), {"Content-Type": "audio/mpeg"})
        if s != 201:
            continue
        sid = song["id"]
        live.append(sid)
        stop = threading.Event()
        lock = threading.Lock()

        def player(ids):
            cl = Client(gw, token, timeout=5)
            while not stop.is_set():
                target = rng.choice(ids)
                try:
                    s, _ = cl.request("POST", "/api/v1/plays", {"songId": target, "event": "start", "position": 0})
                except Exception:  # noqa: BLE001 - the gateway died mid-request
                    with lock:
                        uncertain[target] = uncertain.get(target, 0) + 1
                    time.sleep(0.05)
                    continue
                with lock:
                    if s == 201:
                        acked[target] = acked.get(target, 0) + 1
                    elif s >= 500:
                        uncertain[target] = uncertain.get(target, 0) + 1

        def deleter(victim):
            cl = Client(gw, token, timeout=5)
            time.sleep(rng.uniform(0, 0.2))
            try:
                s, _ = cl.request("DELETE", "/api/v1/songs/%d" % victim)
            except Exception:  # noqa: BLE001
                maybe_deleted.add(victim)
                return
            if s == 204:
                deleted.add(victim)
            else:
                maybe_deleted.add(victim)

        threads = [threading.Thread(target=player, args=(list(live),)) for _ in range(3)]
        if len(live) > 3:
            victim = live.pop(rng.randrange(len(live) - 1))
            threads.append(threading.Thread(target=deleter, args=(victim,)))
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.05, 0.4))
        which = rng.choice(["stats", "gateway"])
        kills[which] += 1
        (d.stats if which == "stats" else d.gateway).kill9()
        time.sleep(rng.uniform(0, 0.2))
        (d.stats if which == "stats" else d.gateway).start()
        time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join()
    # Let the outbox drain, then read what Stats holds.
    db = os.path.join(d.stats.data, "musit.sqlite")

    def drained():
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    check(wait_for(drained, 10) is not None, "the outbox drains (%d kills of Stats, %d of the gateway)"
          % (kills["stats"], kills["gateway"]))
    with sqlite3.connect(db, timeout=5) as con:
        counts = dict(con.execute("SELECT songID, COUNT(*) FROM play GROUP BY songID").fetchall())
        rows = {r[0] for r in con.execute("SELECT id FROM song").fetchall()}
    gone = (deleted | maybe_deleted) - rows
    check(all(counts.get(s, 0) == 0 for s in gone), "no play of the %d deleted songs is left" % len(gone))
    bad = [(s, acked.get(s, 0), counts.get(s, 0), uncertain.get(s, 0)) for s in rows
           if not acked.get(s, 0) <= counts.get(s, 0) <= acked.get(s, 0) + uncertain.get(s, 0)]
    check(not bad, "every live song holds its acknowledged plays, plus at most the unanswered ones: %d songs, %d plays "
          "acknowledged, %d unanswered (off: %s)" % (len(rows), sum(acked.get(s, 0) for s in rows),
                                                    sum(uncertain.get(s, 0) for s in rows), bad[:5]))
finally:
    d.stop()
finish("split deployment")

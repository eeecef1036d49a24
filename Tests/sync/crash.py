#!/usr/bin/env python3
"""Crash test: `kill -9` the server during bursts of chat, friend requests and uploads,
again and again. After each restart, every change acknowledged with a 2xx is stored
exactly once with its event, `PRAGMA integrity_check` is ok, and there are no orphans:
no song row without its audio file, no media file without its row, no `.part` file.
With MUSIT_DATABASE_URL set, the server runs on that PostgreSQL and the same checks read it
(through psql; there is no integrity check to run).

    crash.py [--rounds N]
Exit status 0 when every round holds; otherwise the failures are printed.
"""
import argparse
import glob
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from common import Client, Server, befriend, register, variant

PEOPLE = 6


def make_mp3(directory):
    """A 20 s MP3 of about 320 KB, so an upload takes long enough to be killed midway."""
    wav = os.path.join(directory, "tone.wav")
    path = os.path.join(directory, "tone.mp3")
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "1", "-b", "16", wav, "synth", "20", "sine", "330"], check=True)
    subprocess.run(["lame", "--quiet", "-b", "128", wav, path], check=True)
    with open(path, "rb") as f:
        return f.read()


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = 0

    def next(self):
        with self.lock:
            self.n += 1
            return self.n


class Ledger:
    """What the server acknowledged, across every round."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []      # (sender, recipient, clientId, message id)
        self.songs = []         # (owner, song id, sha256)
        self.friendships = set()  # frozenset of two names: a 200/201 accept or crossing request

    def add(self, kind, value):
        with self.lock:
            getattr(self, kind).append(value) if kind != "friendships" else self.friendships.add(value)


def chat_worker(port, me, token, friends, stop, ledger):
    c = Client(port, token, timeout=5)
    while not stop.is_set():
        to = random.choice(friends)
        cid = uuid.uuid4().hex
        try:
            s, m = c.request("POST", "/api/v1/messages", {"to": to, "body": "hi " + cid[:6], "clientId": cid})
        except Exception:  # noqa: BLE001 - the server was killed mid-request
            return
        if s in (200, 201):
            ledger.add("messages", (me, to, cid, m["id"]))


def upload_worker(port, me, token, base, counter, stop, ledger):
    c = Client(port, token, timeout=10)
    while not stop.is_set():
        data = variant(base, counter.next())
        try:
            s, body = c.request("POST", "/api/v1/songs", data, {"Content-Type": "audio/mpeg"})
        except Exception:  # noqa: BLE001
            return
        if s == 201:
            ledger.add("songs", (me, body["id"], body["sha256"]))


def friend_worker(port, people, tokens, pairs, stop, ledger):
    """Crossing requests between strangers: both ask, at once."""
    for a, b in pairs:
        if stop.is_set():
            return
        results = {}

        def ask(x, y):
            try:
                results[x] = Client(port, tokens[x], timeout=5).request("POST", "/api/v1/friends/requests", {"username": y})[0]
            except Exception:  # noqa: BLE001
                results[x] = None
        t1 = threading.Thread(target=ask, args=(a, b))
        t2 = threading.Thread(target=ask, args=(b, a))
        t1.start(); t2.start(); t1.join(); t2.join()
        if 200 in results.values():
            ledger.add("friendships", frozenset((a, b)))


class Database:
    """The server's database, read by the checks: its SQLite file, or the PostgreSQL of
    MUSIT_DATABASE_URL through psql. Queries use `?` for values, and `user` for the table."""

    def __init__(self, server):
        self.url = os.environ.get("MUSIT_DATABASE_URL")
        if self.url:
            self.psql = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]
        else:
            self.db = sqlite3.connect(os.path.join(server.data, "musit.sqlite"))

    def execute(self, sql, params=()):
        if not self.url:
            return self.db.execute(sql, params).fetchall()
        for value in params:
            literal = str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"
            sql = sql.replace("?", literal, 1)
        sql = re.sub(r"\bFROM user\b", 'FROM "user"', sql).replace("MIN(", "LEAST(").replace("MAX(", "GREATEST(")
        out = subprocess.run([self.psql, "-X", "-q", "-A", "-t", "-F", "\t", self.url, "-c", sql],
                             capture_output=True, text=True, check=True).stdout
        rows = []
        for line in out.splitlines():
            if line:
                rows.append(tuple(int(v) if v.lstrip("-").isdigit() else {"t": 1, "f": 0}.get(v, v)
                                  for v in line.split("\t")))
        return rows

    def one(self, sql, params=()):
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def integrity(self):
        return self.url is not None or self.one("PRAGMA integrity_check")[0] == "ok"

    def close(self):
        if not self.url:
            self.db.close()


def verify(server, people, tokens, ledger):
    failures = []
    port = server.port
    db = Database(server)
    if not db.integrity():
        failures.append("integrity_check failed")
    ids = {name: uid for uid, name in db.execute("SELECT id, username FROM user")}
    # Messages: each acknowledged one stored once, with its event in both logs.
    for sender, to, cid, mid in ledger.messages:
        rows = db.execute("SELECT id FROM message WHERE fromID = ? AND clientID = ?", (ids[sender], cid))
        if [r[0] for r in rows] != [mid]:
            failures.append("message %s from %s: stored as %s" % (mid, sender, rows))
    events = {}
    for uid, payload in db.execute("SELECT userID, payload FROM userEvent WHERE kind = 'chat.message'"):
        m = json.loads(payload).get("message") or {}
        events.setdefault(uid, []).append(m.get("id"))
    for uid, mids in events.items():
        if len(mids) != len(set(mids)):
            failures.append("user %d has a message event twice" % uid)
    stored = db.execute("SELECT id, fromID, toID FROM message")
    for mid, f, t in stored:
        for u in (f, t):
            if mid not in events.get(u, []):
                failures.append("message %d is stored without its event for user %d" % (mid, u))
    # Event ids per user: dense from the first kept one, no repeats.
    for uid, in db.execute("SELECT id FROM user"):
        seqs = [r[0] for r in db.execute("SELECT seq FROM userEvent WHERE userID = ? ORDER BY seq", (uid,))]
        row = db.one("SELECT head FROM eventLog WHERE userID = ?", (uid,))
        if row is None:
            failures.append("user %d has no event log: registered without it" % uid)
            continue
        head = row[0]
        if seqs and (seqs != list(range(seqs[0], seqs[0] + len(seqs))) or seqs[-1] != head):
            failures.append("user %d: event ids not dense up to the head %d" % (uid, head))
    # Friendships: one row per pair; acknowledged ones accepted, each with an event.
    pairs = db.execute("SELECT MIN(requesterID, addresseeID), MAX(requesterID, addresseeID), COUNT(*) FROM friendship "
                       "GROUP BY 1, 2 HAVING COUNT(*) > 1")
    if pairs:
        failures.append("friendship pairs stored twice: %s" % pairs)
    for pair in ledger.friendships:
        a, b = sorted(pair)
        row = db.one("SELECT accepted FROM friendship WHERE (requesterID = ? AND addresseeID = ?) OR "
                     "(requesterID = ? AND addresseeID = ?)", (ids[a], ids[b], ids[b], ids[a]))
        if not row or row[0] != 1:
            failures.append("acknowledged friendship %s-%s is not stored" % (a, b))
    for req, adr, acc in db.execute("SELECT requesterID, addresseeID, accepted FROM friendship"):
        kind = "friend.accepted" if acc else "friend.request"
        target = req if acc else adr
        if not db.one("SELECT 1 FROM userEvent WHERE userID = ? AND kind = ?", (target, kind)):
            failures.append("friendship %d-%d (accepted=%d) has no %s event" % (req, adr, acc, kind))
    # Songs: acknowledged ones present once; rows and files match; no partial uploads.
    media = os.path.join(server.data, "media")
    rows = {sid: sha for sid, sha in db.execute("SELECT id, sha256 FROM song")}
    for owner, sid, sha in ledger.songs:
        if rows.get(sid) != sha:
            failures.append("acknowledged song %d (%s) is missing" % (sid, owner))
    for sid in rows:
        if not os.path.exists(os.path.join(media, "%d.mp3" % sid)):
            failures.append("song row %d has no audio file" % sid)
    for path in glob.glob(os.path.join(media, "*.mp3")):
        sid = int(os.path.basename(path).split(".")[0])
        if sid not in rows:
            failures.append("audio file %s has no row" % os.path.basename(path))
    parts = glob.glob(os.path.join(media, "uploads", "*.part"))
    if parts:
        failures.append("%d .part files left" % len(parts))
    # Every acknowledged song streams.
    c = Client(port, tokens[people[0]])
    for owner, sid, sha in ledger.songs[-5:]:
        s, _ = c.request("GET", "/api/v1/songs/%d/audio" % sid, raw=True)
        if s != 200:
            failures.append("song %d answers %d" % (sid, s))
    db.close()
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    random.seed(int(os.environ.get("CRASH_SEED", "20261130")))
    audio = tempfile.mkdtemp(prefix="musit-crash-audio-")
    base = make_mp3(audio)
    counter = Counter()
    server = Server().start()
    people = ["pal%d" % i for i in range(PEOPLE)]
    tokens = {p: register(server.port, p) for p in people}
    # The first three are friends with each other; the rest are strangers to befriend later.
    for i in range(3):
        for j in range(i + 1, 3):
            befriend(server.port, tokens[people[i]], people[j], tokens[people[j]], people[i])
    ledger = Ledger()
    strangers = [(a, b) for i, a in enumerate(people) for b in people[i + 1:] if not (a in people[:3] and b in people[:3])]
    random.shuffle(strangers)
    failures = []
    try:
        for r in range(args.rounds):
            stop = threading.Event()
            threads = []
            for p in people[:3]:
                friends = [q for q in people[:3] if q != p]
                for _ in range(2):
                    threads.append(threading.Thread(target=chat_worker, args=(server.port, p, tokens[p], friends, stop, ledger)))
            for p in people[:2]:
                threads.append(threading.Thread(target=upload_worker, args=(server.port, p, tokens[p], base, counter, stop, ledger)))
            pairs = strangers[r * 2:(r + 1) * 2]
            threads.append(threading.Thread(target=friend_worker, args=(server.port, people, tokens, pairs, stop, ledger)))
            for t in threads:
                t.start()
            time.sleep(random.uniform(0.3, 1.5))
            server.kill9()
            stop.set()
            for t in threads:
                t.join(timeout=15)
            server.start()
            f = verify(server, people, tokens, ledger)
            print("round %d: %d messages, %d songs, %d friendships acknowledged so far; %d failures"
                  % (r + 1, len(ledger.messages), len(ledger.songs), len(ledger.friendships), len(f)), flush=True)
            failures += ["round %d: %s" % (r + 1, x) for x in f]
        log = server.read_log()
        if "repaired the media directory" in log:
            print("crash: start-up repair was logged %d times" % log.count("repaired the media directory"))
    finally:
        server.stop()
    if failures:
        for x in failures[:40]:
            print("FAIL " + x)
        return 1
    print("crash: %d rounds of kill -9; every acknowledged change stored once with its event, no orphans" % args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

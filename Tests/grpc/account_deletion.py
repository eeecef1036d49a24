"""An account's making and deletion cross services through the outbox, exactly once, across kill -9.

Five processes from one binary (Accounts, Library, Social, Stats and a gateway, whose relay
delivers the outbox). Accounts deletes only its own rows and writes `user.deleted` for
each other service; Library deletes the user's songs and files, Social their friendships,
requests, messages and log, telling each friend or asker left once.

- With Social stopped, registering answers 201; the user's log starts when Social is back.
- With Library and Social stopped, a deletion answers 204 (the account is gone); their
  songs and friendships go when the services are back.
- Twenty accounts deleted from four threads while Library, Social and the gateway are
  killed with SIGKILL at random moments and restarted: at the end nothing of them is left
  (rows, files, logs), each survivor heard `friend.removed` exactly once for each deleted
  friend or asker, and a watcher `library.changed` exactly once for each deleted owner.
"""
import glob
import os
import random
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import SERVICES, Client, check, finish, register, start_split, variant, wait_for  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))
random.seed(int(os.environ.get("DELETION_SEED", "20261208")))

with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
    TONE = f.read()


def events(port, token, cursor=0):
    """Every event in a user's log after `cursor`, as (kind, user) pairs."""
    out = []
    while True:
        st, page = Client(port, token).request("GET", "/api/v1/events?cursor=%d&timeout=0" % cursor)
        assert st == 200, (st, page)
        if not page["events"]:
            return out
        out += [(e["kind"], e.get("user")) for e in page["events"]]
        cursor = page["cursor"]


def retry(call, ok, limit=60):
    """`call()` until its status is in `ok` (a process may be down meanwhile)."""
    deadline = time.time() + limit
    while True:
        try:
            st, body = call()
            if st in ok:
                return st, body
        except OSError:
            st, body = None, None
        if time.time() > deadline:
            return st, body
        time.sleep(0.1)


def rows(db, sql, args=()):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


names = SERVICES
services, ports, gateway = start_split()
data = gateway.data
gw = gateway.port
db = os.path.join(data, "musit.sqlite")
media = os.path.join(data, "media")
serial = iter(range(1, 1_000_000))


def make_victim(name, survivors):
    """An account with two songs, two friends, one request pending to a third, and messages."""
    token = register(gw, name)
    ids = []
    for _ in range(2):
        st, song = Client(gw, token).request("POST", "/api/v1/songs", variant(TONE, next(serial), prefix=name),
                                             {"Content-Type": "audio/mpeg"})
        assert st == 201, (st, song)
        ids.append(song["id"])
    friends = random.sample(sorted(survivors), 3)
    for other in friends[:2]:
        st, _ = Client(gw, token).request("POST", "/api/v1/friends/requests", {"username": other})
        assert st == 201, st
        st, _ = Client(gw, survivors[other]).request("POST", "/api/v1/friends/requests/%s/accept" % name)
        assert st == 200, st
        st, _ = Client(gw, token).request("POST", "/api/v1/messages", {"to": other, "body": "hello from " + name,
                                                                       "clientId": "m-%s-%s" % (name, other)})
        assert st in (200, 201), st
    st, _ = Client(gw, token).request("POST", "/api/v1/friends/requests", {"username": friends[2]})
    assert st == 201, st
    return token, ids, friends


try:
    survivors = {"keep%d" % i: None for i in range(5)}
    for n in survivors:
        survivors[n] = register(gw, n)
    watcher = register(gw, "watcher")

    # 0. An account made while Social is down: 201 at once; its log starts when Social is back
    #    (`user.created` through the outbox), and from then on events reach it.
    services["social"].stop()
    st, late = Client(gw).request("POST", "/api/v1/auth/register", {"username": "late", "password": "correct horse"})
    check(st == 201, "with Social down, registering answers 201 (%s)" % st)
    services["social"].start()
    started = wait_for(lambda: rows(db, "SELECT COUNT(*) FROM eventLog WHERE userID = (SELECT id FROM user WHERE username = 'late')")[0][0] == 1
                       and not rows(db, "SELECT COUNT(*) FROM outbox")[0][0], 10)
    check(started is not None, "back up, Social starts the new user's log within %s s" % (started and "%.2f" % started))
    st, _ = retry(lambda: Client(gw, survivors["keep0"]).request("POST", "/api/v1/friends/requests", {"username": "late"}), (201,))
    heard = events(gw, late["accessToken"])
    check(st == 201 and ("friend.request", "keep0") in heard, "and a friend request reaches it (%s, %s)" % (st, heard))
    check(rows(db, "SELECT COUNT(*) FROM consumedOutbox WHERE source = 'accounts'")[0][0] >= 1,
          "Social recorded the message it applied")

    # 1. The consumers down: the deletion is Accounts' alone, and the rest follows them back.
    token, ids, friends = make_victim("early", survivors)
    services["library"].stop()
    services["social"].stop()
    began = time.time()
    st, _ = Client(gw, token, timeout=60).request("DELETE", "/api/v1/me", {"password": "correct horse"})
    took = time.time() - began
    st2, _ = Client(gw, token).request("GET", "/api/v1/me")
    check(st == 204 and st2 == 401, "with Library and Social down, the deletion answers 204 in %.1f s and the account is gone (%s, %s)"
          % (took, st, st2))
    left = rows(db, "SELECT COUNT(*) FROM song WHERE ownerID IN (SELECT ownerID FROM song WHERE id IN (?, ?))", tuple(ids))[0][0]
    check(left == 2, "meanwhile the songs wait for Library (%d rows)" % left)
    services["library"].start()
    services["social"].start()
    gone = wait_for(lambda: not rows(db, "SELECT id FROM song WHERE id IN (?, ?)", tuple(ids))
                    and not rows(db, "SELECT COUNT(*) FROM outbox")[0][0], 10)
    check(gone is not None, "back up, Library deletes them within %s s, and the outbox empties" % (gone and "%.2f" % gone))
    files = [p for i in ids for p in glob.glob(os.path.join(media, "%d.*" % i))]
    check(not files, "with their files (%s)" % files)
    heard = {n: events(gw, survivors[n]).count(("friend.removed", "early")) for n in friends}
    check(all(v == 1 for v in heard.values()), "each friend and the asked heard friend.removed once (%s)" % heard)

    # 2. Twelve deletions under kill -9 of Library, Social and the gateway.
    victims = {}
    for i in range(20):
        name = "gone%d" % i
        victims[name] = make_victim(name, survivors)
    expected_removed = {n: sum(1 for _, _, fr in victims.values() if n in fr) for n in survivors}
    cursors = {n: len(events(gw, survivors[n])) for n in survivors}
    changes_before = events(gw, watcher)
    answers = {}
    stop = threading.Event()
    queue = list(victims)
    lock = threading.Lock()

    def deleter():
        while True:
            with lock:
                if not queue:
                    return
                name = queue.pop()
            token = victims[name][0]
            # 204, or 401 when an earlier try was committed but its answer cut by a kill.
            st, _ = retry(lambda: Client(gateway.port, token, timeout=30).request("DELETE", "/api/v1/me",
                                                                                 {"password": "correct horse"}),
                          (204, 401))
            with lock:
                answers[name] = st
            time.sleep(random.uniform(0.2, 0.9))

    workers = [threading.Thread(target=deleter) for _ in range(4)]
    for w in workers:
        w.start()
    kills = []
    for victim_of_kill in ["library", "social", "gateway", "library", "social", "gateway"]:
        time.sleep(random.uniform(0.05, 0.6))
        proc = gateway if victim_of_kill == "gateway" else services[victim_of_kill]
        proc.kill9()
        kills.append(victim_of_kill)
        time.sleep(random.uniform(0.1, 0.5))
        proc.start()
    for w in workers:
        w.join(timeout=120)
    check(sorted(answers) == sorted(victims) and set(answers.values()) <= {204, 401},
          "20 deletions under %d kills (%s) answered 204 (or 401 after a cut answer): %s"
          % (len(kills), ",".join(kills), sorted(answers.values())))
    gw = gateway.port
    drained = wait_for(lambda: not rows(db, "SELECT COUNT(*) FROM outbox")[0][0], 20)
    check(drained is not None, "the outbox is delivered (%s s)" % (drained and "%.2f" % drained))
    time.sleep(2.5)  # past the relay's check: a redelivery would show now
    ids = sorted(i for _, songs, _ in victims.values() for i in songs)
    marks = ",".join("?" * len(ids))
    left = rows(db, "SELECT id FROM song WHERE id IN (%s)" % marks, ids)
    files = [p for i in ids for p in glob.glob(os.path.join(media, "%d.*" % i))]
    check(not left and not files, "none of their %d songs is left, rows (%s) or files (%s)" % (len(ids), left, files[:4]))
    users = [r[0] for r in rows(db, "SELECT userID FROM eventLog")]
    orphans = {
        "friendships": rows(db, "SELECT COUNT(*) FROM friendship WHERE requesterID NOT IN (SELECT id FROM user) "
                                "OR addresseeID NOT IN (SELECT id FROM user)")[0][0],
        "messages": rows(db, "SELECT COUNT(*) FROM message WHERE fromID NOT IN (SELECT id FROM user) "
                             "OR toID NOT IN (SELECT id FROM user)")[0][0],
        "logs": rows(db, "SELECT COUNT(*) FROM eventLog WHERE userID NOT IN (SELECT id FROM user)")[0][0],
        "events": rows(db, "SELECT COUNT(*) FROM userEvent WHERE userID NOT IN (SELECT id FROM user)")[0][0],
        "songs": rows(db, "SELECT COUNT(*) FROM song WHERE ownerID NOT IN (SELECT id FROM user)")[0][0],
    }
    check(not any(orphans.values()), "nothing of a deleted account is left in Social's or Library's tables (%s)" % orphans)
    removed = {n: sum(1 for k, u in events(gw, survivors[n])[cursors[n]:] if k == "friend.removed" and u in victims)
               for n in survivors}
    check(removed == expected_removed, "each survivor heard friend.removed exactly once per deleted friend or asker: %s (want %s)"
          % (removed, expected_removed))
    after = events(gw, watcher)[len(changes_before):]
    per_owner = {n: after.count(("library.changed", n)) for n in victims}
    check(all(v == 1 for v in per_owner.values()), "the watcher heard library.changed exactly once per deleted owner (%s)" % per_owner)
    for n in list(survivors)[:2]:
        st, page = Client(gw, survivors[n]).request("GET", "/api/v1/friends")
        names_left = [f["username"] for f in page.get("friends", [])] + [r.get("username") for r in page.get("incoming", [])]
        check(st == 200 and not set(names_left) & set(victims), "%s's friends list names none of them (%s)" % (n, names_left))
finally:
    for s in [gateway] + [services[n] for n in reversed(names)]:
        s.stop()

finish("account deletion")

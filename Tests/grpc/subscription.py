"""Two gateways over one Social (`--role social`) and one data directory, on SQLite, where
no database notice carries news between processes: a poll held on gateway B hears of a
change made through gateway A from Social's subscription stream, at once, not at its
timeout.

- 20 messages sent through A, each to a poll held on B with a 20 s timeout: every poll
  answers within 1 s with exactly that message; a friend request wakes B's poll too, and
  so do what the gateway commits to the logs itself (a song uploaded through A, an
  account deleted through A), which it tells Social of.
- Social killed (kill -9) while a poll is held on B, and restarted: B subscribes again,
  the held poll is answered (it reads storage), and messages sent through A reach polls
  held on B within 1 s again; none lost or repeated across the restart.
- SIGTERM of Social with gateways subscribed: it exits at once (the streams end).
- One subscription per gateway, not a call per poll: 50 polls held on B cost Social one
  read each as they come and no call while they wait.
"""
import os
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, befriend, check, finish, free_port, register  # noqa: E402

AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(os.path.dirname(__file__), "..", "..", ".build", "test-audio"))


def metric(port, prefix):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


class Deployment:
    def __init__(self):
        self.grpc = {"social": free_port(), "stats": free_port()}
        self.social = Server(args=["--role", "social", "--grpc-port", str(self.grpc["social"])], log_name="social.log")
        self.data = self.social.data
        self.stats = Server(data=self.data, args=["--role", "stats", "--grpc-port", str(self.grpc["stats"])], log_name="stats.log")
        flags = ["--role", "gateway", "--social", "127.0.0.1:%d" % self.grpc["social"],
                 "--stats", "127.0.0.1:%d" % self.grpc["stats"]]
        self.a = Server(data=self.data, log_name="gateway-a.log", args=flags)
        self.b = Server(data=self.data, log_name="gateway-b.log", args=flags)

    def start(self):
        for s in (self.social, self.stats, self.a, self.b):
            s.start()
        return self

    def stop(self):
        for s in (self.a, self.b, self.stats, self.social):
            s.stop()


def held_poll(port, token, cursor, timeout=20):
    """Starts a poll on `port` from `cursor`; returns (thread, result) where result gets
    the page and the time it came."""
    result = {}

    def run():
        try:
            s, page = Client(port, token, timeout=timeout + 10).request(
                "GET", "/api/v1/events?cursor=%d&timeout=%d" % (cursor, timeout))
            result["status"], result["page"] = s, page
        except Exception as e:  # noqa: BLE001
            result["status"], result["page"] = 0, repr(e)
        result["at"] = time.time()

    t = threading.Thread(target=run)
    t.start()
    return t, result


def head(port, token):
    s, page = Client(port, token).request("GET", "/api/v1/events?cursor=0&timeout=0")
    cursor = page["cursor"]
    while page["events"]:
        cursor = page["cursor"]
        s, page = Client(port, token).request("GET", "/api/v1/events?cursor=%d&timeout=0" % cursor)
    return cursor


def woken(port, token, cursor, action):
    """A poll held on `port` from `cursor`, then `action()` (its status is returned): the
    kinds of events the poll answered and the seconds from the action to the answer."""
    t, r = held_poll(port, token, cursor)
    settle(port)
    sent = time.time()
    status = action()
    t.join(30)
    page = r.get("page") if isinstance(r.get("page"), dict) else {}
    return [e["kind"] for e in page.get("events", [])], status, r.get("at", sent + 99) - sent


def settle(port):
    """Waits until the gateway holds its polls (its held-poll gauge stops rising)."""
    time.sleep(0.3)


d = Deployment().start()
try:
    ann = register(d.a.port, "ann")
    bob = register(d.a.port, "bob")
    cat = register(d.a.port, "cat")
    befriend(d.a.port, ann, "bob", bob, "ann")
    sender = Client(d.a.port, ann)

    def deliver(label, body, cursor):
        """A poll held on B, a message sent through A: (seconds, page, new cursor)."""
        t, r = held_poll(d.b.port, bob, cursor)
        settle(d.b.port)
        sent = time.time()
        s, m = sender.request("POST", "/api/v1/messages", {"to": "bob", "body": body, "clientId": label})
        check(s == 201, "%s: sent through A (%s)" % (label, s))
        t.join(30)
        page = r.get("page") or {}
        events = page.get("events", []) if isinstance(page, dict) else []
        ids = [e["message"]["id"] for e in events if e["kind"] == "chat.message"]
        return r.get("at", time.time()) - sent, ids, m["id"], page.get("cursor", cursor) if isinstance(page, dict) else cursor

    cursor = head(d.b.port, bob)
    delays, wrong = [], []
    for i in range(20):
        took, ids, mid, cursor = deliver("m%d" % i, "hello %d" % i, cursor)
        delays.append(took)
        if ids != [mid]:
            wrong.append((i, ids, mid))
    check(max(delays) < 1 and not wrong,
          "20 messages through A woke polls held on B with exactly that message (p50 %.0f ms, max %.0f ms; wrong %s)"
          % (sorted(delays)[10] * 1000, max(delays) * 1000, wrong[:3]))

    # A friend request through A wakes cat's poll held on B.
    ccur = head(d.b.port, cat)
    kinds, status, took = woken(d.b.port, cat, ccur,
                                lambda: Client(d.a.port, ann).request("POST", "/api/v1/friends/requests", {"username": "cat"})[0])
    check(status in (200, 201) and took < 1 and "friend.request" in kinds,
          "a friend request through A woke cat's poll on B in %.0f ms (%s)" % (took * 1000, kinds))

    # Changes the gateway commits itself reach the other gateway too: a song uploaded
    # through A (library.changed in every log), an account deleted through A (its friend's
    # log says so).
    with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
        song = f.read()
    kinds, up, took = woken(d.b.port, bob, head(d.b.port, bob),
                            lambda: Client(d.a.port, ann).request("POST", "/api/v1/songs", song, {"Content-Type": "audio/mpeg"},
                                                                  raw=True)[0])
    check(up == 201 and took < 1 and "library.changed" in kinds,
          "a song uploaded through A (%s) woke bob's poll on B in %.0f ms (%s)" % (up, took * 1000, kinds))
    eve = register(d.a.port, "eve")
    befriend(d.a.port, eve, "bob", bob, "eve")
    kinds, gone, took = woken(d.b.port, bob, head(d.b.port, bob),
                              lambda: Client(d.a.port, eve).request("DELETE", "/api/v1/me", {"password": "correct horse"})[0])
    check(gone == 204 and took < 1 and "friend.removed" in kinds,
          "an account deleted through A (%s) woke its friend's poll on B in %.0f ms (%s)" % (gone, took * 1000, kinds))
    cursor = head(d.b.port, bob)

    # One subscription per gateway: 50 polls held on B read storage once each, then cost
    # Social no call while they wait.
    calls = 'grpc_server_handled_total{grpc_service="musit.social.v1.Social"'
    before = metric(d.social.port, calls)
    base = metric(d.b.port, "musit_long_polls_held")
    held = [held_poll(d.b.port, bob, cursor, timeout=4) for _ in range(50)]
    deadline = time.time() + 3
    while metric(d.b.port, "musit_long_polls_held") < base + 50 and time.time() < deadline:
        time.sleep(0.02)
    parked = metric(d.social.port, calls)
    time.sleep(2)
    later = metric(d.social.port, calls)
    for t, _ in held:
        t.join(10)
    check(parked - before <= 50 and later == parked,
          "50 polls held on B: %d calls to Social as they came, %d more in the 2 s they were held"
          % (parked - before, later - parked))

    # kill -9 of Social with a poll held on B; restarted, the poll is answered and the
    # stream carries news again.
    t, r = held_poll(d.b.port, bob, cursor)
    settle(d.b.port)
    d.social.kill9()
    time.sleep(0.5)
    d.social.start()
    restarted = time.time()
    t.join(30)
    answered = r.get("at", restarted + 99) - restarted
    page = r.get("page") if isinstance(r.get("page"), dict) else {}
    check(r.get("status") == 200 and answered < 5,
          "Social killed and restarted: the poll held on B was answered %.2f s after the restart (%s)"
          % (answered, r.get("status")))
    cursor = page.get("cursor", cursor)
    after, wrong = [], []
    for i in range(10):
        took, ids, mid, cursor = deliver("r%d" % i, "again %d" % i, cursor)
        after.append(took)
        if ids != [mid]:
            wrong.append((i, ids, mid))
    check(max(after) < 1 and not wrong,
          "after the restart, 10 messages through A woke polls on B (max %.0f ms; wrong %s)" % (max(after) * 1000, wrong[:3]))
    # Stored once each (every delivery above was checked to be exactly its message).
    s, page = Client(d.b.port, bob).request("GET", "/api/v1/conversations/ann/messages?limit=100")
    ids = [m["id"] for m in page["messages"]]
    check(len(ids) == 30 and len(set(ids)) == 30, "bob's conversation holds the 30 messages once each (%d, %d distinct)"
          % (len(ids), len(set(ids))))
    # SIGTERM: Social ends its two subscriptions and exits, without waiting for them.
    t0 = time.time()
    d.social.stop()
    took = time.time() - t0
    check(d.social.proc.returncode == 0 and took < 2,
          "Social with two gateways subscribed exits on SIGTERM in %.2f s (status %s)" % (took, d.social.proc.returncode))
finally:
    d.stop()
finish("social subscription")

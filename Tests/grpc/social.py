"""Social apart (`--role social`), behind a gateway, on one data directory:

- kill -9 of Social while two users chat and poll: the chat routes answer 503 with
  Retry-After within 2 s while sign-in, the account and the library keep working; Social
  restarted, chat works again within 2 s; every message answered 201 is stored once and
  delivered to the poller once, and a message retried with its client id after an
  uncertain answer is stored at most once.
- A slow Social and a 200 ms budget: 504 within 250 ms, and Social ends the calls as
  cancelled instead of finishing them.
"""
import os
import sys
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, befriend, check, finish, free_port, register, wait_for  # noqa: E402

ROUNDS = int(os.environ.get("SOCIAL_KILL_ROUNDS", "3"))


class Deployment:
    def __init__(self, social_env=None, rpc_timeout=None):
        self.grpc = {"social": free_port(), "stats": free_port()}
        self.social = Server(args=["--role", "social", "--grpc-port", str(self.grpc["social"])], log_name="social.log",
                             extra_env=social_env)
        self.data = self.social.data
        self.stats = Server(data=self.data, args=["--role", "stats", "--grpc-port", str(self.grpc["stats"])], log_name="stats.log")
        env = {"MUSIT_RPC_TIMEOUT": rpc_timeout} if rpc_timeout else {}
        self.gateway = Server(data=self.data, log_name="gateway.log", extra_env=env,
                              args=["--role", "gateway", "--social", "127.0.0.1:%d" % self.grpc["social"],
                                    "--stats", "127.0.0.1:%d" % self.grpc["stats"]])

    def start(self):
        self.social.start()
        self.stats.start()
        self.gateway.start()
        return self

    def stop(self):
        for s in (self.gateway, self.stats, self.social):
            s.stop()


def metric(port, prefix):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


d = Deployment().start()
gw = d.gateway.port
acked = {}            # client id -> message id answered 201
uncertain = set()     # client ids whose answer was lost or a 5xx (retried until acknowledged)
delivered = []        # message ids the poller received, in order
try:
    ann = register(gw, "ann")
    bob = register(gw, "bob")
    befriend(gw, ann, "bob", bob, "ann")
    stop = threading.Event()        # the senders
    stop_polling = threading.Event()
    lock = threading.Lock()

    # Where bob's log stands before any message: the poller starts there.
    _, first = Client(gw, bob).request("GET", "/api/v1/events?cursor=0&timeout=0")

    def poller():
        c = Client(gw, bob, timeout=10)
        cursor = first["cursor"]
        while not stop_polling.is_set():
            try:
                s, page = c.request("GET", "/api/v1/events?cursor=%d&timeout=1" % cursor)
            except Exception:  # noqa: BLE001
                time.sleep(0.05)
                continue
            if s != 200:
                time.sleep(0.05)
                continue
            with lock:
                delivered.extend(e["message"]["id"] for e in page["events"] if e["kind"] == "chat.message")
            cursor = page["cursor"]

    def sender():
        c = Client(gw, ann, timeout=5)
        pending = None
        while not stop.is_set():
            cid = pending or uuid.uuid4().hex
            try:
                s, m = c.request("POST", "/api/v1/messages", {"to": "bob", "body": "m " + cid[:8], "clientId": cid})
            except Exception:  # noqa: BLE001
                s, m = 0, None
            with lock:
                if s == 201:
                    acked[cid] = m["id"]
                    pending = None
                else:
                    uncertain.add(cid)
                    pending = cid      # the same client id again: stored at most once
                    time.sleep(0.02)

    threads = [threading.Thread(target=poller), threading.Thread(target=sender), threading.Thread(target=sender)]
    for t in threads:
        t.start()
    downs, ups = [], []
    for rnd in range(ROUNDS):
        time.sleep(0.6)
        d.social.kill9()
        t0 = time.time()
        probe = Client(gw, ann, timeout=5)
        took = wait_for(lambda: probe.request("POST", "/api/v1/messages",
                                              {"to": "bob", "body": "probe", "clientId": "p-%d" % rnd})[0] == 503, 5)
        downs.append(took if took is not None else 99)
        s1, _ = probe.request("GET", "/api/v1/me")
        s2, _ = Client(gw).request("POST", "/api/v1/auth/login", {"username": "ann", "password": "correct horse"})
        s3, _ = probe.request("GET", "/api/v1/songs")
        check((s1, s2, s3) == (200, 200, 200), "round %d, Social down: me, sign-in and the library work (%s, %s, %s)"
              % (rnd + 1, s1, s2, s3))
        d.social.start()
        t0 = time.time()
        took = wait_for(lambda: probe.request("POST", "/api/v1/messages",
                                              {"to": "bob", "body": "back", "clientId": "b-%d" % rnd})[0] == 201, 5)
        ups.append(took if took is not None else 99)
    time.sleep(1)
    stop.set()
    for t in threads[1:]:
        t.join(30)
    # The poller goes on until it has every acknowledged message, or 5 s.
    with lock:
        want = set(acked.values())
    wait_for(lambda: want <= set(delivered), 5)
    stop_polling.set()
    threads[0].join(30)
    check(max(downs) < 2, "Social killed: chat answers 503 within 2 s (%s)" % ", ".join("%.2f s" % t for t in downs))
    check(max(ups) < 2, "Social restarted: chat works again within 2 s (%s)" % ", ".join("%.2f s" % t for t in ups))
    c = Client(gw, ann)
    s, r = Client(gw).request("GET", "/api/v1/conversations/bob/messages?limit=100", None, {"Authorization": "Bearer " + ann})
    history = []
    before = None
    while True:
        q = "/api/v1/conversations/bob/messages?limit=100" + ("&before=%d" % before if before else "")
        s, page = c.request("GET", q)
        history += page["messages"]
        before = page.get("nextBefore")
        if not before:
            break
    by_client = {}
    for m in history:
        by_client.setdefault(m["clientId"], []).append(m["id"])
    repeated = {k: v for k, v in by_client.items() if len(v) > 1}
    lost = [cid for cid in acked if cid not in by_client]
    check(len(acked) > 50 and not lost and not repeated,
          "%d messages acknowledged (%d retried after an uncertain answer): none lost, none stored twice"
          % (len(acked), len(uncertain)))
    # The poller: every acknowledged message once (a poll that failed resumes from its cursor).
    missing = set(acked.values()) - set(delivered)
    twice = len(delivered) - len(set(delivered))
    check(not missing and twice == 0, "the poller received each acknowledged message once (%d missing, %d twice)"
          % (len(missing), twice))
finally:
    d.stop()

# A slow Social: a 200 ms budget gives 504 within 250 ms, and Social is cancelled.
slow = Deployment(social_env={"MUSIT_FAULT_DELAY": "SendMessage:2000"}, rpc_timeout="0.2").start()
try:
    gw = slow.gateway.port
    a = register(gw, "ann")
    b = register(gw, "bob")
    befriend(gw, a, "bob", b, "ann")
    c = Client(gw, a)
    times = []
    for i in range(5):
        t0 = time.time()
        s, _ = c.request("POST", "/api/v1/messages", {"to": "bob", "body": "slow", "clientId": "s%d" % i})
        times.append((s, time.time() - t0))
    check(all(s == 504 for s, _ in times) and max(t for _, t in times) < 0.25,
          "slow Social, 200 ms budget: 504 in %s" % ", ".join("%.0f ms" % (t * 1000) for _, t in times))
    prefix = 'grpc_server_handled_total{grpc_service="musit.social.v1.Social",grpc_method="SendMessage",grpc_code='
    took = wait_for(lambda: metric(slow.social.port, prefix + '"Canceled"') + metric(slow.social.port, prefix + '"DeadlineExceeded"')
                    >= 5, 2)
    check(took is not None, "Social ended all 5 calls as cancelled, not after 2 s of work")
    s, page = c.request("GET", "/api/v1/conversations/bob/messages?limit=10")
    check(s == 200 and not page["messages"], "and stored none of them (%s, %d)" % (s, len(page.get("messages", []))))
finally:
    slow.stop()
finish("social apart")

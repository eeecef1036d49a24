#!/usr/bin/env python3
"""The exactly-once hammer for GET /api/v1/events.

Eight friends write to four users at the same instant, in bursts (a barrier before each)
and in a flood, while every user long-polls from its cursor in a loop (the first user on
two devices). Every message acknowledged with 201 must reach every device of its
recipient exactly once, every page must be in id order above the cursor asked for, and
the events must equal the stored history. Rounds repeat on one server, with the machine's
cores kept busy by low-priority spinners (races show when threads are preempted).

    hammer.py [--rounds N] [--bursts N] [--per-burst N] [--flood N] [--no-pressure]
Exit status 0 when every round is exact; otherwise the failures are printed.
"""
import argparse
import sys
import threading
import time
import uuid

from common import CPUPressure, Client, Server, befriend, register

RECIPIENTS = 4
SENDERS = 8


class Device:
    """One poller of one user: a thread holding long-polls from its own cursor."""

    def __init__(self, port, user, token, label):
        self.client = Client(port, token)
        self.user = user
        self.label = label
        self.cursor = 0
        self.seen = {}          # message id -> times delivered
        self.problems = []
        self.pages = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        s, page = self.client.request("GET", "/api/v1/events?cursor=0&timeout=0")
        assert s == 200, (s, page)
        # Start at the newest: earlier pages (friend requests) are not part of the check.
        while page["events"]:
            self.cursor = page["cursor"]
            s, page = self.client.request("GET", "/api/v1/events?cursor=%d&timeout=0" % self.cursor)
            assert s == 200, (s, page)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            asked = self.cursor
            try:
                s, page = self.client.request("GET", "/api/v1/events?cursor=%d&timeout=2" % asked)
            except Exception as e:  # noqa: BLE001 - any transport error is a finding too
                self.problems.append("%s: poll failed: %r" % (self.label, e))
                time.sleep(0.1)
                continue
            if s != 200:
                self.problems.append("%s: poll answered %s %s" % (self.label, s, page))
                time.sleep(0.1)
                continue
            ids = [e["id"] for e in page["events"]]
            if ids and (ids != sorted(set(ids)) or ids[0] <= asked):
                self.problems.append("%s: page after %d out of order: %s" % (self.label, asked, ids[:20]))
            if page["cursor"] != (ids[-1] if ids else asked):
                self.problems.append("%s: cursor %d does not close page %s" % (self.label, page["cursor"], ids[-5:]))
            with self.lock:
                for e in page["events"]:
                    m = e.get("message")
                    if e["kind"] == "chat.message" and m and m["to"] == self.user:
                        self.seen[m["id"]] = self.seen.get(m["id"], 0) + 1
                self.pages += 1
            self.cursor = page["cursor"]

    def delivered(self):
        with self.lock:
            return dict(self.seen)


def send_worker(port, token, to, plan, barrier, acked, errors):
    c = Client(port, token)
    for count in plan:
        if barrier is not None:
            try:
                barrier.wait(timeout=120)
            except threading.BrokenBarrierError:
                errors.append("barrier broken")
                return
        for _ in range(count):
            body = {"to": to, "body": "m %s" % uuid.uuid4().hex[:8], "clientId": uuid.uuid4().hex}
            try:
                s, m = c.request("POST", "/api/v1/messages", body)
            except Exception as e:  # noqa: BLE001
                errors.append("send failed: %r" % e)
                continue
            if s == 201:
                acked.append((to, m["id"]))
            else:
                errors.append("send answered %s %s" % (s, m))


def history(port, token, other, since_ids):
    """Message ids of the conversation with `other` (every page, newest first)."""
    c = Client(port, token)
    ids, before = set(), None
    while True:
        q = "/api/v1/conversations/%s/messages?limit=200" % other + ("&before=%d" % before if before else "")
        s, page = c.request("GET", q)
        assert s == 200, (s, page)
        ids.update(m["id"] for m in page["messages"])
        before = page.get("nextBefore")
        if not before:
            return ids & since_ids if since_ids is not None else ids


def round_(port, recipients, senders, args, number, poll_port=None):
    # With two instances, the devices poll one and the senders write to the other.
    devices = [Device(poll_port or port, name, tok, "%s#%d" % (name, d))
               for i, (name, tok) in enumerate(recipients) for d in range(2 if i == 0 else 1)]
    for d in devices:
        d.thread.start()
    acked, errors = [], []
    workers = []
    # Bursts: every writer waits at the barrier, then all send at once.
    barrier = threading.Barrier(SENDERS * RECIPIENTS)
    plan = [args.per_burst] * args.bursts
    for sname, stok in senders:
        for rname, _ in recipients:
            workers.append(threading.Thread(target=send_worker, args=(port, stok, rname, plan, barrier, acked, errors)))
    started = time.time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    # Flood: no barrier, as fast as the server takes them.
    workers = [threading.Thread(target=send_worker, args=(port, stok, rname, [args.flood], None, acked, errors))
               for sname, stok in senders for rname, _ in recipients]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.time() - started
    expected = {}
    for to, mid in acked:
        expected.setdefault(to, set()).add(mid)
    # Let the pollers catch up, then stop them.
    deadline = time.time() + 30
    while time.time() < deadline:
        if all(expected.get(d.user, set()) <= set(d.delivered()) for d in devices):
            break
        time.sleep(0.2)
    time.sleep(0.5)  # anything still arriving late would be a repeat: give it the chance to show
    for d in devices:
        d.stop.set()
    for d in devices:
        d.thread.join(timeout=10)
    failures = list(errors)
    lost = repeated = 0
    for d in devices:
        failures += d.problems
        got = d.delivered()
        want = expected.get(d.user, set())
        missing = want - set(got)
        twice = {k: v for k, v in got.items() if v > 1}
        extra = set(got) - want
        lost += len(missing)
        repeated += len(twice)
        if missing:
            failures.append("%s: %d of %d messages never delivered (e.g. %s)" % (d.label, len(missing), len(want), sorted(missing)[:5]))
        if twice:
            failures.append("%s: %d messages delivered more than once (e.g. %s)" % (d.label, len(twice), list(twice.items())[:5]))
        if extra:
            failures.append("%s: %d delivered messages were never acknowledged" % (d.label, len(extra)))
    # The events equal the stored history.
    for rname, rtok in recipients:
        want = expected.get(rname, set())
        stored = set()
        for sname, _ in senders:
            stored |= history(port, rtok, sname, None)
        if not want <= stored:
            failures.append("%s: %d acknowledged messages missing from history" % (rname, len(want - stored)))
        delivered = set(devices[[d.user for d in devices].index(rname)].delivered())
        if not delivered <= stored:
            failures.append("%s: %d delivered messages not in history" % (rname, len(delivered - stored)))
    n = len(acked)
    print("round %d: %d messages in %.1f s (%.0f/s), %d pages polled; lost %d, repeated %d, %d failures"
          % (number, n, elapsed, n / max(elapsed, 1e-9), sum(d.pages for d in devices), lost, repeated, len(failures)),
          flush=True)
    return failures, n, lost, repeated


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bursts", type=int, default=12)
    ap.add_argument("--per-burst", type=int, default=6)
    ap.add_argument("--flood", type=int, default=20)
    ap.add_argument("--no-pressure", action="store_true")
    ap.add_argument("--two-instances", action="store_true",
                    help="a second --serve over the same database (MUSIT_DATABASE_URL); the devices poll it")
    ap.add_argument("--two-gateways", action="store_true",
                    help="MUSIT_SPLIT=1: a second gateway over the first's data and its Social and Stats; the devices poll it")
    ap.add_argument("--port", type=int,
                    help="a server already running on this loopback port (nginx in front of instances), for everything")
    args = ap.parse_args()
    server = None if args.port else Server().start()
    second = Server().start() if args.two_instances else None
    if args.two_gateways:
        # The first gateway's flags name its services (common.Server under MUSIT_SPLIT).
        second = Server(data=server.data, args=list(server.args), log_name="gateway2.log").start()
    try:
        port = args.port or server.port
        poll_port = second.port if second else None
        recipients = [("rcpt%d" % i, register(port, "rcpt%d" % i)) for i in range(RECIPIENTS)]
        senders = [("sndr%d" % i, register(port, "sndr%d" % i)) for i in range(SENDERS)]
        for sname, stok in senders:
            for rname, rtok in recipients:
                befriend(port, stok, rname, rtok, sname)
        all_failures, total, lost, repeated = [], 0, 0, 0
        for r in range(1, args.rounds + 1):
            if args.no_pressure:
                f, n, lo, rep = round_(port, recipients, senders, args, r, poll_port)
            else:
                with CPUPressure():
                    f, n, lo, rep = round_(port, recipients, senders, args, r, poll_port)
            all_failures += f
            total, lost, repeated = total + n, lost + lo, repeated + rep
        print("hammer: %d messages, %d rounds: lost %d, repeated %d" % (total, args.rounds, lost, repeated))
        if all_failures:
            for f in all_failures[:40]:
                print("FAIL " + f)
            return 1
        where = " (sent to one gateway, polled from another over the same Social)" if args.two_gateways else \
            " (sent to one instance, polled from another)" if second else \
            " (through the proxy on port %d)" % args.port if args.port else ""
        print("hammer: every message delivered exactly once, in order, equal to the history" + where)
        return 0
    finally:
        if server:
            server.stop()
        if second:
            second.stop()


if __name__ == "__main__":
    sys.exit(main())

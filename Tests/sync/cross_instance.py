"""Two `--serve` instances over one PostgreSQL (MUSIT_DATABASE_URL): a token signed by one is
taken by the other, and a poll held on one is woken by a message committed on the other at
once, not at its 30 s timeout, with that message exactly."""
import statistics
import sys
import threading
import time

from common import Client, Server, befriend, register

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def main():
    a = Server().start()
    b = Server().start()
    try:
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
                failures.append("message %d: the poll on the other instance got %s" % (i, bodies))
            delays.append(result.get("at", sent + 99) - sent)
            cursor = page["cursor"]
        delays.sort()
        check(not failures and delays[-1] < 1.0,
              "20 messages sent on one instance woke polls held on the other: p50 %.0f ms, max %.0f ms"
              % (statistics.median(delays) * 1000, delays[-1] * 1000))
    finally:
        a.stop()
        b.stop()
    if failures:
        for f in failures[:10]:
            print("FAIL " + f)
        sys.exit(1)
    print("cross-instance: all passed")


if __name__ == "__main__":
    main()

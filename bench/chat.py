"""Chat throughput and delivery latency: 8 senders write to 4 users who long-poll.

Each sender is its own process with a keep-alive connection and writes MESSAGES messages,
round robin over the four recipients, as fast as the server accepts them; each recipient
is a process holding one long-poll at a time from its cursor. Throughput counts messages
accepted *and* delivered to their recipient, from the first send to the last delivery;
latency is from just before a message's POST to its arrival in the recipient's page
(CLOCK_MONOTONIC is one clock for every process). Every binary named runs in turn on the
same machine, so the figures sit side by side.

usage: chat.py [--messages N] LABEL=TARGET [LABEL=TARGET ...]
TARGET: BINARY (SQLite), BINARY,postgres://… (one instance on PostgreSQL), or http://HOST:PORT
(a running deployment, e.g. scripts/cluster.sh's nginx over two instances).
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import statistics
import time

from serverutil import call, peak_rss_mb, start_server

SENDERS, RECIPIENTS = 8, 4


def reporting(target):
    """Runs `target` in a child process; an error there is reported, not a silent hang."""
    def run(*args):
        out = args[-1]
        try:
            target(*args)
        except Exception as e:  # noqa: BLE001
            out.put(("error", repr(e)))
    return run


def sender(port, token, recipients, count, start, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"authorization": "Bearer " + token, "content-type": "application/json"}
    sent = []
    start.wait()
    for i in range(count):
        to = recipients[i % len(recipients)]
        t = time.monotonic()
        c.request("POST", "/api/v1/messages", json.dumps({"to": to, "body": "bench %d" % i, "clientId": os.urandom(8).hex()}), h)
        r = c.getresponse()
        body = json.loads(r.read())
        if r.status == 201:
            sent.append((body["id"], t))
    out.put(("sent", sent))


def poller(port, token, name, expected, start, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"authorization": "Bearer " + token}
    c.request("GET", "/api/v1/events?cursor=0&timeout=0", headers=h)
    page = json.loads(c.getresponse().read())
    cursor = page["cursor"]
    while page["events"]:
        c.request("GET", f"/api/v1/events?cursor={cursor}&timeout=0", headers=h)
        page = json.loads(c.getresponse().read())
        cursor = page["cursor"]
    got = {}
    start.wait()
    deadline = time.monotonic() + 300
    while len(got) < expected and time.monotonic() < deadline:
        c.request("GET", f"/api/v1/events?cursor={cursor}&timeout=10", headers=h)
        page = json.loads(c.getresponse().read())
        now = time.monotonic()
        for e in page["events"]:
            m = e.get("message")
            if e["kind"] == "chat.message" and m and m["to"] == name:
                got.setdefault(m["id"], now)
        cursor = page["cursor"]
    out.put(("got", got))


def deployment(target):
    """`BINARY` (SQLite), `BINARY,postgres://…` (one instance on PostgreSQL), or `http://…`
    (a deployment already running, such as scripts/cluster.sh's nginx): the server process,
    if this run started one, and the port to talk to."""
    if target.startswith("http://"):
        return None, int(target.rstrip("/").rsplit(":", 1)[1])
    binary, _, database = target.partition(",")
    env = {"MUSIT_LOG_LEVEL": "warning"}
    if database:
        env.update(MUSIT_DATABASE_URL=database, MUSIT_JWT_SECRET="a-bench-signing-key-that-is-long-enough-0123456789")
    return start_server(binary, **env)


def run(target, messages):
    server, port = deployment(target)
    try:
        reg = lambda n: call(port, "POST", "/api/v1/auth/register", {"username": n, "password": "correct horse"})["accessToken"]
        recipients = {f"rcpt{i}": reg(f"rcpt{i}") for i in range(RECIPIENTS)}
        senders = {f"sndr{i}": reg(f"sndr{i}") for i in range(SENDERS)}
        for s, st in senders.items():
            for r, rt in recipients.items():
                call(port, "POST", "/api/v1/friends/requests", {"username": r}, st)
                call(port, "POST", f"/api/v1/friends/requests/{s}/accept", None, rt)
        start = mp.Event()
        out = mp.Queue()
        # Sender i-th messages go round robin: recipient r gets those with i % RECIPIENTS == r.
        expected = [SENDERS * len(range(r, messages, RECIPIENTS)) for r in range(RECIPIENTS)]
        procs = [mp.Process(target=reporting(poller), args=(port, t, n, expected[r], start, out))
                 for r, (n, t) in enumerate(recipients.items())]
        procs += [mp.Process(target=reporting(sender), args=(port, t, list(recipients), messages, start, out)) for t in senders.values()]
        for p in procs:
            p.start()
        time.sleep(1.0)  # every poll held
        t0 = time.monotonic()
        start.set()
        sent, got = {}, {}
        for _ in procs:
            kind, value = out.get(timeout=400)
            if kind == "error":
                raise RuntimeError("a client process failed: " + value)
            (sent if kind == "sent" else got).update(dict(value) if kind == "sent" else value)
        for p in procs:
            p.join()
        delivered = [got[m] - sent[m] for m in sent if m in got]
        last = max(got.values()) if got else t0
        rss = peak_rss_mb(server.pid) if server else float("nan")
        return {"sent": len(sent), "delivered": len(delivered), "lost": len(sent) - len(delivered),
                "rate": len(delivered) / max(last - t0, 1e-9),
                "p50": statistics.median(delivered) * 1000 if delivered else float("nan"),
                "p99": statistics.quantiles(delivered, n=100)[98] * 1000 if len(delivered) > 1 else float("nan"),
                "rss": rss}
    finally:
        if server:
            server.terminate()
            server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=400, help="per sender")
    ap.add_argument("binaries", nargs="+", metavar="LABEL=TARGET")
    args = ap.parse_args()
    print(f"== chat: {SENDERS} senders x {args.messages} messages to {RECIPIENTS} long-polling users")
    print(f"  {'server':<10} {'accepted':>8} {'delivered':>9} {'lost':>5} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'peak RSS':>9}")
    rows = []
    for spec in args.binaries:
        label, binary = spec.split("=", 1)
        r = run(binary, args.messages)
        rows.append((label, r))
        print(f"  {label:<10} {r['sent']:>8} {r['delivered']:>9} {r['lost']:>5} {r['rate']:>8.0f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
              f"{r['rss']:>7.0f} MB", flush=True)
    if len(rows) > 1:
        base = rows[0][1]
        for label, r in rows[1:]:
            print(f"  {label} / {rows[0][0]}: throughput x{r['rate'] / base['rate']:.2f}, p50 x{r['p50'] / base['p50']:.2f}, "
                  f"p99 x{r['p99'] / base['p99']:.2f}")


if __name__ == "__main__":
    main()

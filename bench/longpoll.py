"""Long-poll fan-out on loopback: N concurrent polls held on `musit-tui --serve`, one event
wakes them all; prints delivery latency p50/p99 (from the request that published the event
to each poll's answer) and the server's memory per held poll. The polls are held by a small
epoll client in C (bench/longpoll.c), so the client's cost on the shared cores stays small.

Each count runs twice: with keep-alive connections (what Musit's client does) and with one
connection per poll. Beside Musit, the same client measures bench/holdserver.c, a C server
that only holds the polls and writes a canned answer of the same size: the floor for this
machine, since a server can't answer faster than the loopback and the client take it.

Memory: the client opens its N connections first and sends the polls after; the server's
resident memory is read idle, with the connections open, and with every poll held. Bytes
per held poll "alone" is (held - connected) / N; "with its connection" is (held - idle) / N.

Builds of other revisions run beside this one, in turn, in the same rounds
(MUSIT_BASELINE_BINS="name=path,name=path"); each figure is the median of the rounds
(LONGPOLL_ROUNDS, default 3).

usage: longpoll.py TARGET N [N...]
TARGET: MUSIT_BINARY (SQLite) or MUSIT_BINARY,postgres://… (PostgreSQL; each run in a schema
of its own, so the users registered by one run don't collide with the next's)
"""
import os, resource, statistics, subprocess, sys, tempfile, time

from serverutil import call, free_port, start_server

(binary, _, database), counts = sys.argv[1].partition(","), [int(n) for n in sys.argv[2:]]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
rounds = int(os.environ.get("LONGPOLL_ROUNDS", "3"))
targets = [("this", binary)] + [tuple(b.split("=", 1)) for b in os.environ.get("MUSIT_BASELINE_BINS", "").split(",") if b]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def musit(binary, n, mode, tag):
    env = {}
    if database:
        schema = f"longpoll_{n}_{mode.replace('-', '_')}_{tag}_{os.getpid()}"
        env.update(MUSIT_DATABASE_URL=database + ("&" if "?" in database else "?") + "search_path=" + schema,
                   MUSIT_JWT_SECRET="a-bench-signing-key-that-is-long-enough-0123456789")
    server, port = start_server(binary, **env)
    try:
        a = call(port, "POST", "/api/v1/auth/register", {"username": "alice", "password": "correct horse"})
        b = call(port, "POST", "/api/v1/auth/register", {"username": "bob", "password": "correct horse"})
        call(port, "POST", "/api/v1/friends/requests", {"username": "bob"}, a["accessToken"])
        call(port, "POST", "/api/v1/friends/requests/alice/accept", None, b["accessToken"])
        cursor = call(port, "GET", "/api/v1/events?timeout=0", None, b["accessToken"])["cursor"]
        time.sleep(0.2)
        return fan_out(port, b["accessToken"], cursor, n, a["accessToken"], mode, server.pid)
    finally:
        server.terminate()
        server.wait()


def floor(n, mode, size):
    port = free_port()
    server = subprocess.Popen([holdserver, str(port), str(size)])
    try:
        time.sleep(0.3)
        return fan_out(port, "-", 0, n, "-", mode, server.pid)
    finally:
        server.kill()
        server.wait()


def fan_out(port, token, cursor, n, poster, mode, pid):
    hold = 1000 + n // 5
    idle = rss_kb(pid)
    p = subprocess.Popen([client, str(port), token, str(cursor), str(n), poster, str(hold), mode],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    marks = {}
    for line in p.stderr:
        marks[line.strip()] = rss_kb(pid)
    out, _ = p.communicate(timeout=300)
    p50, p99, top, answered, size = out.split()
    connected, held = marks.get("connected", 0), marks.get("held", 0)
    return dict(p50=float(p50), p99=float(p99), max=float(top), answered=int(answered), size=int(size),
                alone=(held - connected) * 1024 / n, with_conn=(held - idle) * 1024 / n)


here = os.path.dirname(os.path.abspath(__file__))
client = os.path.join(tempfile.mkdtemp(), "longpoll")
holdserver = client + "-floor"
subprocess.run(["gcc", "-O2", "-o", client, os.path.join(here, "longpoll.c")], check=True)
subprocess.run(["gcc", "-O2", "-o", holdserver, os.path.join(here, "holdserver.c")], check=True)
print(f"== long-poll fan-out on loopback (one event wakes N held polls), {'PostgreSQL' if database else 'SQLite'}, "
      f"median of {rounds} rounds, targets in turn")
for n in counts:
    for mode in ("keep-alive", "close"):
        runs = {name: [] for name, _ in targets}
        runs["floor"] = []
        for r in range(rounds):
            size = 0
            for name, path in targets:
                res = musit(path, n, mode, f"{name}_{r}".replace("-", "_").replace(".", "_"))
                size = res["size"]
                runs[name].append(res)
            runs["floor"].append(floor(n, mode, size))
        med = {k: {f: statistics.median(x[f] for x in v) for f in ("p50", "p99", "max", "alone", "with_conn")}
               for k, v in runs.items()}
        fl = med["floor"]
        target = "1.5x" if mode == "keep-alive" else "2x"
        for name, _ in targets + [("floor", None)]:
            m = med[name]
            ratios = " ".join(f"{x['p99'] / f['p99']:.2f}" for x, f in zip(runs[name], runs["floor"]))
            answered = min(x["answered"] for x in runs[name])
            line = (f"  {n:6d} {mode:10s} {name:10s} p50 {m['p50']:7.1f} ms  p99 {m['p99']:7.1f} ms  max {m['max']:7.1f} ms"
                    f"  ({answered} answered)")
            if name != "floor":
                line += (f"  p99/floor {m['p99'] / fl['p99']:.2f}x (rounds {ratios}; target {target})"
                         f"  bytes per held poll: {m['alone']:.0f} alone, {m['with_conn']:.0f} with its connection")
            print(line, flush=True)

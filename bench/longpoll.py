"""Long-poll fan-out on loopback: N concurrent polls held on `musit-tui --serve`, one event
wakes them all; prints delivery latency p50/p99 (from the request that published the event
to each poll's answer) and the server's peak RSS. The polls are held by a small epoll client
in C (bench/longpoll.c), so the client's cost on the shared cores stays small.

Each count runs twice: with keep-alive connections (what Musit's client does) and with one
connection per poll. Beside Musit, the same client measures bench/holdserver.c, a C server
that only holds the polls and writes a canned answer of the same size: the floor for this
machine, since a server can't answer faster than the loopback and the client take it.

usage: longpoll.py TARGET N [N...]
TARGET: MUSIT_BINARY (SQLite) or MUSIT_BINARY,postgres://… (PostgreSQL; each run in a schema
of its own, so the users registered by one run don't collide with the next's)
"""
import os, resource, subprocess, sys, tempfile, time

from serverutil import call, free_port, peak_rss_mb, start_server

(binary, _, database), counts = sys.argv[1].partition(","), [int(n) for n in sys.argv[2:]]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def run(n, mode):
    env = {}
    if database:
        schema = f"longpoll_{n}_{mode.replace('-', '_')}_{os.getpid()}"
        env.update(MUSIT_DATABASE_URL=database + ("&" if "?" in database else "?") + "search_path=" + schema,
                   MUSIT_JWT_SECRET="a-bench-signing-key-that-is-long-enough-0123456789")
    server, port = start_server(binary, **env)
    try:
        a = call(port, "POST", "/api/v1/auth/register", {"username": "alice", "password": "correct horse"})
        b = call(port, "POST", "/api/v1/auth/register", {"username": "bob", "password": "correct horse"})
        call(port, "POST", "/api/v1/friends/requests", {"username": "bob"}, a["accessToken"])
        call(port, "POST", "/api/v1/friends/requests/alice/accept", None, b["accessToken"])
        cursor = call(port, "GET", "/api/v1/events?timeout=0", None, b["accessToken"])["cursor"]
        rss_idle = peak_rss_mb(server.pid)
        p50, p99, top, answered, size = fan_out(port, b["accessToken"], cursor, n, a["accessToken"], mode)
        print(f"  {n:6d} pollers, {mode:10s}  Musit: p50 {p50:7.1f} ms, p99 {p99:7.1f} ms, max {top:7.1f} ms "
              f"({answered} answered); server peak RSS {peak_rss_mb(server.pid):.0f} MB (idle {rss_idle:.0f} MB, "
              f"{(peak_rss_mb(server.pid) - rss_idle) * 1024 / n:.1f} KB per held poll; target <= 10)")
    finally:
        server.terminate()
        server.wait()
    port = free_port()
    floor = subprocess.Popen([holdserver, str(port), str(size)])
    try:
        time.sleep(0.3)
        f50, f99, ftop, fanswered, _ = fan_out(port, "-", 0, n, "-", mode)
        print(f"  {n:6d} pollers, {mode:10s}  floor: p50 {f50:7.1f} ms, p99 {f99:7.1f} ms, max {ftop:7.1f} ms "
              f"({fanswered} answered); Musit / floor at p99: {p99 / f99:.2f}x   "
              f"(target at 10,000: {'1.5x' if mode == 'keep-alive' else '2x'})")
    finally:
        floor.kill()
        floor.wait()


def fan_out(port, token, cursor, n, poster, mode):
    hold = 1000 + n // 5
    r = subprocess.run([client, str(port), token, str(cursor), str(n), poster, str(hold), mode],
                       capture_output=True, text=True, timeout=300)
    p50, p99, top, answered, size = r.stdout.split()
    return float(p50), float(p99), float(top), int(answered), int(size)


here = os.path.dirname(os.path.abspath(__file__))
client = os.path.join(tempfile.mkdtemp(), "longpoll")
holdserver = client + "-floor"
subprocess.run(["gcc", "-O2", "-o", client, os.path.join(here, "longpoll.c")], check=True)
subprocess.run(["gcc", "-O2", "-o", holdserver, os.path.join(here, "holdserver.c")], check=True)
print(f"== long-poll fan-out on loopback (one event wakes N held polls), {'PostgreSQL' if database else 'SQLite'}")
for n in counts:
    for mode in ("keep-alive", "close"):
        run(n, mode)

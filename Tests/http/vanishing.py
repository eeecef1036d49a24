"""1,000 held long-polls whose clients vanish with a RST: within a second the server holds
none of them, its resident memory is back at its warm idle level and its descriptors are
closed, and it still answers a fresh poll. A poll whose client is gone must not stay in the
bus until its 60 s timeout, holding memory for nobody."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import FAILURES, Client, Server, check, finish, register  # noqa: E402
from shutdown import Polls, gauge, head_cursor, log_tail, raise_fd_limit, wait_gauge  # noqa: E402

POLLS = 1_000
WITHIN = 1.0


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def settled_rss(pid, samples=5, gap=0.1):
    """The median of a few readings: one reading can land on a passing allocation."""
    readings = []
    for _ in range(samples):
        readings.append(rss_kb(pid))
        time.sleep(gap)
    return sorted(readings)[len(readings) // 2]


def hold(server, token, cursor, timeout=60):
    """POLLS connections with a poll each, held by the server (the gauge says so)."""
    polls = Polls(server.port, token, cursor, timeout=timeout)
    sent = polls.open(POLLS, deadline=time.time() + 30)
    held, took = wait_gauge(server.port, polls, POLLS, 20)
    if not sent or held != POLLS:
        polls.close_all(reset=True)
        print("server log (last lines):\n" + log_tail(server))
        raise AssertionError("the server did not hold %d polls (gauge %s after %.1f s, %d connect errors)"
                             % (POLLS, held, took, polls.connect_errors))
    return polls


def after_reset(server, polls, idle, tolerance):
    """Resets every connection, then watches the gauge, VmRSS and descriptors for WITHIN s:
    the seconds until each came back (None if it did not) and the last readings."""
    pid = server.proc.pid
    polls.close_all(reset=True)
    reset = time.time()
    gauge_at = rss_at = None
    last_gauge = last_rss = None
    while time.time() - reset < WITHIN:
        if gauge_at is None:
            last_gauge = gauge(server.port)
            if last_gauge == 0:
                gauge_at = time.time() - reset
        if rss_at is None:
            last_rss = rss_kb(pid)
            if last_rss <= idle + tolerance:
                rss_at = time.time() - reset
        if gauge_at is not None and rss_at is not None:
            break
        time.sleep(0.02)
    return gauge_at, rss_at, last_gauge, last_rss, fds(pid)


def main():
    raise_fd_limit(POLLS + 512)
    server = Server().start()
    try:
        port, pid = server.port, server.proc.pid
        token = register(server.port, "vanisher")
        cursor = head_cursor(port, token)
        cold_idle, cold_fds = settled_rss(pid), fds(pid)

        # Warm-up: the same hold and reset once, then polls answered by their own timeout,
        # so the allocator's pools and the bus's tables have grown to their working size
        # and what is measured next is what a vanished poll leaves behind.
        polls = hold(server, token, cursor)
        cold_held = rss_kb(pid)
        gauge_at, _, last_gauge, _, _ = after_reset(server, polls, cold_idle, float("inf"))
        check(gauge_at is not None, "warm-up: reset polls leave the gauge (%s)" % last_gauge)
        polls = Polls(port, token, cursor, timeout=2)
        polls.open(POLLS, deadline=time.time() + 30)
        deadline = time.time() + 15
        while time.time() < deadline and sum(1 for c in polls.conns if c.done) < POLLS:
            polls.pump(0.1)
        answered = sum(1 for c in polls.conns if c.page_ok)
        polls.close_all()
        check(answered == POLLS, "warm-up: %d polls held 2 s are each answered with an events page (%d)" % (POLLS, answered))
        print("cold: idle %d KB, %d held polls %d KB (%.1f KB per poll)"
              % (cold_idle, POLLS, cold_held, (cold_held - cold_idle) / POLLS))

        time.sleep(1)
        idle, idle_fds = settled_rss(pid), fds(pid)
        tolerance = max(idle // 10, 2048)
        polls = hold(server, token, cursor)
        held = settled_rss(pid, samples=3)
        held_fds = fds(pid)
        check(gauge(port) == POLLS, "the gauge shows %d held polls" % POLLS)
        gauge_at, rss_at, last_gauge, last_rss, left_fds = after_reset(server, polls, idle, tolerance)
        settled = settled_rss(pid)
        print("warm: idle %d KB, with %d held polls %d KB (%.1f KB per poll), %s KB %s after the RSTs, %d KB a little later; "
              "tolerance %d KB" % (idle, POLLS, held, (held - idle) / POLLS, last_rss,
                                   "%.3f s" % rss_at if rss_at is not None else "(still high at %.0f s)" % WITHIN,
                                   settled, tolerance))
        print("descriptors: %d idle before warm-up, %d warm idle, %d with held polls, %d after the RSTs"
              % (cold_fds, idle_fds, held_fds, left_fds))
        check(gauge_at is not None,
              "the gauge is 0 within %.0f s of the RSTs (%s)"
              % (WITHIN, "%.3f s" % gauge_at if gauge_at is not None else "still %s" % last_gauge))
        check(rss_at is not None,
              "VmRSS is back within %d KB of the warm idle %d KB within %.0f s (%s KB)" % (tolerance, idle, WITHIN, last_rss))
        check(left_fds <= idle_fds + 16, "the server's descriptors are closed (%d, idle %d)" % (left_fds, idle_fds))

        start = time.time()
        status, page = Client(port, token, timeout=10).request("GET", "/api/v1/events?cursor=%d&timeout=1" % cursor)
        took = time.time() - start
        check(status == 200 and isinstance(page, dict) and page.get("events") == [] and "cursor" in page and 0.8 < took < 3,
              "a fresh poll afterwards is held and answered (%d after %.2f s)" % (status, took))
        if FAILURES:
            print("server log (last lines):\n" + log_tail(server))
    finally:
        server.stop()
    finish("vanishing")


if __name__ == "__main__":
    main()
